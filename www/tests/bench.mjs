// Page benchmark (reported, never asserted): wasm size, time from navigation to the first
// streamed frame, and sampling steps/s of FM Blind + DDPM Blind on each backend.
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

const browser = await chromium.launch(CHROMIUM);
const context = await browser.newContext();
for (const [backend, n, steps] of [["cpu", 2000, 100], ["webgpu", 256, 10]]) {
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
await browser.close();
server.close();
