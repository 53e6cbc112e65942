// The in-browser half of `node bench/run.mjs`: the project's wasm core and the TF.js peer in one
// page, timed A/B interleaved. Every figure is per step, the median over rounds; a round issues
// `k` steps and then waits for the device (a loss or sample read), so queued GPU work is counted.
// WebGPU calls (dispatches and queue submissions among them) are counted by wrapping the WebGPU
// prototypes, which both stacks call through.
import init, { Engine } from "../www/pkg/geonoise.js";
import { TfjsToy } from "./peer-tfjs.js";

const log = (s) => (document.getElementById("log").textContent += s + "\n");

// Per measurement: every WebGPU call by `Class.method`, and the dispatches by kernel.
const counts = { calls: new Map(), byKernel: new Map() };
const DISPATCH = "GPUComputePassEncoder.dispatchWorkgroups";
if (self.GPUComputePassEncoder) {
  const wrap = (proto, name, hook) => {
    const f = proto[name];
    proto[name] = function (...a) {
      const r = f.apply(this, a);
      hook(this, a, r);
      return r;
    };
  };
  // Dispatches by kernel: a pipeline is named by its label, else by its shader module's label,
  // else by the first words of its WGSL (both stacks name their kernels in one of these).
  const moduleNames = new WeakMap();
  const pipelineNames = new WeakMap();
  const current = new WeakMap();
  wrap(GPUDevice.prototype, "createShaderModule", (_, [d], m) => moduleNames.set(m, d.label || (d.code.match(/fn\s+(\w+)\s*\(/g) || []).slice(-1)[0]?.replace(/fn\s+|\s*\(/g, "") || "?"));
  const named = (_, [d], p) => pipelineNames.set(p, d.label || moduleNames.get(d.compute?.module) || "?");
  wrap(GPUDevice.prototype, "createComputePipeline", named);
  const namedAsync = GPUDevice.prototype.createComputePipelineAsync;
  GPUDevice.prototype.createComputePipelineAsync = async function (d) {
    const p = await namedAsync.call(this, d);
    named(this, [d], p);
    return p;
  };
  wrap(GPUComputePassEncoder.prototype, "setPipeline", (pass, [p]) => current.set(pass, pipelineNames.get(p) || "?"));
  wrap(GPUComputePassEncoder.prototype, "dispatchWorkgroups", (pass) => {
    const k = current.get(pass) || "?";
    counts.byKernel.set(k, (counts.byKernel.get(k) || 0) + 1);
  });
  // Every call a step makes into WebGPU, by name (per step in the results' `calls`).
  for (const cls of [GPUDevice, GPUQueue, GPUCommandEncoder, GPUComputePassEncoder, GPUBuffer]) {
    for (const name of Object.getOwnPropertyNames(cls.prototype)) {
      const d = Object.getOwnPropertyDescriptor(cls.prototype, name);
      if (name === "constructor" || typeof d.value !== "function") continue;
      wrap(cls.prototype, name, () => counts.calls.set(`${cls.name}.${name}`, (counts.calls.get(`${cls.name}.${name}`) || 0) + 1));
    }
  }
}

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : 0.5 * (s[s.length / 2 - 1] + s[s.length / 2]);
};

/** The project's side: the same wasm API the page's worker drives. */
/** The training run both sides make: the project's TrainConfig (the peer takes the same). */
const trainConfig = (model, batch) => ({ model, steps: 1_000_000, batch, lr: 5e-3, optimizer: "adam", weight_decay: 0, grad_clip: 1, seed: 0 });

class Project {
  static engines = new Map();
  /** One engine per backend for the page's life (wgpu initialises once per wasm instance). */
  static async create(backend) {
    const p = new Project();
    if (!Project.engines.has(backend)) Project.engines.set(backend, await Engine.create(backend));
    p.engine = Project.engines.get(backend);
    return p;
  }
  startTraining(cfg) {
    this.run?.free();
    this.run = this.engine.trainer(cfg);
  }
  trainSteps(k) {
    this.run.step(k);
    return this.run.loss();
  }
  startSampling(bytes, n, steps) {
    this.model = this.engine.load_checkpoint(bytes, null);
    this.sampler = this.engine.sampler(this.model, { n, steps, seed: 0 });
  }
  sampleSteps(k) {
    return this.sampler.advance(k).read_xy();
  }
}

/** ms per step and dispatches/submits per step of `fn(k)` (which returns a promise). */
async function once(fn, k) {
  counts.byKernel = new Map();
  counts.calls = new Map();
  const t0 = performance.now();
  const pending = fn(k);
  // The synchronous part: the host recording and submitting the step's work.
  const hostMs = (performance.now() - t0) / k;
  await pending;
  const ms = (performance.now() - t0) / k;
  const perStep = (m) => Object.fromEntries([...m].sort((a, b) => b[1] - a[1]).map(([name, n]) => [name, n / k]));
  const calls = perStep(counts.calls);
  return { ms, host_ms: hostMs, dispatch: calls[DISPATCH] ?? 0, submit: calls["GPUQueue.submit"] ?? 0, kernels: perStep(counts.byKernel), calls };
}

/** A/B interleaved: warm-up rounds of each, then `rounds` rounds alternating which goes first. */
async function interleave(a, b, k, rounds, warmup) {
  for (let i = 0; i < warmup; i++) {
    await once(a, k);
    await once(b, k);
  }
  const ra = [];
  const rb = [];
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      ra.push(await once(a, k));
      rb.push(await once(b, k));
    } else {
      rb.push(await once(b, k));
      ra.push(await once(a, k));
    }
  }
  const summary = (r) => ({ ms: median(r.map((x) => x.ms)), host_ms: median(r.map((x) => x.host_ms)), all_ms: r.map((x) => +x.ms.toFixed(3)), dispatch: median(r.map((x) => x.dispatch)), submit: median(r.map((x) => x.submit)), kernels: r.at(-1).kernels, calls: r.at(-1).calls });
  return { project: summary(ra), peer: summary(rb) };
}

async function adapterInfo() {
  if (!navigator.gpu) return null;
  const a = await navigator.gpu.requestAdapter();
  if (!a) return null;
  const i = a.info || {};
  return { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description };
}

window.bench = {
  ready: false,
  counts,
  adapterInfo,
  /** `{backend: "cpu"|"webgpu", peerBackend: "wasm"|"cpu"|"webgpu", train: TrainConfig-like, k, rounds, warmup}` */
  async train({ backend, peerBackend, model, batch, k, rounds, warmup }) {
    await tf.setBackend(peerBackend);
    await tf.ready();
    const project = await Project.create(backend);
    const cfg = trainConfig(model, batch);
    project.startTraining(cfg);
    const peer = new TfjsToy({ dim: model.dim, width: model.width, depth: model.depth, batch, lr: cfg.lr, steps: cfg.steps });
    const r = await interleave((k) => project.trainSteps(k), (k) => peer.trainSteps(k), k, rounds, warmup);
    r.peer_info = { backend: tf.getBackend(), threads: peerBackend === "wasm" ? tf.wasm?.getThreadsCount?.() : null, crossOriginIsolated: self.crossOriginIsolated };
    r.project_loss = await project.run.loss();
    r.peer_loss = await peer.read();
    peer.dispose();
    project.run.free();
    log(`train ${backend} vs tfjs-${peerBackend}: ${r.project.ms.toFixed(2)} vs ${r.peer.ms.toFixed(2)} ms/step`);
    return r;
  },
  /** `steps` training steps of the project alone (for a profiler to watch). */
  async projectOnly({ backend, model, batch, steps }) {
    const project = await Project.create(backend);
    project.startTraining(trainConfig(model, batch));
    for (let i = 0; i < steps; i++) await project.trainSteps(1);
    project.run.free();
  },
  /** Sampling steps of the shipped checkpoint `file` (the peer runs the same architecture). */
  async sample({ backend, peerBackend, file, model, n, steps, k, rounds, warmup }) {
    await tf.setBackend(peerBackend);
    await tf.ready();
    const project = await Project.create(backend);
    const bytes = new Uint8Array(await (await fetch(`../www/pretrained/${file}`)).arrayBuffer());
    const peer = new TfjsToy({ dim: model.dim, width: model.width, depth: model.depth, batch: 1 });
    // Enough steps for every round.
    const total = Math.max(steps, (warmup + rounds) * k);
    project.startSampling(bytes, n, total);
    peer.startSampling(n, total);
    const r = await interleave((k) => project.sampleSteps(k), (k) => peer.sampleSteps(k), k, rounds, warmup);
    peer.dispose();
    project.sampler.free();
    project.model.free();
    log(`sample ${backend} vs tfjs-${peerBackend}: ${r.project.ms.toFixed(2)} vs ${r.peer.ms.toFixed(2)} ms/step`);
    return r;
  },
};

await init();
window.bench.ready = true;
log("ready");
