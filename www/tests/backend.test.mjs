// How "auto" chooses a backend (www/backend.js, the worker's rule) and which core each choice
// downloads: the rule alone in Node, then each measured outcome forced in the page.
//
// Needs: www/pkg, www/pkg-cpu and www/pretrained built (./build.sh wasm).
import { test } from "node:test";
import assert from "node:assert/strict";
import { decideBackend, isSoftware, jobName } from "../backend.js";
import { browserSession } from "./browser.mjs";

const SAMPLE = { kind: "sample", dim: 32, n: 1000 };

test("the faster backend wins, and the reason says by how much on which job", () => {
  assert.deepEqual(decideBackend({ webgpu: 4, cpu: 12 }, SAMPLE), { backend: "webgpu", reason: "WebGPU: 3.0x the CPU here (a sampling frame, D=32, 1000 samples: 4.0 vs 12.0 ms)" });
  const slow = decideBackend({ webgpu: 30, cpu: 10 }, { kind: "train", dim: 128, batch: 256 });
  assert.equal(slow.backend, "cpu");
  assert.equal(slow.reason, "CPU: 3.0x WebGPU here (a training step, D=128, batch 256: 30.0 vs 10.0 ms, measured)");
  // A backend that could not run the probe loses; ties go to WebGPU.
  assert.equal(decideBackend({ webgpu: null, cpu: 5 }, SAMPLE).backend, "cpu");
  assert.equal(decideBackend({ webgpu: NaN, cpu: 5 }, SAMPLE).backend, "cpu");
  assert.equal(decideBackend({ webgpu: 5, cpu: null }, SAMPLE).backend, "webgpu");
  assert.equal(decideBackend({ webgpu: 5, cpu: 5 }, SAMPLE).backend, "webgpu");
  assert.equal(jobName({ kind: "train", dim: 8, batch: 64 }), "a training step, D=8, batch 64");
});

test("software adapters are recognised by flag, architecture or name", () => {
  assert.equal(isSoftware({ isFallbackAdapter: true, info: {} }), true);
  assert.equal(isSoftware({ info: { architecture: "swiftshader" } }), true);
  assert.equal(isSoftware({ info: { vendor: "mesa", description: "llvmpipe (LLVM 15)" } }), true);
  assert.equal(isSoftware({ info: { vendor: "nvidia", architecture: "", description: "NVIDIA: 580.159.04" } }), false);
});

const { open, waitDone } = browserSession();
/** Opens the page with `probeTimes` replacing the worker's measurement; returns the page and the wasm files it fetched. */
async function openWith(query, probeTimes) {
  const fetched = [];
  const { page, problems } = await open(query, async (page) => {
    page.on("request", (r) => /\.wasm$/.test(r.url()) && fetched.push(new URL(r.url()).pathname));
    if (probeTimes) await page.addInitScript((t) => (window.geonoiseTest = { probeTimes: t }), probeTimes);
  });
  await page.waitForFunction(() => window.geonoise.backend !== null && window.geonoise.panels.size > 0, null, { timeout: 120000, polling: 100 });
  return { page, problems, fetched };
}

for (const [times, backend, reason] of [
  [{ webgpu: 2, cpu: 10 }, "webgpu", /^WebGPU: 5\.0x the CPU here \(a sampling frame, D=8, 64 samples: 2\.0 vs 10\.0 ms\)$/],
  [{ webgpu: 10, cpu: 2 }, "cpu", /^CPU: 5\.0x WebGPU here \(a sampling frame, D=8, 64 samples: 10\.0 vs 2\.0 ms, measured\)$/],
]) {
  test(`auto, measured ${JSON.stringify(times)}: the page runs on ${backend} and the badge says why`, async () => {
    const { page, problems, fetched } = await openWith("?backend=auto&d=8&n=64&steps=4&speed=10", times);
    assert.equal(await page.evaluate(() => window.geonoise.backend), backend);
    assert.equal(await page.locator("#backend").textContent(), backend === "webgpu" ? "WebGPU" : "CPU");
    assert.match(await page.locator("#backend-reason").textContent(), reason);
    assert.match(await page.locator("#backend").getAttribute("title"), reason);
    // Measuring needs both backends: the WebGPU core (which has the CPU path too) alone.
    assert.deepEqual(fetched, ["/pkg/geonoise_bg.wasm"]);
    await waitDone(page, ["fm-blind", "ddpm-blind"], 180000);
    assert.deepEqual(problems, []);
    await page.close();
  });
}

test("the CPU chosen, or auto on a software adapter: only the CPU-only core is downloaded", async () => {
  for (const backend of ["cpu", "auto"]) {
    const { page, problems, fetched } = await openWith(`?backend=${backend}&d=8&n=64&steps=4&speed=10`);
    assert.equal(await page.evaluate(() => window.geonoise.backend), "cpu");
    assert.deepEqual(fetched, ["/pkg-cpu/geonoise_bg.wasm"], backend);
    await waitDone(page, ["fm-blind", "ddpm-blind"], 120000);
    assert.deepEqual(problems, []);
    await page.close();
  }
});
