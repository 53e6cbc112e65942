// <geonoise-figure>: the side-by-side figure as one custom element, for a paper's web page.
//
//   <script type="module" src="https://…/geonoise/geonoise-figure.js"></script>
//   <geonoise-figure models="fm-blind,ddpm-blind" dim="128" steps="100" autoplay></geonoise-figure>
//
// Attributes (read when the element is connected):
//   models    comma-separated panels: fm-blind, ddpm-blind, fm-cond, ddpm-cond (default the blind pair);
//             with data="fashion-mnist" also eqm-blind and uedm-blind, the paper's other blind models
//   dim       D of the shipped checkpoints: 2, 8, 32, 128 or 512 (default 32)
//   steps     sampling steps, 1..1000 (default 200);  samples  trajectories per panel, 1..5000 (default 1000)
//   seed      starting noise (default 0);  speed  steps per drawn frame, 1..10 (default 2)
//   fields    "trained" (the checkpoints) or "exact" (the closed-form fields; default trained)
//   backend   "auto", "webgpu" or "cpu" (default auto)
//   grid      the steps' spacing: "default", "uniform", "rho7" (EDM's) or "log-snr" (default log-snr)
//   sampler   "euler", "heun" (the ODE), "ddim" (eta = 0), "dpm2m" (DPM-Solver++(2M)), "ancestral" or "sde" (reverse SDE, Euler–Maruyama; default
//             ancestral). The defaults are the page's: the setting under which the regimes show best.
//   autoplay  start when the figure scrolls into view; without it, a Play button starts it
//   data      "fashion-mnist" or "mnist": the image experiment instead of the toy (the shipped U-Nets of
//             pretrained/images/, or pretrained/images/mnist/): `samples` is then images per panel, 4..64 (default 16), `steps`
//             defaults to 100 and the sampler to the ancestral chain over the default grid, as the Images tab's;
//             `dim` and `fields` do not apply
//
// Everything it loads (worker.js, pkg/, pretrained/, style.css) comes from beside this module,
// so the embedding page needs nothing else (or, in a notebook, from the files handed over:
// files.js). It runs its own worker: the page's main thread only draws. When every panel has
// reached its last step it fires a `geonoise-done` event; `results()` then gives each panel's
// final samples and metrics (what the page's Export gives).
import { PanelView } from "./view.js";
import { ImagePanelView } from "./images.js";
import { DEFAULTS, DIMS, FAITHFUL, GRIDS, IMAGE_DATA, LIMITS, SOLVERS, imageData, imageFile, imagePanels, panelsFor, sourceMessage } from "./state.js";
import { fileUrl, providedFiles } from "./files.js";

const PANELS = ["fm-blind", "ddpm-blind", "fm-cond", "ddpm-cond"];

/** The figure's settings from its attributes; `notes` says what was out of range. */
export function figureSettings(el) {
  const notes = [];
  const dataRaw = el.getAttribute("data");
  const images = Object.hasOwn(IMAGE_DATA, dataRaw ?? "");
  if (dataRaw !== null && !images) notes.push(`data="${dataRaw}" is not one of ${Object.keys(IMAGE_DATA).join(", ")}; showing the toy`);
  const data = images ? dataRaw : null;
  const int = (name, key, fallback) => {
    const raw = el.getAttribute(name);
    if (raw === null) return fallback;
    const v = Number(raw);
    const [lo, hi] = LIMITS[key];
    if (!Number.isInteger(v) || v < lo || v > hi) {
      notes.push(`${name}="${raw}" must be a whole number in ${lo}..${hi}; using ${fallback}`);
      return fallback;
    }
    return v;
  };
  const dimRaw = el.getAttribute("dim");
  let dim = 32;
  if (dimRaw !== null) {
    if (DIMS.includes(Number(dimRaw))) dim = Number(dimRaw);
    else notes.push(`dim="${dimRaw}" has no shipped checkpoints (${DIMS.join(", ")}); using 32`);
  }
  const wanted = (el.getAttribute("models") || "fm-blind,ddpm-blind").split(",").map((s) => s.trim()).filter(Boolean);
  const allowed = images ? imageData(data).models : PANELS;
  const models = wanted.filter((m) => allowed.includes(m));
  for (const m of wanted.filter((m) => !allowed.includes(m))) notes.push(`model "${m}" is not one of ${allowed.join(", ")}`);
  const fields = el.getAttribute("fields") === "exact" ? "exact" : "trained";
  const backend = ["auto", "webgpu", "cpu"].includes(el.getAttribute("backend")) ? el.getAttribute("backend") : "auto";
  // One of `allowed`, or the fallback with a note.
  const oneOf = (name, allowed, fallback) => {
    const raw = el.getAttribute(name);
    if (raw === null || allowed.includes(raw)) return raw ?? fallback;
    notes.push(`${name}="${raw}" is not one of ${allowed.join(", ")}; using ${fallback}`);
    return fallback;
  };
  const grid = oneOf("grid", GRIDS, images ? DEFAULTS.igrid : FAITHFUL.grid);
  const solver = oneOf("sampler", SOLVERS, images ? DEFAULTS.isolver : FAITHFUL.solver);
  return {
    notes,
    images,
    data,
    dim,
    fields,
    backend,
    grid,
    solver,
    models: models.length ? models : ["fm-blind", "ddpm-blind"],
    n: images ? int("samples", "images", DEFAULTS.images) : int("samples", "n", 1000),
    steps: images ? int("steps", "isteps", DEFAULTS.isteps) : int("steps", "steps", FAITHFUL.steps),
    seed: int("seed", "seed", 0),
    speed: int("speed", "speed", 2),
    autoplay: el.hasAttribute("autoplay"),
  };
}

/** The figure's panels: the page's list for its settings (titles, "(exact)"), cut to the models
 * asked for. */
function figurePanels(s) {
  if (s.images) return imagePanels(true, true, s.data).filter((p) => s.models.includes(p.key));
  return panelsFor({ twins: true, fields: s.fields }).filter((p) => s.models.includes(p.id));
}

/** The files a figure of settings `s` loads besides its engine (paths beside this module): the
 * ones its panels' load messages name. */
export function figureFiles(s) {
  const loads = figurePanels(s).map((panel) => sourceMessage(panel, s.dim, (file) => `pretrained/${file}`)).filter((m) => m.type === "load");
  const named = loads.flatMap((m) => [m.url, m.scorer].filter(Boolean));
  return [...new Set(["style.css", ...(s.images ? [`pretrained/${imageFile(s.data, "table.json")}`] : []), ...named])];
}

class GeonoiseFigure extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    this.s = figureSettings(this);
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `
      <link rel="stylesheet" href="${fileUrl("style.css")}">
      <style>:host { display: block; margin: 1em 0; } .bar { display: flex; gap: 12px; align-items: center; font-size: 0.85rem; color: #555; margin-bottom: 6px; }</style>
      <div class="bar"><button class="play">Play</button><span class="badge">starting…</span><span class="note"></span></div>
      <div class="panels n${Math.min(this.s.models.length, 2)}"></div>`;
    this.bar = root.querySelector(".bar");
    this.button = root.querySelector(".play");
    this.badge = root.querySelector(".badge");
    this.note = root.querySelector(".note");
    this.note.textContent = this.s.notes.join(". ");
    this.button.addEventListener("click", () => this.toggle());
    const list = figurePanels(this.s);
    const View = this.s.images ? ImagePanelView : PanelView;
    this.panels = new Map(list.map((panel) => [panel.id, { panel, view: new View(root.querySelector(".panels"), panel, {}), loaded: false, done: false, pending: false, frames: 0 }]));
    if (this.s.images) {
      // Residual noise is read against the real test images' (the shipped image table).
      Promise.resolve()
        .then(() => fetch(fileUrl(`pretrained/${imageFile(this.s.data, "table.json")}`)))
        .then((r) => (r.ok ? r.json() : null))
        .then((t) => t && this.panels.forEach((p) => p.view.setReference({ laplacian: t.real_laplacian_energy })))
        .catch(() => {});
    }
    this.playing = false;
    this.gen = 0;
    this.exports = new Map(); // panel -> resolve of a pending results() export
    try {
      this.startWorker();
    } catch (e) {
      this.note.textContent = `The engine could not start: ${e.message}`;
      this.badge.textContent = "no engine";
      return;
    }
    if (this.s.autoplay) {
      this.observer = new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting) && !this.started) this.play();
      });
      this.observer.observe(this);
    }
  }

  disconnectedCallback() {
    this.worker?.terminate();
    this.observer?.disconnect();
  }

  startWorker() {
    this.worker = new Worker(fileUrl("worker.js"), { type: "module" });
    this.worker.onmessage = (e) => this.onMessage(e.data);
    this.worker.onerror = (e) => {
      e.preventDefault();
      this.note.textContent = `The engine stopped (${e.message || "worker error"}).`;
    };
    this.worker.postMessage({ type: "init", backend: this.s.backend, job: { kind: "sample", dim: this.s.images ? 784 : this.s.dim, n: this.s.n }, files: providedFiles() });
  }

  /** Each panel's final samples and metrics once every panel is done (null before): {key: {model,
   * dim, n, samples: Float32Array [n * dim], metrics, verdict?, side?, projection_seed?, config,
   * sample}}, keyed by the model's name ("fm-blind"). */
  async results() {
    const all = [...(this.panels?.values() ?? [])];
    if (!all.length || !all.every((p) => p.done)) return null;
    const out = {};
    for (const p of all) {
      const e = await new Promise((resolve) => {
        this.exports.set(p.panel.id, resolve);
        this.post({ type: "export", panel: p.panel.id });
      });
      const key = p.panel.key ?? p.panel.id;
      out[key] = { model: key, dim: e.dim, n: e.samples.length / e.dim, samples: e.samples, metrics: p.metrics, config: e.config, sample: e.sample, ...(e.side ? { side: e.side, verdict: p.verdict ?? null } : { projection_seed: e.projection_seed }) };
    }
    return out;
  }

  post(msg) {
    this.worker.postMessage(msg);
  }

  /** Play, pause, or replay once every panel is done. */
  toggle() {
    const all = [...this.panels.values()];
    if (all.every((p) => p.done)) return this.restart();
    if (this.playing) {
      this.playing = false;
      this.button.textContent = "Play";
    } else this.play();
  }

  play() {
    this.started = true;
    this.playing = true;
    this.button.textContent = "Pause";
    for (const p of this.panels.values()) this.request(p);
  }

  restart() {
    this.gen++;
    for (const p of this.panels.values()) {
      if (!p.loaded) continue;
      p.done = false;
      p.pending = false;
      p.frames = 0;
      p.view.clear();
      this.start(p);
    }
    this.play();
  }

  /** (Re)starts the panel's sampling run from its starting noise. */
  start(p) {
    this.post({ type: "start", panel: p.panel.id, config: { n: this.s.n, steps: this.s.steps, solver: this.s.solver, time_grid: this.s.grid, seed: this.s.seed } });
  }

  /** Asks for the panel's next frame; before Play only its starting noise (step 0). */
  request(p) {
    if (p.pending || p.done || !p.loaded || (!this.playing && p.frames > 0)) return;
    p.pending = true;
    this.post({ type: "advance", panel: p.panel.id, k: p.frames === 0 ? 0 : this.s.speed, gen: this.gen });
  }

  onMessage(msg) {
    const p = msg.panel ? this.panels.get(msg.panel) : null;
    switch (msg.type) {
      case "ready":
        this.badge.textContent = msg.backend === "webgpu" ? "WebGPU" : "CPU";
        this.badge.title = msg.reason;
        for (const { panel } of this.panels.values()) {
          this.post(sourceMessage(panel, this.s.dim, (file) => fileUrl(`pretrained/${file}`)));
          this.panels.get(panel.id).view.setStatus("loading…");
        }
        break;
      case "progress":
        if (p) p.view.setProgress(msg.total ? msg.loaded / msg.total : null);
        break;
      case "loaded":
        if (!p) break;
        p.loaded = true;
        p.view.setProgress(null);
        p.view.setStatus(msg.config.image ? imageData(this.s.data).title : `D = ${msg.config.dim}`);
        this.start(p);
        this.request(p);
        break;
      case "frame":
        if (!p || msg.gen !== this.gen) break;
        p.pending = false;
        p.frames++;
        p.done = msg.done;
        p.metrics = msg.metrics;
        if (msg.verdict) p.verdict = msg.verdict;
        if (msg.pixels) {
          p.view.push(msg.pixels, msg);
          p.view.setMetrics(msg.metrics, msg.step, msg.total, msg.t, msg.verdict);
        } else {
          p.view.push(msg.xy);
          p.view.setMetrics(msg.metrics, msg.step, msg.total);
        }
        if (p.done && [...this.panels.values()].every((q) => q.done)) {
          this.playing = false;
          this.button.textContent = "Replay";
          this.dispatchEvent(new CustomEvent("geonoise-done", { detail: { steps: this.s.steps } }));
        } else setTimeout(() => this.request(p), 16);
        break;
      case "export":
        this.exports.get(msg.panel)?.(msg);
        this.exports.delete(msg.panel);
        break;
      case "error":
        if (p && this.exports.has(msg.panel)) {
          this.exports.get(msg.panel)({ error: msg.message, dim: 1, samples: new Float32Array() });
          this.exports.delete(msg.panel);
        }
        if (p) {
          p.pending = false;
          p.view.setError(msg.message);
        } else this.note.textContent = msg.message;
        break;
    }
  }
}

// A notebook imports this module once per widget: the first definition stands.
if (!customElements.get("geonoise-figure")) customElements.define("geonoise-figure", GeonoiseFigure);
