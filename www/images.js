// The Images tab's panel: a grid of images forming step by step from the same starting noise,
// its live numbers, a few snapshots of every image's path for the close-up, and the exports.
// Knows the DOM, nothing about the engine (as view.js for the toy's panels).
import { PanelChrome, saveBlob } from "./view.js";
import { IMAGE_MODELS, modelTitle } from "./state.js";

/** How many snapshots of the run each panel keeps for the close-up's strip. */
export const STRIP = 10;

/** A pixel on the models' scale [-1, 1] as a gray level, as `geonoise images` draws it. */
export function toGray(v) {
  if (!Number.isFinite(v)) return 255;
  return Math.round(Math.min(1, Math.max(-1, v)) * 127.5 + 127.5);
}

/** Columns of the grid of `n` images: as square as it gets (the CLI's figure does the same). */
export function gridColumns(n) {
  return Math.max(1, Math.ceil(Math.sqrt(n)));
}

/** Draws image `index` of `pixels` (rows of side²) at (x, y), `zoom` canvas pixels a pixel. */
export function drawImage(ctx, pixels, index, side, x, y, zoom) {
  const img = ctx.createImageData(side * zoom, side * zoom);
  const base = index * side * side;
  for (let r = 0; r < side * zoom; r++) {
    for (let c = 0; c < side * zoom; c++) {
      const g = toGray(pixels[base + Math.floor(r / zoom) * side + Math.floor(c / zoom)]);
      const o = 4 * (r * side * zoom + c);
      img.data[o] = img.data[o + 1] = img.data[o + 2] = g;
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, x, y);
}

/** The steps a run of `total` steps keeps snapshots at: STRIP of them, evenly spaced, 0 and the
 * last included. A frame is kept when it is the first at or past the next of these. */
export function stripSteps(total) {
  const k = Math.min(STRIP, total + 1);
  return Array.from({ length: k }, (_, i) => Math.round((i * total) / Math.max(1, k - 1)));
}

/** Samples as the .npy file `geonoise images metrics --samples` reads: float32 [n, side, side]. */
export function samplesNpy(samples, side) {
  const n = samples.length / (side * side);
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${n}, ${side}, ${side}), }`;
  while ((10 + header.length + 1) % 64 !== 0) header += " ";
  header += "\n";
  const bytes = new Uint8Array(10 + header.length + samples.length * 4);
  bytes.set([0x93, ...new TextEncoder().encode("NUMPY"), 1, 0, header.length & 255, header.length >> 8]);
  bytes.set(new TextEncoder().encode(header), 10);
  new Float32Array(bytes.buffer, 10 + header.length).set(samples);
  return bytes;
}

/** Samples as the JSON `geonoise images sample --out` writes and `images metrics` reads, with
 * the model, the sampling job and the page's numbers beside them. */
export function samplesImageJson(msg, extra) {
  const d = msg.side * msg.side;
  const samples = Array.from({ length: msg.samples.length / d }, (_, i) => Array.from(msg.samples.subarray(i * d, (i + 1) * d)));
  return JSON.stringify({ ...extra, config: msg.config, sample: msg.sample, side: msg.side, samples });
}

export class ImagePanelView extends PanelChrome {
  /** `actions`: {onExport(panel, kind)} ("json" or "npy"; the PNG is drawn here), {onPick(panel,
   *  index)} (a click on an image). `reference`: what the numbers are read against, {laplacian}
   *  (the real test images' Laplacian energy), set later by setReference. */
  constructor(parent, panel, actions) {
    super();
    this.panel = panel;
    this.actions = actions;
    const el = document.createElement("section");
    el.className = "panel image-panel";
    el.dataset.panel = panel.id;
    el.innerHTML = `
      <header><h2>${panel.title}</h2><span class="status" role="status"></span></header>
      <div class="progress" hidden><div></div></div>
      <canvas width="420" height="420" aria-label="${panel.title}: a grid of generated images"></canvas>
      <p class="error" hidden></p>
      <dl class="metrics">
        <div><dt title="mean squared Laplacian of the samples over the real test images' (1: as grainy as real images)">residual noise</dt><dd data-m="noise">–</dd></div>
        <div><dt title="share of the samples the classifier gives a class with probability ≥ 0.9, at the run's end">confident</dt><dd data-m="confident">–</dd></div>
        <div><dt>diverged</dt><dd data-m="div">–</dd></div>
        <div><dt>noise level t</dt><dd data-m="t">–</dd></div>
        <div><dt>step</dt><dd data-m="step">–</dd></div>
      </dl>
      ${actions.onExport ? `<div class="exports"><button data-x="png">Grid PNG</button><button data-x="json">Samples JSON</button><button data-x="npy">Samples .npy</button></div>` : ""}
      ${this.trainingButtons(actions)}`;
    parent.appendChild(el);
    this.el = el;
    this.canvas = el.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    for (const b of el.querySelectorAll("[data-x]")) {
      b.addEventListener("click", () => (b.dataset.x === "png" ? this.downloadPng() : actions.onExport(panel, b.dataset.x)));
    }
    if (actions.onPick) {
      this.canvas.style.cursor = "zoom-in";
      this.canvas.addEventListener("click", (e) => {
        const i = this.indexAt(e);
        if (i !== null) actions.onPick(panel, i);
      });
    }
    this.wireTraining(panel, actions);
    this.reference = null;
    this.clear();
  }

  /** The real images' numbers the live ones are read against: {laplacian}. */
  setReference(reference) {
    this.reference = reference;
    if (this.metrics) this.setMetrics(this.metrics, this.step, this.total);
  }

  clear() {
    this.pixels = null;
    this.side = 0;
    this.n = 0;
    this.strip = []; // [{step, t, pixels}]
    this.verdict = null;
    this.metrics = null;
    this.ctx.fillStyle = "#fff";
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    for (const dd of this.el.querySelectorAll("dd")) dd.textContent = "–";
  }

  /** The grid's layout on the canvas: columns, the zoom, and each cell's size with its gap. */
  layout() {
    const cols = gridColumns(this.n);
    const rows = Math.ceil(this.n / cols);
    const cell = Math.floor(this.canvas.width / Math.max(cols, rows));
    const zoom = Math.max(1, Math.floor((cell - 2) / this.side));
    return { cols, zoom, cell };
  }

  /** The image under a click, or null. */
  indexAt(event) {
    if (!this.n) return null;
    const rect = this.canvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) / rect.width) * this.canvas.width;
    const y = ((event.clientY - rect.top) / rect.height) * this.canvas.height;
    const { cols, cell } = this.layout();
    const i = Math.floor(y / cell) * cols + Math.floor(x / cell);
    return x < cols * cell && i >= 0 && i < this.n ? i : null;
  }

  /** A frame: `pixels` (rows of side²) at `step` of `total`, noise level `t`. */
  push(pixels, { step, total, t, side }) {
    this.side = side;
    this.n = pixels.length / (side * side);
    this.pixels = pixels;
    // The next snapshot wanted (the last one is the final step, so a run ends on it).
    const next = stripSteps(total)[this.strip.length];
    if (next !== undefined && step >= next) this.strip.push({ step, t, pixels });
    this.draw();
  }

  draw() {
    const { ctx, canvas } = this;
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!this.pixels) return;
    const { cols, zoom, cell } = this.layout();
    const pad = Math.floor((cell - zoom * this.side) / 2);
    for (let i = 0; i < this.n; i++) drawImage(ctx, this.pixels, i, this.side, (i % cols) * cell + pad, Math.floor(i / cols) * cell + pad, zoom);
  }

  /** Live numbers: {n, diverged, laplacian_energy} at `step` of `total`, noise level `t`; the
   *  classifier's verdict at the end. */
  setMetrics(m, step, total, t, verdict) {
    this.metrics = m;
    this.step = step;
    this.total = total;
    if (t !== undefined) this.t = t;
    if (verdict !== undefined) this.verdict = verdict;
    const set = (k, v) => (this.el.querySelector(`[data-m="${k}"]`).textContent = v);
    const lap = m.laplacian_energy;
    const ref = this.reference?.laplacian;
    set("noise", !Number.isFinite(lap) ? "–" : ref ? `${(lap / ref).toFixed(2)}×` : lap.toFixed(3));
    set("div", `${m.diverged} of ${m.n}`);
    set("t", Number.isFinite(this.t) ? this.t.toPrecision(3) : "–");
    set("step", step === undefined ? "–" : `${step} / ${total}`);
    const v = this.verdict;
    set("confident", v?.error ? "error" : v ? `${Math.round(100 * v.confident_share)}%` : "–");
    this.el.querySelector('[data-m="confident"]').title = v?.error ?? "";
  }

  /** The grid as it is drawn, as a PNG download. */
  downloadPng() {
    this.canvas.toBlob((blob) => {
      const name = `geonoise-${this.panel.key}-${this.panel.data}-step${this.step ?? 0}.png`;
      window.geonoise && (window.geonoise.lastExport = { kind: "png", file: name, bytes: blob.size });
      saveBlob(blob, name);
    }, "image/png");
  }
}

/** The close-up of image `index` of a panel: large, with its strip of snapshots from the
 * starting noise to the current step, and the classifier's reading at the end. */
export function drawDetail(section, view, index, classNames) {
  const big = section.querySelector("canvas.big");
  const strip = section.querySelector("canvas.strip");
  const side = view.side;
  const bctx = big.getContext("2d");
  const zoom = Math.floor(big.width / side);
  bctx.fillStyle = "#fff";
  bctx.fillRect(0, 0, big.width, big.height);
  drawImage(bctx, view.pixels, index, side, 0, 0, zoom);
  const shots = view.strip;
  const sctx = strip.getContext("2d");
  sctx.fillStyle = "#fff";
  sctx.fillRect(0, 0, strip.width, strip.height);
  const cell = Math.floor(strip.width / STRIP);
  const sz = Math.max(1, Math.floor((cell - 4) / side));
  sctx.fillStyle = "#444";
  sctx.font = "11px sans-serif";
  shots.forEach((s, k) => {
    drawImage(sctx, s.pixels, index, side, k * cell, 0, sz);
    sctx.fillText(`t=${s.t.toPrecision(2)}`, k * cell, side * sz + 12);
  });
  const v = view.verdict && !view.verdict.error ? view.verdict.classes?.[index] : null;
  const cls = v ? `; the classifier reads it as ${classNames[v[0]] ?? `class ${v[0]}`} (p = ${v[1].toFixed(2)})` : "";
  const caption = `${view.panel.title}, image ${index} at step ${view.step} of ${view.total} (t = ${Number(view.t).toPrecision(3)}); the strip: the same image at ${shots.map((s) => s.step).join(", ")}${cls}.`;
  section.querySelector(".caption").textContent = caption;
  section.hidden = false;
  return caption;
}

/** A data set's measured image table (pretrained/images/table.json, or images/mnist/table.json)
 *  as HTML rows for the given sampler: the numbers over 1,000 samples that the live ones (a few
 *  dozen) estimate. `data` is the data set's name in words. */
export function renderImageTable(table, solver, steps, shown = IMAGE_MODELS, data = "Fashion-MNIST") {
  if (!table?.rows) return "";
  // The tab's models under its sampler (the table also holds other settings: other time grids,
  // clipping, other losses).
  const plain = (c) => c?.solver === solver && c?.steps === steps && (c.time_grid ?? "default") === "default" && c.clip == null;
  const rows = table.rows.filter((r) => r.model === "real" || (shown.includes(r.model) && plain(r.sample)));
  if (rows.length < 2) return `<p class="reason">The shipped ${data} image table (<code>geonoise images table</code>) has no rows for ${solver} with ${steps} steps; it was measured with ${[...new Set(table.rows.filter((r) => r.sample).map((r) => `${r.sample.solver} ${r.sample.steps}`))].join(" and ")}.</p>`;
  const title = (m) => (m === "real" ? "real training images" : modelTitle(m));
  // A 95 % interval under the number where the table has one (older tables do not).
  const ci = (m, key, f) => (m.intervals?.[key] ? `<br><small>${f(m.intervals[key].lo)}–${f(m.intervals[key].hi)}</small>` : "");
  const fd = (v) => v.toFixed(1);
  const pct = (v) => `${Math.round(100 * v)}%`;
  const ratio = (v) => `${v.toFixed(2)}×`;
  const body = rows
    .map((r) => {
      const m = r.metrics;
      return `<tr><td>${title(r.model)}</td><td>${m.n}</td><td>${fd(m.frechet)}${ci(m, "frechet", fd)}</td><td>${pct(m.confident_share)}${ci(m, "confident_share", pct)}</td><td>${ratio(m.laplacian_ratio)}${ci(m, "laplacian_ratio", ratio)}</td></tr>`;
    })
    .join("");
  return `<p class="reason">Measured on ${data} over 1,000 samples per model with the same sampler (<code>geonoise images table</code>): what the live numbers above estimate from a few dozen. Under each number, its 95 % interval over the samples drawn.</p>
    <table class="regimes"><thead><tr><th>model</th><th>samples</th><th>Fréchet distance (classifier features)</th><th>confident</th><th>residual noise</th></tr></thead><tbody>${body}</tbody></table>`;
}
