// The paper's theory on the page: the closed-form fields driving the panels (oracle samplers).
//
// Needs: www/pkg built (./build.sh wasm), GEONOISE_BIN = the native CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { browserSession, artifacts } from "./browser.mjs";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const { open, waitDone, exportJson } = browserSession();

function cli(args) {
  const bin = process.env.GEONOISE_BIN;
  assert.ok(bin, "GEONOISE_BIN must point at the native CLI");
  return JSON.parse(execFileSync(bin, args, { cwd: repo, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], maxBuffer: 1 << 28 }));
}

test("exact fields: the closed-form FM Blind and DDPM Blind fields sample in the panels, and match geonoise sample --oracle", async () => {
  const { page, problems } = await open("?fields=exact&d=8&n=200&steps=30&seed=3&speed=10&backend=cpu");
  await waitDone(page, ["fm-blind", "ddpm-blind"], 300000);
  assert.equal(await page.locator('[data-panel="fm-blind"] h2').textContent(), "FM Blind (exact)");
  assert.match(await page.locator('[data-panel="fm-blind"] .status').textContent(), /closed form over 128 data points, 48 noise levels/);
  for (const [id, model] of [["fm-blind", "fm"], ["ddpm-blind", "ddpm"]]) {
    const exported = await exportJson(page, id);
    const out = path.join(artifacts, `exact-${id}-d8-native.json`);
    cli(["sample", "--oracle", "--model", model, "--blind", "--dim", "8", "--data-points", "128", "--grid", "48", "--n", "200", "--steps", "30", "--seed", "3", "--sampler", "euler", "--out", out]);
    const native = JSON.parse(fs.readFileSync(out, "utf8"));
    const diffs = exported.samples.map((row, i) => Math.max(...row.map((v, j) => Math.abs(v - native.samples[i][j]) / (1 + Math.abs(native.samples[i][j])))));
    const sorted = [...diffs].sort((a, b) => a - b);
    console.log(`${id} (exact, D = 8): page vs CLI per-sample difference median ${sorted[100].toExponential(2)}, 90th ${sorted[180].toExponential(2)}, largest ${sorted[199].toExponential(2)}; ${diffs.filter((d) => d < 1e-3).length} of 200 within 1e-3; radial error ${exported.metrics.radial_error_median.toFixed(4)} vs ${native.metrics.radial_error_median.toFixed(4)}`);
    // Both run the same float32 field; they round differently (wasm against native SIMD), and a
    // blind field near the data multiplies those differences by its gain. FM Blind's gain stays
    // bounded; DDPM Blind's does not (the paper's point), so fewer of its samples stay together.
    const [share, median] = id === "fm-blind" ? [0.95, 1e-5] : [0.7, 1e-4];
    assert.ok(diffs.filter((d) => d < 1e-3).length >= share * 200, `${id}: fewer than ${share * 100} % of the samples agree to 1e-3`);
    assert.ok(sorted[100] < median, `${id}: median difference ${sorted[100]}`);
    if (id === "fm-blind") assert.ok(Math.abs(exported.metrics.radial_error_median - native.metrics.radial_error_median) < 1e-3);
  }
  await page.screenshot({ path: path.join(artifacts, "page-exact-d8.png"), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});
