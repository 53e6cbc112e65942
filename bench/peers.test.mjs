// The peer benchmark's own checks (run by ./build.sh test, not timed): the TF.js peer trains the
// same problem as the project (its loss falls like the project's), and the page's WebGPU call
// counting sees both stacks' dispatches. A peer that computed a different loss, or a counter that
// missed a stack, would make bench/run.mjs's ratios meaningless.
// Needs: www/pkg (./build.sh wasm) and bench/node_modules (npm ci in bench/).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { serve, CHROMIUM } from "../www/tests/serve.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SMALL = { model: "fm", blind: false, dim: 8, width: 32, depth: 1, projection_seed: 0 };
let server, base, browser, page;

before(async () => {
  ({ server, base } = await serve(root));
  browser = await chromium.launch(CHROMIUM);
  page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}bench/index.html`);
  await page.waitForFunction(() => window.bench?.ready, null, { timeout: 60000 });
  assert.deepEqual(errors, []);
});

after(async () => {
  await browser?.close();
  server?.close();
});

test("the TF.js peer's loss falls like the project's on the same toy problem (CPU)", async () => {
  // 150 steps each of Flow Matching at D = 8, lr 5e-3: from the untrained loss (2, the variance of
  // eps - x per coordinate, as the output layer starts at zero) to well under it.
  const r = await page.evaluate((model) => window.bench.train({ backend: "cpu", peerBackend: "wasm", model, batch: 256, k: 50, rounds: 2, warmup: 1 }), SMALL);
  for (const side of ["project_loss", "peer_loss"]) {
    assert.ok(Number.isFinite(r[side]) && r[side] < 1.5, `${side} = ${r[side]}`);
  }
  const ratio = r.peer_loss / r.project_loss;
  assert.ok(ratio > 0.6 && ratio < 1.6, `losses after 150 steps: project ${r.project_loss}, TF.js ${r.peer_loss}`);
  assert.ok(r.project.ms > 0 && r.peer.ms > 0);
});

test("WebGPU dispatches and submissions are counted for both stacks", async () => {
  const r = await page.evaluate((model) => window.bench.train({ backend: "webgpu", peerBackend: "webgpu", model, batch: 64, k: 1, rounds: 1, warmup: 1 }), SMALL);
  // The project's step is the fused step's three kernels (and a copy of the weights after a loss
  // read); TF.js's is a few hundred.
  assert.ok(["rows_kernel", "grads_kernel", "update_kernel"].every((k) => Object.keys(r.project.kernels).some((name) => name.startsWith(k))), JSON.stringify(r.project.kernels));
  assert.ok(r.peer.dispatch > 10, `TF.js: ${r.peer.dispatch} dispatches`);
  for (const side of ["project", "peer"]) {
    assert.ok(r[side].dispatch >= 3, `${side}: ${r[side].dispatch} dispatches`);
    assert.ok(r[side].submit >= 1, `${side}: ${r[side].submit} submits`);
    const kernels = Object.values(r[side].kernels).reduce((a, b) => a + b, 0);
    assert.equal(kernels, r[side].dispatch, `${side}: every dispatch is attributed to a kernel`);
  }
  assert.ok(Number.isFinite(r.project_loss) && Number.isFinite(r.peer_loss));
});
