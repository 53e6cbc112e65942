// The Train images tab: two U-Nets trained in the page on the Fashion-MNIST slice build.sh makes
// (www/data), checked against `geonoise images train` on the same slice, and its faults: a broken
// data file, a NaN, the worker crashing mid-run, bad settings. Runs are a few dozen steps of tiny
// U-Nets (4 channels, batch 8): what is checked is that the page's training is the CLI's.
//
// Needs: www/pkg, www/pkg-cpu, www/pretrained and www/data built (./build.sh wasm), GEONOISE_BIN =
// the native CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { browserSession, artifacts, cli, repo, safetensors } from "./browser.mjs";
import { safetensorsHeader } from "../export.js";

const { faults, open, waitDone, exportJson } = browserSession();
const TINY = "ich=4&ibatch=8&ilr=0.002&iema=0.99&images=4&isteps=3";

const ready = (page) => page.waitForFunction(() => window.geonoise.backend && window.geonoise.panels.size === 2, null, { timeout: 60000 });
const trained = (page, ids, timeout = 300000) => page.waitForFunction((ids) => ids.every((id) => window.geonoise.panels.get(id)?.train?.finished), ids, { timeout, polling: 200 });
const text = (page, sel) => page.locator(sel).textContent();

/** The page's training slice as a data folder the CLI reads (its labels are not used in training). */
function sliceFolder() {
  const dir = path.join(artifacts, "itrain-data");
  fs.mkdirSync(dir, { recursive: true });
  const images = fs.readFileSync(path.join(repo, "www/data/fashion-mnist-train-10k.idx.gz"));
  const n = zlib.gunzipSync(images).readUInt32BE(4);
  fs.writeFileSync(path.join(dir, "train-images-idx3-ubyte.gz"), images);
  const labels = Buffer.alloc(8 + n);
  labels.writeUInt32BE(2049, 0);
  labels.writeUInt32BE(n, 4);
  fs.writeFileSync(path.join(dir, "train-labels-idx1-ubyte"), labels);
  return dir;
}

/** `geonoise images train` of the tiny recipe on the slice: its final loss and checkpoint file. */
function cliTrain(model, blind, steps, tag) {
  const out = path.join(artifacts, `itrain-cli-${tag}.safetensors`);
  const state = path.join(artifacts, `itrain-cli-${tag}.state`);
  fs.rmSync(state, { force: true });
  const flags = ["images", "train", "--model", model, ...(blind ? ["--blind"] : []), "--channels", "4", "--mults", "1,2", "--patch", "2", "--steps", String(steps), "--batch", "8", "--lr", "0.002", "--ema", "0.99", "--seed", "0", "--data", "fashion-mnist", "--data-dir", sliceFolder(), "--precision", "f32", "--out", out, "--state", state];
  return { ...cli(flags), out };
}

test("Train images, CPU: FM Blind and DDPM Blind train side by side with previews; the losses are the CLI's, and a downloaded checkpoint samples in the CLI to the page's images", async () => {
  const { page, problems } = await open(`?mode=itrain&backend=cpu&${TINY}&itsteps=20&ievery=10`);
  await ready(page);
  assert.equal(await page.locator("#itrain-controls").isHidden(), false);
  assert.equal(await page.locator("#train-controls").isHidden(), true);
  assert.equal(await page.locator("#ich").inputValue(), "4");
  await page.click("#itrain-start");
  await trained(page, ["itrain-a", "itrain-b"]);
  await waitDone(page, ["itrain-a", "itrain-b"], 120000); // then both sample with the tab's sampler
  // Previews at steps 10 and 20 of both, each with its numbers and the classifier's verdict.
  const previews = await page.evaluate(() => window.geonoise.previews);
  assert.deepEqual(previews.map((p) => `${p.panel}@${p.step}`).sort(), ["itrain-a@10", "itrain-a@20", "itrain-b@10", "itrain-b@20"]);
  for (const p of previews) {
    assert.equal(p.metrics.n, 16);
    assert.ok(Number.isFinite(p.metrics.laplacian_energy) && p.verdict && !p.verdict.error && p.verdict.confident_share >= 0, JSON.stringify(p));
  }
  // The losses after 20 steps are the CLI's on the same slice, config and seed.
  for (const [id, model] of [["itrain-a", "fm"], ["itrain-b", "ddpm"]]) {
    const t = await page.evaluate((id) => window.geonoise.panels.get(id).train, id);
    assert.equal(t.step, 20);
    const native = cliTrain(model, true, 20, `${model}-blind`);
    assert.ok(Math.abs(t.loss - native.loss) <= 1e-4 * Math.abs(native.loss), `${id}: page loss ${t.loss} vs CLI ${native.loss}`);
    console.log(`# ${id}: loss after 20 steps, page ${t.loss} vs CLI ${native.loss}`);
  }
  // The downloaded checkpoint samples in the CLI to the images the page drew from it.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-panel="itrain-a"] [data-t="download"]')]);
  assert.equal(download.suggestedFilename(), "geonoise-unet-fm-blind-c4-20steps.safetensors");
  const file = path.join(artifacts, download.suggestedFilename());
  await download.saveAs(file);
  const page16 = await exportJson(page, "itrain-a");
  const out = path.join(artifacts, "itrain-fm-blind-native.json");
  cli(["images", "sample", "--checkpoint", file, "--n", "4", "--steps", "3", "--sampler", "ancestral", "--seed", "0", "--out", out]);
  const native = JSON.parse(fs.readFileSync(out, "utf8")).samples;
  let worst = 0;
  page16.samples.forEach((row, i) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - native[i][j]) / (1 + Math.abs(native[i][j]))))));
  assert.ok(worst <= 1e-3, `page vs CLI samples of the downloaded checkpoint: ${worst}`);
  // The file's weights are the CLI's own run's, to float rounding.
  const mine = safetensors(fs.readFileSync(file));
  const theirs = safetensors(fs.readFileSync(path.join(artifacts, "itrain-cli-fm-blind.safetensors")));
  assert.deepEqual([...mine.keys()].sort(), [...theirs.keys()].sort());
  let wdiff = 0;
  for (const [name, b] of mine) {
    const x = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
    const o = theirs.get(name);
    const y = new Float32Array(o.buffer, o.byteOffset, o.length / 4);
    x.forEach((v, i) => (wdiff = Math.max(wdiff, Math.abs(v - y[i]) / (1 + Math.abs(y[i])))));
  }
  // Adam divides by the gradients' scale, so rounding differences in the last bits of a gradient
  // (wasm and native order sums differently) move a weight by up to about lr * (1 - ema) per step.
  assert.ok(wdiff < 1e-3, `largest relative weight difference page vs CLI: ${wdiff}`);
  console.log(`# downloaded checkpoint: samples within ${worst.toExponential(2)} of the CLI's, weights within ${wdiff.toExponential(2)} of the CLI's run`);
  await page.screenshot({ path: path.join(artifacts, "itrain-cpu.png"), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});

test("Train images, WebGPU forced (SwiftShader): both U-Nets train and preview", async () => {
  const { page, problems } = await open(`?mode=itrain&backend=webgpu&${TINY}&itsteps=20&ievery=10`);
  await ready(page);
  assert.equal(await page.evaluate(() => window.geonoise.backend), "webgpu");
  await page.click("#itrain-start");
  await trained(page, ["itrain-a", "itrain-b"], 600000);
  // The last previews (step 20) come after the runs' last steps.
  await page.waitForFunction(() => window.geonoise.previews.length === 4 || window.geonoise.errors.length, null, { timeout: 300000, polling: 200 });
  const previews = await page.evaluate(() => window.geonoise.previews);
  const errors = await page.evaluate(() => window.geonoise.errors);
  assert.deepEqual(previews.map((p) => `${p.panel}@${p.step}`).sort(), ["itrain-a@10", "itrain-a@20", "itrain-b@10", "itrain-b@20"], JSON.stringify(errors));
  for (const p of previews) assert.ok(p.metrics.n === 16 && Number.isFinite(p.metrics.laplacian_energy), JSON.stringify(p));
  for (const id of ["itrain-a", "itrain-b"]) {
    const t = await page.evaluate((id) => window.geonoise.panels.get(id).train, id);
    assert.ok(t.step === 20 && Number.isFinite(t.loss), JSON.stringify({ step: t.step, loss: t.loss }));
  }
  assert.deepEqual(problems, []);
  await page.close();
});

test("Train images, faults: a broken data file says so in the panels (the other tabs work); settings beyond the memory estimate are refused; a NaN goes back to the last good step", async () => {
  faults.set("/data/fashion-mnist-train-10k.idx.gz", "garbage");
  try {
    const { page, problems } = await open(`?mode=itrain&backend=cpu&${TINY}&itsteps=10&ievery=5`);
    await ready(page);
    await page.click("#itrain-start");
    await page.waitForFunction(() => document.querySelector('[data-panel="itrain-a"] .error').textContent, null, { timeout: 60000 });
    assert.match(await text(page, '[data-panel="itrain-a"] .error'), /training images .*fashion-mnist-train-10k\.idx\.gz.*(gzip|IDX)/i);
    // The rest of the page works: the Pretrained tab samples.
    await page.click('.tabs button[data-mode="view"]');
    await waitDone(page, ["fm-blind", "ddpm-blind"], 120000);
    assert.deepEqual(problems.filter((p) => !/training images/.test(p)), []);
    await page.close();
  } finally {
    faults.clear();
  }
  // Channels and a batch far beyond what a page may hold: refused before anything is allocated.
  const big = await open(`?mode=itrain&backend=cpu&ich=128&ibatch=512&itsteps=10`);
  await ready(big.page);
  await big.page.click("#itrain-start");
  await big.page.waitForFunction(() => document.querySelector('[data-panel="itrain-a"] .error').textContent, null, { timeout: 60000 });
  assert.match(await text(big.page, '[data-panel="itrain-a"] .error'), /would need about [\d.]+ GiB of memory, more than the 1 GiB a run is given here; lower the channels or the batch/);
  await big.page.close();
  // A batch of 0 in the link is clamped, with a note.
  const zero = await open(`?mode=itrain&backend=cpu&ibatch=0`);
  await ready(zero.page);
  assert.match(await text(zero.page, "#notice"), /ibatch=0 is outside 1\.\.1024; using 1/);
  await zero.page.close();
  // A NaN in a batch: the run goes back to its last good step and stops there, its weights kept.
  const { page, problems } = await open(`?mode=itrain&backend=cpu&${TINY}&itsteps=40&ievery=10`);
  await ready(page);
  await page.click("#itrain-start");
  await page.waitForFunction(() => window.geonoise.panels.get("itrain-a").train?.step >= 10, null, { timeout: 120000, polling: 20 });
  await page.evaluate(() => window.geonoise.injectNan("itrain-a"));
  await trained(page, ["itrain-a", "itrain-b"]);
  const a = await page.evaluate(() => window.geonoise.panels.get("itrain-a").train);
  assert.ok(a.nan && a.step >= 10 && a.step < 40, JSON.stringify({ nan: a.nan, step: a.step }));
  assert.match(await text(page, '[data-panel="itrain-a"] .error'), /The loss became NaN at step \d+; training stopped\. The weights of step \d+ .* are kept/);
  assert.equal(await page.evaluate(() => window.geonoise.panels.get("itrain-b").train.step), 40);
  await waitDone(page, ["itrain-a", "itrain-b"], 120000);
  assert.deepEqual(problems, []);
  await page.close();
});

test("Train images: the worker crashing mid-run resumes exactly from the autosaved state (the checkpoint is the unbroken run's to the bit); a downloaded state loads into a fresh page and goes on", async () => {
  const query = `?mode=itrain&backend=cpu&${TINY}&itsteps=30&ievery=10`;
  async function run(crash) {
    const { page, problems } = await open(query);
    await ready(page);
    await page.click("#itrain-start");
    if (crash) {
      await page.waitForFunction(() => [...window.geonoise.panels.values()].every((p) => p.train?.resume && !p.train.finished), null, { timeout: 120000, polling: 10 });
      await page.evaluate(() => window.geonoise.crash("uncaught"));
      await page.waitForFunction(() => window.geonoise.restarts === 1, null, { timeout: 30000, polling: 100 });
    }
    await trained(page, ["itrain-a", "itrain-b"]);
    await waitDone(page, ["itrain-a", "itrain-b"], 120000);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-panel="itrain-a"] [data-t="download"]')]);
    const tensors = safetensors(fs.readFileSync(await download.path()));
    const recovered = await page.evaluate(() => window.geonoise.panels.get("itrain-a").train.recovered);
    assert.deepEqual(problems, []);
    return { page, tensors, recovered };
  }
  const straight = await run(false);
  // Its state at the end, downloaded, for the fresh page below.
  const [dl] = await Promise.all([straight.page.waitForEvent("download"), straight.page.click('[data-panel="itrain-b"] [data-t="state"]')]);
  assert.match(dl.suggestedFilename(), /^geonoise-unet-ddpm-blind-c4-30steps\.state$/);
  const stateFile = path.join(artifacts, dl.suggestedFilename());
  await dl.saveAs(stateFile);
  await straight.page.close();
  const broken = await run(true);
  await broken.page.close();
  assert.ok(broken.recovered?.exact && broken.recovered.step >= 10 && broken.recovered.step < 30, JSON.stringify(broken.recovered));
  for (const [name, t] of straight.tensors) assert.ok(t.equals(broken.tensors.get(name)), `${name}: the resumed run's weights differ from the unbroken run's`);
  // The state in a fresh page: refused by the FM panel by name, taken by the DDPM one.
  const { page, problems } = await open(query);
  await ready(page);
  await page.setInputFiles('[data-panel="itrain-a"] input[type=file]', stateFile);
  await page.waitForFunction(() => /is the state of a DDPM Blind run; this panel trains FM Blind/.test(document.querySelector('[data-panel="itrain-a"] .error').textContent), null, { timeout: 30000 });
  await page.setInputFiles('[data-panel="itrain-b"] input[type=file]', stateFile);
  await page.waitForFunction(() => window.geonoise.panels.get("itrain-b").train?.started, null, { timeout: 60000, polling: 20 });
  assert.match(await text(page, '[data-panel="itrain-b"] .training'), /the run at step 30 of 30/);
  assert.deepEqual(problems, []);
  await page.close();
});

/** The training record a checkpoint carries (safetensors metadata `geonoise.training`). */
function trainingRecord(bytes) {
  return JSON.parse(safetensorsHeader(bytes).header.__metadata__["geonoise.training"]);
}

test("Train images: a checkpoint downloaded mid-run is that step's model (it samples in the CLI) and the run goes on undisturbed to the CLI's final loss", async () => {
  const { page, problems } = await open(`?mode=itrain&backend=cpu&${TINY}&itsteps=120&ievery=20`);
  await ready(page);
  await page.click("#itrain-start");
  await page.waitForFunction(() => window.geonoise.panels.get("itrain-a").train?.step >= 5, null, { timeout: 120000, polling: 20 });
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-panel="itrain-a"] [data-t="download"]')]);
  const m = /^geonoise-unet-fm-blind-c4-(\d+)steps\.safetensors$/.exec(download.suggestedFilename());
  assert.ok(m, download.suggestedFilename());
  const at = Number(m[1]);
  assert.ok(at >= 5 && at < 120, `downloaded at step ${at}: not mid-run`);
  const midFile = path.join(artifacts, `itrain-mid-${download.suggestedFilename()}`);
  await download.saveAs(midFile);
  const mid = fs.readFileSync(midFile);
  const record = trainingRecord(mid);
  assert.equal(record.steps_done, at);
  assert.equal(record.train.steps, 120);
  await trained(page, ["itrain-a", "itrain-b"]);
  // The download did not disturb the run: its loss at step 120 is the CLI's run's.
  const t = await page.evaluate(() => window.geonoise.panels.get("itrain-a").train);
  const full = cliTrain("fm", true, 120, "fm-blind-120");
  assert.equal(t.step, 120);
  assert.ok(Math.abs(t.loss - full.loss) <= 1e-4 * Math.abs(full.loss), `page loss ${t.loss} vs CLI ${full.loss} after a mid-run download`);
  // Step 120's weights were not downloaded yet (leaving would ask); the next download is of step 120.
  assert.equal(await page.evaluate(() => window.geonoise.panels.get("itrain-a").train.downloadedStep), at);
  await waitDone(page, ["itrain-a", "itrain-b"], 120000);
  const [last] = await Promise.all([page.waitForEvent("download"), page.click('[data-panel="itrain-a"] [data-t="download"]')]);
  assert.equal(last.suggestedFilename(), "geonoise-unet-fm-blind-c4-120steps.safetensors");
  const end = fs.readFileSync(await last.path());
  assert.equal(trainingRecord(end).steps_done, 120);
  // Both files sample in the CLI, to different images (the mid-run one is an earlier model).
  const draw = (file, tag) => {
    const out = path.join(artifacts, `itrain-mid-${tag}.json`);
    cli(["images", "sample", "--checkpoint", file, "--n", "2", "--steps", "3", "--sampler", "ddim", "--seed", "0", "--out", out]);
    return JSON.parse(fs.readFileSync(out, "utf8")).samples.flat();
  };
  const endFile = path.join(artifacts, "itrain-mid-end.safetensors");
  fs.writeFileSync(endFile, end);
  const a = draw(midFile, "mid");
  const b = draw(endFile, "end");
  assert.ok(a.length === b.length && a.every(Number.isFinite) && a.some((v, i) => Math.abs(v - b[i]) > 1e-4), "the mid-run checkpoint samples as the final one does");
  console.log(`# downloaded at step ${at} of 120 mid-run; final loss ${t.loss} vs CLI ${full.loss}`);
  assert.deepEqual(problems, []);
  await page.close();
});
