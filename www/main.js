// The page: state <-> URL, controls, the engine worker, and the panels.
// Every handler does: change state -> write the URL -> apply.
import { DIMS, DEFAULTS, LIMITS, parseState, serializeState, panelsFor, checkpointUrl } from "./state.js";
import { samplesCsv, trajectoryCsv, samplesJson } from "./export.js";
import { PanelView } from "./view.js";

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

// What tests read (and a person can poke at from the console).
window.geonoise = { get state() { return { ...state }; }, get backend() { return backend; }, panels, errors: [] };

function showNotice(text) {
  notice.hidden = !text;
  notice.textContent = text || "";
}

function writeUrl() {
  history.replaceState(null, "", `${location.pathname}${serializeState(state)}`);
}

function sampleConfig() {
  return { n: state.n, steps: state.steps, solver: state.solver, seed: state.seed };
}

function startWorker() {
  if (worker) worker.terminate();
  backend = null;
  badge.textContent = "starting…";
  badge.className = "badge";
  worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  worker.onmessage = (e) => onMessage(e.data);
  worker.onerror = (e) => {
    e.preventDefault();
    showNotice(`The engine stopped (${e.message || "worker error"}). Restarting on the CPU.`);
    window.geonoise.errors.push(e.message || "worker error");
    if (state.backend !== "cpu") {
      state.backend = "cpu";
      writeUrl();
      syncControls();
    }
    startWorker();
  };
  worker.postMessage({ type: "init", backend: state.backend });
}

function buildPanels() {
  generation++;
  for (const p of panels.values()) {
    worker.postMessage({ type: "drop", panel: p.panel.id });
    p.view.el.remove();
  }
  panels.clear();
  const list = panelsFor(state);
  grid.className = `panels n${list.length}`;
  for (const panel of list) {
    const view = new PanelView(grid, panel, exportPanel);
    panels.set(panel.id, { panel, view, frames: [], metrics: null, loaded: false, done: false, pending: false, gen: generation });
    view.setStatus("loading…");
    view.setProgress(0);
    worker.postMessage({ type: "load", panel: panel.id, url: checkpointUrl(panel, state.d) });
  }
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

function onMessage(msg) {
  const p = msg.panel ? panels.get(msg.panel) : null;
  switch (msg.type) {
    case "ready":
      backend = msg.backend;
      badge.textContent = msg.backend === "webgpu" ? "WebGPU" : "CPU";
      badge.className = `badge ${msg.backend}`;
      badge.title = msg.reason;
      $("#backend-reason").textContent = msg.reason;
      buildPanels();
      break;
    case "progress":
      if (p) p.view.setProgress(msg.total ? msg.loaded / msg.total : null);
      break;
    case "loaded":
      if (!p) break;
      p.loaded = true;
      p.view.setProgress(null);
      p.view.setStatus(`D = ${msg.config.dim}, width ${msg.config.width}, depth ${msg.config.depth}`);
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
      if (p) {
        p.pending = false;
        p.view.setProgress(null);
        p.view.setStatus("");
        p.view.setError(msg.message);
      } else {
        showNotice(msg.message);
      }
      if (msg.fatal && state.backend !== "cpu") {
        showNotice(`WebGPU failed (${msg.message}); restarting on the CPU.`);
        state.backend = "cpu";
        writeUrl();
        syncControls();
        startWorker();
      }
      break;
  }
}

let exportKind = null;
function exportPanel(panel, kind) {
  exportKind = kind;
  worker.postMessage({ type: "export", panel: panel.id });
}

function download(p, msg) {
  const name = `geonoise-${p.panel.id}-d${msg.dim}-seed${state.seed}`;
  let text, file, mime;
  if (exportKind === "csv") [text, file, mime] = [samplesCsv(msg), `${name}.csv`, "text/csv"];
  else if (exportKind === "traj") [text, file, mime] = [trajectoryCsv(p.frames), `${name}-trajectories.csv`, "text/csv"];
  else [text, file, mime] = [samplesJson({ ...msg, panel: p.panel.id, metrics: p.metrics, frames: p.frames }), `${name}.json`, "application/json"];
  window.geonoise.lastExport = { kind: exportKind || "json", file, text };
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type: mime }));
  a.download = file;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// --- controls -------------------------------------------------------------------------------
function syncControls() {
  $("#d").value = String(state.d);
  $("#twins").checked = state.twins;
  $("#n").value = String(state.n);
  $("#solver").value = state.solver;
  $("#steps").value = String(state.steps);
  $("#seed").value = String(state.seed);
  $("#speed").value = String(state.speed);
  $("#backend-choice").value = state.backend;
  $("#play").textContent = playing ? "Pause" : "Play";
}

function setupControls() {
  $("#d").innerHTML = DIMS.map((d) => `<option value="${d}">${d}</option>`).join("");
  for (const [key, [lo, hi]] of Object.entries(LIMITS)) {
    const el = $(`#${key}`);
    el.min = lo;
    el.max = hi;
  }
  const numeric = (key, then) => {
    $(`#${key}`).addEventListener("change", (e) => {
      const [lo, hi] = LIMITS[key];
      let v = Number(e.target.value);
      if (!Number.isInteger(v)) v = DEFAULTS[key];
      const c = Math.min(hi, Math.max(lo, v));
      showNotice(c !== Number(e.target.value) ? `${key} must be a whole number in ${lo}..${hi}; using ${c}` : "");
      state[key] = c;
      writeUrl();
      syncControls();
      then();
    });
  };
  numeric("n", restartRuns);
  numeric("steps", restartRuns);
  numeric("seed", restartRuns);
  numeric("speed", () => {});
  $("#d").addEventListener("change", (e) => {
    state.d = Number(e.target.value);
    writeUrl();
    buildPanels();
  });
  $("#twins").addEventListener("change", (e) => {
    state.twins = e.target.checked;
    writeUrl();
    buildPanels();
  });
  $("#solver").addEventListener("change", (e) => {
    state.solver = e.target.value;
    writeUrl();
    restartRuns();
  });
  $("#backend-choice").addEventListener("change", (e) => {
    state.backend = e.target.value;
    writeUrl();
    startWorker();
  });
  $("#play").addEventListener("click", () => {
    playing = !playing;
    syncControls();
    if (playing) for (const p of panels.values()) pump(p);
  });
  $("#step").addEventListener("click", () => {
    playing = false;
    syncControls();
    for (const p of panels.values()) if (!p.done) request(p, 1);
  });
  $("#reset").addEventListener("click", restartRuns);
}

setupControls();
syncControls();
writeUrl();
if (notes.length) showNotice(notes.join(". "));
startWorker();
