// The Train tab's controller: two models trained side by side in the worker (the core's
// step-at-a-time trainer, pumped in chunks of about 100 ms each, taking turns), their loss curves
// (chart.js), previews every few hundred steps, copies of the weights kept outside the worker so a
// lost GPU or a crash resumes from them, and checkpoint download and import.
//
// `trainingTab` is that controller for any kind of model: the Train tab's toy networks (here,
// TOY) and the Train images tab's U-Nets (image-train-tab.js) differ only in what a `kind` says:
// the tab's element ids and state keys, its panels, configs and views, what a preview is and how
// it is drawn, and how files are named.
import { TRAIN_MODELS, DATA_CHOICES, modelTitle, trainPanels, trainConfig, dataSpec, dataTitle } from "./state.js";
import { PanelView, saveBlob, options } from "./view.js";
import { trainStateHeader } from "./export.js";
import { LossChart } from "./chart.js";

const COLORS = ["#1f5ab4", "#c0392b"];
// Larger than any checkpoint the Train tab can make (D = 1024, width 1024, depth 16: 147 MB).
const MAX_IMPORT = 512 * 2 ** 20;

/** `requestDataPoints(id, data)`: the picture of a data set under the panels (the Draw tab's). */
export function trainTab(app, sampling, requestDataPoints) {
  const { state } = app;
  const status = (c) => `D = ${c.dim}, width ${c.width}, depth ${c.depth}`;
  return trainingTab(app, sampling, {
    mode: "train",
    ids: { controls: "train-controls", chart: "train-chart", loss: "loss", start: "train-start", pause: "train-pause", reset: "train-reset" },
    // Whole-number settings, real ones, and the menus (they apply when Start is pressed); D and
    // the menus rebuild the panels.
    keys: { steps: "tsteps", every: "every", ints: ["tdim", "width", "depth", "batch", "tsteps", "every"], floats: ["lr"], menus: ["a", "b", "tdata"], rebuild: ["tdim"] },
    models: TRAIN_MODELS,
    preview: { n: 500, steps: 50 }, // the quick look at a model in training
    panels: () => trainPanels(state),
    config: (panel) => trainConfig(panel, state),
    view: (panel, actions) => new PanelView(app.grid, panel, actions),
    modelOf: (config) => config.model,
    status: (config) => status(config.model),
    buildStatus: () => `${status({ dim: state.tdim, width: state.width, depth: state.depth })}${state.tdata === "circles" ? "" : `, ${state.tdata === "drawn" ? "the drawing" : state.tdata.replace("-", " ")}`}`,
    onBuild: () => state.tdata !== "circles" && requestDataPoints("train", dataSpec(state.tdata, state.pts)),
    fileName: (config, step) => `geonoise-${config.model.model}-${config.model.blind ? "blind" : "cond"}-d${config.model.dim}-${step}steps.safetensors`,
    importedText: (c) => `${c.model} ${c.blind ? "blind" : "conditional"}, D = ${c.dim}, width ${c.width}, depth ${c.depth}`,
    /** "train-preview": samples of the model in training, drawn until the run's own. */
    showPreview: (p, msg) => {
      p.view.clear();
      p.view.push(msg.xy);
      p.view.setMetrics(msg.metrics, undefined, undefined);
    },
    setup: ($) => ($("#tdata").innerHTML = options(DATA_CHOICES, dataTitle)),
  });
}

/** The two-model training controller of a `kind` (see the top of this file). */
export function trainingTab(app, sampling, kind) {
  const { $, panels, state } = app;
  const { ids, keys } = kind;
  const chart = new LossChart($(`#${ids.loss}`));
  let training = false; // runs are stepping (not paused)

  function buildTrainPanels() {
    training = false;
    chart.clear();
    chart.setMaxStep(state[keys.steps]);
    app.grid.className = "panels n2";
    kind.panels().forEach((panel, i) => {
      const view = kind.view(panel, { onExport: sampling.exportPanel, onDownload: downloadCheckpoint, onDownloadState: downloadState, onImport: importCheckpoint });
      const p = { panel, view, frames: [], metrics: null, loaded: false, done: false, pending: false, gen: app.generation, color: COLORS[i], train: null };
      panels.set(panel.id, p);
      view.setStatus(kind.buildStatus());
      view.setTraining("not trained yet: press Start");
    });
    kind.onBuild?.();
    syncTrainButtons();
  }

  /** Trained weights that were not downloaded: what leaving or switching would lose. */
  function unsavedTraining() {
    return [...panels.values()].some((p) => p.train && p.train.step > 0 && p.train.downloadedStep !== p.train.step);
  }

  function confirmDiscard(what) {
    return !unsavedTraining() || window.confirm(`${what} discards the models trained on this page (download their checkpoints first to keep them). Go on?`);
  }

  function freshTrain(p, config = kind.config(p.panel)) {
    p.train = { step: 0, total: config.steps, loss: null, history: [], k: 4, computeMs: 0, wallMs: 0, sentAt: 0, pending: false, nextPreview: state[keys.every], finished: false, saved: null, resume: null, downloadedStep: null, config };
    p.loaded = false;
    p.done = false;
    p.frames = [];
    p.view.clear();
    p.view.setError("");
    p.view.setDownloadable(false);
    chart.reset(p.panel.id, p.panel.title, p.color);
  }

  function trainStart() {
    if (!app.backend || !confirmDiscard("Starting again")) return;
    const gen = app.nextGeneration();
    chart.setMaxStep(state[keys.steps]);
    for (const p of panels.values()) {
      p.gen = gen;
      freshTrain(p);
      p.view.setStatus(kind.status(p.train.config));
      p.view.setTraining("starting…");
      app.post({ type: "train-start", panel: p.panel.id, config: p.train.config, ...kind.startExtra });
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
    app.post({ type: "train-step", panel: p.panel.id, k, gen: p.gen });
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
      app.post({ type: "train-preview", panel: p.panel.id, gen: p.gen, ...kind.preview, seed: state.seed });
      // Keep a copy of the weights outside the GPU and the worker: what a lost device or a crash keeps.
      app.post({ type: "train-export", panel: p.panel.id, loss: t.loss, seconds: t.wallMs / 1000, purpose: "autosave" });
      while (t.nextPreview <= t.step) t.nextPreview += state[keys.every];
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
    app.post({ type: "train-use", panel: p.panel.id });
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
      app.post({ type: "train-export", panel: p.panel.id, loss: t.loss, seconds: t.wallMs / 1000, purpose: "autosave" });
      finishTraining(p, `stopped at step ${msg.step} (loss ${msg.loss})`);
    }
    showTrainLine(p);
    syncTrainButtons();
  }

  function onCheckpoint(p, msg) {
    if (!p.train) return;
    p.train.saved = { step: msg.step, bytes: msg.bytes };
    // An autosave carries the run's whole state too: what recovery resumes exactly from.
    if (msg.state) p.train.resume = { step: msg.step, bytes: msg.state };
    if (msg.purpose === "state") saveState(p);
    p.view.setDownloadable(true);
    if (msg.purpose === "download") saveCheckpoint(p);
  }

  function checkpointName(p, step) {
    return kind.fileName(p.train.config, step);
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
    else app.post({ type: "train-export", panel: panel.id, loss: p.train.loss, seconds: p.train.wallMs / 1000, purpose: "download" });
  }

  /** "Download state": the run's whole state at its current step, a file that Load … (here) or
   * the CLI's `--state FILE` goes on from exactly. */
  function downloadState(panel) {
    const p = panels.get(panel.id);
    if (!p?.train) return;
    if (p.train.resume && p.train.resume.step === p.train.step) saveState(p);
    else app.post({ type: "train-export", panel: panel.id, loss: p.train.loss, seconds: p.train.wallMs / 1000, purpose: "state" });
  }

  function saveState(p) {
    const { step, bytes } = p.train.resume;
    const file = checkpointName(p, step).replace(/\.safetensors$/, ".state");
    window.geonoise.lastState = { panel: p.panel.id, file, step, size: bytes.length };
    saveBlob(new Blob([bytes], { type: "application/octet-stream" }), file);
  }

  /** A state file loaded into a panel: its run, set up at the step it was saved at, goes on
   * exactly (on Resume, or at once while training). The panel must train the same model. */
  function continueFrom(p, name, bytes, run) {
    const c = run.config;
    const m = kind.modelOf(c);
    if (!m || m.model !== p.panel.model || m.blind !== p.panel.blind) {
      if (!m) {
        p.view.setTraining(p.beforeImport);
        p.view.setError(`${name} is the state of another kind of run (${run.of ?? "unknown"}); this tab trains ${kind.mode === "itrain" ? "U-Nets" : "toy networks"}.`);
        return;
      }
      const theirs = modelTitle(`${m.model}-${m.blind ? "blind" : "cond"}`);
      p.view.setTraining(p.beforeImport);
      p.view.setError(`${name} is the state of a ${theirs} run; this panel trains ${p.panel.title}: choose ${theirs} on this side first.`);
      return;
    }
    p.gen = app.nextGeneration();
    freshTrain(p, c);
    const t = p.train;
    t.step = run.step;
    t.nextPreview = run.step + state[keys.every];
    t.resume = { step: run.step, bytes };
    chart.setMaxStep(Math.max(state[keys.steps], c.steps));
    p.view.setStatus(kind.status(c));
    p.view.setTraining(`loaded ${name}: the run at step ${run.step} of ${c.steps}${training ? "" : "; press Resume to go on"}`);
    p.view.setDownloadable(true);
    const copy = bytes.slice();
    app.post({ type: "train-resume", panel: p.panel.id, config: c, bytes: null, step: run.step, state: copy, ...kind.startExtra }, [copy.buffer]);
    syncTrainButtons();
  }

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
    const run = trainStateHeader(bytes);
    if (run) return continueFrom(p, file.name, bytes, run);
    // The panel changes only when the file has loaded ("loaded" with `imported`, onImported); a
    // file that fails leaves its model or training run as it was.
    app.post({ type: "import", panel: panel.id, bytes, name: file.name, image: Boolean(kind.image) }, [bytes.buffer]);
  }

  function onImported(p, msg) {
    p.train = null;
    p.done = false;
    p.frames = [];
    p.pending = false;
    p.gen = app.nextGeneration(); // frames of the panel's earlier run are dropped
    p.view.clear();
    p.view.setDownloadable(false);
    p.view.setTraining(`imported ${msg.imported}: ${kind.importedText(msg.config)}`);
    stopWhenAllFinished();
    syncTrainButtons();
  }

  /** After the engine restarted (lost GPU, crash): each run goes on from its last saved copy:
   * exactly from its state where the copy has one. */
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
      // The run's whole state (an autosave's) resumes it exactly; a copy of weights alone (a
      // download made after it) is only a continuation, so the state is preferred.
      const from = t.resume ?? t.saved;
      // A run that finished after its last saved copy (the engine failed before the final copy
      // arrived) trains its last steps again; one stopped by a NaN stays stopped.
      if (t.finished && !t.nan && (from?.step ?? 0) < t.total) {
        t.finished = false;
        if (!paused) training = true;
      }
      if (from) {
        t.step = from.step;
        t.nextPreview = t.step + state[keys.every];
        t.history = t.history.filter(([k]) => k <= t.step);
        chart.truncate(p.panel.id, t.step);
        const exact = t.resume?.bytes.slice();
        const copy = exact ? null : t.saved.bytes.slice();
        t.recovered = { step: from.step, exact: Boolean(exact) };
        app.post({ type: "train-resume", panel: p.panel.id, config: t.config, bytes: copy, step: from.step, state: exact, ...kind.startExtra }, [(exact ?? copy).buffer]);
        p.view.setTraining(`going on ${exact ? "exactly from the state" : "from the weights"} saved at step ${from.step} on the ${app.backend === "webgpu" ? "GPU" : "CPU"}…`);
      } else {
        t.step = 0;
        t.history = [];
        chart.truncate(p.panel.id, 0);
        app.post({ type: "train-start", panel: p.panel.id, config: t.config, ...kind.startExtra });
      }
      if (t.finished) app.post({ type: "train-use", panel: p.panel.id });
    }
    syncTrainButtons();
  }

  function syncTrainButtons() {
    const any = [...panels.values()].some((p) => p.train && !p.train.finished);
    $(`#${ids.pause}`).disabled = !any;
    $(`#${ids.pause}`).textContent = training || !any ? "Pause" : "Resume";
  }

  /** A failed training request ("error" with a train source): a run that failed here, not by the
   * device's fault, stops; its weights stay. */
  function onError(p, msg) {
    if (!p?.train || !msg.source?.startsWith("train") || msg.fatal) return;
    p.train.pending = false;
    p.train.finished = true;
    stopWhenAllFinished();
    syncTrainButtons();
  }

  /** "train-started": the worker has the run; stepping begins. */
  function onStarted(p, msg) {
    p.train.started = true;
    if (msg.resumed === undefined) p.view.setTraining("training…");
    trainPump(p);
  }

  /** "train-preview": a quick sample of the model in training, until the run's own samples. */
  function onPreview(p, msg) {
    if (p.loaded) return;
    kind.showPreview(p, msg);
    p.previewStep = msg.step;
  }

  function sync() {
    for (const key of [...keys.ints, ...keys.floats, ...keys.menus]) $(`#${key}`).value = String(state[key]);
    const here = state.mode === kind.mode;
    $(`#${ids.controls}`).hidden = !here;
    $(`#${ids.chart}`).hidden = !here;
  }

  function setup() {
    for (const id of keys.menus.slice(0, 2)) $(`#${id}`).innerHTML = options(kind.models, modelTitle);
    kind.setup?.($);
    // Settings apply when Start is pressed; D and the menus also rebuild the panels, which
    // discards trained weights, so that asks first.
    for (const key of [...keys.ints, ...keys.floats]) {
      app.on(key, "change", (e) => {
        const rebuild = keys.rebuild.includes(key);
        if (rebuild && !confirmDiscard("Changing D")) return app.syncControls();
        if (app.readNumber(key, e.target) && rebuild) app.buildPanels();
        if (!training && key === keys.steps) chart.setMaxStep(state[keys.steps]);
      });
    }
    for (const key of keys.menus) {
      app.on(key, "change", (e) => {
        if (!confirmDiscard(key === "tdata" ? "Changing the data" : "Changing the models")) return app.syncControls();
        state[key] = e.target.value;
        app.writeUrl();
        app.buildPanels();
      });
    }
    app.on(ids.start, "click", trainStart);
    app.on(ids.pause, "click", () => {
      training = !training;
      syncTrainButtons();
      for (const p of panels.values()) if (p.train) (training ? trainPump(p) : showTrainLine(p));
    });
    app.on(ids.reset, "click", () => {
      if (confirmDiscard("Reset")) app.buildPanels();
    });
  }

  return {
    build: buildTrainPanels,
    get training() { return training; },
    unsavedTraining, confirmDiscard, recoverTraining,
    onStarted, onTrainProgress, onTrainNan, onPreview, onCheckpoint, onImported, onError,
    sync, setup,
  };
}
