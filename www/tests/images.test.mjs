// The Images tab: the shipped Fashion-MNIST and MNIST U-Nets (pretrained/images/) sampling in the page,
// on the CPU path and on WebGPU (SwiftShader), checked against `geonoise images sample` of the
// same checkpoint and seed. Runs are kept to a few images and steps: a U-Net step is costly.
//
// Needs: www/pkg, www/pkg-cpu and www/pretrained built (./build.sh wasm), GEONOISE_BIN = the
// native CLI, and Fashion-MNIST's test images (./build.sh data) for `images metrics`.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { browserSession, artifacts, cli, repo } from "./browser.mjs";

const { faults, open, waitDone } = browserSession();

/** The native samples of a shipped image model (`dir`: its folder, pretrained/images/mnist for
 * MNIST's): rows of 784. */
function nativeSamples(model, n, steps, extra = [], dir = "pretrained/images") {
  const file = path.join(artifacts, `images-${model}-native.json`);
  cli(["images", "sample", "--checkpoint", `${dir}/${model}.safetensors`, "--n", String(n), "--steps", String(steps), "--seed", "0", ...extra, "--out", file]);
  return JSON.parse(fs.readFileSync(file, "utf8")).samples;
}

/** Clicks a panel's export button and returns what the page made of it. */
async function exportOf(page, id, kind) {
  await page.evaluate(([id, kind]) => {
    window.geonoise.lastExport = null;
    document.querySelector(`[data-panel="${id}"] [data-x="${kind}"]`).click();
  }, [id, kind]);
  await page.waitForFunction(() => window.geonoise.lastExport, null, { timeout: 30000 });
  return page.evaluate(() => {
    const e = window.geonoise.lastExport;
    return { ...e, bytes: e.bytes instanceof Uint8Array ? Array.from(e.bytes) : e.bytes };
  });
}

function assertClose(page, native, tol, what) {
  assert.equal(page.length, native.length, `${what}: ${page.length} vs ${native.length} images`);
  let worst = 0;
  page.forEach((row, i) =>
    row.forEach((v, j) => {
      const err = Math.abs(v - native[i][j]) / (1 + Math.abs(native[i][j]));
      worst = Math.max(worst, err);
      assert.ok(err <= tol, `${what}: image ${i} pixel ${j}: page ${v} vs CLI ${native[i][j]}`);
    }),
  );
  return worst;
}

const panelText = (page, id) =>
  page.evaluate((id) => {
    const el = document.querySelector(`[data-panel="${id}"]`);
    const m = (k) => el.querySelector(`[data-m="${k}"]`).textContent;
    return { noise: m("noise"), confident: m("confident"), step: m("step"), div: m("div"), error: el.querySelector(".error").textContent };
  }, id);

test("Images tab, CPU: FM Blind and DDPM Blind sample to the end and match the CLI; exports, close-up and URL", async () => {
  const { page, problems } = await open("?mode=images&backend=cpu&images=4&isteps=6&speed=2");
  const ids = ["img-fm-blind", "img-ddpm-blind"];
  await waitDone(page, ids, 180000);
  assert.equal(await page.locator("#n").inputValue(), "4");
  assert.equal(await page.locator("#steps").inputValue(), "6");
  assert.equal(await page.locator("#n-label").textContent(), "images");
  assert.equal(await page.locator("#d").isHidden(), true);
  // The run visited steps 0, 2, 4, 6 and drew its numbers; the classifier gave its verdict.
  const steps = await page.evaluate(() => window.geonoise.panels.get("img-fm-blind").frames.map((f) => f.step));
  assert.deepEqual(steps, [0, 2, 4, 6]);
  for (const id of ids) {
    const t = await panelText(page, id);
    assert.equal(t.step, "6 / 6", JSON.stringify(t));
    assert.match(t.noise, /^\d+\.\d\d×$/, JSON.stringify(t));
    assert.match(t.confident, /^\d+%$/, JSON.stringify(t));
    assert.equal(t.error, "");
  }
  for (const [id, model] of [["img-fm-blind", "fm-blind"], ["img-ddpm-blind", "ddpm-blind"]]) {
    const e = await exportOf(page, id, "json");
    const doc = JSON.parse(e.text);
    assert.equal(doc.side, 28);
    // The tab opens with the ancestral chain, DDPM's own sampler (its noise is drawn on the host,
    // so the page's samples are the CLI's).
    assert.deepEqual(doc.sample, { n: 4, steps: 6, solver: "ancestral", time_grid: "default", seed: 0 });
    const worst = assertClose(doc.samples, nativeSamples(model, 4, 6, ["--sampler", "ancestral"]), 1e-3, id);
    console.log(`${id}: page (CPU) vs CLI, largest relative difference ${worst.toExponential(2)}`);
  }
  // The .npy export is a file the CLI's metric command reads.
  const npy = await exportOf(page, "img-ddpm-blind", "npy");
  const npyFile = path.join(artifacts, "images-ddpm-blind-page.npy");
  fs.writeFileSync(npyFile, Buffer.from(npy.bytes));
  const scored = cli(["images", "metrics", "--samples", npyFile]);
  assert.equal(scored.metrics?.n ?? scored.n, 4, JSON.stringify(scored).slice(0, 300));
  const png = await exportOf(page, "img-fm-blind", "png");
  assert.ok(png.bytes > 1000 && /\.png$/.test(png.file), JSON.stringify(png));
  // A click on an image: it large, with its strip of snapshots from the noise.
  const box = await page.locator('[data-panel="img-fm-blind"] canvas').boundingBox();
  await page.mouse.click(box.x + box.width * 0.75, box.y + box.height * 0.25);
  await page.waitForFunction(() => window.geonoise.imageDetail, null, { timeout: 10000 });
  const detail = await page.evaluate(() => window.geonoise.imageDetail);
  assert.equal(detail.index, 1);
  assert.deepEqual(detail.strip, [0, 2, 4, 6]);
  assert.match(detail.caption, /FM Blind, image 1 at step 6 of 6 .*the classifier reads it as /);
  assert.equal(await page.locator("#image-detail").isHidden(), false);
  // The sampler control writes the Images tab's own key; the toy's stays.
  await page.selectOption("#solver", "euler");
  await waitDone(page, ids, 180000);
  assert.match(page.url(), /isolver=euler/);
  assert.doesNotMatch(page.url(), /[?&]solver=/);
  const euler = JSON.parse((await exportOf(page, "img-fm-blind", "json")).text);
  assertClose(euler.samples, nativeSamples("fm-blind", 4, 6), 1e-3, "euler");
  await page.screenshot({ path: path.join(artifacts, "images-cpu.png"), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});

test("Images tab, WebGPU forced: the U-Nets run on SwiftShader and give the CLI's samples", async () => {
  const { page, problems } = await open("?mode=images&backend=webgpu&images=4&isteps=2&speed=1");
  await waitDone(page, ["img-fm-blind", "img-ddpm-blind"], 240000);
  assert.equal(await page.evaluate(() => window.geonoise.backend), "webgpu");
  for (const [id, model] of [["img-fm-blind", "fm-blind"], ["img-ddpm-blind", "ddpm-blind"]]) {
    const doc = JSON.parse((await exportOf(page, id, "json")).text);
    const worst = assertClose(doc.samples, nativeSamples(model, 4, 2, ["--sampler", "ancestral"]), 2e-3, `${id} (WebGPU)`);
    console.log(`${id}: page (WebGPU, SwiftShader) vs CLI, largest relative difference ${worst.toExponential(2)}`);
    assert.match((await panelText(page, id)).confident, /^\d+%$/);
  }
  assert.deepEqual(problems, []);
  await page.close();
});

test("Images tab, the paper's other blind models: the control adds EqM Blind and uEDM Blind beside FM and DDPM Blind, each the CLI's samples, and their table rows", async () => {
  const { page, problems } = await open("?mode=images&backend=cpu&images=4&isteps=3&speed=3");
  await page.waitForFunction(() => document.querySelectorAll(".image-panel").length === 2, null, { timeout: 60000 });
  assert.equal(await page.locator("#others").isHidden(), false);
  await page.check("#others");
  const ids = ["img-fm-blind", "img-ddpm-blind", "img-eqm-blind", "img-uedm-blind"];
  await waitDone(page, ids, 240000);
  assert.match(page.url(), /others=1/);
  const titles = await page.evaluate(() => [...document.querySelectorAll(".image-panel h2")].map((h) => h.textContent));
  assert.deepEqual(titles, ["FM Blind", "DDPM Blind", "EqM Blind", "uEDM Blind"]);
  for (const model of ["eqm-blind", "uedm-blind"]) {
    const doc = JSON.parse((await exportOf(page, `img-${model}`, "json")).text);
    assertClose(doc.samples, nativeSamples(model, 4, 3, ["--sampler", "ancestral"]), 1e-3, model);
    assert.match((await panelText(page, `img-${model}`)).confident, /^\d+%$/);
  }
  // The measured table (100 steps) lists them too.
  await page.fill("#steps", "100");
  await page.dispatchEvent("#steps", "change");
  await page.waitForFunction(() => document.querySelectorAll("#images-table tbody tr").length > 0, null, { timeout: 30000 });
  const rows = await page.evaluate(() => [...document.querySelectorAll("#images-table tbody tr td:first-child")].map((td) => td.textContent));
  assert.ok(rows.includes("EqM Blind") && rows.includes("uEDM Blind"), rows.join(", "));
  // The Pretrained tab has no such control.
  await page.click('.tabs button[data-mode="view"]');
  assert.equal(await page.locator("#others").isHidden(), true);
  assert.deepEqual(problems, []);
  await page.close();
});

test("Images tab, MNIST: the data choice samples the MNIST U-Nets (the CLI's samples), its classifier reads digits, its table; the other blind models are Fashion-MNIST's only", async () => {
  const { page, problems } = await open("?mode=images&backend=cpu&images=4&isteps=3&speed=3&others=1");
  await page.waitForFunction(() => document.querySelectorAll(".image-panel").length === 4, null, { timeout: 60000 });
  assert.equal(await page.locator("#idata").isHidden(), false);
  assert.equal(await page.locator("#idata").inputValue(), "fashion-mnist");
  await page.selectOption("#idata", "mnist");
  const ids = ["img-fm-blind", "img-ddpm-blind"];
  await waitDone(page, ids, 240000);
  assert.match(page.url(), /idata=mnist/);
  // EqM and uEDM Blind were trained on Fashion-MNIST only: their control goes, their panels too.
  assert.equal(await page.locator("#others").isHidden(), true);
  const titles = await page.evaluate(() => [...document.querySelectorAll(".image-panel h2")].map((h) => h.textContent));
  assert.deepEqual(titles, ["FM Blind", "DDPM Blind"]);
  for (const id of ids) {
    const model = id.slice(4);
    assert.match(await page.locator(`[data-panel="${id}"] .status`).textContent(), /28×28 MNIST/);
    const e = await exportOf(page, id, "json");
    assert.equal(e.file, `geonoise-${model}-mnist-seed0.json`);
    const doc = JSON.parse(e.text);
    assert.equal(doc.data, "mnist");
    assertClose(doc.samples, nativeSamples(model, 4, 3, ["--sampler", "ancestral"], "pretrained/images/mnist"), 1e-3, `${id} (MNIST)`);
    assert.match((await panelText(page, id)).confident, /^\d+%$/);
    // Not Fashion-MNIST's model: its samples differ from those.
    const fashion = nativeSamples(model, 4, 3, ["--sampler", "ancestral"]);
    assert.ok(doc.samples.some((row, i) => row.some((v, j) => Math.abs(v - fashion[i][j]) > 0.1)), `${id}: the MNIST samples equal Fashion-MNIST's`);
  }
  // The classifier is MNIST's: it names digits.
  const box = await page.locator('[data-panel="img-fm-blind"] canvas').boundingBox();
  await page.mouse.click(box.x + box.width * 0.25, box.y + box.height * 0.25);
  await page.waitForFunction(() => window.geonoise.imageDetail, null, { timeout: 10000 });
  assert.match((await page.evaluate(() => window.geonoise.imageDetail)).caption, /the classifier reads it as \d \(p = /);
  // The measured table (100 steps) is MNIST's.
  await page.fill("#steps", "100");
  await page.dispatchEvent("#steps", "change");
  await page.waitForFunction(() => document.querySelectorAll("#images-table tbody tr").length > 0, null, { timeout: 30000 });
  assert.match(await page.locator("#images-table").textContent(), /Measured on MNIST/);
  const shown = await page.evaluate(() => [...document.querySelectorAll("#images-table tbody tr td:first-child")].map((td) => td.textContent));
  assert.deepEqual(shown, ["real training images", "FM Blind", "DDPM Blind", "FM Cond", "DDPM Cond"]);
  const table = JSON.parse(fs.readFileSync(path.join(repo, "pretrained/images/mnist/table.json"), "utf8"));
  const fm = table.rows.find((r) => r.model === "fm-blind" && r.sample?.solver === "ancestral" && r.sample?.steps === 100);
  const cell = await page.evaluate(() => document.querySelectorAll("#images-table tbody tr")[1].children[2].textContent);
  assert.ok(cell.startsWith(fm.metrics.frechet.toFixed(1)), `${cell} vs ${fm.metrics.frechet}`);
  // Back to Fashion-MNIST: its table and the other blind models' control return.
  await page.selectOption("#idata", "fashion-mnist");
  await page.waitForFunction(() => /Measured on Fashion-MNIST/.test(document.querySelector("#images-table").textContent), null, { timeout: 30000 });
  assert.equal(await page.locator("#others").isHidden(), false);
  assert.equal((await page.$$(".image-panel")).length, 4);
  assert.deepEqual(problems, []);
  await page.close();
});

test("Images tab: a broken image checkpoint shows its error in its panel, the others run; the twins add the conditional models; a count out of range is clamped", async () => {
  faults.set("/pretrained/images/ddpm-blind.safetensors", "garbage");
  faults.set("/pretrained/images/classifier.safetensors", "404");
  try {
    const { page, problems } = await open("?mode=images&backend=cpu&images=3&isteps=2&speed=2&twins=1");
    assert.match(await page.locator("#notice").textContent(), /images=3 is outside 4\.\.64; using 4/);
    await waitDone(page, ["img-fm-blind", "img-fm-cond", "img-ddpm-cond"], 180000);
    await page.waitForFunction(() => document.querySelector('[data-panel="img-ddpm-blind"] .error').textContent, null, { timeout: 60000 });
    const broken = await panelText(page, "img-ddpm-blind");
    assert.match(broken.error, /ddpm-blind\.safetensors: .*(not a readable|safetensors)/i, broken.error);
    // Without the classifier the samples stand; the verdict says why it is missing.
    const fm = await panelText(page, "img-fm-blind");
    assert.equal(fm.error, "");
    assert.equal(fm.confident, "error");
    assert.match(await page.locator('[data-panel="img-fm-blind"] [data-m="confident"]').getAttribute("title"), /classifier\.safetensors: .*HTTP 404/);
    assert.equal((await page.$$(".image-panel")).length, 4);
    assert.equal((await page.$$(".image-panel.failed")).length, 1);
    assert.deepEqual(problems, []);
    await page.close();
  } finally {
    faults.clear();
  }
});
