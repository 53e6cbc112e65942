// The page's shell: the state <-> URL, the engine worker (start, restarts after failures), the
// sampling controls the Pretrained, Images and Draw tabs share, tab switching, and the worker's
// messages, each handed to the controller of the tab it is about. Every handler does: change
// state -> write the URL -> apply.
//
// Each tab's controller sits beside its view: pretrained-tab.js (regimes.js), train-tab.js
// (chart.js), theory-tab.js (theory.js), images-tab.js (images.js), draw-tab.js (draw.js),
// image-train-tab.js (images.js, and train-tab.js's controller for training runs); the
// panels that sample a model share sampling.js (view.js). A controller gets the shell's context,
// `app`, and imports nothing of the shell, so no import runs back up.
import { DIMS, LIMITS, FLOATS, IMAGE_DATA, OTHER_IMAGE_MODELS, parseState, serializeState, controlKey, probeJob, imageData } from "./state.js";
import { options } from "./view.js";
import { samplingPanels } from "./sampling.js";
import { pretrainedTab } from "./pretrained-tab.js";
import { trainTab } from "./train-tab.js";
import { theoryTab } from "./theory-tab.js";
import { imagesTab } from "./images-tab.js";
import { drawTab } from "./draw-tab.js";
import { imageTrainTab } from "./image-train-tab.js";

const parsed = parseState(location.search);
const state = parsed.state;

const $ = (sel) => document.querySelector(sel);
const badge = $("#backend");
const notice = $("#notice");

let worker = null;
let backend = null;
let playing = true;
let generation = 0; // bumps on every restart; stale frames are ignored
const panels = new Map(); // id -> {panel, view, frames, metrics, loaded, done, pending, gen, train?}
const memoryWaiters = [];

/** What every tab's controller may use of the shell. */
const app = {
  $,
  state,
  panels,
  grid: $("#panels"),
  get backend() { return backend; },
  get playing() { return playing; },
  get generation() { return generation; },
  nextGeneration: () => ++generation,
  post: (msg, transfer) => worker.postMessage(msg, transfer),
  on: (id, event, fn) => $(`#${id}`).addEventListener(event, fn),
  writeUrl,
  showNotice,
  syncControls,
  buildPanels,
  readNumber,
  fetchJson,
};

const sampling = samplingPanels(app);
const draw = drawTab(app, sampling);
const tabs = {
  view: pretrainedTab(app, sampling),
  train: trainTab(app, sampling, draw.requestDataPoints),
  theory: theoryTab(app),
  images: imagesTab(app, sampling),
  draw,
  itrain: imageTrainTab(app, sampling),
};
// The tabs that train models; the one in view gets the training messages.
const TRAINING = ["train", "itrain"];
const trainingTabs = () => TRAINING.map((m) => tabs[m]);
const trainer = () => tabs[TRAINING.includes(state.mode) ? state.mode : "train"];
const unsavedTraining = () => trainingTabs().some((t) => t.unsavedTraining());
const confirmDiscard = (what) => trainer().confirmDiscard(what);

// What tests read (and a person can poke at from the console).
window.geonoise = {
  get state() { return { ...state }; },
  get backend() { return backend; },
  get training() { return trainer().training; },
  panels,
  errors: [],
  previews: [], // the Train images tab's previews: {panel, step, metrics, verdict}
  injectNan: (id) => worker.postMessage({ type: "train-fault", panel: id }), // test hooks
  loseDevice: () => worker.postMessage({ type: "lose-device" }),
  crash: (how = "uncaught") => worker.postMessage({ type: "crash", how }),
  restarts: 0,
  /** {bytes: wasm memory, device: the GPU allocator's figures or null} */
  memory: () => new Promise((resolve) => { memoryWaiters.push(resolve); worker.postMessage({ type: "memory" }); }),
};

function showNotice(text) {
  notice.hidden = !text;
  notice.textContent = text || "";
}

function writeUrl() {
  history.replaceState(null, "", `${location.pathname}${serializeState(state)}`);
}

/** A JSON file beside the page, or null where it cannot be had (the views then go without it). */
async function fetchJson(file) {
  try {
    const r = await fetch(new URL(file, location.href));
    return r.ok ? await r.json() : null;
  } catch {
    return null;
  }
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
 * from the weights the page holds (train-tab.js, recoverTraining). */
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

/** The current tab's panels, anew (the worker forgets the old ones). */
function buildPanels() {
  generation++;
  $("#panel-probe").hidden = true; // it was about a panel that is gone
  tabs.images.clear();
  for (const p of panels.values()) {
    worker.postMessage({ type: "drop", panel: p.panel.id });
    p.view.el.remove();
  }
  panels.clear();
  tabs[state.mode].build();
}

function onMessage(msg) {
  const p = msg.panel ? panels.get(msg.panel) : null;
  const train = trainer();
  switch (msg.type) {
    case "ready": {
      const recovering = TRAINING.includes(state.mode) && [...panels.values()].some((q) => q.train);
      backend = msg.backend;
      badge.textContent = msg.backend === "webgpu" ? "WebGPU" : "CPU";
      badge.className = `badge ${msg.backend}`;
      badge.title = msg.reason;
      $("#backend-reason").textContent = msg.reason;
      tabs.theory.reset();
      if (recovering) train.recoverTraining();
      else buildPanels();
      break;
    }
    case "train-started":
      if (p?.train) train.onStarted(p, msg);
      break;
    case "train-progress":
      if (p?.train && msg.gen === p.gen) train.onTrainProgress(p, msg);
      break;
    case "train-nan":
      if (p?.train && msg.gen === p.gen) train.onTrainNan(p, msg);
      break;
    case "train-preview":
      if (p && msg.gen === p.gen) train.onPreview(p, msg);
      break;
    case "checkpoint":
      if (p) train.onCheckpoint(p, msg);
      break;
    case "theory":
      tabs.theory.onTheory(msg);
      break;
    case "panel-probe":
      if (p) sampling.onPanelProbe(p, msg);
      break;
    case "memory":
      for (const w of memoryWaiters.splice(0)) w({ bytes: msg.bytes, device: msg.device });
      break;
    case "data-points":
      draw.onDataPoints(msg);
      break;
    case "progress":
      if (p) p.view.setProgress(msg.total ? msg.loaded / msg.total : null);
      break;
    case "loaded":
      if (p) sampling.onLoaded(p, msg, train.onImported);
      break;
    case "frame":
      if (p) sampling.onFrame(p, msg, tabs.images.onFrame);
      break;
    case "export":
      if (p) sampling.onExport(p, msg, tabs.images.save);
      break;
    case "error":
      window.geonoise.errors.push(msg.message);
      if (msg.source === "theory") tabs.theory.reset();
      train.onError(p, msg);
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

// --- the controls -------------------------------------------------------------------------------

/** Shows the current tab (its intro, controls and sections) and puts the state in every control. */
function syncControls() {
  const mode = state.mode;
  for (const intro of document.querySelectorAll(".intro")) intro.hidden = intro.dataset.mode !== mode;
  for (const tab of document.querySelectorAll(".tabs button")) tab.setAttribute("aria-selected", String(tab.dataset.mode === mode));
  // The sampling controls: the Images and Draw tabs keep their own count, sampler and steps in
  // the same controls (state.js, controlKey).
  $("#controls").hidden = mode === "theory";
  $("#panels").hidden = mode === "theory";
  $("#d").value = String(state.d);
  $("#twins").checked = state.twins;
  $("#others").checked = state.others;
  $("#idata").value = state.idata;
  $("#fields").value = state.fields;
  const key = (k) => controlKey(state, k);
  for (const k of ["n", "steps"]) [$(`#${k}`).min, $(`#${k}`).max] = LIMITS[key(k)];
  $("#n").value = String(state[key("n")]);
  $("#n-label").textContent = mode === "images" || mode === "itrain" ? "images" : "samples";
  $("#solver").value = state[key("solver")];
  $("#grid").value = state[key("grid")];
  $("#steps").value = String(state[key("steps")]);
  $("#seed").value = String(state.seed);
  $("#speed").value = String(state.speed);
  $("#backend-choice").value = state.backend;
  $("#play").textContent = playing ? "Pause" : "Play";
  // D and the fields are the Pretrained tab's; the twins its and the Images tab's.
  $("#d").parentElement.hidden = mode !== "view";
  $("#fields").parentElement.hidden = mode !== "view";
  $("#twins").parentElement.hidden = !(mode === "view" || mode === "images");
  $("#idata").parentElement.hidden = mode !== "images";
  // The paper's other blind models were trained on Fashion-MNIST only: the control shows where the
  // data set has them.
  const others = OTHER_IMAGE_MODELS.every((key) => imageData(state.idata).models.includes(key));
  $("#others").parentElement.hidden = mode !== "images" || !others;
  if (mode !== "view") $("#panel-probe").hidden = true;
  for (const tab of Object.values(tabs)) tab.sync?.();
  tabs.view.render();
  tabs.images.render();
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
  $("#d").innerHTML = options(DIMS);
  $("#idata").innerHTML = options(Object.keys(IMAGE_DATA), (k) => IMAGE_DATA[k].title);
  for (const [key, [lo, hi]] of Object.entries({ ...LIMITS, ...FLOATS })) {
    const el = $(`#${key}`);
    if (!el) continue; // the Images tab's own values, shown in the toy view's controls
    el.min = lo;
    el.max = hi;
  }
  const { on } = app;
  for (const key of ["n", "steps", "seed", "speed"]) on(key, "change", (e) => readNumber(controlKey(state, key), e.target) && key !== "speed" && sampling.restart());
  for (const key of ["d", "twins", "others", "fields", "idata"]) {
    on(key, "change", (e) => {
      state[key] = key === "d" ? Number(e.target.value) : e.target.type === "checkbox" ? e.target.checked : e.target.value;
      writeUrl();
      syncControls(); // the data choice shows or hides the other blind models' control
      buildPanels();
    });
  }
  for (const key of ["solver", "grid"]) {
    on(key, "change", (e) => {
      state[controlKey(state, key)] = e.target.value;
      writeUrl();
      tabs.view.render();
      tabs.images.render();
      sampling.restart();
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
    if (playing) for (const p of panels.values()) sampling.pump(p);
  });
  on("step", "click", () => {
    playing = false;
    syncControls();
    for (const p of panels.values()) if (!p.done) sampling.request(p, 1);
  });
  on("reset", "click", sampling.restart);
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => {
      if (tab.dataset.mode === state.mode || !confirmDiscard("Leaving the Train tab")) return;
      state.mode = tab.dataset.mode;
      writeUrl();
      syncControls();
      if (backend) buildPanels();
    });
  }
  for (const tab of Object.values(tabs)) tab.setup?.();
  window.addEventListener("beforeunload", (e) => {
    if (!unsavedTraining()) return;
    e.preventDefault();
    e.returnValue = "";
  });
}

setupControls();
syncControls();
tabs.view.load();
tabs.images.load();
writeUrl();
if (parsed.notes.length) showNotice(parsed.notes.join(". "));
startWorker();
