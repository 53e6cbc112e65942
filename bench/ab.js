// The A/B measurement both benches share: bench/page.js (in headless Chromium, driven by
// bench/run.mjs) and bench/dawn.mjs (in Node on Dawn, the WebGPU implementation inside Chromium,
// where a real GPU is reachable without a browser). The project's wasm core and the TF.js peer
// are timed interleaved; every figure is per step, the median over rounds; a round issues `k`
// steps and then waits for the device (a loss or sample read), so queued GPU work is counted.
// WebGPU calls (dispatches and queue submissions among them) are counted by wrapping the WebGPU
// prototypes, which both stacks call through.
import { TfjsToy } from "./peer-tfjs.js";

export const DISPATCH = "GPUComputePassEncoder.dispatchWorkgroups";

/**
 * Wraps the WebGPU classes found on `scope` (the page's `self`, or Node's globals after dawn.node's
 * `globals` are installed) so that every call is counted. Returns the live counters: every
 * WebGPU call by `Class.method`, and the dispatches by kernel.
 */
export function instrument(scope) {
  const counts = { calls: new Map(), byKernel: new Map() };
  if (!scope.GPUComputePassEncoder) return counts;
  const wrap = (proto, name, hook) => {
    const f = proto[name];
    proto[name] = function (...a) {
      const r = f.apply(this, a);
      hook(this, a, r);
      return r;
    };
  };
  // Dispatches by kernel: a pipeline is named by its label, else by its shader module's label,
  // else by the last entry point of its WGSL (both stacks name their kernels in one of these).
  const moduleNames = new WeakMap();
  const pipelineNames = new WeakMap();
  const current = new WeakMap();
  const { GPUDevice, GPUQueue, GPUCommandEncoder, GPUComputePassEncoder, GPUBuffer } = scope;
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
  return counts;
}

export const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : 0.5 * (s[s.length / 2 - 1] + s[s.length / 2]);
};

/** The training run both sides make: the project's TrainConfig (the peer takes the same). */
const trainConfig = (model, batch) => ({ model, steps: 1_000_000, batch, lr: 5e-3, optimizer: "adam", weight_decay: 0, grad_clip: 1, seed: 0 });

/** The project's side: the same wasm API the page's worker drives. */
class Project {
  /**
   * `engine`: an `Engine` of the backend to run on; `launched`: every WebGPU training step through
   * the launch path (no recorded step replayed).
   */
  constructor(engine, { launched = false } = {}) {
    this.engine = engine;
    this.launched = launched;
  }
  startTraining(model, batch) {
    this.run?.free();
    this.run = this.engine.trainer(trainConfig(model, batch));
    if (this.launched) this.run.set_replay(false);
  }
  trainSteps(k) {
    this.run.step(k);
    return this.run.loss();
  }
  read() {
    return this.run.loss();
  }
  /** `image`: `bytes` is an image U-Net's checkpoint (its frames are read whole, as the Images tab does). */
  startSampling(bytes, n, steps, image = false) {
    this.image = image;
    this.model = image ? this.engine.load_image_checkpoint(bytes) : this.engine.load_checkpoint(bytes, null);
    this.sampler = this.engine.sampler(this.model, { n, steps, seed: 0, ...(image ? { solver: "euler" } : {}) });
  }
  /** `k` frames as the page streams them: each frame issues a step and reads the positions. */
  async sampleSteps(k) {
    let last;
    for (let i = 0; i < k; i++) {
      const frame = this.sampler.advance(1);
      last = await (this.image ? frame.read_with_full() : frame.read_xy());
    }
    return last;
  }
  /**
   * The same frames, pipelined: frame i + 1's step is issued before frame i's positions are
   * awaited, so the read-back overlaps the next step's work (what a double-buffered page does).
   */
  async sampleStepsPipelined(k) {
    let pending = this.sampler.advance(1).read_xy();
    let last;
    for (let i = 1; i <= k; i++) {
      const next = i < k ? this.sampler.advance(1).read_xy() : null;
      last = await pending;
      pending = next;
    }
    return last;
  }
  dispose() {
    this.run?.free();
    this.sampler?.free();
    this.model?.free();
  }
}

/**
 * The bench API (`window.bench` in the page, and the Dawn runner's): `Engine` is the wasm core's
 * class, `counts` what `instrument` returned, `checkpoint(file)` resolves to the bytes of a
 * shipped checkpoint, and `tf` the TF.js global (null where TF.js is absent).
 */
export function makeBench({ Engine, counts, checkpoint, tf, gpu }) {
  const engines = new Map();
  /** One engine per backend for the module's life (wgpu initialises once per wasm instance). */
  const engine = async (backend) => {
    if (!engines.has(backend)) engines.set(backend, await Engine.create(backend));
    return engines.get(backend);
  };

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

  /**
   * The peer of a comparison: `peerBackend` "cpu" | "wasm" | "webgpu" is TF.js on that backend;
   * "project-cpu" is the project itself on its CPU path (burn Flex), for WebGPU-vs-CPU rows.
   */
  async function peerOf(peerBackend, model, batch, lr, steps) {
    if (peerBackend === "project-cpu") {
      const p = new Project(await engine("cpu"));
      return { side: p, info: { backend: "project cpu" } };
    }
    if (peerBackend === "project-launched") {
      const p = new Project(await engine("webgpu"), { launched: true });
      return { side: p, info: { backend: "project webgpu, launch path" } };
    }
    await tf.setBackend(peerBackend);
    await tf.ready();
    const p = new TfjsToy({ dim: model.dim, width: model.width, depth: model.depth, batch, lr, steps });
    return { side: p, info: { backend: tf.getBackend(), threads: peerBackend === "wasm" ? tf.wasm?.getThreadsCount?.() : null, crossOriginIsolated: globalThis.crossOriginIsolated ?? null } };
  }

  return {
    ready: false,
    counts,
    async adapterInfo() {
      if (!gpu) return null;
      const a = await gpu.requestAdapter();
      if (!a) return null;
      const i = a.info || {};
      return { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description };
    },
    /** `{backend: "cpu"|"webgpu", peerBackend, model, batch, k, rounds, warmup}` */
    async train({ backend, peerBackend, model, batch, k, rounds, warmup }) {
      const project = new Project(await engine(backend));
      const cfg = trainConfig(model, batch);
      project.startTraining(model, batch);
      // The first step alone: kernel compilation (and autotuning, in builds that have it).
      const t0 = performance.now();
      await project.trainSteps(1);
      const firstMs = performance.now() - t0;
      const { side: peer, info } = await peerOf(peerBackend, model, batch, cfg.lr, cfg.steps);
      if (peer instanceof Project) {
        // The same seed and the same number of steps as the project: the two losses must agree.
        peer.startTraining(model, batch);
        await peer.trainSteps(1);
      }
      const r = await interleave((k) => project.trainSteps(k), (k) => peer.trainSteps(k), k, rounds, warmup);
      r.project_first_ms = firstMs;
      r.peer_info = info;
      r.project_loss = await project.read();
      r.peer_loss = await peer.read();
      peer.dispose();
      project.dispose();
      return r;
    },
    /** `steps` training steps of the project alone (for a profiler to watch). */
    async projectOnly({ backend, model, batch, steps }) {
      const project = new Project(await engine(backend));
      project.startTraining(model, batch);
      for (let i = 0; i < steps; i++) await project.trainSteps(1);
      project.dispose();
    },
    /**
     * Sampling frames of the shipped checkpoint `file` (the peer runs the same architecture):
     * each of the `k` frames of a round is one step and a read of the positions, as the page
     * streams them. `pipelined`: the project issues the next frame's step before awaiting a read.
     */
    async sample({ backend, peerBackend, file, model, n, steps, k, rounds, warmup, pipelined = false, image = false }) {
      const project = new Project(await engine(backend));
      const bytes = await checkpoint(file);
      // Enough steps for every round.
      const total = Math.max(steps, (warmup + rounds) * k + 2);
      project.startSampling(bytes, n, total + 1, image);
      const t0 = performance.now();
      await project.sampleSteps(1);
      const firstMs = performance.now() - t0;
      const { side: peer, info } = await peerOf(peerBackend, model, 1);
      if (peer instanceof Project) peer.startSampling(bytes, n, total, image);
      else peer.startSampling(n, total);
      const frames = async (p, k) => {
        if (p instanceof Project) return pipelined ? p.sampleStepsPipelined(k) : p.sampleSteps(k);
        let last;
        for (let i = 0; i < k; i++) last = await p.sampleSteps(1);
        return last;
      };
      const r = await interleave((k) => frames(project, k), (k) => frames(peer, k), k, rounds, warmup);
      r.peer_info = info;
      r.project_first_ms = firstMs;
      peer.dispose();
      project.dispose();
      return r;
    },
  };
}
