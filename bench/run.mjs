// geonoise against its peers, side by side: one command, one table of ratios.
//
//   node bench/run.mjs [browser] [native] [page] [--quick]
//
// browser  the project's wasm core and TF.js in one headless Chromium page (bench/index.html),
//          A/B interleaved: training steps of the real toy model (the pretrained architecture:
//          width 128, depth 3; D = 128, batch 512) and sampling steps (2,000 trajectories), on
//          the CPU (burn Flex in wasm vs TF.js wasm at 1 thread and at all cores, and TF.js cpu)
//          and on WebGPU (burn wgpu vs TF.js webgpu, same adapter), with WebGPU dispatches and
//          queue submissions counted per step
// native   `geonoise bench-step` vs bench/torch_step.py (PyTorch CPU) at 1 thread and at all
//          cores, processes alternating; PyTorch comes from the venv at $GEONOISE_TORCH_VENV
//          (default ~/.cache/geonoise-torch; `bench/run.mjs --install-torch` makes it, a few GB)
// webgpu-profile  where a WebGPU training step's time goes: batch 8 vs 512, depth 3 vs 0
// page     the demo page itself: time from navigation to the first streamed frame (cached files)
//          and the time to finish 2,000 trajectories x 100 steps at D = 128 in both panels
//
// Needs ./build.sh wasm (www/pkg) and ./build.sh cli; installs bench/node_modules (TF.js) itself.
// Prints the machine, every figure, and a closing table; writes bench/results.json.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { execFileSync, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { serve, CHROMIUM } from "../www/tests/serve.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const args = process.argv.slice(2);
const quick = args.includes("--quick");
const parts = args.filter((a) => !a.startsWith("--"));
const want = (p) => parts.length === 0 || parts.includes(p);
const cores = os.cpus().length;
const venv = process.env.GEONOISE_TORCH_VENV || path.join(os.homedir(), ".cache/geonoise-torch");
const bin = process.env.GEONOISE_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(os.homedir(), ".cache/geonoise-target"), "release/geonoise");

if (args.includes("--install-torch")) {
  console.log(`installing PyTorch (CPU use; the wheels pull CUDA runtimes, a few GB) into ${venv}`);
  execFileSync("python3", ["-m", "venv", venv], { stdio: "inherit" });
  execFileSync(path.join(venv, "bin/pip"), ["install", "-q", "torch", "numpy"], { stdio: "inherit" });
  process.exit(0);
}

// The toy model as the pretrained checkpoints have it (pretrained/manifest.json's recipe).
const MODEL = { model: "fm", blind: false, dim: 128, width: 128, depth: 3, projection_seed: 0 };
const BATCH = 512;
const results = { date: new Date().toISOString(), machine: machine(), rows: [] };
const row = (r) => {
  results.rows.push(r);
  return r;
};

function machine() {
  const cpu = os.cpus()[0]?.model || "unknown CPU";
  return { cpu, cores, memory_gib: Math.round(os.totalmem() / 2 ** 30), os: `${os.type()} ${os.release()}`, node: process.version };
}

const wantBrowser = (backend) => want("browser") || want(`browser-${backend}`);
// TF.js and playwright-core come from bench/package-lock.json.
if (!fs.existsSync(path.join(here, "node_modules/@tensorflow/tfjs")) || !fs.existsSync(path.join(here, "node_modules/playwright-core"))) {
  execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: here, stdio: "inherit" });
}
const { chromium } = await import("playwright-core");
if (wantBrowser("cpu") || wantBrowser("webgpu") || want("webgpu-profile") || want("page")) {
  if (!fs.existsSync(path.join(root, "www/pkg/geonoise_bg.wasm"))) throw new Error("www/pkg is missing: run ./build.sh wasm first");
  const wasm = fs.readFileSync(path.join(root, "www/pkg/geonoise_bg.wasm"));
  results.wasm = { raw_bytes: wasm.length, gzip_bytes: zlib.gzipSync(wasm, { level: 9 }).length };
}

if (wantBrowser("cpu") || wantBrowser("webgpu") || want("webgpu-profile")) await browserPart();
if (want("page")) await pagePart();
if (want("native")) nativePart();
report();

async function browserPart() {
  // Cross-origin isolation lets TF.js's wasm backend use threads; one page per thread setting.
  const isolated = { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" };
  const { server, base } = await serve(root, new Map(), isolated);
  const browser = await chromium.launch(CHROMIUM);
  results.chromium = browser.version();
  const k = quick ? 2 : 5;
  const rounds = quick ? 3 : 9;
  const open = async (threads) => {
    const page = await browser.newPage();
    page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
    await page.goto(`${base}bench/index.html`);
    await page.waitForFunction(() => window.bench?.ready, null, { timeout: 60000 });
    if (threads) await page.evaluate((n) => tf.wasm.setThreadsCount(n), threads);
    return page;
  };
  const train = (page, backend, peerBackend, opts = {}) =>
    page.evaluate((o) => window.bench.train(o), { backend, peerBackend, model: MODEL, batch: BATCH, k, rounds, warmup: 2, ...opts });
  const sample = async (page, backend, peerBackend, opts = {}) =>
    page.evaluate((o) => window.bench.sample(o), { backend, peerBackend, file: "fm-cond-d128.safetensors", model: MODEL, n: 2000, steps: 100, k, rounds, warmup: 2, ...opts });

  {
    const page = await open(0);
    results.adapter = await page.evaluate(() => window.bench.adapterInfo());
    if (wantBrowser("cpu")) {
      const r = await train(page, "cpu", "cpu", { k: 1, rounds: quick ? 2 : 3, warmup: 1 });
      row({ what: "browser training step, CPU", projectName: "burn Flex (wasm, 1 thread)", peerName: "TF.js cpu (plain JS)", ...r });
    }
    await page.close();
  }
  // TF.js wasm at 1 thread, then at one thread per core (its thread count is set before its
  // backend starts, so one page each).
  for (const threads of wantBrowser("cpu") ? [...new Set([1, cores])] : []) {
    const page = await open(threads);
    const peerName = threads > 1 ? `TF.js wasm, ${threads} threads (cross-origin isolated)` : "TF.js wasm, 1 thread";
    for (const [what, fn] of [["training", train], ["sampling", sample]]) {
      const r = await fn(page, "cpu", "wasm");
      row({ what: `browser ${what} step, CPU`, projectName: "burn Flex (wasm, 1 thread)", peerName, ...r });
    }
    await page.close();
  }
  if (wantBrowser("webgpu")) {
    const page = await open(0);
    const opts = { k: quick ? 1 : 2, rounds: quick ? 2 : 5, warmup: 1 };
    for (const [what, fn] of [["training", train], ["sampling", sample]]) {
      const r = await fn(page, "webgpu", "webgpu", opts);
      row({ what: `browser ${what} step, WebGPU`, projectName: "burn wgpu (wasm)", peerName: "TF.js webgpu", ...r });
    }
    await page.close();
  }
  if (want("webgpu-profile")) {
    // Where a WebGPU step's time goes: the same training step at batch 8 (the kernels' work is
    // negligible, so the time is per-dispatch cost) and at batch 512 (the real step), and
    // without the residual blocks (depth 0: three matmuls forward instead of twelve).
    const page = await open(0);
    for (const [depth, batch] of [[3, 8], [3, 512], [0, 512]]) {
      const r = await train(page, "webgpu", "webgpu", { model: { ...MODEL, depth }, batch, k: 1, rounds: quick ? 2 : 3, warmup: 1 });
      row({ what: `browser training step, WebGPU, depth ${depth}, batch ${batch}`, projectName: "burn wgpu (wasm)", peerName: "TF.js webgpu", ...r });
    }
    // Where the host time goes: Chromium's sampling profiler over project-only training steps
    // (batch 8), self time by function. Names need a wasm that still has its name section (the
    // wasm-bindgen output before wasm-opt); after ./build.sh wasm they are wasm-function[N].
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
    const projectOnly = () => page.evaluate((model) => window.bench.projectOnly({ backend: "webgpu", model, batch: 8, steps: 2 }), MODEL);
    await projectOnly(); // warm-up
    await cdp.send("Profiler.start");
    const t0 = Date.now();
    await projectOnly();
    const wall = Date.now() - t0;
    const { profile } = await cdp.send("Profiler.stop");
    const self = new Map();
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const dt = profile.timeDeltas;
    profile.samples.forEach((id, i) => {
      const f = byId.get(id).callFrame;
      const name = f.functionName || `(${f.url.split("/").pop() || "program"})`;
      self.set(name, (self.get(name) || 0) + (dt[i] || 0) / 1000);
    });
    const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 25);
    results.webgpu_host_profile = { wall_ms: wall, steps: 2, top: top.map(([name, ms]) => ({ name, ms })) };
    console.log(`host profile, 2 burn WebGPU training steps at batch 8 (${wall} ms): self time by function`);
    for (const [name, ms] of top) console.log(`  ${ms.toFixed(0).padStart(6)} ms  ${name.slice(0, 150)}`);
    await page.close();
  }
  await browser.close();
  server.close();
}

async function pagePart() {
  // The demo page (www/) as a visitor meets it: the second load has every file cached.
  const { server, base } = await serve(path.join(root, "www"));
  const browser = await chromium.launch(CHROMIUM);
  const context = await browser.newContext();
  for (const backend of ["cpu", "webgpu"]) {
    const n = backend === "cpu" || !quick ? 2000 : 256;
    const steps = quick ? 20 : 100;
    const runs = [];
    // First visit: to the first streamed frame. Second visit (files cached): to the end.
    for (const cached of [false, true]) {
      const page = await context.newPage();
      await page.goto(`${base}?backend=${backend}&d=128&n=${n}&steps=${steps}&speed=10`);
      const wait = cached ? "done" : "firstFrameMs";
      await page.waitForFunction((wait) => (wait === "done" ? ["fm-blind", "ddpm-blind"].every((id) => window.geonoise.panels.get(id)?.done) : window.geonoise.firstFrameMs > 0), wait, { timeout: 3600000, polling: 200 });
      runs.push(await page.evaluate(() => ({ backend: window.geonoise.backend, first: window.geonoise.firstFrameMs, done: Math.max(...[...window.geonoise.panels.values()].map((p) => p.doneMs)) - Math.min(...[...window.geonoise.panels.values()].map((p) => p.startMs)) })));
      await page.close();
    }
    row({ what: `page, ${backend}`, backend: runs[1].backend, n, steps, first_frame_ms: runs[0].first, first_frame_cached_ms: runs[1].first, both_panels_done_ms: runs[1].done });
    console.log(`page ${runs[1].backend}: first frame ${runs[0].first.toFixed(0)} ms (${runs[1].first.toFixed(0)} ms cached); ${n} x ${steps} steps in both panels: ${(runs[1].done / 1000).toFixed(1)} s`);
  }
  await browser.close();
  server.close();
}

function nativePart() {
  const python = path.join(venv, "bin/python");
  const haveTorch = fs.existsSync(python) && spawnSync(python, ["-c", "import torch"]).status === 0;
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run ./build.sh cli first`);
  if (!haveTorch) console.log(`PyTorch not found in ${venv}: the native rows have no peer (node bench/run.mjs --install-torch)`);
  const steps = quick ? 5 : 20;
  const repeats = quick ? 2 : 5;
  for (const threads of [...new Set([1, cores])]) {
    const env = { ...process.env, RAYON_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
    const common = ["--dim", MODEL.dim, "--width", MODEL.width, "--depth", MODEL.depth, "--batch", BATCH, "--steps", steps].map(String);
    const project = [];
    const peer = [];
    // Processes alternate; each reports the median of its own timed steps after a warm-up.
    for (let i = 0; i < repeats; i++) {
      const p = JSON.parse(execFileSync(bin, ["bench-step", ...common, "--threads", String(threads)], { env, encoding: "utf8" }));
      project.push(p);
      if (haveTorch) peer.push(JSON.parse(execFileSync(python, [path.join(here, "torch_step.py"), ...common, "--threads", String(threads)], { env, encoding: "utf8" })));
    }
    const med = (v, key) => median(v.map((x) => x[key]));
    const side = (v, key) => (v.length ? { ms: med(v, key), all_ms: v.map((x) => x[key]) } : null);
    const name = threads > 1 ? `${threads} threads` : "1 thread";
    const peerName = haveTorch ? `PyTorch ${peer[0].torch} CPU, ${name}` : "PyTorch (not installed)";
    for (const [what, key] of [["training", "train_ms"], ["sampling (2,000 trajectories)", "sample_ms"]]) {
      const r = row({ what: `native ${what} step, ${name}`, projectName: `burn Flex (native), ${name}`, peerName, project: side(project, key), peer: side(peer, key) });
      console.log(`${r.what}: burn ${r.project.ms.toFixed(2)} ms, ${peerName} ${r.peer ? r.peer.ms.toFixed(2) + " ms" : "-"}`);
    }
  }
}

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : 0.5 * (s[s.length / 2 - 1] + s[s.length / 2]);
}

function report() {
  const m = results.machine;
  console.log(`\nmachine: ${m.cores} x ${m.cpu}, ${m.memory_gib} GiB, ${m.os}; Chromium ${results.chromium ?? "-"}; WebGPU adapter: ${results.adapter ? Object.values(results.adapter).filter(Boolean).join(" / ") : "-"}`);
  if (results.wasm) console.log(`wasm: ${(results.wasm.raw_bytes / 1e6).toFixed(2)} MB raw, ${(results.wasm.gzip_bytes / 1e6).toFixed(2)} MB gzip (target <= 2 MB gzip)`);
  console.log("\n| what | geonoise | peer | geonoise ms/step | peer ms/step | speed-up (peer / geonoise) | dispatches/step (geonoise, peer) |");
  console.log("|---|---|---|---|---|---|---|");
  for (const r of results.rows.filter((r) => r.project?.ms !== undefined)) {
    const [a, b] = [r.project.ms, r.peer?.ms];
    const d = r.project.dispatch ? `${r.project.dispatch}, ${r.peer.dispatch}` : "";
    console.log(`| ${r.what} | ${r.projectName} | ${r.peerName} | ${a.toFixed(2)} | ${b === undefined ? "-" : b.toFixed(2)} | ${b === undefined ? "-" : (b / a).toFixed(2) + "x"} | ${d} |`);
  }
  for (const r of results.rows.filter((r) => r.first_frame_ms !== undefined)) {
    console.log(`| ${r.what}: first streamed frame | ${r.backend} | | ${r.first_frame_cached_ms.toFixed(0)} ms cached (${r.first_frame_ms.toFixed(0)} ms cold) | | target <= 1500 ms cached | |`);
    console.log(`| ${r.what}: ${r.n} trajectories x ${r.steps} steps, both panels | ${r.backend} | | ${(r.both_panels_done_ms / 1000).toFixed(1)} s | | | |`);
  }
  fs.writeFileSync(path.join(here, "results.json"), JSON.stringify(results, null, 2));
}
