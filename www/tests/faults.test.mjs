// Faults, injected on purpose: each test breaks one thing a user's machine or file can break,
// then checks what the page says and what state it is left in (the README's fault table).
//
// Needs: www/pkg and www/pretrained built (./build.sh wasm).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { browserSession, artifacts, www, safetensors } from "./browser.mjs";

const { faults, open, waitDone } = browserSession();

const text = (page, sel) => page.locator(sel).textContent();
const ready = (page) => page.waitForFunction(() => window.geonoise.backend !== null && window.geonoise.panels.size > 0, null, { timeout: 120000, polling: 100 });
const panelError = (page, id) => text(page, `[data-panel="${id}"] .error`);

/** Serves worker.js with `shim` run first: how a test takes WebGPU away from the worker. */
const shimWorker = (shim) => async (page) => {
  await page.route("**/worker.js", async (route) => {
    const res = await route.fetch();
    await route.fulfill({ response: res, body: `${shim}\n${await res.text()}` });
  });
};

const GPU_FAULTS = [
  ["no navigator.gpu", `Object.defineProperty(WorkerNavigator.prototype, "gpu", { get: () => undefined });`, /this browser has no WebGPU/],
  ["requestAdapter gives null", `GPU.prototype.requestAdapter = async () => null;`, /no WebGPU adapter/],
  ["requestAdapter throws", `GPU.prototype.requestAdapter = async () => { throw new Error("test: adapter request failed"); };`, /WebGPU adapter request failed: test: adapter request failed/],
  ["requestDevice rejects", `GPUAdapter.prototype.requestDevice = async () => { throw new DOMException("test: device refused", "OperationError"); };`, /WebGPU failed \(.*\); using the CPU/],
];

for (const [name, shim, reason] of GPU_FAULTS) {
  test(`WebGPU asked for, ${name}: the page runs on the CPU and says why`, async () => {
    const { page, problems } = await open("?backend=webgpu&d=8&n=64&steps=5&speed=10", shimWorker(shim));
    await ready(page);
    assert.equal(await page.evaluate(() => window.geonoise.backend), "cpu");
    assert.equal(await text(page, "#backend"), "CPU");
    assert.match(await text(page, "#backend-reason"), reason);
    await waitDone(page, ["fm-blind", "ddpm-blind"], 120000);
    assert.deepEqual(problems, []);
    await page.close();
  });
}

test("the GPU device lost mid-sampling: the engine restarts on the CPU and both panels sample to the end", async () => {
  const { page, problems } = await open("?backend=webgpu&d=8&n=64&steps=30&speed=1");
  await ready(page);
  assert.equal(await page.evaluate(() => window.geonoise.backend), "webgpu");
  await page.waitForFunction(() => ["fm-blind", "ddpm-blind"].every((id) => (window.geonoise.panels.get(id)?.frames.length || 0) >= 2), null, { timeout: 240000, polling: 200 });
  await page.evaluate(() => window.geonoise.loseDevice());
  await page.waitForFunction(() => window.geonoise.backend === "cpu", null, { timeout: 120000, polling: 200 });
  assert.match(await text(page, "#notice"), /WebGPU failed \(.*\)\. Restarting on the CPU\./);
  assert.equal(await page.evaluate(() => window.geonoise.state.backend), "cpu", "the URL now asks for the CPU");
  await waitDone(page, ["fm-blind", "ddpm-blind"], 120000);
  const steps = await page.evaluate(() => ["fm-blind", "ddpm-blind"].map((id) => window.geonoise.panels.get(id).frames.at(-1).step));
  assert.deepEqual(steps, [30, 30]);
  assert.deepEqual(problems.filter((p) => !/device was lost|WebGPU|GPU/i.test(p)), []);
  await page.close();
});

/** Trains both panels to the end (crashing the worker once a state is saved when `crash`) and
 * downloads the left panel's checkpoint: its tensors. */
async function trainAndDownload(query, crash) {
  const { page, problems } = await open(query);
  await ready(page);
  await page.click("#train-start");
  if (crash) {
    await page.waitForFunction(() => [...window.geonoise.panels.values()].every((p) => p.train?.resume && !p.train.finished), null, { timeout: 120000, polling: 10 });
    await page.evaluate(() => window.geonoise.crash("uncaught"));
    await page.waitForFunction(() => window.geonoise.restarts === 1, null, { timeout: 30000, polling: 100 });
  }
  await page.waitForFunction(() => [...window.geonoise.panels.values()].every((p) => p.train?.finished), null, { timeout: 300000, polling: 200 });
  await waitDone(page, ["train-a", "train-b"], 120000);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-panel="train-a"] [data-t="download"]')]);
  const bytes = fs.readFileSync(await download.path());
  const recovered = await page.evaluate(() => window.geonoise.panels.get("train-a").train.recovered);
  assert.deepEqual(problems, []);
  await page.close();
  return { tensors: safetensors(bytes), recovered };
}

test("the worker crashing mid-training on the CPU: the run resumes exactly from its state, and its checkpoint is the unbroken run's to the bit", async () => {
  const query = "?mode=train&backend=cpu&tdim=8&width=32&depth=1&batch=64&tsteps=600&every=100&n=20&steps=5";
  const straight = await trainAndDownload(query, false);
  const broken = await trainAndDownload(query, true);
  assert.ok(broken.recovered?.exact && broken.recovered.step >= 100 && broken.recovered.step < 600, `resumed exactly from a state mid-run: ${JSON.stringify(broken.recovered)}`);
  assert.deepEqual([...broken.tensors.keys()].sort(), [...straight.tensors.keys()].sort());
  for (const [name, t] of straight.tensors) assert.ok(t.equals(broken.tensors.get(name)), `${name}: the resumed run's weights differ from the unbroken run's`);
});

test("Download state, then Load it into a fresh page and Resume: the run ends with the unbroken run's checkpoint; a state of another model is refused by name", async () => {
  const query = "?mode=train&backend=cpu&tdim=8&width=32&depth=1&batch=64&tsteps=600&every=100&n=20&steps=5";
  const straight = await trainAndDownload(query, false);
  // A run paused part way, and its state downloaded.
  const first = await open(query);
  await ready(first.page);
  await first.page.click("#train-start");
  await first.page.waitForFunction(() => window.geonoise.panels.get("train-a").train?.step >= 150, null, { timeout: 120000, polling: 10 });
  await first.page.click("#train-pause");
  await first.page.waitForFunction(() => [...window.geonoise.panels.values()].every((p) => !p.train.pending), null, { timeout: 30000, polling: 20 });
  const [dl] = await Promise.all([first.page.waitForEvent("download"), first.page.click('[data-panel="train-a"] [data-t="state"]')]);
  assert.match(dl.suggestedFilename(), /^geonoise-fm-blind-d8-\d+steps\.state$/);
  const stateFile = path.join(artifacts, dl.suggestedFilename());
  await dl.saveAs(stateFile);
  const at = await first.page.evaluate(() => window.geonoise.lastState.step);
  assert.ok(at >= 150 && at < 600, `the state is of a step part way: ${at}`);
  assert.deepEqual(first.problems, []);
  await first.page.close();
  // A fresh page: the state goes into the DDPM Blind panel (refused by name), then into the FM
  // Blind one, which picks the run up at its step; Resume trains it to the end.
  const { page, problems } = await open(query);
  await ready(page);
  await page.setInputFiles('[data-panel="train-b"] input[type=file]', stateFile);
  await page.waitForFunction(() => /is the state of a FM Blind run; this panel trains DDPM Blind/.test(document.querySelector('[data-panel="train-b"] .error').textContent), null, { timeout: 30000 });
  await page.setInputFiles('[data-panel="train-a"] input[type=file]', stateFile);
  await page.waitForFunction((at) => { const t = window.geonoise.panels.get("train-a").train; return t?.started && t.step === at; }, at, { timeout: 30000, polling: 20 });
  assert.match(await text(page, '[data-panel="train-a"] .training'), new RegExp(`loaded geonoise-fm-blind-d8-${at}steps\\.state: the run at step ${at} of 600; press Resume to go on`));
  await page.click("#train-pause");
  await page.waitForFunction(() => window.geonoise.panels.get("train-a").train.finished, null, { timeout: 300000, polling: 200 });
  await waitDone(page, ["train-a"], 120000);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-panel="train-a"] [data-t="download"]')]);
  const resumed = safetensors(fs.readFileSync(await download.path()));
  for (const [name, t] of straight.tensors) assert.ok(t.equals(resumed.get(name)), `${name}: the run loaded from its state differs from the unbroken run`);
  assert.deepEqual(problems, []);
  await page.close();
});

test("the worker crashing mid-training: a new engine, training goes on from the saved weights; repeated crashes stop with a message and the weights stay downloadable", async () => {
  const { page, problems } = await open("?mode=train&backend=cpu&tdim=8&width=32&depth=1&batch=64&tsteps=1500&every=100&n=100&steps=10");
  await ready(page);
  await page.click("#train-start");
  // Mid-training, with a copy saved. (A fast machine trains a 100-step chunk in one message, so the
  // copy often has the very step the run is at; the window before the end is what is waited for.)
  await page.waitForFunction(() => [...window.geonoise.panels.values()].every((p) => p.train?.saved && !p.train.finished), null, { timeout: 120000, polling: 10 });
  // The copies saved before the crash, kept to play a final copy that never arrived (below).
  const saved = await page.evaluate(() => {
    window.earlyCopies = [...window.geonoise.panels.values()].map((p) => ({ saved: p.train.saved, resume: p.train.resume }));
    return window.earlyCopies.map((c) => c.saved.step);
  });
  await page.evaluate(() => window.geonoise.crash("uncaught"));
  await page.waitForFunction(() => window.geonoise.restarts === 1, null, { timeout: 30000, polling: 100 });
  assert.match(await text(page, "#notice"), /The engine stopped \(.*test hook: the engine crashed\)\. Restarting\./);
  await page.waitForFunction(() => [...window.geonoise.panels.values()].every((p) => p.train?.finished), null, { timeout: 300000, polling: 200 });
  const runs = await page.evaluate(() => [...window.geonoise.panels.values()].map((p) => ({ step: p.train.step, history: p.train.history })));
  runs.forEach((r, i) => {
    assert.equal(r.step, 1500);
    assert.ok(saved[i] >= 100, `a copy was saved before the crash (step ${saved[i]})`);
    // The chart was cut back to the saved step and went on from there: steps strictly increase.
    assert.ok(r.history.every(([k], j) => j === 0 || k > r.history[j - 1][0]), "loss history steps increase");
    assert.ok(r.history.every(([, l]) => Number.isFinite(l)));
  });
  await waitDone(page, ["train-a", "train-b"], 120000);

  // A Rust panic in a handler: the same restart. The third failure within a minute is the last.
  // The first panic comes after the runs finished but (as played here) before their final copies
  // arrived: each run trains its last steps again, from the copy it has.
  const allSaved = () => [...window.geonoise.panels.values()].every((p) => p.train.finished && p.train.saved?.step === p.train.total);
  for (let k = 2; k <= 3; k++) {
    if (k === 2) await page.evaluate(() => [...window.geonoise.panels.values()].forEach((p, i) => Object.assign(p.train, window.earlyCopies[i])));
    await page.evaluate(() => window.geonoise.crash("panic"));
    await page.waitForFunction((k) => window.geonoise.restarts === k && window.geonoise.backend !== null, k, { timeout: 60000, polling: 100 });
    assert.match(await text(page, "#notice"), /The engine crashed \(unreachable \(test hook: a panic\)\)\. Restarting\./);
    await page.waitForFunction(allSaved, null, { timeout: 50000, polling: 100 });
  }
  await waitDone(page, ["train-a", "train-b"], 120000); // the trained models are back in their panels
  await page.evaluate(() => window.geonoise.crash("panic"));
  await page.waitForFunction(() => /failed 4 times within a minute/.test(document.querySelector("#notice").textContent), null, { timeout: 30000 });
  assert.equal(await text(page, "#backend"), "stopped");
  assert.equal(await page.evaluate(() => window.geonoise.restarts), 3);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-panel="train-a"] [data-t="download"]')]);
  assert.equal(download.suggestedFilename(), "geonoise-fm-blind-d8-1500steps.safetensors");
  assert.deepEqual(problems, []);
  await page.close();
});

test("the engine failing at every start (its wasm missing) is retried three times, then reported", async () => {
  // Both cores: the CPU-only one this page loads, and the WebGPU one.
  faults.set("/pkg/geonoise_bg.wasm", "404");
  faults.set("/pkg-cpu/geonoise_bg.wasm", "404");
  try {
    const { page } = await open("?backend=cpu&d=8");
    await page.waitForFunction(() => /within a minute/.test(document.querySelector("#notice").textContent), null, { timeout: 60000, polling: 100 });
    assert.match(await text(page, "#notice"), /The engine failed \(.*\)\. The engine failed 4 times within a minute, so it was not restarted; reload the page to try again\./);
    assert.equal(await text(page, "#backend"), "stopped");
    await page.close();
  } finally {
    faults.clear();
  }
});

test("a pretrained file of another model or D is refused by name; the other panel still runs", async () => {
  faults.set("/pretrained/fm-blind-d8.safetensors", "/pretrained/fm-blind-d32.safetensors");
  faults.set("/pretrained/ddpm-cond-d8.safetensors", "/pretrained/fm-cond-d8.safetensors");
  try {
    const { page, problems } = await open("?backend=cpu&d=8&n=50&steps=5&speed=10&twins=1");
    await waitDone(page, ["ddpm-blind", "fm-cond"], 120000);
    await page.waitForFunction(() => document.querySelectorAll(".panel.failed").length === 2, null, { timeout: 60000 });
    assert.match(await panelError(page, "fm-blind"), /fm-blind-d8\.safetensors: the checkpoint is for D = 32, but D = 8 was asked for/);
    assert.match(await panelError(page, "ddpm-cond"), /the file holds a fm conditional model, expected ddpm conditional/);
    assert.deepEqual(problems, []);
    await page.close();
  } finally {
    faults.clear();
  }
});

/** Checkpoint files a person might pick by mistake, each with what the panel must say. */
function badFiles() {
  const dir = path.join(artifacts, "bad-checkpoints");
  fs.mkdirSync(dir, { recursive: true });
  const good = fs.readFileSync(path.join(www, "pretrained/fm-blind-d8.safetensors"));
  const header = Number(good.readBigUInt64LE(0));
  const json = good.subarray(8, 8 + header).toString();
  const edited = (from, to) => {
    assert.equal(from.length, to.length);
    assert.ok(json.includes(from), from);
    return Buffer.concat([good.subarray(0, 8), Buffer.from(json.replace(from, to)), good.subarray(8 + header)]);
  };
  // The first weight of the first tensor in the data block, overwritten with an f16 NaN.
  const nan = Buffer.from(good);
  const first = Object.entries(JSON.parse(json)).filter(([k]) => k !== "__metadata__").sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])[0];
  nan.writeUInt16LE(0x7e00, 8 + header + first[1].data_offsets[0]);
  const random = Buffer.alloc(4096);
  for (let i = 0; i < random.length; i++) random[i] = (i * 2654435761) >>> 24;
  const files = [
    ["empty.safetensors", Buffer.alloc(0), /the checkpoint file is empty/],
    ["truncated.safetensors", good.subarray(0, good.length >> 1), /does not match its header \(a truncated or damaged file\?\)/],
    ["random.safetensors", random, /does not start with a safetensors header/],
    ["page.html", Buffer.from("<!doctype html><title>404</title>"), /does not start with a safetensors header/],
    ["future.safetensors", edited(`"geonoise.version":"1"`, `"geonoise.version":"9"`), /format version 9 is newer than this build reads \(version 1\); update geonoise/],
    ["nan.safetensors", nan, new RegExp(`tensor '${first[0].replace(/\./g, "\\.")}' holds 1 NaN or infinite values`)],
    ["plain.safetensors", edited(`"geonoise.format":"geonoise-checkpoint"`, `"geonoise.format":"other-checkpoint!!!"`), /not a geonoise checkpoint/],
  ];
  // 100 MB of noise: refused from its first 8 bytes.
  const big = path.join(dir, "big.safetensors");
  fs.writeFileSync(big, Buffer.alloc(100 << 20, 0x5a));
  const paths = files.map(([name, bytes, want]) => {
    fs.writeFileSync(path.join(dir, name), bytes);
    return [path.join(dir, name), want];
  });
  paths.push([big, /does not start with a safetensors header/]);
  // Over the import limit: refused by its size, before it is read (a sparse file: no disk used).
  const huge = path.join(dir, "huge.safetensors");
  fs.closeSync(fs.openSync(huge, "w"));
  fs.truncateSync(huge, 600 * 2 ** 20);
  paths.push([huge, /huge\.safetensors is 600 MB; checkpoints larger than 512 MB are not loaded in the browser/]);
  return paths;
}

test("Load checkpoint… with broken files: each named in the panel, the trained model there kept, and a good file still loads after", async () => {
  const { page, problems } = await open("?mode=train&backend=cpu&tdim=8&width=16&depth=1&batch=16&tsteps=30&every=10&n=100&steps=10&speed=10");
  await ready(page);
  await page.click("#train-start");
  await page.waitForFunction(() => [...window.geonoise.panels.values()].every((p) => p.train?.finished), null, { timeout: 120000, polling: 100 });
  await waitDone(page, ["train-a"], 120000);
  const line = await text(page, '[data-panel="train-a"] .training');
  for (const [file, want] of badFiles()) {
    await page.evaluate(() => (document.querySelector('[data-panel="train-a"] .error').textContent = ""));
    await page.setInputFiles('[data-panel="train-a"] input[type="file"]', file);
    await page.waitForFunction(() => document.querySelector('[data-panel="train-a"] .error').textContent !== "", null, { timeout: 60000 });
    const shown = await panelError(page, "train-a");
    assert.match(shown, want, path.basename(file));
    console.log(shown);
    if (!/600 MB/.test(shown)) assert.ok(shown.startsWith(path.basename(file)), `the message names the file: ${shown}`);
    assert.equal(await text(page, '[data-panel="train-a"] .training'), line, "the panel's line is as before");
  }
  assert.equal(await page.evaluate(() => window.geonoise.restarts), 0, "no bad file took the engine down");
  // The trained model is still the panel's: it samples again and downloads under its step.
  assert.equal(await page.evaluate(() => window.geonoise.panels.get("train-a").train.step), 30);
  await page.click("#reset");
  await waitDone(page, ["train-a"], 120000);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-panel="train-a"] [data-t="download"]')]);
  assert.equal(download.suggestedFilename(), "geonoise-fm-blind-d8-30steps.safetensors");
  await page.screenshot({ path: path.join(artifacts, "page-bad-checkpoints.png"), fullPage: true });
  await page.setInputFiles('[data-panel="train-a"] input[type="file"]', path.join(www, "pretrained/fm-blind-d8.safetensors"));
  await page.waitForFunction(() => /imported fm-blind-d8\.safetensors/.test(document.querySelector('[data-panel="train-a"] .training').textContent), null, { timeout: 60000 });
  await waitDone(page, ["train-a"], 120000);
  assert.equal(await panelError(page, "train-a"), "");
  assert.equal(await page.evaluate(() => window.geonoise.panels.get("train-a").train), null);
  assert.deepEqual(problems, []);
  await page.close();
});

test("a training run too big for the page's memory is refused before it starts, with the figure; a smaller one then trains", async () => {
  const { page, problems } = await open("?mode=train&backend=cpu&tdim=1024&width=1024&depth=16&batch=4096&tsteps=20&every=10");
  await ready(page);
  await page.click("#train-start");
  await page.waitForFunction(() => document.querySelectorAll(".panel.failed").length === 2, null, { timeout: 60000 });
  console.log(await panelError(page, "train-a"));
  for (const id of ["train-a", "train-b"]) {
    assert.match(await panelError(page, id), /training this model \(D = 1024, width 1024, depth 16, batch 4096\) would need about [\d.]+ GiB of memory, more than the 2 GiB a page is given here; lower the batch, width or depth/);
  }
  const { bytes } = await page.evaluate(() => window.geonoise.memory());
  assert.ok(bytes < 64 * 2 ** 20, `nothing was allocated for it (wasm memory ${bytes} bytes)`);
  await page.evaluate(() => {
    const el = document.querySelector("#batch");
    el.value = "16";
    el.dispatchEvent(new Event("change"));
    for (const [id, v] of [["width", "16"], ["depth", "1"]]) {
      const e = document.querySelector(`#${id}`);
      e.value = v;
      e.dispatchEvent(new Event("change"));
    }
  });
  await page.click("#train-start");
  await page.waitForFunction(() => [...window.geonoise.panels.values()].every((p) => p.train?.finished && p.train.step === 20), null, { timeout: 120000, polling: 200 });
  assert.deepEqual(problems, []);
  await page.close();
});

test("malformed URL parameters and control values are clamped or refused with a message", async () => {
  const { page, problems } = await open("?mode=train&backend=gpu&tdim=1e9&width=abc&depth=-2&batch=99999&tsteps=-5&every=0&lr=-1&a=fm-bogus&seed=1.5&n=1e9&steps=0&grid=cosine");
  await ready(page);
  const notice = await text(page, "#notice");
  for (const want of [/backend=gpu is not one of auto, webgpu, cpu/, /tdim=1e9 is outside 2\.\.1024; using 1024/, /width=abc is not a whole number/, /depth=-2 is outside 0\.\.16; using 0/, /batch=99999 is outside 1\.\.4096; using 4096/, /tsteps=-5 is outside/, /every=0 is outside/, /lr=-1 is outside/, /a=fm-bogus is not one of/, /seed=1\.5 is not a whole number/, /n=1e9 is outside 1\.\.5000; using 5000/, /steps=0 is outside 1\.\.1000; using 1/, /grid=cosine is not one of default, uniform, rho7, log-snr; using log-snr/]) {
    assert.match(notice, want);
  }
  const s = await page.evaluate(() => window.geonoise.state);
  assert.deepEqual([s.backend, s.tdim, s.width, s.depth, s.batch, s.tsteps, s.every, s.lr, s.a, s.seed, s.n, s.steps, s.grid], ["auto", 1024, 128, 0, 4096, 1, 10, 1e-6, "fm-blind", 0, 5000, 1, "log-snr"]);
  // Controls: a value typed out of range is clamped, with the rule shown; the URL follows.
  for (const [id, typed, want, value] of [["tdim", "0", /tdim must be a whole number in 2\.\.1024; using 2/, 2], ["batch", "abc", /batch must be a whole number in 1\.\.4096; using 4096/, 4096], ["lr", "5", /lr must be a number in 0\.000001\.\.1; using 1/, 1]]) {
    await page.evaluate(([id, typed]) => {
      const el = document.querySelector(`#${id}`);
      el.type = "text"; // a number input would drop "abc" before the page sees it
      el.value = typed;
      el.dispatchEvent(new Event("change"));
    }, [id, typed]);
    assert.match(await text(page, "#notice"), want);
    assert.equal(await page.evaluate((id) => window.geonoise.state[id], id), value);
    assert.match(page.url(), new RegExp(`${id}=${value}`));
  }
  assert.deepEqual(problems, []);
  await page.close();
});
