// How "auto" picks the backend: by measuring the job at hand on each backend the browser has,
// not by the kind of adapter. The worker times a few sampling frames (the view) or training steps
// (the Train tab) on WebGPU and on the CPU, then keeps the faster; a software WebGPU adapter
// (SwiftShader, llvmpipe, lavapipe) is not measured: there the CPU path was measured faster by
// orders of magnitude (README, performance).

/** Whether a WebGPU adapter is a software one. */
export function isSoftware(adapter) {
  const info = adapter.info || {};
  return Boolean(adapter.isFallbackAdapter || info.architecture === "swiftshader" || /swiftshader|llvmpipe|lavapipe/i.test(`${info.vendor} ${info.description}`));
}

/** What a probe measures: "a sampling frame, D=32, 1000 samples" or "a training step, D=32, batch 256". */
export function jobName(job) {
  return job.kind === "train" ? `a training step, D=${job.dim}, batch ${job.batch}` : `a sampling frame, D=${job.dim}, ${job.n} samples`;
}

/**
 * The choice from measured times (ms per unit of `job` on each backend; null where a backend
 * could not run): `{backend, reason}`, reason saying by how much, e.g.
 * "WebGPU: 3.1x the CPU here (a sampling frame, D=32, 1000 samples: 4.2 vs 13.0 ms)".
 */
export function decideBackend(times, job) {
  const { webgpu, cpu } = times;
  const ok = (v) => Number.isFinite(v) && v > 0;
  if (!ok(webgpu)) return { backend: "cpu", reason: "WebGPU could not run the probe; using the CPU" };
  if (!ok(cpu)) return { backend: "webgpu", reason: "the CPU could not run the probe; using WebGPU" };
  const what = `${jobName(job)}: ${webgpu.toFixed(1)} vs ${cpu.toFixed(1)} ms`;
  if (webgpu <= cpu) return { backend: "webgpu", reason: `WebGPU: ${(cpu / webgpu).toFixed(1)}x the CPU here (${what})` };
  return { backend: "cpu", reason: `CPU: ${(webgpu / cpu).toFixed(1)}x WebGPU here (${what}, measured)` };
}
