// One panel: a canvas with the data circles, the samples and their fading trails, and the
// panel's live metrics. Knows the DOM, nothing about the engine.

import { cleanText } from "./regimes.js";

const R_INNER = 2 / Math.sqrt(5);
const R_OUTER = 4 / Math.sqrt(5);
export const EXTENT = 2.6; // half-width of the plotted square, in data units
const TRAIL = 10; // frames kept for the fading trails

/** A data-plane coordinate to pixels on a square canvas `w` wide (flip y for the vertical). */
export function toPixel(x, w) {
  return ((x + EXTENT) / (2 * EXTENT)) * w;
}

/** The data-plane point under a click on a square plane canvas. */
export function planePoint(canvas, event) {
  const rect = canvas.getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * 2 * EXTENT - EXTENT;
  const y = EXTENT - ((event.clientY - rect.top) / rect.height) * 2 * EXTENT;
  return [x, y];
}

/** The two data circles on a square plane canvas `w` wide. */
export function drawCircles(ctx, w, color) {
  ctx.strokeStyle = color;
  ctx.lineWidth = 1;
  for (const r of [R_INNER, R_OUTER]) {
    ctx.beginPath();
    ctx.arc(w / 2, w / 2, (r / (2 * EXTENT)) * w, 0, 2 * Math.PI);
    ctx.stroke();
  }
}

/** What every panel shares, whatever it draws (toy samples or images): the status line, the
 * download bar and the error line, in a `section.panel` at `this.el`. */
/** Hands `blob` to the browser as a download named `file`. */
/** A select's options: one per key, showing `label(key)`. */
export function options(keys, label = String) {
  return keys.map((k) => `<option value="${k}">${label(k)}</option>`).join("");
}

export function saveBlob(blob, file) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = file;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

/** A square plane canvas cleared to its background. */
export function clearPlane(ctx, w) {
  ctx.fillStyle = "#fbfbfb";
  ctx.fillRect(0, 0, w, w);
}

/** Points of the plane (flat [x0, y0, …]) as small squares of `size` pixels. */
export function drawPoints(ctx, w, points, color, size) {
  ctx.fillStyle = color;
  for (let j = 0; j < points.length; j += 2) ctx.fillRect(toPixel(points[j], w) - size / 2, toPixel(-points[j + 1], w) - size / 2, size, size);
}

export class PanelChrome {
  setStatus(text) {
    this.el.querySelector(".status").textContent = text;
  }

  setProgress(fraction) {
    const bar = this.el.querySelector(".progress");
    bar.hidden = fraction === null;
    if (fraction !== null) bar.firstElementChild.style.width = `${Math.round(100 * Math.max(0, Math.min(1, fraction)))}%`;
  }

  setError(text) {
    const p = this.el.querySelector(".error");
    p.hidden = !text;
    p.textContent = text || "";
    this.el.classList.toggle("failed", !!text);
  }

  /** A training panel's buttons (a Train tab's), where `actions` has onDownload. */
  trainingButtons(actions) {
    return actions.onDownload
      ? `<div class="exports"><button data-t="download" disabled>Download checkpoint</button><button data-t="state" disabled title="the run's whole state: Load it here (or the CLI's --state) to go on exactly">Download state</button>
        <label class="file">Load checkpoint or state… <input type="file" accept=".safetensors,.state"></label></div>`
      : "";
  }

  /** Wires `trainingButtons` to {onDownload(panel), onDownloadState(panel), onImport(panel, file)}. */
  wireTraining(panel, actions) {
    if (!actions.onDownload) return;
    this.el.querySelector("[data-t=download]").addEventListener("click", () => actions.onDownload(panel));
    this.el.querySelector("[data-t=state]").addEventListener("click", () => actions.onDownloadState(panel));
    const input = this.el.querySelector("input[type=file]");
    input.addEventListener("change", () => {
      if (input.files[0]) actions.onImport(panel, input.files[0]);
      input.value = "";
    });
  }

  /** Enables the Download checkpoint and Download state buttons (Train tabs). */
  setDownloadable(on) {
    for (const b of this.el.querySelectorAll("[data-t=download], [data-t=state]")) b.disabled = !on;
  }

  /** One line of training progress under the title (Train tabs). */
  setTraining(text) {
    let p = this.el.querySelector(".training");
    if (!p) {
      p = document.createElement("p");
      p.className = "training";
      this.el.querySelector("header").after(p);
    }
    p.textContent = text;
  }
}

export class PanelView extends PanelChrome {
  /** `actions`: {onExport(panel, kind)} (no export buttons without it), {onPick(panel, xy)} (a
   *  click on the canvas), and for a Train-tab panel also {onDownload(panel), onImport(panel, file)}. */
  constructor(parent, panel, actions) {
    super();
    this.panel = panel;
    this.trail = [];
    const el = document.createElement("section");
    el.className = "panel";
    el.dataset.panel = panel.id;
    el.innerHTML = `
      <header><h2>${panel.title}</h2><span class="status" role="status"></span></header>
      <div class="progress" hidden><div></div></div>
      <canvas width="420" height="420" aria-label="${panel.title} samples in the data plane"></canvas>
      <p class="error" hidden></p>
      <dl class="metrics">
        <div><dt>clean</dt><dd data-m="clean">–</dd></div>
        <div><dt>radial error</dt><dd data-m="radial">–</dd></div>
        <div><dt>off-manifold</dt><dd data-m="off">–</dd></div>
        <div><dt>diverged</dt><dd data-m="div">–</dd></div>
        <div><dt>step</dt><dd data-m="step">–</dd></div>
      </dl>
      ${actions.onExport ? `<div class="exports"><button data-x="json">Export JSON</button><button data-x="csv">Samples CSV</button><button data-x="traj">Trajectories CSV</button></div>` : ""}
      ${this.trainingButtons(actions)}`;
    parent.appendChild(el);
    this.el = el;
    this.canvas = el.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    for (const b of el.querySelectorAll("[data-x]")) b.addEventListener("click", () => actions.onExport(panel, b.dataset.x));
    if (actions.onPick) {
      // A click on the canvas: the data-plane point under it.
      this.canvas.style.cursor = "crosshair";
      this.canvas.addEventListener("click", (e) => actions.onPick(panel, planePoint(this.canvas, e)));
    }
    this.wireTraining(panel, actions);
    this.clear();
  }

  setMetrics(m, step, total) {
    const f = (v, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(d));
    const q = (k) => this.el.querySelector(`[data-m="${k}"]`);
    q("clean").textContent = m && Number.isFinite(m.clean_fraction) ? cleanText(m.clean_fraction, m.n) : "–";
    q("clean").title = "share of samples within a tenth of the circles' gap (0.089) of a circle, with its 95 % Wilson interval over the samples";
    q("radial").textContent = m ? `${f(m.radial_error_median)} median, ${f(m.radial_error_p90)} p90` : "–";
    q("off").textContent = m ? `${f(m.off_manifold_mean)} mean, ${f(m.off_manifold_median)} median` : "–";
    q("div").textContent = m ? `${(100 * m.diverged_fraction).toFixed(1)}% (${m.diverged})` : "–";
    q("step").textContent = step === undefined ? "–" : `${step} / ${total}`;
  }


  clear() {
    this.trail = [];
    this.draw();
  }

  /** The data under the samples: the circles (null), or a data set's points in the plane (a
   *  flat [x0, y0, x1, y1, …] as the core normalised them). */
  setData(points) {
    this.data = points;
    this.draw();
  }

  push(xy) {
    this.trail.push(xy);
    if (this.trail.length > TRAIL) this.trail.shift();
    this.draw();
  }

  draw() {
    const { ctx, canvas } = this;
    const w = canvas.width;
    clearPlane(ctx, w);
    if (this.data) drawPoints(ctx, w, this.data, "#b0b0b0", 2);
    else drawCircles(ctx, w, "#b8b8b8");
    const k = this.trail.length;
    this.trail.forEach((xy, i) => {
      const last = i === k - 1;
      ctx.fillStyle = last ? "rgba(31, 90, 180, 0.75)" : `rgba(31, 90, 180, ${(0.25 * (i + 1)) / k})`;
      const s = last ? 2.2 : 1.2;
      for (let j = 0; j < xy.length; j += 2) {
        const x = xy[j];
        const y = xy[j + 1];
        // Diverged samples (non-finite or far outside) are counted in the metrics, never drawn.
        if (!Number.isFinite(x) || !Number.isFinite(y) || Math.abs(x) > EXTENT || Math.abs(y) > EXTENT) continue;
        ctx.fillRect(toPixel(x, w) - s / 2, toPixel(-y, w) - s / 2, s, s);
      }
    });
  }
}
