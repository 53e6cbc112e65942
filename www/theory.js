// The Theory tab: the marginal energy on the data plane (the paper's Fig. 1) and the posterior
// over the noise level at a probe point, both from the closed-form oracle in the worker. Knows
// the DOM and the drawing, nothing about the engine.

import { EXTENT, toPixel, planePoint, drawCircles } from "./view.js";
import { MODEL_NAMES } from "./state.js";

/** The plane points of a res x res grid over the square, row-major from the top left. */
export function planeGrid(res) {
  const xy = new Float32Array(2 * res * res);
  for (let r = 0; r < res; r++) {
    for (let c = 0; c < res; c++) {
      xy[2 * (r * res + c)] = -EXTENT + ((c + 0.5) / res) * 2 * EXTENT;
      xy[2 * (r * res + c) + 1] = EXTENT - ((r + 0.5) / res) * 2 * EXTENT;
    }
  }
  return xy;
}

/** Fills a res x res grid of cells (row-major from the top left) with `color(i)`. */
function shadeCells(ctx, res, w, color) {
  const cell = w / res;
  for (let r = 0; r < res; r++) {
    for (let c = 0; c < res; c++) {
      ctx.fillStyle = color(r * res + c);
      ctx.fillRect(c * cell, r * cell, cell + 1, cell + 1);
    }
  }
}

/** A chart's canvas cleared to white: its context, size and margins (left `l`, the others fixed). */
function chartCanvas(canvas, l) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width;
  const H = canvas.height;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, W, H);
  return { ctx, W, H, m: { l, r: 10, t: 10, b: 30 } };
}

/** p(t|u) on a log t axis, with the true t (if known), E[t|u] and the geometric estimate;
 * probe: {xy, posterior [K], t_mean, t_std, t_geo, t_true?}; g: the K noise levels. */
export function drawPosterior(canvas, caption, probe, g) {
  const { ctx: pc, W, H, m } = chartCanvas(canvas, 44);
  const lx = (t) => m.l + ((Math.log(t) - Math.log(g[0])) / (Math.log(g[g.length - 1]) - Math.log(g[0]))) * (W - m.l - m.r);
  const pmax = Math.max(...probe.posterior, 1e-12);
  const ly = (p) => H - m.b - (p / pmax) * (H - m.t - m.b);
  pc.strokeStyle = "#999";
  pc.strokeRect(m.l, m.t, W - m.l - m.r, H - m.t - m.b);
  pc.fillStyle = "#555";
  pc.font = "11px system-ui, sans-serif";
  for (let e = Math.ceil(Math.log10(g[0])); e <= Math.floor(Math.log10(g[g.length - 1])); e++) {
    const x = lx(10 ** e);
    pc.fillText(`1e${e}`, x - 10, H - m.b + 14);
    pc.fillRect(x, H - m.b, 1, 4);
  }
  pc.fillText("t (log)", W - m.r - 34, H - 4);
  pc.fillText("p(t|u)", 4, m.t + 10);
  pc.strokeStyle = "#1f5ab4";
  pc.lineWidth = 2;
  pc.beginPath();
  g.forEach((t, k) => (k ? pc.lineTo(lx(t), ly(probe.posterior[k])) : pc.moveTo(lx(t), ly(probe.posterior[k]))));
  pc.stroke();
  pc.lineWidth = 1;
  const mark = (t, color, label, row) => {
    if (!Number.isFinite(t)) return;
    pc.strokeStyle = color;
    pc.setLineDash([4, 3]);
    pc.beginPath();
    pc.moveTo(lx(t), m.t);
    pc.lineTo(lx(t), H - m.b);
    pc.stroke();
    pc.setLineDash([]);
    pc.fillStyle = color;
    pc.fillText(label, Math.min(lx(t) + 3, W - 90), m.t + 12 + 12 * row);
  };
  if (probe.t_true !== undefined) mark(probe.t_true, "#2a8a2a", "true t", 0);
  mark(probe.t_mean, "#1f5ab4", "E[t|u]", 1);
  mark(probe.t_geo, "#c0392b", "from ||u⊥||", 2);
  const f = (v) => (Number.isFinite(v) ? v.toPrecision(3) : "–");
  caption.textContent = `${probe.label ?? (probe.t_true !== undefined ? `A point drawn at t = ${f(probe.t_true)}` : `The clicked point (${probe.xy[0].toFixed(2)}, ${probe.xy[1].toFixed(2)})`)}: E[t|u] = ${f(probe.t_mean)}, sd ${f(probe.t_std)}; the geometric estimate from ||u⊥|| is ${f(probe.t_geo)}.`;
}

export class TheoryView {
  /** `onProbe(xy)`: the person clicked the landscape at plane point xy. */
  constructor(root, { onProbe }) {
    this.root = root;
    this.stability = root.querySelector("#stability");
    this.energy = root.querySelector("#energy");
    this.posterior = root.querySelector("#posterior");
    this.caption = root.querySelector("#probe-caption");
    this.legend = root.querySelector("#energy-caption");
    this.energy.addEventListener("click", (e) => onProbe(planePoint(this.energy, e)));
  }

  /** msg: {res, energy [res²], grad2, pre2 ([res², 2]: -grad E_marg and -gain grad E_marg in the
   *  plane), probe: {...}} */
  renderLandscape(msg) {
    const { res, energy, grad2, pre2 } = msg;
    const ctx = this.energy.getContext("2d");
    const w = this.energy.width;
    let lo = Infinity;
    let hi = -Infinity;
    for (const e of energy) if (Number.isFinite(e)) [lo, hi] = [Math.min(lo, e), Math.max(hi, e)];
    // Energy on a log-compressed scale: the well is infinitely deep at the data as b -> 0.
    const shade = (e) => Math.log1p(e - lo) / Math.log1p(hi - lo || 1);
    const cell = w / res;
    shadeCells(ctx, res, w, (i) => {
      const s = shade(energy[i]);
      return `rgb(${Math.round(40 + 215 * s)}, ${Math.round(60 + 190 * s)}, ${Math.round(120 + 135 * s)})`;
    });
    drawCircles(ctx, w, "rgba(255,255,255,0.7)");
    // Every other cell: the raw descent direction -grad E_marg (white, unit length: its size
    // blows up near the data) and the gain-preconditioned field -gain grad E_marg (orange, to
    // scale, clipped to a cell).
    const arrow = (x, y, dx, dy, color) => {
      ctx.strokeStyle = color;
      ctx.beginPath();
      ctx.moveTo(x, y);
      ctx.lineTo(x + dx, y - dy);
      ctx.stroke();
      ctx.fillStyle = color;
      ctx.fillRect(x + dx - 1, y - dy - 1, 2, 2);
    };
    let scale = 0;
    for (let i = 0; i < res * res; i++) scale = Math.max(scale, Math.hypot(pre2[2 * i], pre2[2 * i + 1]) || 0);
    for (let r = 1; r < res; r += 2) {
      for (let c = 1; c < res; c += 2) {
        const i = r * res + c;
        const x = (c + 0.5) * cell;
        const y = (r + 0.5) * cell;
        const g = Math.hypot(grad2[2 * i], grad2[2 * i + 1]);
        if (g > 0 && Number.isFinite(g)) arrow(x, y, (-grad2[2 * i] / g) * cell * 0.8, (-grad2[2 * i + 1] / g) * cell * 0.8, "rgba(255,255,255,0.85)");
        const p = Math.hypot(pre2[2 * i], pre2[2 * i + 1]);
        if (p > 0 && Number.isFinite(p)) {
          const len = (Math.min(p / scale, 1) * cell * 1.6) / p;
          arrow(x, y, -pre2[2 * i] * len, -pre2[2 * i + 1] * len, "rgba(255,150,40,0.95)");
        }
      }
    }
    this.legend.textContent = `E_marg from ${lo.toFixed(1)} (dark) to ${hi.toFixed(1)} (light), log-compressed; white: -∇E_marg (direction only); orange: -λ̄ ∇E_marg, the gain-preconditioned field (to scale).`;
    this.renderProbe(msg.probe, msg.grid);
  }

  /** probe: {xy, posterior [K], t_mean, t_geo, t_true?}; grid: the K noise levels. */
  renderProbe(probe, grid) {
    const ctx = this.energy.getContext("2d");
    const w = this.energy.width;
    // The probe point on the landscape.
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(toPixel(probe.xy[0], w), toPixel(-probe.xy[1], w), 5, 0, 2 * Math.PI);
    ctx.stroke();
    ctx.lineWidth = 1;

    drawPosterior(this.posterior, this.caption, probe, grid);
  }

  /** curves: [{model, ts, drift}], drawn log-log. */
  renderStability(curves) {
    const { ctx, W, H, m } = chartCanvas(this.stability, 44);
    const all = curves.flatMap((c) => c.drift.filter((v) => v > 0 && Number.isFinite(v)));
    const ts = curves.flatMap((c) => c.ts);
    const [x0, x1] = [Math.log10(Math.min(...ts)), Math.log10(Math.max(...ts))];
    const [y0, y1] = [Math.floor(Math.log10(Math.min(...all))), Math.ceil(Math.log10(Math.max(...all)))];
    const lx = (t) => m.l + ((Math.log10(t) - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
    const ly = (v) => H - m.b - ((Math.log10(v) - y0) / (y1 - y0 || 1)) * (H - m.t - m.b);
    ctx.strokeStyle = "#999";
    ctx.strokeRect(m.l, m.t, W - m.l - m.r, H - m.t - m.b);
    ctx.fillStyle = "#555";
    ctx.font = "11px system-ui, sans-serif";
    for (let e = Math.ceil(x0); e <= Math.floor(x1); e++) ctx.fillText(`1e${e}`, lx(10 ** e) - 10, H - m.b + 14);
    for (let e = y0; e <= y1; e++) ctx.fillText(`1e${e}`, 4, ly(10 ** e) + 4);
    ctx.fillText("t (log)", W - m.r - 34, H - 4);
    const COLORS = { ddpm: "#c0392b", edm: "#8e44ad", fm: "#1f5ab4" };
    const NAMES = { ddpm: "noise (DDPM)", edm: "signal (EDM)", fm: "velocity (FM)" };
    curves.forEach((c, i) => {
      ctx.strokeStyle = COLORS[c.model];
      ctx.lineWidth = 2;
      ctx.beginPath();
      let started = false;
      c.ts.forEach((t, k) => {
        const v = c.drift[k];
        if (!(v > 0 && Number.isFinite(v))) return;
        started ? ctx.lineTo(lx(t), ly(v)) : ctx.moveTo(lx(t), ly(v));
        started = true;
      });
      ctx.stroke();
      ctx.fillStyle = COLORS[c.model];
      ctx.fillText(NAMES[c.model], W - m.r - 90, m.t + 14 + 13 * i);
    });
    ctx.lineWidth = 1;
  }

  /** App. C: histograms of ||u|| / sqrt(D) for draws from the marginal at five noise levels
   *  (c: {model, dim, levels, norms [5 * m], t_mean, t_std}); returns the caption. */
  renderConcentration(c, canvas, caption) {
    const { ctx, W, H, m } = chartCanvas(canvas, 10);
    const L = c.levels.length;
    const per = c.norms.length / L;
    // A log axis: the shells' widths shrink with their norms, and the low levels sit close.
    let [lo, hi] = [Infinity, 0];
    for (const v of c.norms) if (Number.isFinite(v) && v > 0) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    [lo, hi] = [lo / 1.1, hi * 1.1];
    const BINS = 80;
    const bin = (v) => Math.min(BINS - 1, Math.max(0, Math.floor((BINS * Math.log(v / lo)) / Math.log(hi / lo))));
    const counts = Array.from({ length: L }, (_, k) => {
      const h = new Array(BINS).fill(0);
      for (let i = 0; i < per; i++) h[bin(c.norms[k * per + i])]++;
      return h;
    });
    const top = Math.max(...counts.flat());
    const x = (b) => m.l + (b / BINS) * (W - m.l - m.r);
    const y = (n) => H - m.b - (n / top) * (H - m.t - m.b);
    ctx.strokeStyle = "#999";
    ctx.strokeRect(m.l, m.t, W - m.l - m.r, H - m.t - m.b);
    const COLORS = ["#1f5ab4", "#16a085", "#d68910", "#c0392b", "#6c3483"];
    counts.forEach((h, k) => {
      ctx.strokeStyle = COLORS[k % COLORS.length];
      ctx.lineWidth = 2;
      ctx.beginPath();
      h.forEach((n, b) => {
        if (b === 0) ctx.moveTo(x(0), y(n));
        else ctx.lineTo(x(b), y(n));
        ctx.lineTo(x(b + 1), y(n));
      });
      ctx.stroke();
      ctx.fillStyle = COLORS[k % COLORS.length];
      ctx.font = "11px system-ui, sans-serif";
      ctx.fillText(`t = ${c.levels[k].toPrecision(2)}`, W - m.r - 70, m.t + 14 + 13 * k);
    });
    ctx.lineWidth = 1;
    ctx.fillStyle = "#555";
    ctx.fillText(lo.toPrecision(2), m.l, H - m.b + 14);
    ctx.fillText("‖u‖/√D (log)", W / 2 - 30, H - m.b + 14);
    ctx.fillText(hi.toPrecision(2), W - m.r - 30, H - m.b + 14);
    // Neighbouring shells overlap where their ranges do.
    const range = (k) => {
      const v = Array.from(c.norms.subarray(k * per, (k + 1) * per)).sort((a, b) => a - b);
      return [v[Math.floor(0.05 * per)], v[Math.floor(0.95 * per)]];
    };
    const parted = Array.from({ length: L - 1 }, (_, k) => range(k)[1] < range(k + 1)[0] || range(k + 1)[1] < range(k)[0]).filter(Boolean).length;
    const spreads = c.levels.map((t, k) => `${t.toPrecision(2)}: ±${c.t_std[k].toPrecision(2)}`).join(", ");
    const text = `Concentration (App. C) at D = ${c.dim} for ${c.model.toUpperCase()}: the norm ‖u‖/√D of 400 points drawn at each of five noise levels. ` +
      `${parted} of ${L - 1} neighbouring shells are apart (their middle 90 % do not overlap). The posterior's spread of t at such points, by level: ${spreads}. ` +
      (parted === L - 1
        ? "Every level can be read off ‖u‖ alone: this is why a blind model can work here."
        : "Where neighbouring shells overlap, ‖u‖ alone does not tell those levels apart (at the lowest levels the data's own norm varies more than the noise adds); drag D up and watch them part.");
    caption.textContent = text;
    return { parted, text };
  }

  /** The shipped blind checkpoint's field against the exact blind field: the relative difference
   *  ||f - f*|| / ||f*|| shaded per cell, directions in the plane (blue learned, black exact). */
  renderCompare(compare, state) {
    const canvas = this.root.querySelector("#compare");
    const caption = this.root.querySelector("#compare-caption");
    const ctx = canvas.getContext("2d");
    const w = canvas.width;
    ctx.fillStyle = "#fafafa";
    ctx.fillRect(0, 0, w, w);
    if (!compare) {
      caption.textContent = `No checkpoint ships at D = ${state.pdim} (they are at D = 2, 8, 32, 128 and 512).`;
      return;
    }
    const { res, learned2, exact2, diff } = compare;
    const cell = w / res;
    shadeCells(ctx, res, w, (i) => `rgba(210, 60, 40, ${0.08 + 0.8 * Math.min(diff[i], 1)})`);
    drawCircles(ctx, w, "rgba(120,120,120,0.8)");
    const dir = (v, i, color) => {
      const n = Math.hypot(v[2 * i], v[2 * i + 1]);
      if (!(n > 0) || !Number.isFinite(n)) return;
      const x = ((i % res) + 0.5) * cell;
      const y = (Math.floor(i / res) + 0.5) * cell;
      ctx.strokeStyle = color;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(x, y);
      ctx.lineTo(x + (v[2 * i] / n) * cell * 0.45, y - (v[2 * i + 1] / n) * cell * 0.45);
      ctx.stroke();
    };
    for (let i = 0; i < res * res; i++) {
      dir(exact2, i, "#222");
      dir(learned2, i, "#1f5ab4");
    }
    ctx.lineWidth = 1;
    const sorted = Array.from(diff).sort((a, b) => a - b);
    const name = MODEL_NAMES[state.pmodel];
    caption.textContent = `${name} Blind, the shipped checkpoint at D = ${state.pdim}, against the exact blind field (the oracle's 128 points): relative difference ||f − f*|| / ||f*|| median ${sorted[sorted.length >> 1].toFixed(2)}, shaded (darker: larger, 1 and above darkest). Field directions in the plane: blue learned, black exact.`;
  }
}
