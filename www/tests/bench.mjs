// Page benchmark (reported, never asserted): wasm size, time from navigation to the first
// streamed frame, sampling steps/s of FM Blind + DDPM Blind on each backend, training steps/s on
// each backend, and the memory over a soak (10,000 training steps and 100 sampling runs); the
// Images tab's U-Nets: time to the first frame, ms per sampling step per panel at 16 and 64
// images, and on WebGPU the kernel dispatches per step.
// Usage: node www/tests/bench.mjs   (after ./build.sh wasm)
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { serve, CHROMIUM } from "./serve.mjs";

const www = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { server, base } = await serve(www);

console.log(`machine: ${os.cpus().length} x ${os.cpus()[0].model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`);
for (const [name, dir] of [["WebGPU core", "pkg"], ["CPU-only core", "pkg-cpu"]]) {
  const wasm = fs.readFileSync(path.join(www, dir, "geonoise_bg.wasm"));
  console.log(`wasm, ${name} (${dir}/): ${(wasm.length / 1e6).toFixed(2)} MB raw, ${(zlib.gzipSync(wasm, { level: 9 }).length / 1e6).toFixed(2)} MB gzip`);
}

// `node bench.mjs [sample] [train] [images] [soak] [soak-gpu]` runs only those parts (default: all).
const parts = process.argv.slice(2).length ? process.argv.slice(2) : ["sample", "train", "images", "soak", "soak-gpu"];
const browser = await chromium.launch(CHROMIUM);
const context = await browser.newContext();
for (const [backend, n, steps] of parts.includes("sample") ? [["cpu", 2000, 100], ["webgpu", 256, 10]] : []) {
  for (const cached of [false, true]) {
    const page = await context.newPage();
    await page.goto(`${base}?backend=${backend}&d=128&n=${n}&steps=${steps}&speed=10`);
    await page.waitForFunction(() => ["fm-blind", "ddpm-blind"].every((id) => window.geonoise.panels.get(id)?.done), null, { timeout: 600000, polling: 200 });
    const r = await page.evaluate(() => ({ backend: window.geonoise.backend, first: window.geonoise.firstFrameMs, runs: [...window.geonoise.panels.values()].map((p) => ({ id: p.panel.id, ms: p.doneMs - p.startMs, steps: p.frames.at(-1).step })) }));
    const rate = r.runs.map((x) => `${x.id} ${((1000 * x.steps) / x.ms).toFixed(1)} steps/s`).join(", ");
    console.log(`${r.backend} D=128 n=${n}${cached ? " (cached)" : ""}: first frame ${r.first.toFixed(0)} ms after navigation; ${rate} (both panels share the worker)`);
    await page.close();
  }
}
// Training in the page: steps/s of both models (compute time in the worker).
for (const [backend, dim, steps] of parts.includes("train") ? [["cpu", 128, 300], ["webgpu", 128, 20]] : []) {
  const page = await trainPage(`backend=${backend}&tdim=${dim}&tsteps=${steps}&every=${Math.max(10, Math.floor(steps / 2))}`);
  await page.click("#train-start");
  await waitTrained(page);
  const r = await trainRates(page);
  console.log(`train ${r.backend} D=${dim} width 128 depth 3 batch 256, ${steps} steps: ${r.text}`);
  await page.close();
}

// The Images tab: FM Blind and DDPM Blind (both in one worker, so their steps take turns) with
// the tab's default speed (3 steps a frame, each frame read back). The first run is cold (the
// checkpoints fetched, kernels compiled); Reset then runs it again warm, with WebGPU's
// dispatches counted in the worker.
const IMAGE_RUNS = [["cpu", 16, 51], ["cpu", 64, 21], ["webgpu", 16, 6], ["webgpu", 64, 3]];
for (const [backend, n, steps] of parts.includes("images") ? IMAGE_RUNS : []) {
  const page = await context.newPage();
  const workers = [];
  page.on("worker", (w) => workers.push(w));
  await page.goto(`${base}?mode=images&backend=${backend}&images=${n}&isteps=${steps}&speed=3`);
  const ids = ["img-fm-blind", "img-ddpm-blind"];
  const done = () => page.waitForFunction((ids) => ids.every((id) => window.geonoise.panels.get(id)?.done), ids, { timeout: 1800000, polling: 100 });
  const timing = () =>
    page.evaluate((ids) => {
      const ps = ids.map((id) => window.geonoise.panels.get(id));
      return { backend: window.geonoise.backend, first: window.geonoise.firstFrameMs, wall: Math.max(...ps.map((p) => p.doneMs)) - Math.min(...ps.map((p) => p.startMs)), steps: ps[0].frames.at(-1).step };
    }, ids);
  await done();
  const cold = await timing();
  await workers[0].evaluate(() => {
    self.dispatches = 0;
    if (!self.GPUComputePassEncoder) return;
    const p = self.GPUComputePassEncoder.prototype;
    const original = p.dispatchWorkgroups;
    p.dispatchWorkgroups = function (...a) {
      self.dispatches++;
      return original.apply(this, a);
    };
  });
  await page.evaluate(() => {
    window.geonoise.firstFrameMs = undefined;
    for (const p of window.geonoise.panels.values()) p.doneMs = p.startMs = undefined;
  });
  await page.click("#reset");
  await done();
  const warm = await timing();
  const dispatches = await workers[0].evaluate(() => self.dispatches);
  const perStep = (t) => (t.wall / t.steps / 2).toFixed(1);
  const gpu = backend === "webgpu" ? `, ${(dispatches / (2 * warm.steps)).toFixed(0)} dispatches per step per panel` : "";
  console.log(
    `images ${warm.backend} ${n} images x ${steps} steps, two panels: first frame ${cold.first.toFixed(0)} ms after navigation; ` +
      `cold run ${(cold.wall / 1000).toFixed(1)} s (${perStep(cold)} ms per step per panel), warm run ${(warm.wall / 1000).toFixed(1)} s (${perStep(warm)} ms per step per panel${gpu})`,
  );
  await page.close();
}

// Soak: one page session trains both models `steps` steps each, then samples them `runs` times
// (the panel's Reset button), reading the wasm memory and the GPU allocator's figures along the
// way. Growth that levels off is the allocator reaching its working set; growth that keeps going
// is a leak. The CPU soak is the full size; on SwiftShader a step costs ~100x more, so
// the GPU soak is shorter.
const SOAKS = { soak: ["cpu", "tdim=8&tsteps=10000&every=1000&n=1000&steps=100&speed=10", 10000, 100], "soak-gpu": ["webgpu", "tdim=8&width=32&depth=1&batch=64&tsteps=300&every=100&n=200&steps=20&speed=10", 300, 20] };
for (const [part, [backend, query, steps, runs]] of Object.entries(SOAKS)) {
  if (!parts.includes(part)) continue;
  const page = await trainPage(`backend=${backend}&${query}`);
  const mem = async (label) => {
    const m = await page.evaluate(() => window.geonoise.memory());
    const gpu = m.device ? `, GPU ${(m.device.bytes_in_use / 2 ** 20).toFixed(2)} MiB in use / ${(m.device.bytes_reserved / 2 ** 20).toFixed(1)} MiB reserved (${m.device.allocations} allocations)` : "";
    console.log(`  ${label}: wasm ${(m.bytes / 2 ** 20).toFixed(1)} MiB${gpu}`);
  };
  console.log(`${part} (${backend}, ${query}):`);
  await mem("before training");
  await page.click("#train-start");
  for (let next = steps / 10; ; ) {
    const step = await page.evaluate(() => window.geonoise.panels.get("train-a").train?.step || 0);
    if (step >= next) {
      await mem(`step ${step}`);
      next += steps / 10;
    } else await page.waitForTimeout(200);
    if (step >= steps) break;
  }
  await waitTrained(page);
  const r = await trainRates(page);
  console.log(`  trained: ${r.text}`);
  const t0 = Date.now();
  for (let i = 1; i <= runs; i++) {
    await page.waitForFunction(() => [...window.geonoise.panels.values()].every((p) => p.loaded && p.done), null, { timeout: 600000, polling: 100 });
    if (i === 1 || i % (runs / 5) === 0) await mem(`sampling run ${i} done`);
    if (i < runs) await page.click("#reset");
  }
  const errors = await page.evaluate(() => window.geonoise.errors);
  console.log(`  ${runs} sampling runs of both panels in ${((Date.now() - t0) / 1000).toFixed(0)} s; errors: ${errors.length ? errors.join("; ") : "none"}`);
  await page.close();
}

async function trainPage(query) {
  const page = await context.newPage();
  await page.goto(`${base}?mode=train&${query}`);
  await page.waitForFunction(() => window.geonoise.backend !== null && window.geonoise.panels.size === 2, null, { timeout: 120000 });
  return page;
}

async function waitTrained(page) {
  await page.waitForFunction(() => [...window.geonoise.panels.values()].every((p) => p.train?.finished), null, { timeout: 3600000, polling: 500 });
}

async function trainRates(page) {
  const r = await page.evaluate(() => ({ backend: window.geonoise.backend, runs: [...window.geonoise.panels.values()].map((p) => ({ title: p.panel.title, steps: p.train.step, ms: p.train.computeMs, loss: p.train.loss })) }));
  return { backend: r.backend, text: r.runs.map((x) => `${x.title} ${((1000 * x.steps) / x.ms).toFixed(1)} steps/s (final loss ${x.loss.toPrecision(3)})`).join(", ") };
}
await browser.close();
server.close();
