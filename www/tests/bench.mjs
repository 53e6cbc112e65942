// Page benchmark (reported, never asserted): wasm size, time from navigation to the first
// streamed frame, sampling steps/s of FM Blind + DDPM Blind on each backend, training steps/s on
// each backend, and the wasm memory over a 5,000-step training run.
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

const wasm = fs.readFileSync(path.join(www, "pkg/geonoise_bg.wasm"));
console.log(`machine: ${os.cpus().length} x ${os.cpus()[0].model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`);
console.log(`wasm: ${(wasm.length / 1e6).toFixed(2)} MB raw, ${(zlib.gzipSync(wasm, { level: 9 }).length / 1e6).toFixed(2)} MB gzip`);

// `node bench.mjs [sample] [train] [soak]` runs only those parts (default: all).
const parts = process.argv.slice(2).length ? process.argv.slice(2) : ["sample", "train", "soak"];
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
// Training in the page: steps/s of both models (compute time in the worker), and for the long
// run the wasm memory after the first chunk and at the end (growth would be a leak).
const runs = [["cpu", 128, 300, false], ["webgpu", 128, 20, false], ["cpu", 8, 5000, true]].filter(([, , , soak]) => parts.includes(soak ? "soak" : "train"));
for (const [backend, dim, steps, soak] of runs) {
  const page = await context.newPage();
  await page.goto(`${base}?mode=train&backend=${backend}&tdim=${dim}&tsteps=${steps}&every=${Math.max(10, Math.floor(steps / 2))}`);
  await page.waitForFunction(() => window.geonoise.backend !== null && window.geonoise.panels.size === 2, null, { timeout: 120000 });
  await page.click("#train-start");
  // The soak samples the wasm memory every 500 steps of the first model: growth that levels off
  // is the allocator reaching its working set; growth that keeps going is a leak.
  const series = [];
  if (soak) {
    for (let next = 0; next <= steps; ) {
      const step = await page.evaluate(() => window.geonoise.panels.get("train-a").train?.step || 0);
      if (step >= Math.max(1, next)) {
        series.push([step, await page.evaluate(() => window.geonoise.memory())]);
        next += 500;
      } else await page.waitForTimeout(200);
      if (step >= steps) break;
    }
  }
  await page.waitForFunction(() => [...window.geonoise.panels.values()].every((p) => p.train?.finished), null, { timeout: 1800000, polling: 500 });
  const r = await page.evaluate(() => ({ backend: window.geonoise.backend, runs: [...window.geonoise.panels.values()].map((p) => ({ title: p.panel.title, steps: p.train.step, ms: p.train.computeMs, wall: p.train.wallMs, loss: p.train.loss })) }));
  const rate = r.runs.map((x) => `${x.title} ${((1000 * x.steps) / x.ms).toFixed(1)} steps/s (final loss ${x.loss.toPrecision(3)})`).join(", ");
  console.log(`train ${r.backend} D=${dim} width 128 depth 3 batch 256, ${steps} steps: ${rate}`);
  if (soak) {
    await page.waitForTimeout(2000);
    series.push(["end", await page.evaluate(() => window.geonoise.memory())]);
    console.log(`train soak, wasm memory (MiB) at step: ${series.map(([k, b]) => `${k}: ${(b / 2 ** 20).toFixed(1)}`).join(", ")}`);
  }
  await page.close();
}
await browser.close();
server.close();
