// The engine's worker: all model work happens here, so the page never freezes.
//
// Protocol (every message is an object with a `type`; `panel` names the panel it is about):
//   page -> worker
//     {type: "init", backend: "auto" | "webgpu" | "cpu", job, probeTimes?, files?}   job: what "auto" measures,
//                                                     {kind: "sample", dim, n} or {kind: "train", dim, batch};
//                                                     probeTimes {webgpu, cpu} (test hook) replaces the
//                                                     measurement, measuring a software adapter too;
//                                                     files {path: Blob URL}: the files handed over (a
//                                                     notebook: files.js), the cores among them
//     {type: "load", panel, url, expect}              fetch and load a checkpoint; expect: what it must
//                                                     be, {model, blind, dim, width, depth} (each optional)
//     {type: "load", panel, url, image: true, scorer}  an image model (a U-Net file); scorer: the URL of
//                                                     the classifier that scores its samples at a run's end
//     {type: "start", panel, config: {n, steps, solver, time_grid, seed}}   (re)start sampling from step 0
//     {type: "advance", panel, k, gen}                take k steps, answer with one frame (gen echoed)
//     {type: "export", panel}                         the current full positions
//     {type: "drop", panel}                           forget the panel's model, run and training
//     {type: "import", panel, bytes, name, expect, image?}   load a checkpoint file the person chose
//                                                     (image: a U-Net file)
//     {type: "oracle", panel, config}                 the closed-form field {model, blind, dim, points, grid}
//                                                     as the panel's model
//     {type: "theory", config}                        the Theory tab: {model, dim, offset, s, res, points,
//                                                     grid, click}: the landscape and the probe
//     {type: "probe-sample", panel, index, points, grid}   p(t|u) at sample `index` of the panel's frame
//     {type: "train-start", panel, config, images?, scorer?}   a new training run (a TrainConfig); with
//                                                     `images` (the URL of an IDX images file, fetched
//                                                     once with progress) a U-Net's (an ImageTrainConfig),
//                                                     its previews scored by the classifier at `scorer`
//     {type: "train-resume", panel, config, bytes, step, state?, images?, scorer?}   go on from a saved
//                                                     copy (e.g. after a crash): exactly from `state` (the
//                                                     run's state file) where it has one, else from the
//                                                     weights (a U-Net run only from its state)
//     {type: "train-step", panel, k, gen}             k optimizer steps, then one async loss read
//     {type: "train-preview", panel, gen, n, steps, seed, solver?}   sample the model in training (Euler;
//                                                     a U-Net's moving average with `solver`)
//     {type: "train-export", panel, loss, seconds, purpose}   the weights as a checkpoint file, and but
//                                                     for a "download" the run's state too
//     {type: "train-use", panel}                      make the trained weights the panel's model
//     {type: "memory"}                                wasm memory size and the GPU allocator's figures
//     {type: "data-points", id, data, n}              a data set's (a DataSpec) normalised points
//     {type: "train-fault", panel}                    test hook: the panel's next batch holds a NaN
//     {type: "lose-device"}                           test hook: destroy the GPU device
//     {type: "crash", how}                            test hook: "uncaught" throws outside any handler
//                                                     (the worker's error event); "panic" fails a
//                                                     handler the way a Rust panic does
//   worker -> page
//     {type: "ready", backend, reason}                reason: why this backend (fallbacks included)
//     {type: "progress", panel, loaded, total}        checkpoint download progress (total 0 if unknown)
//     {type: "loaded", panel, config}
//     {type: "frame", panel, gen, step, total, t, done, xy: Float32Array (transferred), metrics}
//     {type: "frame", …, side, pixels: Float32Array [n * side²] (transferred), metrics: {n, diverged,
//                                                     laplacian_energy}, verdict?}   an image panel's frame;
//                                                     verdict (the last frame): the classifier's
//                                                     {confident_share, class_counts, classes} or {error}
//     {type: "export", panel, dim, projection_seed, config, samples: Float32Array, xy: Float32Array}
//                                                     (an image panel: side instead of xy)
//     {type: "train-started", panel, config}
//     {type: "train-progress", panel, gen, step, chunk, total, loss, ms}   ms: time the chunk of steps took
//     {type: "train-nan", panel, gen, step, loss, good}   the loss went non-finite at step; the weights
//                                                     of step `good` were put back (null: none)
//     {type: "train-preview", panel, gen, step, xy, metrics}
//     {type: "train-preview", panel, gen, step, steps, t, side, pixels, metrics, verdict}   a U-Net's
//     {type: "checkpoint", panel, step, purpose, bytes: Uint8Array (transferred), state?}   state: the
//                                                     run's whole state (an autosave's)
//     {type: "theory", res, energy, grad2, pre2, grid, probe, stability?}   energy [res²]; grad2, pre2
//                                                     [res², 2]: grad E_marg and gain * grad E_marg in the
//                                                     plane; probe {xy, posterior, t_mean, t_std, t_geo,
//                                                     t_true?}; stability [{model, ts, drift}] when D changed;
//                                                     compare {res, learned2, exact2, diff} or null;
//                                                     concentration {model, dim, levels, norms [5 * 400],
//                                                     t_mean, t_std} when the model or D changed
//     {type: "panel-probe", panel, grid, probe}       probe as in "theory", t_true the sampler's t
//     {type: "memory", bytes, device}                 device: {allocations, bytes_in_use, bytes_reserved} or null
//     {type: "data-points", id, points | error}       Float32Array [n * 2] in the plane, or why not
//     {type: "error", panel?, message, fatal?, crashed?}   fatal: the engine itself is unusable (init
//                                                     failed, WebGPU failed mid-run, or the wasm
//                                                     panicked: crashed): the page restarts it
import { planeGrid } from "./theory.js";
import { DIMS, checkpointUrl } from "./state.js";
import { requestSubgroups } from "./webgpu-features.js";
import { decideBackend, isSoftware } from "./backend.js";
import { CORES, fileUrl, isProvided, nameOf, provide } from "./files.js";

requestSubgroups(self);

// The GPU devices this worker opened (burn opens them through the browser's WebGPU): watched for
// loss, so a lost device is reported at once even when no work is in flight, and reachable by a
// test hook that destroys them.
const gpuDevices = [];
if (self.GPUAdapter) {
  const requestDevice = self.GPUAdapter.prototype.requestDevice;
  self.GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    gpuDevices.push(device);
    device.lost.then((info) => post({ type: "error", message: `the GPU device was lost (${info.reason || "unknown"}: ${info.message || "no message"})`, fatal: true }));
    return device;
  };
}

let engine = null;
// The wasm core, loaded once the backend is known: pkg/ has WebGPU and the CPU, pkg-cpu/ is the
// smaller CPU-only build that a visitor without WebGPU (or who chose the CPU) downloads instead
// (their files: CORES, files.js).
let core = null;
let wasm = null; // the module's exports (its memory, for the soak benchmark)
const models = new Map(); // panel -> LoadedModel
const trainers = new Map(); // panel -> TrainRun or ImageTrainRun
const trainingData = new Map(); // URL of an IDX images file -> Promise of its TrainingImages
const runs = new Map(); // panel -> {run, config}
const scorerUrls = new Map(); // image panel -> the classifier's URL
const scorers = new Map(); // classifier URL -> Promise of an ImageScorer
let queue = Promise.resolve(); // messages are handled one at a time, in order

const post = (msg, transfer = []) => self.postMessage(msg, transfer);
// One line per error: burn's device errors come as "Caused by:" chains with a backtrace note.
const message = (e) => {
  // wgpu wraps browser errors as "JsValue(OperationError: why; stack)": keep the why.
  const text = String((e && e.message) || e).replace(/JsValue\((.*?)(; undefined)?\)/g, "$1");
  const lines = text.split("\n").map((l) => l.trim());
  const kept = lines.filter((l, i) => l && !/^(Backtrace:|No backtrace available|Caused by:)/.test(l) && lines.indexOf(l) === i);
  return kept.join("; ");
};

/** Which core to load and, unless "auto" must measure, the backend: {core, backend?, reason?}. */
async function chooseCore(wanted, testing) {
  if (wanted === "cpu") return { core: "cpu", backend: "cpu", reason: "CPU chosen" };
  if (!self.navigator.gpu) return { core: "cpu", backend: "cpu", reason: "this browser has no WebGPU" };
  let adapter = null;
  try {
    adapter = await self.navigator.gpu.requestAdapter();
  } catch (e) {
    return { core: "cpu", backend: "cpu", reason: `WebGPU adapter request failed: ${message(e)}` };
  }
  if (!adapter) return { core: "cpu", backend: "cpu", reason: "no WebGPU adapter" };
  const info = adapter.info || {};
  if (wanted === "webgpu") return { core: "webgpu", backend: "webgpu", reason: "WebGPU chosen" };
  if (isSoftware(adapter) && !testing) return { core: "cpu", backend: "cpu", reason: `the WebGPU adapter is a software one (${info.architecture || info.vendor || "fallback"}); the CPU is faster` };
  return { core: "webgpu" };
}

/** ms per unit of `job` on `engine`: a sampling frame (a step and its read) or a training step. */
async function probe(engine, job) {
  const model = { model: "fm", blind: true, dim: job.dim, width: 128, depth: 3 };
  const tr = engine.trainer({ model, steps: 1000, batch: job.batch || 256, lr: 1e-3, seed: 0 });
  try {
    if (job.kind === "train") {
      tr.step(2);
      await tr.loss(); // warm-up: pipelines, allocations
      const t0 = performance.now();
      tr.step(4);
      await tr.loss();
      return (performance.now() - t0) / 4;
    }
    const m = tr.model();
    const run = engine.sampler(m, { n: job.n, steps: 16, seed: 0 });
    try {
      await run.advance(1).read_xy();
      const t0 = performance.now();
      for (let i = 0; i < 3; i++) await run.advance(1).read_xy();
      return (performance.now() - t0) / 3;
    } finally {
      run.free();
      m.free();
    }
  } finally {
    tr.free();
  }
}

/** Handed files that hold one core only (a notebook sends the one it needs): that one. The
 * WebGPU core runs on the CPU too; the CPU core cannot use WebGPU. */
function availableCore(choice) {
  const other = choice.core === "webgpu" ? "cpu" : "webgpu";
  if (isProvided(CORES[choice.core].js) || !isProvided(CORES[other].js)) return choice;
  if (other === "webgpu") return { ...choice, core: "webgpu" };
  return { core: "cpu", backend: "cpu", reason: "only the CPU core was handed to this figure" };
}

async function handleInit({ backend, job, probeTimes, files }) {
  provide(files);
  const wanted = backend || "auto";
  const choice = availableCore(await chooseCore(wanted, Boolean(probeTimes)));
  try {
    core = await import(fileUrl(CORES[choice.core].js));
    wasm = await core.default({ module_or_path: fileUrl(CORES[choice.core].wasm) });
  } catch (e) {
    throw new Error(`the engine's core (${CORES[choice.core].wasm}) could not be loaded: ${message(e)}`);
  }
  if (!choice.backend) {
    // "auto" on a hardware adapter: both backends, measured on the job at hand.
    const times = { webgpu: null, cpu: null };
    const cpuEngine = await core.Engine.create("cpu");
    let gpuEngine = null;
    try {
      gpuEngine = await core.Engine.create("webgpu");
      times.webgpu = probeTimes ? probeTimes.webgpu : await probe(gpuEngine, job);
    } catch (e) {
      choice.failure = message(e);
    }
    times.cpu = probeTimes ? probeTimes.cpu : await probe(cpuEngine, job);
    Object.assign(choice, decideBackend(times, job));
    if (choice.failure && choice.backend === "cpu") choice.reason = `WebGPU failed (${choice.failure}); using the CPU`;
    engine = choice.backend === "webgpu" ? gpuEngine : cpuEngine;
    (engine === gpuEngine ? cpuEngine : gpuEngine)?.free();
    post({ type: "ready", backend: engine.backend, reason: choice.reason, times });
    return;
  }
  try {
    engine = await core.Engine.create(choice.backend);
  } catch (e) {
    if (choice.backend !== "webgpu") throw e;
    engine = await core.Engine.create("cpu");
    choice.backend = "cpu";
    choice.reason = `WebGPU failed (${message(e)}); using the CPU`;
  }
  post({ type: "ready", backend: engine.backend, reason: choice.reason });
}

async function fetchBytes(panel, url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`could not fetch ${url}: HTTP ${res.status}`);
  const total = Number(res.headers.get("content-length")) || 0;
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  const parts = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.length;
    post({ type: "progress", panel, loaded, total });
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return bytes;
}

function dropPanel(panel) {
  const r = runs.get(panel);
  if (r) r.run.free();
  runs.delete(panel);
  const m = models.get(panel);
  if (m) m.free();
  models.delete(panel);
  const t = trainers.get(panel);
  if (t) t.free();
  trainers.delete(panel);
}

/** Whether a training run trains a U-Net (an ImageTrainRun) rather than a toy network. */
const trainsImages = (tr) => tr instanceof core.ImageTrainRun;

/** Loads checkpoint bytes, a toy model's or (`image`) a U-Net's; `name` labels errors (URL or
 * file name). */
function loadModel(bytes, name, expect, image = false) {
  try {
    return image ? engine.load_image_checkpoint(bytes) : engine.load_checkpoint(bytes, expect);
  } catch (e) {
    throw new Error(`${name}: ${message(e)}`);
  }
}

/** `model` becomes the panel's model; the page hears "loaded" (with `extra`). */
function useModel(panel, model, extra = {}) {
  models.set(panel, model);
  post({ type: "loaded", panel, config: model.config(), ...extra });
}

async function handleLoad({ panel, url, expect, image, scorer }) {
  dropPanel(panel);
  const model = loadModel(await fetchBytes(panel, url), nameOf(url), expect, image);
  if (scorer) scorerUrls.set(panel, scorer);
  useModel(panel, model);
}

/** The classifier's verdict on an image panel's final samples, or {error} (the samples stand
 * without it). The classifier is fetched once per URL. */
async function verdictOf(panel, pixels) {
  const url = scorerUrls.get(panel);
  if (!url) return null;
  try {
    if (!scorers.has(url)) {
      scorers.set(url, fetchBytes(null, url).then((bytes) => new core.ImageScorer(bytes)));
      scorers.get(url).catch(() => scorers.delete(url)); // a failed fetch is tried again next run
    }
    return (await scorers.get(url)).score(pixels);
  } catch (e) {
    return { error: `${nameOf(url)}: ${message(e)}` };
  }
}

/** A file the person chose replaces the panel's model (or run in training) only once it loads:
 * a bad file leaves the panel as it was. */
function handleImport({ panel, bytes, name, expect, image }) {
  const model = loadModel(bytes, name, expect, image);
  dropPanel(panel);
  useModel(panel, model, { imported: name });
}

// --- training ---------------------------------------------------------------------------------
function trainerOf(panel) {
  const t = trainers.get(panel);
  if (!t) throw new Error("no training run on this panel");
  return t;
}

/** The training images at `url`, fetched and parsed once for every run that trains on them (a
 * failed fetch is tried again by the next run). */
function trainingImages(panel, url) {
  if (!trainingData.has(url)) {
    const name = url.split("/").pop();
    const p = fetchBytes(panel, url).then((bytes) => {
      try {
        return new core.TrainingImages(bytes, name);
      } catch (e) {
        throw new Error(`the training images (${url}): ${message(e)}`);
      }
    });
    trainingData.set(url, p);
    p.catch(() => trainingData.delete(url));
  }
  return trainingData.get(url);
}

/** A U-Net run on the images at `images` (state: go on exactly from a state file). */
async function imageTrainer(panel, config, images, scorer, state) {
  const data = await trainingImages(panel, images);
  const run = state ? engine.resume_image_trainer(config, data, state) : engine.image_trainer(config, data);
  dropPanel(panel);
  trainers.set(panel, run);
  if (scorer) scorerUrls.set(panel, scorer);
  return run;
}

async function handleTrainStart({ panel, config, images, scorer }) {
  if (images) await imageTrainer(panel, config, images, scorer);
  else {
    dropPanel(panel);
    trainers.set(panel, engine.trainer(config));
  }
  post({ type: "train-started", panel, config: trainers.get(panel).config() });
}

async function handleTrainResume({ panel, config, bytes, step, state, images, scorer }) {
  if (images) {
    if (!state) throw new Error("a U-Net run goes on from its state file only");
    await imageTrainer(panel, config, images, scorer, state);
  } else {
    dropPanel(panel);
    trainers.set(panel, state ? engine.resume_trainer_state(config, state) : engine.resume_trainer(config, bytes, step));
  }
  post({ type: "train-started", panel, config: trainers.get(panel).config(), resumed: step });
}

async function handleTrainStep({ panel, k, gen }) {
  const tr = trainers.get(panel);
  if (!tr) return; // dropped meanwhile
  const t0 = performance.now();
  const before = tr.steps_done;
  const step = tr.step(k);
  const loss = await tr.loss(); // the only read: one number, async
  const ms = performance.now() - t0;
  if (loss !== undefined && !Number.isFinite(loss)) {
    const good = tr.restore_last_good();
    post({ type: "train-nan", panel, gen, step, loss: String(loss), good: good ?? null });
    return;
  }
  post({ type: "train-progress", panel, gen, step, chunk: step - before, total: tr.config().steps, loss, ms });
}

/** A frame's plane coordinates `{step, t, done, total, xy}` and the run's full positions, both
 * read at once (one wait for the device, not two in a row). */
const readFrame = (run, frame) => Promise.all([frame.read_xy(), run.current().read_full()]);

async function handleTrainPreview({ panel, gen, n, steps, seed, solver }) {
  const tr = trainers.get(panel);
  if (!tr) return;
  if (trainsImages(tr)) return imagePreview(tr, { panel, gen, n, steps, seed, solver });
  const model = tr.model();
  const run = engine.sampler(model, { n, steps, solver: "euler", seed });
  try {
    const [f, full] = await readFrame(run, run.advance(steps));
    const m = core.metrics(full, model.dim, model.projection_seed, model.config().data);
    post({ type: "train-preview", panel, gen, step: tr.steps_done, xy: f.xy, metrics: m }, [f.xy.buffer]);
  } finally {
    run.free();
    model.free();
  }
}

/** A U-Net run's preview: its moving average samples `n` images from the seed's noises. */
async function imagePreview(tr, { panel, gen, n, steps, seed, solver }) {
  const model = tr.model();
  const run = engine.sampler(model, { n, steps, solver: solver ?? "ddim", seed });
  try {
    const f = await run.advance(steps).read_with_full();
    const pixels = f.full;
    const metrics = core.image_metrics(pixels, model.side);
    const verdict = await verdictOf(panel, pixels);
    post({ type: "train-preview", panel, gen, step: tr.steps_done, steps, t: f.t, side: model.side, pixels, metrics, verdict }, [pixels.buffer]);
  } finally {
    run.free();
    model.free();
  }
}

async function handleTrainExport({ panel, loss, seconds, purpose }) {
  const tr = trainerOf(panel);
  const step = tr.steps_done;
  const finalLoss = Number.isFinite(loss) ? loss : undefined;
  // An autosave (or a state asked for) carries the run's whole state of the same step (both reads
  // are issued before either is awaited): what a restarted engine resumes exactly from. (A U-Net
  // run's files also record the seconds trained, as the CLI's do.)
  const image = trainsImages(tr);
  const [bytes, state] = await Promise.all([image ? tr.export(finalLoss, seconds ?? 0) : tr.export(finalLoss), purpose === "download" ? undefined : image ? tr.state(seconds ?? 0) : tr.state()]);
  post({ type: "checkpoint", panel, step, purpose, bytes, state }, state ? [bytes.buffer, state.buffer] : [bytes.buffer]);
}

function handleTrainUse({ panel }) {
  const tr = trainerOf(panel);
  const old = models.get(panel);
  if (old) old.free();
  useModel(panel, tr.model(), { trained: tr.steps_done });
}

function handleOracle({ panel, config }) {
  dropPanel(panel);
  useModel(panel, engine.oracle_field(config));
}

let theoryProbe = null; // {key, probe}: the last oracle asked about points, kept while it is the same

function oracleProbe(model, dim, points, grid) {
  const key = `${model}/${dim}/${points}/${grid}`;
  if (theoryProbe?.key !== key) {
    theoryProbe?.probe.free();
    theoryProbe = null;
    theoryProbe = { key, probe: engine.oracle({ model, dim, points, grid }) };
  }
  return theoryProbe.probe;
}

/** The posterior over t at sample `index` of a panel's current frame, whose true t is the
 * sampler's t at that step. */
async function handleProbeSample({ panel, index, points, grid }) {
  const r = runs.get(panel);
  const model = models.get(panel);
  if (!r || !model) throw new Error("nothing has been sampled on this panel yet");
  const [{ step, t }, full] = await readFrame(r.run, r.run.current());
  const cfg = model.config();
  const dim = model.dim;
  const probe = oracleProbe(cfg.model, dim, points, grid);
  post({ type: "panel-probe", panel, grid: probe.grid(), probe: { ...probeAt(probe, full.slice(index * dim, (index + 1) * dim)), t_true: t, step, index } });
}

/** What the oracle says about one point u: where it is in the plane, p(t|u), E[t|u] and its
 * spread, and the noise level read off ||u_perp||. */
function probeAt(probe, u) {
  const a = probe.analyze(u);
  const xy = probe.project(u);
  return { xy: [xy[0], xy[1]], posterior: a.posterior, t_mean: a.t_mean[0], t_std: a.t_std[0], t_geo: probe.geometric_t(u)[0] };
}

// The shipped blind checkpoints the Theory tab compares with the exact field: "model/D" -> model.
const learned = new Map();

/** The learned blind field of `model` at D against the exact one on a coarse plane grid: both
 * projected to the plane, and their relative difference in R^D; null where no checkpoint ships. */
async function compareAt(probe, model, dim, offset) {
  if (!DIMS.includes(dim)) return null;
  const key = `${model}/${dim}`;
  if (!learned.has(key)) {
    const url = checkpointUrl({ model, blind: true }, dim);
    learned.set(key, loadModel(await fetchBytes(null, url), url, { model, blind: true, dim }));
  }
  const res = 16;
  const u = probe.plane_points(planeGrid(res), offset);
  const exact = probe.has_kernel ? (await probe.analyze_kernel(u)).field : probe.analyze(u).field;
  const mine = await engine.field(learned.get(key), u, 0.5); // blind: t is not seen
  const diff = new Float32Array(res * res);
  for (let i = 0; i < res * res; i++) {
    let num = 0;
    let den = 0;
    for (let j = 0; j < dim; j++) {
      num += (mine[i * dim + j] - exact[i * dim + j]) ** 2;
      den += exact[i * dim + j] ** 2;
    }
    diff[i] = Math.sqrt(num / Math.max(den, 1e-12));
  }
  return { res, learned2: probe.project(mine), exact2: probe.project(exact), diff };
}

async function handleTheory({ config }) {
  const { model, dim, offset, s, res, points, grid, click } = config;
  const probe = oracleProbe(model, dim, points, grid);
  // On WebGPU the landscape (res² points at once) runs the WGSL kernel; the tensor path (Flex)
  // is the fallback and the reference.
  const plane = probe.plane_points(planeGrid(res), offset);
  const path = probe.has_kernel ? "kernel" : "tensor";
  const a = probe.has_kernel ? await probe.analyze_kernel(plane) : probe.analyze(plane);
  const grad2 = probe.project(a.grad_energy);
  const pre2 = grad2.map((g, i) => a.gain[i >> 1] * g);
  const ts = probe.grid();
  let pu;
  let tTrue;
  if (click) pu = probe.plane_points(new Float32Array(click), offset);
  else {
    tTrue = ts[0] * (ts[ts.length - 1] / ts[0]) ** (s / 100);
    pu = probe.noisy_point(tTrue, 0, 0);
  }
  const probeMsg = { ...probeAt(probe, pu), t_true: tTrue };
  const compare = await compareAt(probe, model, dim, offset);
  post({ type: "theory", res, path, energy: a.energy, grad2, pre2, grid: ts, probe: probeMsg, stability: stabilityAt(dim, points, grid), compare, concentration: concentrationAt(probe, model, dim) });
}

// App. C made visible: the norms ||u|| / sqrt(D) of draws from the marginal at five noise levels
// (log-spaced from ten times the lowest to 0.8 of the highest) and the posterior's spread of t at
// them; computed once per model and D.
let concentrationKey = null; // "model/D" of the last one sent

function concentrationAt(probe, model, dim) {
  const key = `${model}/${dim}`;
  if (concentrationKey === key) return undefined; // unchanged: the page keeps its drawing
  const g = probe.grid();
  const [lo, hi] = [10 * g[0], 0.8 * g[g.length - 1]];
  const levels = Array.from({ length: 5 }, (_, i) => lo * (hi / lo) ** (i / 4));
  const c = probe.concentration(new Float64Array(levels), 400, 16, 0);
  concentrationKey = key;
  return { model, dim, levels: Array.from(c.levels), norms: c.norms, t_mean: Array.from(c.t_mean), t_std: Array.from(c.t_std) };
}

// Table 2 live: the drift perturbation error of the blind sampler for the noise (DDPM), signal
// (EDM) and velocity (FM) targets, at 16 noise levels of each one's range; computed once per D.
let stability = null; // {dim, curves}

function stabilityAt(dim, points, grid) {
  if (stability?.dim === dim) return undefined; // unchanged: the page keeps its drawing
  const curves = ["ddpm", "edm", "fm"].map((model) => {
    const probe = engine.oracle({ model, dim, points, grid });
    try {
      const g = probe.grid();
      const ts = Array.from({ length: 16 }, (_, i) => g[0] * (g[g.length - 1] / g[0]) ** (i / 15));
      return { model, ts, drift: Array.from(probe.drift_curve(new Float64Array(ts), 32, 0)) };
    } finally {
      probe.free();
    }
  });
  stability = { dim, curves };
  return curves;
}

function handleStart({ panel, config }) {
  const model = models.get(panel);
  if (!model) throw new Error("no model loaded");
  const old = runs.get(panel);
  if (old) old.run.free();
  runs.set(panel, { run: engine.sampler(model, config), config });
}

async function handleAdvance({ panel, k, gen }) {
  const r = runs.get(panel);
  if (!r) return; // dropped meanwhile
  if (models.get(panel).side) return imageFrame({ panel, k, gen }, r, models.get(panel));
  // Before the first step the frame is made on the host (no device work); after it, read back.
  const start = k === 0 ? r.run.start_on_host() : null;
  let f = start;
  let full = start?.full;
  // The plane coordinates for the canvas, the full positions for the live metrics.
  if (!start) [f, full] = await readFrame(r.run, k === 0 ? r.run.current() : r.run.advance(k));
  const model = models.get(panel);
  const m = core.metrics(full, model.dim, model.projection_seed, model.config().data);
  post({ type: "frame", panel, gen, step: f.step, total: f.total, t: f.t, done: f.done, xy: f.xy, metrics: m }, [f.xy.buffer]);
}

/** An image panel's frame: the pixels themselves (there is no plane to project on). */
async function imageFrame({ panel, k, gen }, r, model) {
  // Before the first step the frame is made on the host (no device work); after it, read back.
  const f = (k === 0 && r.run.start_on_host()) || (await (k === 0 ? r.run.current() : r.run.advance(k)).read_with_full());
  const pixels = f.full;
  const metrics = core.image_metrics(pixels, model.side);
  const verdict = f.done ? await verdictOf(panel, pixels) : undefined;
  post({ type: "frame", panel, gen, step: f.step, total: f.total, t: f.t, done: f.done, side: model.side, pixels, metrics, verdict }, [pixels.buffer]);
}

async function handleExport({ panel }) {
  const r = runs.get(panel);
  const model = models.get(panel);
  if (!r || !model) throw new Error("nothing to export yet");
  if (model.side) {
    const samples = await r.run.current().read_full();
    return post({ type: "export", panel, dim: model.dim, side: model.side, config: model.config(), sample: r.config, samples }, [samples.buffer]);
  }
  const [f, samples] = await readFrame(r.run, r.run.current());
  post({ type: "export", panel, dim: model.dim, projection_seed: model.projection_seed, config: model.config(), sample: r.config, samples, xy: f.xy }, [samples.buffer, f.xy.buffer]);
}

const handlers = {
  init: handleInit,
  load: handleLoad,
  import: handleImport,
  oracle: handleOracle,
  theory: handleTheory,
  "probe-sample": handleProbeSample,
  start: handleStart,
  advance: handleAdvance,
  export: handleExport,
  drop: ({ panel }) => dropPanel(panel),
  "train-start": handleTrainStart,
  "train-resume": handleTrainResume,
  "train-step": handleTrainStep,
  "train-preview": handleTrainPreview,
  "train-export": handleTrainExport,
  "train-use": handleTrainUse,
  "data-points": ({ id, data, n }) => {
    // A data set's points as the core normalises them (the Draw view's picture of a shape).
    try {
      post({ type: "data-points", id, points: core.data_points(data, n) });
    } catch (e) {
      post({ type: "data-points", id, error: message(e) });
    }
  },
  "train-fault": ({ panel }) => trainerOf(panel).inject_nan(),
  "lose-device": () => gpuDevices.forEach((d) => d.destroy()),
  memory: () => post({ type: "memory", bytes: wasm.memory.buffer.byteLength, device: engine.device_memory() }),
  crash: ({ how }) => {
    if (how === "uncaught") setTimeout(() => { throw new Error("test hook: the engine crashed"); });
    else throw new WebAssembly.RuntimeError("unreachable (test hook: a panic)");
  },
};
// Work that touches the device: on WebGPU a failure there is the device's.
const DEVICE_WORK = new Set(["advance", "export", "train-step", "train-preview", "train-export"]);

self.onmessage = (e) => {
  const msg = e.data;
  if (msg.type === "lose-device") return handlers[msg.type](msg);
  queue = queue.then(async () => {
    const h = handlers[msg.type];
    if (!h) return post({ type: "error", message: `unknown message type '${msg.type}'` });
    if (msg.type !== "init" && !engine) return post({ type: "error", panel: msg.panel, message: "the engine is not ready" });
    try {
      await h(msg);
    } catch (err) {
      // On WebGPU, a failure while sampling is the device's (lost, out of memory, driver reset):
      // the page restarts the engine on the CPU rather than leave the panel dead.
      const deviceFault = engine?.backend === "webgpu" && DEVICE_WORK.has(msg.type);
      // A Rust panic surfaces as a RuntimeError ("unreachable"); the wasm instance may be left
      // half-updated, so the page replaces the whole worker.
      const crashed = err instanceof WebAssembly.RuntimeError;
      post({ type: "error", panel: msg.panel, source: msg.type, message: message(err), fatal: msg.type === "init" || deviceFault || crashed, crashed });
    }
  });
};
