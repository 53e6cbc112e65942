// The Dawn runner's own check (run by ./build.sh test; no GPU needed): bench/dawn.mjs on Dawn's
// null backend, which runs every WebGPU call and computes nothing. It proves that the runner
// still loads www/pkg and the TF.js webgpu peer in Node, that every row runs, and that both
// stacks' dispatches and submits are counted — so the real-GPU table (the same command without
// --null on a GPU machine) cannot rot between the times a GPU is at hand. Its times are not
// GPU times and are not checked.
// Needs: www/pkg (./build.sh wasm) and bench/node_modules (npm ci in bench/).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

function runner(args) {
  const json = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "dawn-")), "results.json");
  const r = spawnSync(process.execPath, [path.join(here, "dawn.mjs"), ...args, "--json", json], { encoding: "utf8", timeout: 600_000 });
  return { ...r, results: fs.existsSync(json) ? JSON.parse(fs.readFileSync(json, "utf8")) : null };
}

test("the Dawn runner runs every row on Dawn's null backend and counts both stacks' WebGPU work", () => {
  const r = runner(["--null", "--quick"]);
  assert.equal(r.status, 0, `dawn.mjs failed:\n${r.stdout}\n${r.stderr}`);
  const { results } = r;
  assert.equal(results.adapter.backend, "null");
  assert.ok(results.wasm.gzip_bytes > 0);
  const what = results.rows.map((x) => x.what);
  for (const w of ["toy training step, WebGPU vs TF.js webgpu", "toy training step, WebGPU vs the CPU path", "toy training step, replayed vs the launch path (WebGPU both)", "sampling frame, 2000 trajectories, WebGPU vs TF.js webgpu", "sampling frame, 2000 trajectories, pipelined, WebGPU vs TF.js webgpu", "U-Net sampling step, 16 images, WebGPU vs the CPU path"]) {
    assert.ok(what.includes(w), `row '${w}' missing from ${JSON.stringify(what)}`);
  }
  assert.ok(what.some((w) => w.startsWith("training step, D=")), "the large-model row is missing");
  for (const row of results.rows) {
    assert.ok(row.project.ms > 0 && row.peer.ms > 0, `${row.what}: times`);
    assert.ok(row.project.dispatch > 0, `${row.what}: ${row.project.dispatch} project dispatches`);
    assert.ok(row.project.submit >= 1, `${row.what}: ${row.project.submit} project submits`);
    const kernels = Object.values(row.project.kernels).reduce((a, b) => a + b, 0);
    assert.equal(kernels, row.project.dispatch, `${row.what}: every dispatch is attributed to a kernel`);
    if (row.peerName.startsWith("TF.js")) {
      assert.ok(row.peer.dispatch > 10 && row.peer.submit >= 1, `${row.what}: TF.js ${row.peer.dispatch} dispatches, ${row.peer.submit} submits`);
    } else if (row.peerName.includes("launched")) {
      // The project's own WebGPU step through the launch path, beside the replayed one.
      assert.ok(row.peer.dispatch > 0, `${row.what}: the launched side dispatched nothing`);
    } else {
      // The CPU path makes no WebGPU calls at all.
      assert.equal(row.peer.dispatch, 0, `${row.what}: the CPU path dispatched`);
    }
  }
  assert.match(r.stdout, /\| toy training step, WebGPU vs TF\.js webgpu \|/);
  // Dispatch counts are deterministic (times are not): they are the figures this test holds.
  // The toy's training step (D = 128, width 128, depth 3) runs as the fused step's three kernels
  // (772 dispatches a step with burn's autodiff and Adam); the bound is 40.
  const row = (w) => results.rows.find((x) => x.what === w);
  const train = row("toy training step, WebGPU vs TF.js webgpu");
  for (const k of ["rows_kernel", "grads_kernel", "update_kernel"]) {
    const n = Object.entries(train.project.kernels).filter(([name]) => name.startsWith(k)).reduce((a, [, c]) => a + c, 0);
    assert.equal(n, 1, `${k} per step: ${JSON.stringify(train.project.kernels)}`);
  }
  assert.ok(train.project.dispatch <= 40, `toy training step: ${train.project.dispatch} dispatches: ${JSON.stringify(train.project.kernels)}`);
  // From the second step on the training step is recorded once and replayed: its three kernels
  // are dispatched again from the bind groups the recording made, so a step makes none (a loss
  // read makes one, for the copy of the weights it keeps); the launch path makes one a kernel.
  const replay = row("toy training step, replayed vs the launch path (WebGPU both)");
  const binds = (side) => side.calls["GPUDevice.createBindGroup"] ?? 0;
  for (const side of [replay.project, replay.peer]) {
    for (const k of ["rows_kernel", "grads_kernel", "update_kernel"]) {
      assert.equal(Object.entries(side.kernels).filter(([name]) => name.startsWith(k)).reduce((a, [, c]) => a + c, 0), 1, `${k} per step: ${JSON.stringify(side.kernels)}`);
    }
  }
  assert.ok(binds(replay.project) <= 1, `replayed step: ${binds(replay.project)} bind groups a step: ${JSON.stringify(replay.project.calls)}`);
  assert.ok(binds(replay.peer) >= 3, `launched step: ${binds(replay.peer)} bind groups a step: ${JSON.stringify(replay.peer.calls)}`);
  // A sampling frame: the whole MLP in one kernel and the solver's few element-wise ops (92
  // before); the bound is 10.
  const frame = row("sampling frame, 2000 trajectories, WebGPU vs TF.js webgpu");
  assert.equal(Object.entries(frame.project.kernels).filter(([name]) => name.startsWith("mlp_kernel")).length, 1, JSON.stringify(frame.project.kernels));
  assert.ok(frame.project.dispatch <= 10, `sampling frame: ${frame.project.dispatch} dispatches: ${JSON.stringify(frame.project.kernels)}`);
  // The image U-Net's sampling step: its 11 group norms (each with its SiLU, and the time term
  // where a block adds one) are one kernel each (282 dispatches a step before); the bound is 100.
  const unet = row("U-Net sampling step, 16 images, WebGPU vs the CPU path");
  const norms = Object.entries(unet.project.kernels).filter(([name]) => name.startsWith("norm_kernel")).reduce((a, [, c]) => a + c, 0);
  assert.equal(norms, 11, JSON.stringify(unet.project.kernels));
  // Its time path (the embedding's two linear layers and one a ResBlock) is one small kernel a
  // layer, and no general matmul is left in the step.
  const linears = Object.entries(unet.project.kernels).filter(([name]) => name.startsWith("linear_kernel")).reduce((a, [, c]) => a + c, 0);
  assert.equal(linears, 7, JSON.stringify(unet.project.kernels));
  assert.ok(!Object.keys(unet.project.kernels).some((name) => name.startsWith("matmul_entry")), JSON.stringify(unet.project.kernels));
  assert.ok(unet.project.dispatch <= 100, `U-Net sampling step: ${unet.project.dispatch} dispatches: ${JSON.stringify(unet.project.kernels)}`);
  assert.ok(results.floor.readback_ms > 0 && results.floor.work_done_ms > 0, JSON.stringify(results.floor));
});

test("a row that cannot run on the adapter is reported as not runnable, with the reason, and the run ends normally", () => {
  // The large model (D = 512, width 1024, batch 4096) exhausts the null backend's memory: burn's
  // device is poisoned from inside Dawn's error event, which used to kill the runner.
  const r = runner(["--null", "large"]);
  assert.equal(r.status, 0, `dawn.mjs failed:\n${r.stdout}\n${r.stderr}`);
  const [large] = r.results.rows;
  assert.match(large.what, /^training step, D=512, width 1024/);
  if (large.not_runnable) {
    assert.match(large.not_runnable, /\S/);
    assert.match(r.stdout, /not runnable here: /);
  } else {
    assert.ok(large.project.ms > 0, JSON.stringify(large));
  }
});

test("the Dawn runner refuses an unknown row and a missing wasm build with a clear message", () => {
  const bad = runner(["--null", "nonsense"]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown row 'nonsense'/);
  const missing = runner(["--null", "--pkg", path.join(os.tmpdir(), "no-such-pkg")]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /geonoise\.js is missing/);
});
