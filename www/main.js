// The page: state <-> URL, controls, the engine worker, and the panels.
// Every handler does: change state -> write the URL -> apply.
import { DIMS, LIMITS, FLOATS, TRAIN_MODELS, ORACLE, FAITHFUL, PLAIN, parseState, serializeState, panelsFor, trainPanels, modelTitle, trainConfig, sourceMessage, controlKey, sampleConfigOf, probeJob, DATA_CHOICES, MAX_DRAWN, dataSpec, encodePoints, decodePoints, thinPoints } from "./state.js";
import { DrawView } from "./draw.js";
import { samplesCsv, trajectoryCsv, samplesJson } from "./export.js";
import { PanelView, saveBlob } from "./view.js";
import { LossChart } from "./chart.js";
import { TheoryView, drawPosterior } from "./theory.js";
import { renderTable, describe } from "./regimes.js";
import { ImagePanelView, drawDetail, renderImageTable, samplesImageJson, samplesNpy } from "./images.js";

const parsed = parseState(location.search);
let state = parsed.state;
const notes = parsed.notes;

const $ = (sel) => document.querySelector(sel);
const grid = $("#panels");
const badge = $("#backend");
const notice = $("#notice");

let worker = null;
let backend = null;
let playing = true;
let generation = 0; // bumps on every restart; stale frames are ignored
const panels = new Map(); // id -> {panel, view, frames, metrics, loaded, done, pending}

let training = false; // Train tab: runs are stepping (not paused)
const chart = new LossChart($("#loss"));
const COLORS = ["#1f5ab4", "#c0392b"];
const PREVIEW = { n: 500, steps: 50 }; // the quick look at a model in training

// What tests read (and a person can poke at from the console).
window.geonoise = {
  get state() { return { ...state }; },
  get backend() { return backend; },
  get training() { return training; },
  panels,
  errors: [],
  injectNan: (id) => worker.postMessage({ type: "train-fault", panel: id }), // test hooks
  loseDevice: () => worker.postMessage({ type: "lose-device" }),
  crash: (how = "uncaught") => worker.postMessage({ type: "crash", how }),
  restarts: 0,
  /** {bytes: wasm memory, device: the GPU allocator's figures or null} */
  memory: () => new Promise((resolve) => { memoryWaiters.push(resolve); worker.postMessage({ type: "memory" }); }),
};
const memoryWaiters = [];

function showNotice(text) {
  notice.hidden = !text;
  notice.textContent = text || "";
}

function writeUrl() {
  history.replaceState(null, "", `${location.pathname}${serializeState(state)}`);
}

function sampleConfig() {
  return sampleConfigOf(state);
}

function startWorker() {
  if (worker) worker.terminate();
  backend = null;
  badge.textContent = "starting…";
  badge.className = "badge";
  const w = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  worker = w;
  // Messages a replaced worker had already sent (a second error after a fatal one) are dropped.
  w.onmessage = (e) => w === worker && onMessage(e.data);
  w.onerror = (e) => {
    e.preventDefault();
    if (w !== worker) return;
    window.geonoise.errors.push(e.message || "worker error");
    restartEngine(`The engine stopped (${e.message || "worker error"}).`);
  };
  // What "auto" measures on each backend: the job this view is about to do. A test may replace
  // the measurement (window.geonoiseTest.probeTimes, set before the page loads).
  const job = probeJob(state);
  worker.postMessage({ type: "init", backend: state.backend, job, probeTimes: window.geonoiseTest?.probeTimes });
}

// Restarts after failures, newest last: a failure that repeats at once (a broken install, a
// driver that crashes on every start) is reported instead of retried forever.
const restarts = [];
const RESTARTS = { max: 3, windowMs: 60000 };

/** The engine is unusable (crash, lost GPU): start a new worker on the CPU; training resumes
 * from the weights the page holds (see recoverTraining). */
function restartEngine(why) {
  const now = performance.now();
  while (restarts.length && now - restarts[0] > RESTARTS.windowMs) restarts.shift();
  if (restarts.length >= RESTARTS.max) {
    worker.terminate();
    backend = null;
    badge.textContent = "stopped";
    badge.className = "badge";
    const kept = unsavedTraining() ? " The trained weights saved at the last preview can still be downloaded." : "";
    showNotice(`${why} The engine failed ${restarts.length + 1} times within a minute, so it was not restarted; reload the page to try again.${kept}`);
    return;
  }
  restarts.push(now);
  window.geonoise.restarts++;
  const toCpu = state.backend !== "cpu";
  if (toCpu) {
    state.backend = "cpu";
    writeUrl();
    syncControls();
  }
  showNotice(`${why} Restarting${toCpu ? " on the CPU" : ""}.`);
  startWorker();
}

function buildPanels() {
  generation++;
  $("#panel-probe").hidden = true; // it was about a panel that is gone
  $("#image-detail").hidden = true;
  detail = null;
  for (const p of panels.values()) {
    worker.postMessage({ type: "drop", panel: p.panel.id });
    p.view.el.remove();
  }
  panels.clear();
  if (state.mode === "train") return buildTrainPanels();
  if (state.mode === "theory") return requestTheory();
  const list = panelsFor(state);
  grid.className = `panels n${list.length}`;
  for (const panel of list) {
    const view = panel.image ? new ImagePanelView(grid, panel, { onExport: exportPanel, onPick: pickImage }) : new PanelView(grid, panel, { onExport: exportPanel, onPick: pickSample });
    if (panel.image && imageTable) view.setReference({ laplacian: imageTable.real_laplacian_energy });
    panels.set(panel.id, { panel, view, frames: [], metrics: null, loaded: false, done: false, pending: false, gen: generation });
    view.setStatus("loading…");
    view.setProgress(0);
    if (panel.draw) worker.postMessage(sourceMessage(panel, state.dd, "pretrained/", dataSpec(state.shape, state.pts)));
    else worker.postMessage(sourceMessage(panel, state.d));
  }
  if (state.mode === "draw") requestDataPoints("draw", dataSpec(state.shape, state.pts));
}

// --- the Draw view ----------------------------------------------------------------------------
const drawView = new DrawView($("#draw-canvas"), { onChange: onDrawn });

/** A data set's points as the core normalises them, for the picture under the samples. */
function requestDataPoints(id, data) {
  if (data.kind === "points" && data.points.length < 2) return onDataPoints({ id, points: null });
  worker.postMessage({ type: "data-points", id, data, n: 512 });
}

function onDataPoints(msg) {
  if (msg.error) return showNotice(msg.error);
  const ids = msg.id === "draw" ? ["draw-fm", "draw-ddpm"] : ["train-a", "train-b"];
  for (const id of ids) panels.get(id)?.view.setData(msg.points);
  if (msg.id === "draw") drawView.setPreview(state.shape === "drawn" ? null : msg.points);
}

/** A stroke ended: the drawing becomes the data (thinned to MAX_DRAWN points, with a notice). */
function onDrawn(points) {
  const kept = thinPoints(points);
  showNotice(kept.length < points.length ? `The drawing has ${points.length} points; it keeps ${MAX_DRAWN} of them, evenly spread along the strokes.` : "");
  if (kept.length < points.length) drawView.setPoints(kept);
  state.shape = "drawn";
  state.pts = encodePoints(kept);
  writeUrl();
  syncControls();
  buildPanels();
}

/** "Train both here": the Train tab, with FM Blind and DDPM Blind on the Draw view's data at its D. */
function trainDrawn() {
  if (state.shape === "drawn" && (decodePoints(state.pts) ?? []).length < 2) return showNotice("Draw at least 2 points to train on.");
  Object.assign(state, { mode: "train", tdata: state.shape, tdim: state.dd, a: "fm-blind", b: "ddpm-blind" });
  writeUrl();
  syncControls();
  buildPanels();
}

function restartRuns() {
  generation++;
  for (const p of panels.values()) {
    if (!p.loaded) continue;
    p.frames = [];
    p.done = false;
    p.pending = false; // a frame still in flight carries the old gen and is dropped
    p.startMs = p.doneMs = undefined;
    p.gen = generation;
    p.view.clear();
    worker.postMessage({ type: "start", panel: p.panel.id, config: sampleConfig() });
    request(p, 0);
  }
}

function request(p, k) {
  if (p.pending || !p.loaded) return;
  p.pending = true;
  worker.postMessage({ type: "advance", panel: p.panel.id, k, gen: p.gen });
}

function pump(p) {
  if (playing && !p.done) setTimeout(() => request(p, state.speed), 16);
}

/** A click on a sampling panel: the posterior over t at the sample nearest the click, in the
 * current frame, against the sampler's own t at that step. */
function pickSample(panel, [x, y]) {
  const p = panels.get(panel.id);
  const last = p?.frames.at(-1);
  if (!last) return;
  let best = -1;
  let dist = Infinity;
  for (let i = 0; i < last.xy.length / 2; i++) {
    const d = (last.xy[2 * i] - x) ** 2 + (last.xy[2 * i + 1] - y) ** 2;
    if (d < dist) [best, dist] = [i, d];
  }
  if (best >= 0) worker.postMessage({ type: "probe-sample", panel: panel.id, index: best, ...ORACLE });
}

// --- the Images tab ---------------------------------------------------------------------------
let imageTable = null; // pretrained/images/table.json, once fetched
let detail = null; // the image in close-up: {panel, index}

/** A JSON file beside the page, or null where it cannot be had (the views then go without it). */
async function fetchJson(file) {
  try {
    const r = await fetch(new URL(file, location.href));
    return r.ok ? await r.json() : null;
  } catch {
    return null;
  }
}

async function loadImageTable() {
  imageTable = await fetchJson("pretrained/images/table.json");
  if (imageTable) for (const p of panels.values()) if (p.panel.image) p.view.setReference({ laplacian: imageTable.real_laplacian_energy });
  renderImages();
}

function renderImages() {
  $("#images-view").hidden = state.mode !== "images";
  if (state.mode === "images") $("#images-table").innerHTML = renderImageTable(imageTable, state.isolver, state.isteps);
}

/** A click on an image: it large, with its path from the starting noise (redrawn as it goes). */
function pickImage(panel, index) {
  detail = { panel: panel.id, index };
  showDetail();
}

function showDetail() {
  const p = detail && panels.get(detail.panel);
  if (!p?.view.pixels) return;
  const caption = drawDetail($("#image-detail"), p.view, detail.index, p.view.verdict?.names ?? []);
  window.geonoise.imageDetail = { ...detail, caption, strip: p.view.strip.map((s) => s.step) };
}

function onPanelProbe(p, msg) {
  const section = $("#panel-probe");
  section.hidden = false;
  const f = (v) => (Number.isFinite(v) ? v.toPrecision(3) : "–");
  const probe = { ...msg.probe, label: `${p.panel.title}, sample ${msg.probe.index} at step ${msg.probe.step}, where the sampler is at t = ${f(msg.probe.t_true)} (what the blind model never sees)` };
  drawPosterior($("#panel-posterior"), $("#panel-probe-caption"), probe, msg.grid);
  window.geonoise.panelProbe = { panel: p.panel.id, ...msg.probe, posterior: Array.from(msg.probe.posterior), caption: $("#panel-probe-caption").textContent };
}

// --- the Theory tab ---------------------------------------------------------------------------
const theory = new TheoryView($("#theory"), { onProbe: (xy) => requestTheory(xy) });
let theoryBusy = false;
let theoryNext = null; // the newest request made while one was in flight (sliders fire often)

function requestTheory(click = null) {
  if (backend) sendTheory({ model: state.pmodel, dim: state.pdim, offset: state.poff, s: state.ps, res: 32, ...ORACLE, click });
}

/** One theory request in flight at a time; while it is, only the newest waits. */
function sendTheory(config) {
  if (theoryBusy) {
    theoryNext = config;
    return;
  }
  theoryBusy = true;
  worker.postMessage({ type: "theory", config });
}

function onTheory(msg) {
  theoryBusy = false;
  const next = theoryNext;
  theoryNext = null;
  if (next) sendTheory(next);
  theory.renderLandscape(msg);
  theory.renderCompare(msg.compare, state);
  window.geonoise.compare = msg.compare && { res: msg.compare.res, diff: Array.from(msg.compare.diff) };
  if (msg.stability) {
    theory.renderStability(msg.stability);
    window.geonoise.stability = msg.stability;
  }
  if (msg.concentration) {
    const c = msg.concentration;
    const r = theory.renderConcentration(c, $("#concentration"), $("#concentration-caption"));
    window.geonoise.concentration = { dim: c.dim, model: c.model, levels: c.levels, t_std: c.t_std, t_mean: c.t_mean, parted: r.parted, caption: r.text };
  }
  window.geonoise.theory = { res: msg.res, path: msg.path, energy: Array.from(msg.energy), grad2: Array.from(msg.grad2), pre2: Array.from(msg.pre2), grid: Array.from(msg.grid), probe: { ...msg.probe, posterior: Array.from(msg.probe.posterior) } };
}

// --- the Train tab ----------------------------------------------------------------------------
function buildTrainPanels() {
  training = false;
  chart.clear();
  chart.setMaxStep(state.tsteps);
  grid.className = "panels n2";
  trainPanels(state).forEach((panel, i) => {
    const view = new PanelView(grid, panel, { onExport: exportPanel, onDownload: downloadCheckpoint, onImport: importCheckpoint });
    const p = { panel, view, frames: [], metrics: null, loaded: false, done: false, pending: false, gen: generation, color: COLORS[i], train: null };
    panels.set(panel.id, p);
    view.setStatus(`D = ${state.tdim}, width ${state.width}, depth ${state.depth}${state.tdata === "circles" ? "" : `, ${state.tdata === "drawn" ? "the drawing" : state.tdata.replace("-", " ")}`}`);
    view.setTraining("not trained yet: press Start");
  });
  if (state.tdata !== "circles") requestDataPoints("train", dataSpec(state.tdata, state.pts));
  syncTrainButtons();
}

/** Trained weights that were not downloaded: what leaving or switching would lose. */
function unsavedTraining() {
  return [...panels.values()].some((p) => p.train && p.train.step > 0 && p.train.downloadedStep !== p.train.step);
}

function confirmDiscard(what) {
  return !unsavedTraining() || window.confirm(`${what} discards the models trained on this page (download their checkpoints first to keep them). Go on?`);
}

function freshTrain(p) {
  p.train = { step: 0, total: state.tsteps, loss: null, history: [], k: 4, computeMs: 0, wallMs: 0, sentAt: 0, pending: false, nextPreview: state.every, finished: false, saved: null, downloadedStep: null, config: trainConfig(p.panel, state) };
  p.loaded = false;
  p.done = false;
  p.frames = [];
  p.view.clear();
  p.view.setError("");
  p.view.setDownloadable(false);
  chart.reset(p.panel.id, p.panel.title, p.color);
}

function trainStart() {
  if (!backend || !confirmDiscard("Starting again")) return;
  generation++;
  chart.setMaxStep(state.tsteps);
  for (const p of panels.values()) {
    p.gen = generation;
    freshTrain(p);
    p.view.setStatus(`D = ${state.tdim}, width ${state.width}, depth ${state.depth}`);
    p.view.setTraining("starting…");
    worker.postMessage({ type: "train-start", panel: p.panel.id, config: p.train.config });
  }
  training = true;
  syncTrainButtons();
}

function trainPump(p) {
  const t = p.train;
  if (!training || !t || t.pending || t.finished || !t.started) return;
  const k = Math.max(1, Math.min(t.k, t.nextPreview - t.step, t.total - t.step));
  t.pending = true;
  t.sentAt = performance.now();
  worker.postMessage({ type: "train-step", panel: p.panel.id, k, gen: p.gen });
}

function showTrainLine(p) {
  const t = p.train;
  const rate = t.computeMs > 0 ? `${((1000 * t.step) / t.computeMs).toFixed(0)} steps/s` : "";
  const loss = t.loss === null ? "" : `loss ${t.loss.toPrecision(3)}`;
  const state_ = t.finished ? "done" : training ? "training" : "paused";
  p.view.setTraining(`${state_}: step ${t.step} / ${t.total} · ${loss} · ${rate} · ${(t.wallMs / 1000).toFixed(1)} s`);
}

function onTrainProgress(p, msg) {
  const t = p.train;
  t.pending = false;
  t.step = msg.step;
  if (msg.loss !== undefined) t.loss = msg.loss;
  t.computeMs += msg.ms;
  t.wallMs += performance.now() - t.sentAt;
  // Chunks of about 100 ms of work: few messages, a responsive pause button.
  const per = msg.ms / Math.max(1, msg.chunk);
  t.k = Math.max(1, Math.min(200, Math.round(100 / Math.max(per, 0.05))));
  if (msg.loss !== undefined) t.history.push([t.step, msg.loss]);
  chart.add(p.panel.id, t.step, t.loss);
  if (t.step >= t.nextPreview || t.step >= t.total) {
    worker.postMessage({ type: "train-preview", panel: p.panel.id, gen: p.gen, ...PREVIEW, seed: state.seed });
    // Keep a copy of the weights outside the GPU and the worker: what a lost device or a crash keeps.
    worker.postMessage({ type: "train-export", panel: p.panel.id, loss: t.loss, purpose: "autosave" });
    while (t.nextPreview <= t.step) t.nextPreview += state.every;
  }
  if (t.step >= t.total) finishTraining(p, `trained ${t.step} steps, final loss ${t.loss?.toPrecision(3)}`);
  showTrainLine(p);
  trainPump(p);
  syncTrainButtons();
}

/** Training stops stepping once no run is left to train. */
function stopWhenAllFinished() {
  if ([...panels.values()].every((q) => !q.train || q.train.finished)) training = false;
}

/** The run is over (done, or stopped by a NaN): sample the weights it has with the panel settings. */
function finishTraining(p, text) {
  p.train.finished = true;
  p.view.setStatus(text);
  worker.postMessage({ type: "train-use", panel: p.panel.id });
  stopWhenAllFinished();
}

function onTrainNan(p, msg) {
  const t = p.train;
  t.pending = false;
  t.nan = true;
  t.step = msg.good ?? 0;
  const kept = msg.good === null ? "No finite loss was read before, so there are no weights to keep" : `The weights of step ${msg.good} (the last finite loss read) are kept: they are sampled below and can be downloaded`;
  p.view.setError(`The loss became ${msg.loss} at step ${msg.step}; training stopped. ${kept}. A lower learning rate usually helps.`);
  window.geonoise.errors.push(`train-nan ${p.panel.id} ${msg.step}`);
  if (msg.good === null) {
    t.finished = true;
    stopWhenAllFinished();
  } else {
    worker.postMessage({ type: "train-export", panel: p.panel.id, loss: t.loss, purpose: "autosave" });
    finishTraining(p, `stopped at step ${msg.step} (loss ${msg.loss})`);
  }
  showTrainLine(p);
  syncTrainButtons();
}

function onCheckpoint(p, msg) {
  if (!p.train) return;
  p.train.saved = { step: msg.step, bytes: msg.bytes };
  p.view.setDownloadable(true);
  if (msg.purpose === "download") saveCheckpoint(p);
}

function checkpointName(p, step) {
  const c = p.train.config.model;
  return `geonoise-${c.model}-${c.blind ? "blind" : "cond"}-d${c.dim}-${step}steps.safetensors`;
}

function saveCheckpoint(p) {
  const { step, bytes } = p.train.saved;
  const file = checkpointName(p, step);
  p.train.downloadedStep = step;
  window.geonoise.lastCheckpoint = { panel: p.panel.id, file, step, size: bytes.length };
  saveBlob(new Blob([bytes], { type: "application/octet-stream" }), file);
}

function downloadCheckpoint(panel) {
  const p = panels.get(panel.id);
  if (!p?.train) return;
  // Fresh weights unless the copy in hand is of the current step.
  if (p.train.saved && p.train.saved.step === p.train.step) saveCheckpoint(p);
  else worker.postMessage({ type: "train-export", panel: panel.id, loss: p.train.loss, purpose: "download" });
}

// Larger than any checkpoint the Train tab can make (D = 1024, width 1024, depth 16: 147 MB).
const MAX_IMPORT = 512 * 2 ** 20;

async function importCheckpoint(panel, file) {
  const p = panels.get(panel.id);
  if (file.size > MAX_IMPORT) {
    p.view.setError(`${file.name} is ${(file.size / 2 ** 20).toFixed(0)} MB; checkpoints larger than ${MAX_IMPORT / 2 ** 20} MB are not loaded in the browser (use the geonoise CLI).`);
    return;
  }
  if (p.train && !p.train.finished && p.train.step > 0 && !window.confirm(`Loading ${file.name} replaces the model in training on this panel. Go on?`)) return;
  p.view.setError("");
  p.beforeImport = p.view.el.querySelector(".training").textContent;
  p.view.setTraining(`loading ${file.name}…`);
  const bytes = new Uint8Array(await file.arrayBuffer());
  // The panel changes only when the file has loaded ("loaded" with `imported`, onImported); a
  // file that fails leaves its model or training run as it was.
  worker.postMessage({ type: "import", panel: panel.id, bytes, name: file.name }, [bytes.buffer]);
}

function onImported(p, msg) {
  p.train = null;
  p.done = false;
  p.frames = [];
  p.pending = false;
  p.gen = ++generation; // frames of the panel's earlier run are dropped
  p.view.clear();
  p.view.setDownloadable(false);
  p.view.setTraining(`imported ${msg.imported}: ${msg.config.model} ${msg.config.blind ? "blind" : "conditional"}, D = ${msg.config.dim}, width ${msg.config.width}, depth ${msg.config.depth}`);
  stopWhenAllFinished();
  syncTrainButtons();
}

/** After the engine restarted (lost GPU, crash): each run goes on from its last saved weights. */
function recoverTraining() {
  // Paused by the person (runs left, none stepping): recovery keeps the pause.
  const paused = !training && [...panels.values()].some((q) => q.train && !q.train.finished);
  for (const p of panels.values()) {
    p.pending = false;
    const t = p.train;
    if (!t) continue;
    t.pending = false;
    t.started = false;
    p.view.setError(""); // the notice above says what happened
    // A run that finished after its last saved copy (the engine failed before the final copy
    // arrived) trains its last steps again; one stopped by a NaN stays stopped.
    if (t.finished && !t.nan && (t.saved?.step ?? 0) < t.total) {
      t.finished = false;
      if (!paused) training = true;
    }
    if (t.saved) {
      t.step = t.saved.step;
      t.nextPreview = t.step + state.every;
      t.history = t.history.filter(([k]) => k <= t.step);
      chart.truncate(p.panel.id, t.step);
      const copy = t.saved.bytes.slice();
      worker.postMessage({ type: "train-resume", panel: p.panel.id, config: t.config, bytes: copy, step: t.saved.step }, [copy.buffer]);
      p.view.setTraining(`going on from the weights saved at step ${t.saved.step} on the ${backend === "webgpu" ? "GPU" : "CPU"}…`);
    } else {
      t.step = 0;
      t.history = [];
      chart.truncate(p.panel.id, 0);
      worker.postMessage({ type: "train-start", panel: p.panel.id, config: t.config });
    }
    if (t.finished) worker.postMessage({ type: "train-use", panel: p.panel.id });
  }
  syncTrainButtons();
}

function syncTrainButtons() {
  const any = [...panels.values()].some((p) => p.train && !p.train.finished);
  $("#train-pause").disabled = !any;
  $("#train-pause").textContent = training || !any ? "Pause" : "Resume";
}

function onMessage(msg) {
  const p = msg.panel ? panels.get(msg.panel) : null;
  switch (msg.type) {
    case "ready": {
      const recovering = state.mode === "train" && [...panels.values()].some((q) => q.train);
      backend = msg.backend;
      badge.textContent = msg.backend === "webgpu" ? "WebGPU" : "CPU";
      badge.className = `badge ${msg.backend}`;
      badge.title = msg.reason;
      $("#backend-reason").textContent = msg.reason;
      theoryBusy = false;
      theoryNext = null;
      if (recovering) recoverTraining();
      else buildPanels();
      break;
    }
    case "train-started":
      if (!p?.train) break;
      p.train.started = true;
      if (msg.resumed === undefined) p.view.setTraining("training…");
      trainPump(p);
      break;
    case "train-progress":
      if (p?.train && msg.gen === p.gen) onTrainProgress(p, msg);
      break;
    case "train-nan":
      if (p?.train && msg.gen === p.gen) onTrainNan(p, msg);
      break;
    case "train-preview":
      if (!p || msg.gen !== p.gen || p.loaded) break;
      p.view.clear();
      p.view.push(msg.xy);
      p.view.setMetrics(msg.metrics, undefined, undefined);
      p.previewStep = msg.step;
      break;
    case "checkpoint":
      if (p) onCheckpoint(p, msg);
      break;
    case "theory":
      onTheory(msg);
      break;
    case "panel-probe":
      if (p) onPanelProbe(p, msg);
      break;
    case "memory":
      for (const w of memoryWaiters.splice(0)) w({ bytes: msg.bytes, device: msg.device });
      break;
    case "data-points":
      onDataPoints(msg);
      break;
    case "progress":
      if (p) p.view.setProgress(msg.total ? msg.loaded / msg.total : null);
      break;
    case "loaded":
      if (!p) break;
      p.loaded = true;
      p.view.setProgress(null);
      if (msg.config.image) p.view.setStatus(`${msg.config.side}×${msg.config.side} Fashion-MNIST, U-Net of ${msg.config.channels} channels`);
      else if (msg.config.oracle) p.view.setStatus(`D = ${msg.config.dim}, closed form over ${msg.config.oracle.points} data points, ${msg.config.oracle.grid} noise levels`);
      else if (msg.trained === undefined) p.view.setStatus(`D = ${msg.config.dim}, width ${msg.config.width}, depth ${msg.config.depth}`);
      if (msg.imported) onImported(p, msg);
      worker.postMessage({ type: "start", panel: msg.panel, config: sampleConfig() });
      request(p, 0);
      break;
    case "frame":
      if (!p) break;
      if (msg.gen !== p.gen) break; // a frame of a run that was restarted meanwhile
      p.pending = false;
      if (window.geonoise.firstFrameMs === undefined) window.geonoise.firstFrameMs = performance.now();
      if (msg.done && p.doneMs === undefined) p.doneMs = performance.now();
      if (p.startMs === undefined) p.startMs = performance.now();
      if (msg.pixels) {
        // An image panel: the view keeps the few snapshots its close-up needs.
        p.frames.push({ step: msg.step, t: msg.t });
        p.metrics = msg.metrics;
        p.done = msg.done;
        p.view.push(msg.pixels, msg);
        p.view.setMetrics(msg.metrics, msg.step, msg.total, msg.t, msg.verdict);
        if (detail?.panel === p.panel.id) showDetail();
        pump(p);
        break;
      }
      p.frames.push({ step: msg.step, t: msg.t, xy: msg.xy });
      p.metrics = msg.metrics;
      p.done = msg.done;
      p.view.push(msg.xy);
      p.view.setMetrics(msg.metrics, msg.step, msg.total);
      pump(p);
      break;
    case "export":
      if (p) download(p, msg);
      break;
    case "error":
      window.geonoise.errors.push(msg.message);
      if (msg.source === "theory") theoryBusy = false;
      if (p?.train && msg.source?.startsWith("train") && !msg.fatal) {
        // A training run that failed here (not the device's fault) stops; its weights stay.
        p.train.pending = false;
        p.train.finished = true;
        stopWhenAllFinished();
        syncTrainButtons();
      }
      if (p && msg.source === "import") {
        // The file did not load: the panel keeps what it had, and says why.
        p.view.setTraining(p.beforeImport);
        p.view.setError(msg.message);
      } else if (p) {
        p.pending = false;
        p.view.setProgress(null);
        p.view.setStatus("");
        p.view.setError(msg.message);
      } else {
        showNotice(msg.message);
      }
      if (msg.crashed) restartEngine(`The engine crashed (${msg.message}).`);
      else if (msg.fatal) restartEngine(backend === "webgpu" || state.backend === "webgpu" ? `WebGPU failed (${msg.message}).` : `The engine failed (${msg.message}).`);
      break;
  }
}

let exportKind = null;
function exportPanel(panel, kind) {
  exportKind = kind;
  worker.postMessage({ type: "export", panel: panel.id });
}

function download(p, msg) {
  if (msg.side) return downloadImages(p, msg);
  const name = `geonoise-${p.panel.id}-d${msg.dim}-seed${state.seed}`;
  let text, file, mime;
  if (exportKind === "csv") [text, file, mime] = [samplesCsv(msg), `${name}.csv`, "text/csv"];
  else if (exportKind === "traj") [text, file, mime] = [trajectoryCsv(p.frames), `${name}-trajectories.csv`, "text/csv"];
  else [text, file, mime] = [samplesJson({ ...msg, panel: p.panel.id, metrics: p.metrics, frames: p.frames }), `${name}.json`, "application/json"];
  window.geonoise.lastExport = { kind: exportKind || "json", file, text };
  saveBlob(new Blob([text], { type: mime }), file);
}

/** An image panel's samples: JSON (the CLI's `images sample --out` format) or .npy. */
function downloadImages(p, msg) {
  const name = `geonoise-${p.panel.key}-fashion-mnist-seed${state.seed}`;
  const npy = exportKind === "npy";
  const body = npy ? samplesNpy(msg.samples, msg.side) : samplesImageJson(msg, { panel: p.panel.id, model: p.panel.key, data: "fashion-mnist", backend, metrics: p.metrics, verdict: p.view.verdict });
  const file = `${name}.${npy ? "npy" : "json"}`;
  window.geonoise.lastExport = { kind: exportKind, file, text: npy ? null : body, bytes: npy ? body : null };
  saveBlob(new Blob([body], { type: npy ? "application/octet-stream" : "application/json" }), file);
}

// --- controls -------------------------------------------------------------------------------
const TRAIN_INT = ["tdim", "width", "depth", "batch", "tsteps", "every"];

function syncControls() {
  $("#d").value = String(state.d);
  $("#twins").checked = state.twins;
  $("#fields").value = state.fields;
  // The Images tab keeps its own count, sampler and steps in the same controls.
  const key = (k) => controlKey(state, k);
  for (const k of ["n", "steps"]) [$(`#${k}`).min, $(`#${k}`).max] = LIMITS[key(k)];
  $("#n").value = String(state[key("n")]);
  $("#n-label").textContent = state.mode === "images" ? "images" : "samples";
  $("#solver").value = state[key("solver")];
  $("#grid").value = state[key("grid")];
  $("#steps").value = String(state[key("steps")]);
  $("#seed").value = String(state.seed);
  $("#speed").value = String(state.speed);
  $("#backend-choice").value = state.backend;
  $("#play").textContent = playing ? "Pause" : "Play";
  for (const key of [...TRAIN_INT, "lr", "a", "b", "pmodel", "pdim", "poff", "ps"]) $(`#${key}`).value = String(state[key]);
  const train = state.mode === "train";
  const theoryMode = state.mode === "theory";
  $("#theory").hidden = !theoryMode;
  $("#controls").hidden = theoryMode;
  $("#panels").hidden = theoryMode;
  if (state.mode !== "view") $("#panel-probe").hidden = true;
  $("#train-controls").hidden = !train;
  $("#train-chart").hidden = !train;
  for (const el of [$("#d").parentElement, $("#twins").parentElement, $("#fields").parentElement]) el.hidden = train;
  for (const el of [$("#d").parentElement, $("#fields").parentElement]) el.hidden ||= state.mode === "images" || state.mode === "draw";
  $("#twins").parentElement.hidden ||= state.mode === "draw";
  $("#draw").hidden = state.mode !== "draw";
  $("#draw-controls").hidden = state.mode !== "draw";
  $("#shape").value = state.shape;
  $("#dd").value = String(state.dd);
  $("#tdata").value = state.tdata;
  for (const tab of document.querySelectorAll(".tabs button")) tab.setAttribute("aria-selected", String(tab.dataset.mode === state.mode));
  renderRegimes();
  renderImages();
}

// --- the regimes table (pretrained/regimes.json) under the view tab's panels ------------------
let regimes = null; // the results file, once fetched

const sameSampler = (a, b) => a.solver === b.solver && a.grid === b.grid && a.steps === b.steps;

function renderRegimes() {
  $("#regimes-view").hidden = state.mode !== "view";
  if (state.mode !== "view") return;
  const faithful = sameSampler(state, FAITHFUL);
  $("#sampler-line").textContent = faithful
    ? `Sampling with the ${describe(state)}: of the settings measured, the one under which the shipped models show the paper's three regimes most clearly (both blind models diffuse at D = 2, FM Blind clean before DDPM Blind as D grows).`
    : `Sampling with the ${describe(state)}.`;
  $("#use-faithful").hidden = faithful;
  $("#use-plain").hidden = sameSampler(state, PLAIN);
  $("#regimes-table").innerHTML = renderTable(regimes, state);
}

function useSampler(s) {
  Object.assign(state, { solver: s.solver, grid: s.grid, steps: s.steps });
  writeUrl();
  syncControls();
  restartRuns();
}

async function loadRegimes() {
  regimes = await fetchJson("pretrained/regimes.json");
  window.geonoise.regimes = regimes;
  renderRegimes();
}

/** Reads a number control: clamps it into range (with a notice) and stores it; false if unchanged. */
function readNumber(key, el) {
  const [lo, hi] = LIMITS[key] || FLOATS[key];
  const raw = el.value;
  let v = Number(raw);
  const whole = key in LIMITS;
  if (raw.trim() === "" || !Number.isFinite(v) || (whole && !Number.isInteger(v))) v = state[key];
  const c = Math.min(hi, Math.max(lo, v));
  showNotice(String(c) !== raw ? `${key} must be ${whole ? "a whole number" : "a number"} in ${lo}..${hi}; using ${c}` : "");
  const changed = c !== state[key];
  state[key] = c;
  writeUrl();
  syncControls();
  return changed;
}

function setupControls() {
  $("#d").innerHTML = DIMS.map((d) => `<option value="${d}">${d}</option>`).join("");
  for (const id of ["a", "b"]) $(`#${id}`).innerHTML = TRAIN_MODELS.map((k) => `<option value="${k}">${modelTitle(k)}</option>`).join("");
  for (const id of ["shape", "tdata"]) $(`#${id}`).innerHTML = DATA_CHOICES.map((k) => `<option value="${k}">${k === "drawn" ? "my drawing" : k.replace("-", " ")}</option>`).join("");
  drawView.setPoints(decodePoints(state.pts) ?? []);
  for (const [key, [lo, hi]] of Object.entries({ ...LIMITS, ...FLOATS })) {
    const el = $(`#${key}`);
    if (!el) continue; // the Images tab's own values, shown in the toy view's controls
    el.min = lo;
    el.max = hi;
  }
  const on = (id, event, fn) => $(`#${id}`).addEventListener(event, fn);
  for (const key of ["n", "steps", "seed", "speed"]) on(key, "change", (e) => readNumber(controlKey(state, key), e.target) && key !== "speed" && restartRuns());
  // Train settings apply when Start is pressed; D and the two models also rebuild the panels,
  // which discards trained weights, so that asks first.
  for (const key of [...TRAIN_INT, "lr"]) {
    on(key, "change", (e) => {
      if (key === "tdim" && !confirmDiscard("Changing D")) return syncControls();
      if (readNumber(key, e.target) && key === "tdim") buildPanels();
      if (!training && key === "tsteps") chart.setMaxStep(state.tsteps);
    });
  }
  for (const key of ["a", "b"]) {
    on(key, "change", (e) => {
      if (!confirmDiscard("Changing the models")) return syncControls();
      state[key] = e.target.value;
      writeUrl();
      buildPanels();
    });
  }
  on("d", "change", (e) => {
    state.d = Number(e.target.value);
    writeUrl();
    buildPanels();
  });
  on("twins", "change", (e) => {
    state.twins = e.target.checked;
    writeUrl();
    buildPanels();
  });
  on("fields", "change", (e) => {
    state.fields = e.target.value;
    writeUrl();
    buildPanels();
  });
  for (const key of ["solver", "grid"]) {
    on(key, "change", (e) => {
      state[controlKey(state, key)] = e.target.value;
      writeUrl();
      renderRegimes();
      renderImages();
      restartRuns();
    });
  }
  on("backend-choice", "change", (e) => {
    if (!confirmDiscard("Switching the backend")) return syncControls();
    state.backend = e.target.value;
    writeUrl();
    for (const p of panels.values()) p.train = null;
    startWorker();
  });
  on("play", "click", () => {
    playing = !playing;
    syncControls();
    if (playing) for (const p of panels.values()) pump(p);
  });
  on("step", "click", () => {
    playing = false;
    syncControls();
    for (const p of panels.values()) if (!p.done) request(p, 1);
  });
  on("reset", "click", restartRuns);
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => {
      if (tab.dataset.mode === state.mode || !confirmDiscard("Leaving the Train tab")) return;
      state.mode = tab.dataset.mode;
      writeUrl();
      syncControls();
      if (backend) buildPanels();
    });
  }
  on("pmodel", "change", (e) => {
    state.pmodel = e.target.value;
    writeUrl();
    requestTheory();
  });
  for (const key of ["pdim", "poff", "ps"]) on(key, key === "pdim" ? "change" : "input", (e) => readNumber(key, e.target) && requestTheory());
  on("train-start", "click", trainStart);
  on("train-pause", "click", () => {
    training = !training;
    syncTrainButtons();
    for (const p of panels.values()) if (p.train) (training ? trainPump(p) : showTrainLine(p));
  });
  on("shape", "change", (e) => {
    state.shape = e.target.value;
    writeUrl();
    buildPanels();
  });
  on("dd", "change", (e) => readNumber("dd", e.target) && buildPanels());
  on("draw-clear", "click", () => {
    drawView.setPoints([]);
    onDrawn([]);
  });
  on("draw-train", "click", trainDrawn);
  on("tdata", "change", (e) => {
    if (!confirmDiscard("Changing the data")) return syncControls();
    state.tdata = e.target.value;
    writeUrl();
    buildPanels();
  });
  on("use-plain", "click", () => useSampler(PLAIN));
  on("use-faithful", "click", () => useSampler(FAITHFUL));
  on("train-reset", "click", () => {
    if (confirmDiscard("Reset")) buildPanels();
  });
  window.addEventListener("beforeunload", (e) => {
    if (!unsavedTraining()) return;
    e.preventDefault();
    e.returnValue = "";
  });
}

setupControls();
syncControls();
loadRegimes();
loadImageTable();
writeUrl();
if (notes.length) showNotice(notes.join(". "));
startWorker();
