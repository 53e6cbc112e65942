// The browser's WebGPU path on a real GPU, without a browser: the project's wasm core (www/pkg,
// the very module the page loads) and the TF.js webgpu peer run in Node on Dawn — the WebGPU
// implementation inside Chromium — through npm's `webgpu` package (dawn.node, pinned in
// bench/package.json), timed A/B interleaved by bench/ab.js as bench/page.js does in Chromium.
//
//   node bench/dawn.mjs [--null] [--quick] [--pkg DIR] [--label NAME] [--json FILE] [--dawn FLAG]... [rows]...
//
// rows (all by default):
//   train       the toy's training step (D = 128, width 128, depth 3, batch 512): WebGPU vs TF.js
//               webgpu, WebGPU vs the project's own CPU path (burn Flex, the same wasm), and the
//               recorded step replayed vs every step through the launch path (WebGPU both)
//   sample      a sampling frame (one step, then the positions read back to the host) of 2,000
//               and 20,000 trajectories: WebGPU vs TF.js webgpu, plain and pipelined (the next
//               step issued before the read is awaited), and WebGPU vs the CPU path at 2,000
//   floor       what any read costs on this WebGPU, in plain JS: a 16 kB copy and map, and an
//               empty submit's onSubmittedWorkDone
//   large       a training step at D = 512, width 1024, depth 4, batch 4096: WebGPU vs TF.js webgpu
//   unet        a sampling step of the shipped Fashion-MNIST U-Net (FM Blind), 16 images read back
//               whole as the Images tab does: WebGPU vs the CPU path (TF.js has no U-Net here)
// --null        Dawn's null backend: every WebGPU call runs, nothing is computed. On machines with
//               no GPU (Dawn refuses Mesa's lavapipe) this still exercises the whole path and
//               counts dispatches and submits; its times are not GPU times. bench/dawn.test.mjs
//               runs it in CI so the runner cannot rot.
// --pkg DIR     another wasm-bindgen output of the core (a build with other burn features), so
//               builds can be compared on one machine; default www/pkg.
// --dawn FLAG   passed to dawn.node's create() (e.g. enable-dawn-features=...).
//
// On a GPU machine it needs the GPU's Vulkan driver, the Vulkan loader and glvnd
// (PLATFORM notes); it prints the adapter, the wasm's size and one table of ratios, and writes
// the results as JSON (--json, default bench/dawn-results.json).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import vm from "node:vm";
import zlib from "node:zlib";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const all = (name) => argv.flatMap((a, i) => (a === name ? [argv[i + 1]] : []));
const valued = new Set(["--pkg", "--label", "--json", "--dawn"]);
const rows = argv.filter((a, i) => !a.startsWith("--") && !valued.has(argv[i - 1]));
const known = ["train", "sample", "floor", "large", "unet"];
for (const r of rows) if (!known.includes(r)) fail(`unknown row '${r}': use ${known.join(", ")}`);
const want = (r) => rows.length === 0 || rows.includes(r);
const nullBackend = argv.includes("--null");
const quick = argv.includes("--quick");
const pkg = path.resolve(opt("--pkg", path.join(root, "www/pkg")));
const label = opt("--label", path.relative(root, pkg) || pkg);
const jsonOut = path.resolve(opt("--json", path.join(here, "dawn-results.json")));

function fail(msg) {
  console.error(`dawn.mjs: ${msg}`);
  process.exit(2);
}

for (const f of ["geonoise.js", "geonoise_bg.wasm"]) {
  if (!fs.existsSync(path.join(pkg, f))) fail(`${path.join(pkg, f)} is missing: run ./build.sh wasm first (or pass --pkg)`);
}
const modules = path.join(here, "node_modules");
if (!fs.existsSync(path.join(modules, "webgpu"))) fail("bench/node_modules/webgpu is missing: run `npm ci` in bench/");

// Dawn as the page's navigator.gpu. wgpu's web backend looks for navigator.gpu in a window or a
// worker scope, so the worker scope's name is defined too (TF.js checks the same).
const { create, globals } = await import(pathToFileURL(path.join(modules, "webgpu/index.js")).href);
Object.assign(globalThis, globals);
const dawnFlags = [...(nullBackend ? ["backend=null"] : []), ...all("--dawn")];
Object.defineProperty(globalThis, "navigator", { value: { gpu: create(dawnFlags) }, configurable: true });
globalThis.WorkerGlobalScope ??= class WorkerGlobalScope {};

const { instrument, makeBench, median } = await import("./ab.js");
// The device the page's worker asks for ("subgroups" where the adapter has it).
(await import("../www/webgpu-features.js")).requestSubgroups(globalThis);
const counts = instrument(globalThis);

// TF.js: its es2017 UMD bundles, as the bench page loads them, define the global `tf`.
for (const f of ["@tensorflow/tfjs/dist/tf.es2017.min.js", "@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.es2017.min.js"]) {
  vm.runInThisContext(fs.readFileSync(path.join(modules, f), "utf8"), { filename: f });
}
globalThis.tf.env().set("IS_NODE", false);

const adapter = await navigator.gpu.requestAdapter();
if (!adapter) fail(`Dawn found no WebGPU adapter (flags: ${dawnFlags.join(" ") || "none"}); on a GPU machine check VK_DRIVER_FILES and the Vulkan loader`);
const info = adapter.info || {};
const adapterName = nullBackend ? "Dawn null backend (nothing computed)" : [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" / ");

const core = await import(pathToFileURL(path.join(pkg, "geonoise.js")).href);
const wasm = fs.readFileSync(path.join(pkg, "geonoise_bg.wasm"));
await core.default({ module_or_path: wasm });
const checkpoint = async (file) => new Uint8Array(fs.readFileSync(path.join(root, "pretrained", file)));
const bench = makeBench({ Engine: core.Engine, counts, checkpoint, tf: globalThis.tf, gpu: navigator.gpu });

const TOY = { model: "fm", blind: false, dim: 128, width: 128, depth: 3, projection_seed: 0 };
const LARGE = { model: "fm", blind: false, dim: 512, width: 1024, depth: 4, projection_seed: 0 };
const results = {
  date: new Date().toISOString(),
  machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, node: process.version },
  adapter: nullBackend ? { backend: "null" } : { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description, subgroup_min: info.subgroupMinSize, subgroup_max: info.subgroupMaxSize },
  adapter_name: adapterName,
  adapter_features: [...adapter.features].sort(),
  adapter_limits: Object.fromEntries(Object.keys(Object.getPrototypeOf(adapter.limits)).filter((k) => typeof adapter.limits[k] === "number").map((k) => [k, adapter.limits[k]])),
  build: label,
  wasm: { raw_bytes: wasm.length, gzip_bytes: zlib.gzipSync(wasm, { level: 9 }).length },
  rows: [],
};
const k = quick ? 1 : 2;
const rounds = quick ? 2 : 7;
const warmup = quick ? 1 : 2;

// A row that cannot run on this adapter (the large model on the null backend runs out of memory)
// is reported as such, with the reason, and the run goes on. A WebGPU error poisons burn's device
// from inside Dawn's error event, where no promise of the row sees it: it arrives here as an
// uncaught exception, which fails the row being measured (and is only logged after that).
let failRow = null;
let poisoned = false;
// The wasm core's panic message (its panic hook writes it to console.error): the trap that
// reaches JS says only "unreachable".
let panicked = null;
const consoleError = console.error;
console.error = (...args) => {
  const text = args.map(String).join(" ");
  if (!panicked && text.includes("panicked at")) panicked = text.split("\n").slice(1).find((l) => l.trim()) ?? text;
  consoleError(...args);
};
process.on("uncaughtException", (e) => {
  if (failRow) failRow(e);
  else if (poisoned) console.error(`(after the device was lost: ${String(e?.message ?? e).split("\n")[0]})`);
  else throw e;
});
async function measure(what, projectName, peerName, fn) {
  const t0 = performance.now();
  let r;
  try {
    r = await Promise.race([fn(), new Promise((_, reject) => (failRow = reject))]);
  } catch (e) {
    poisoned = true;
    const reason = (panicked ?? String(e?.message ?? e).split("\n")[0]).slice(0, 300);
    results.rows.push({ what, projectName, peerName, not_runnable: reason });
    console.log(`${what}: not runnable here (${reason}) | ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return null;
  } finally {
    failRow = null;
  }
  const row = { what, projectName, peerName, ...r };
  results.rows.push(row);
  console.log(`${what}: geonoise ${r.project.ms.toFixed(2)} ms (${r.project.dispatch} dispatches, ${r.project.submit} submits, host ${r.project.host_ms.toFixed(2)} ms; first ${r.project_first_ms.toFixed(0)} ms) | ${peerName} ${r.peer.ms.toFixed(2)} ms (${r.peer.dispatch}, ${r.peer.submit}) | ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return row;
}

console.log(`Dawn (dawn.node) adapter: ${adapterName}; build ${label}: ${(results.wasm.raw_bytes / 1e6).toFixed(2)} MB wasm, ${(results.wasm.gzip_bytes / 1e6).toFixed(2)} MB gzip`);
if (want("train")) {
  const o = { model: TOY, batch: 512, k, rounds, warmup };
  await measure("toy training step, WebGPU vs TF.js webgpu", "burn wgpu (wasm)", "TF.js webgpu", () => bench.train({ backend: "webgpu", peerBackend: "webgpu", ...o }));
  await measure("toy training step, WebGPU vs the CPU path", "burn wgpu (wasm)", "burn Flex (wasm, 1 thread)", () => bench.train({ backend: "webgpu", peerBackend: "project-cpu", ...o, k: 1, rounds: quick ? 1 : 5, warmup: 1 }));
  await measure("toy training step, replayed vs the launch path (WebGPU both)", "burn wgpu (wasm), replayed", "burn wgpu (wasm), launched", () => bench.train({ backend: "webgpu", peerBackend: "project-launched", ...o }));
}
if (want("sample")) {
  const o = { file: "fm-cond-d128.safetensors", model: TOY, steps: 100, k: quick ? 2 : 4, rounds, warmup };
  for (const n of quick ? [2000] : [2000, 20000]) {
    await measure(`sampling frame, ${n} trajectories, WebGPU vs TF.js webgpu`, "burn wgpu (wasm)", "TF.js webgpu", () => bench.sample({ backend: "webgpu", peerBackend: "webgpu", n, ...o }));
    await measure(`sampling frame, ${n} trajectories, pipelined, WebGPU vs TF.js webgpu`, "burn wgpu (wasm), next step issued before the read", "TF.js webgpu", () => bench.sample({ backend: "webgpu", peerBackend: "webgpu", n, pipelined: true, ...o }));
  }
  await measure("sampling frame, 2000 trajectories, WebGPU vs the CPU path", "burn wgpu (wasm)", "burn Flex (wasm, 1 thread)", () => bench.sample({ backend: "webgpu", peerBackend: "project-cpu", n: 2000, ...o, rounds: quick ? 1 : 3 }));
}
if (want("floor")) {
  // What any read costs on this WebGPU: plain JS, no wasm. A 16 kB buffer written, copied to a
  // mappable one, submitted and mapped (what one frame's positions need), and the bare
  // onSubmittedWorkDone round trip. The median of 21 after a warm-up.
  const device = await (await navigator.gpu.requestAdapter()).requestDevice();
  const bytes = 2000 * 2 * 4;
  const src = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const timed = async (f) => {
    const v = [];
    for (let i = 0; i < 22; i++) {
      const t0 = performance.now();
      await f();
      if (i) v.push(performance.now() - t0);
    }
    return median(v);
  };
  const data = new Float32Array(bytes / 4);
  const readback = await timed(async () => {
    const dst = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(src, 0, data);
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, dst, 0, bytes);
    device.queue.submit([enc.finish()]);
    await dst.mapAsync(GPUMapMode.READ);
    new Float32Array(dst.getMappedRange()).slice();
    dst.unmap();
    dst.destroy();
  });
  const workDone = await timed(async () => {
    device.queue.submit([device.createCommandEncoder().finish()]);
    await device.queue.onSubmittedWorkDone();
  });
  device.destroy();
  results.floor = { readback_ms: readback, work_done_ms: workDone };
  console.log(`the floor of a read on this WebGPU (plain JS): a 16 kB copy and map ${readback.toFixed(2)} ms; an empty submit's onSubmittedWorkDone ${workDone.toFixed(2)} ms`);
}
if (want("unet")) {
  const o = { file: "images/fm-blind.safetensors", model: null, n: 16, steps: 100, k: quick ? 1 : 2, rounds: quick ? 1 : 5, warmup: 1, image: true };
  await measure("U-Net sampling step, 16 images, WebGPU vs the CPU path", "burn wgpu (wasm)", "burn Flex (wasm, 1 thread)", () => bench.sample({ backend: "webgpu", peerBackend: "project-cpu", ...o }));
}
if (want("large")) {
  const o = quick ? { model: { ...LARGE, dim: 64, width: 128 }, batch: 256 } : { model: LARGE, batch: 4096 };
  await measure(`training step, D=${o.model.dim}, width ${o.model.width}, depth 4, batch ${o.batch}, WebGPU vs TF.js webgpu`, "burn wgpu (wasm)", "TF.js webgpu", () => bench.train({ backend: "webgpu", peerBackend: "webgpu", ...o, k: 1, rounds: quick ? 1 : 5, warmup: 1 }));
}

console.log(`\n| what | ${label} ms | peer | peer ms | speed-up (peer / geonoise) | dispatches/step (geonoise, peer) | submits/step | host ms/step (geonoise) | first step ms (geonoise) | losses (geonoise, peer) |`);
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const r of results.rows) {
  if (r.not_runnable) {
    console.log(`| ${r.what} | not runnable here: ${r.not_runnable} | ${r.peerName} | | | | | | | |`);
    continue;
  }
  const [a, b] = [r.project.ms, r.peer.ms];
  console.log(`| ${r.what} | ${a.toFixed(2)} | ${r.peerName} | ${b.toFixed(2)} | ${(b / a).toFixed(2)}x | ${r.project.dispatch}, ${r.peer.dispatch} | ${r.project.submit}, ${r.peer.submit} | ${r.project.host_ms.toFixed(2)} | ${r.project_first_ms.toFixed(0)} | ${r.project_loss === undefined ? "" : `${r.project_loss.toPrecision(4)}, ${r.peer_loss.toPrecision(4)}`} |`);
}
fs.writeFileSync(jsonOut, JSON.stringify(results, null, 2));
console.log(`\nwrote ${path.relative(process.cwd(), jsonOut)}`);
// dawn.node keeps its device's event loop alive; the measurements are done.
process.exit(0);
