// The paper's theory on the page: the closed-form fields driving the panels (oracle samplers).
//
// Needs: www/pkg built (./build.sh wasm), GEONOISE_BIN = the native CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { browserSession, artifacts, cli, repo } from "./browser.mjs";

const { open, waitDone, exportJson } = browserSession();

test("exact fields: the closed-form FM Blind and DDPM Blind fields sample in the panels, and match geonoise sample --oracle", async () => {
  const { page, problems } = await open("?fields=exact&d=8&n=200&steps=30&seed=3&speed=10&backend=cpu&solver=euler&grid=default");
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

/** Opens the Theory tab at `query` and waits for its first landscape. */
async function theoryAt(query) {
  const { page, problems } = await open(`?mode=theory&backend=cpu&${query}`);
  await page.waitForFunction(() => window.geonoise.theory, null, { timeout: 120000, polling: 200 });
  return { page, problems, theory: await page.evaluate(() => window.geonoise.theory) };
}

test("Theory tab: the marginal-energy landscape, and the posterior probe sharpening from D = 8 to D = 512", async () => {
  const summaries = [];
  for (const dim of [8, 512]) {
    const { page, problems, theory } = await theoryAt(`pmodel=fm&pdim=${dim}&ps=50`);
    assert.equal(theory.energy.length, 32 * 32);
    assert.ok(theory.energy.every(Number.isFinite), "the landscape is finite everywhere");
    const p = theory.probe;
    const mass = p.posterior.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(mass - 1) < 1e-4, `the posterior sums to ${mass}`);
    // The energy is lowest on the circles: the cell nearest a point of the outer circle is below
    // the cell at the centre.
    const cell = (x, y) => theory.energy[Math.floor(((2.6 - y) / 5.2) * 32) * 32 + Math.floor(((x + 2.6) / 5.2) * 32)];
    assert.ok(cell(4 / Math.sqrt(5), 0) < cell(0, 0), `E_marg on the outer circle ${cell(4 / Math.sqrt(5), 0)} vs the centre ${cell(0, 0)}`);
    // Far from the data, grad E_marg points away from it (descent leads in), at every corner.
    for (const [r, c] of [[0, 0], [0, 31], [31, 0], [31, 31]]) {
      const i = r * 32 + c;
      const [x, y] = [-2.6 + ((c + 0.5) / 32) * 5.2, 2.6 - ((r + 0.5) / 32) * 5.2];
      assert.ok(theory.grad2[2 * i] * x + theory.grad2[2 * i + 1] * y > 0, `grad E_marg at (${x}, ${y}) points inward`);
      assert.ok(theory.pre2[2 * i] * theory.grad2[2 * i] >= 0, "the preconditioned field keeps the gradient's direction (gain > 0)");
    }
    // Table 2 live: the noise target's drift error grows as t -> 0, the velocity target's does not.
    const stab = await page.evaluate(() => window.geonoise.stability);
    const curve = (model) => stab.find((c) => c.model === model);
    const [fm, ddpm] = [curve("fm"), curve("ddpm")];
    console.log(`D = ${dim} drift error at the smallest / middle / largest t: ${stab.map((c) => `${c.model} ${[0, 8, 15].map((k) => c.drift[k].toPrecision(2)).join(" / ")}`).join("; ")}`);
    assert.equal(stab.length, 3);
    assert.ok(ddpm.drift[0] > 1.3 * ddpm.drift[8], `DDPM's drift error grows as t -> 0: ${ddpm.drift[0]} vs ${ddpm.drift[8]}`);
    assert.ok(fm.drift[0] < 2 * fm.drift[8], `FM's stays bounded: ${fm.drift[0]} vs ${fm.drift[8]}`);
    assert.ok(ddpm.drift[0] > 3 * fm.drift[0], "at the smallest t the noise target's error is the larger");
    // The shipped FM Blind checkpoint against the exact blind field, on a 16 x 16 grid of the
    // plane moved 1 off it: points on the plane itself (u_perp = 0) are ones the forward process
    // never makes, where the exact field is that of t -> 0 and no network was trained.
    await page.evaluate(() => (window.geonoise.theory = null));
    await page.locator("#poff").fill("1");
    await page.waitForFunction(() => window.geonoise.theory, null, { timeout: 120000, polling: 100 });
    const cmp = await page.evaluate(() => window.geonoise.compare);
    assert.equal(cmp.diff.length, 16 * 16);
    assert.ok(cmp.diff.every(Number.isFinite));
    const med = [...cmp.diff].sort((a, b) => a - b)[128];
    console.log(`D = ${dim}: learned FM Blind vs exact, relative difference median ${med.toFixed(3)}, largest ${Math.max(...cmp.diff).toFixed(3)}`);
    assert.ok(med < 0.5, `the learned field is close to the exact one over most of the plane (median ${med})`);
    summaries.push({ dim, ...p });
    console.log(`D = ${dim}: probe drawn at t = ${p.t_true.toPrecision(3)}: E[t|u] = ${p.t_mean.toPrecision(3)}, sd ${p.t_std.toPrecision(3)}; geometric ${p.t_geo.toPrecision(3)}; E_marg from ${Math.min(...theory.energy).toFixed(1)} to ${Math.max(...theory.energy).toFixed(1)}`);
    await page.screenshot({ path: path.join(artifacts, `page-theory-d${dim}.png`), fullPage: true });
    assert.deepEqual(problems, []);
    await page.close();
  }
  const [low, high] = summaries;
  // The posterior sharpens with D, and both estimates find the true noise level at D = 512.
  assert.ok(high.t_std / high.t_mean < 0.5 * (low.t_std / low.t_mean), `relative spread ${low.t_std / low.t_mean} at D = 8, ${high.t_std / high.t_mean} at D = 512`);
  assert.ok(Math.abs(Math.log(high.t_mean / high.t_true)) < 0.1, `E[t|u] = ${high.t_mean} for t = ${high.t_true}`);
  assert.ok(Math.abs(Math.log(high.t_geo / high.t_true)) < 0.1, `geometric ${high.t_geo} for t = ${high.t_true}`);
});

test("Theory tab: a click on the landscape probes that point; the sliders update the probe", async () => {
  const { page, problems, theory } = await theoryAt("pmodel=ddpm&pdim=32&poff=0.5&ps=20");
  const before = theory.probe.t_true;
  // Click the centre of the landscape: the probe moves there and has no true t.
  const box = await page.locator("#energy").boundingBox();
  await page.evaluate(() => (window.geonoise.theory = null));
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForFunction(() => window.geonoise.theory, null, { timeout: 60000, polling: 100 });
  const clicked = await page.evaluate(() => window.geonoise.theory.probe);
  assert.equal(clicked.t_true, undefined);
  assert.ok(Math.hypot(clicked.xy[0], clicked.xy[1]) < 0.2, `probe at ${clicked.xy}`);
  assert.match(await page.locator("#probe-caption").textContent(), /The clicked point/);
  // The noise-level slider: a point drawn at a higher t.
  await page.evaluate(() => (window.geonoise.theory = null));
  await page.locator("#ps").fill("80");
  await page.waitForFunction(() => window.geonoise.theory, null, { timeout: 60000, polling: 100 });
  const after = await page.evaluate(() => window.geonoise.theory.probe);
  assert.ok(after.t_true > before, `t ${before} -> ${after.t_true}`);
  assert.match(page.url(), /ps=80/);
  assert.deepEqual(problems, []);
  await page.close();
});

test("a click on a sampling panel shows p(t|u) at the nearest sample, with the sampler's t at that step", async () => {
  const { page, problems } = await open("?d=32&n=200&steps=20&speed=10&backend=cpu&seed=1&solver=euler&grid=default");
  await waitDone(page, ["fm-blind", "ddpm-blind"], 120000);
  const box = await page.locator('[data-panel="fm-blind"] canvas').boundingBox();
  // On the outer circle, where samples settle.
  await page.mouse.click(box.x + box.width * (0.5 + 4 / Math.sqrt(5) / 5.2), box.y + box.height / 2);
  await page.waitForFunction(() => window.geonoise.panelProbe, null, { timeout: 60000, polling: 100 });
  const probe = await page.evaluate(() => window.geonoise.panelProbe);
  assert.equal(probe.panel, "fm-blind");
  assert.equal(probe.step, 20);
  const mass = probe.posterior.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(mass - 1) < 1e-4, `posterior mass ${mass}`);
  assert.ok(Number.isFinite(probe.t_mean) && Number.isFinite(probe.t_geo) && probe.t_true > 0);
  assert.match(probe.caption, /FM Blind, sample \d+ at step 20, where the sampler is at t = /);
  console.log(`FM Blind at D = 32, step 20: sampler t ${probe.t_true.toPrecision(3)}, E[t|u] ${probe.t_mean.toPrecision(3)}, geometric ${probe.t_geo.toPrecision(3)}`);
  await page.screenshot({ path: path.join(artifacts, "page-panel-probe.png"), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});

test("Theory tab on WebGPU (SwiftShader): the landscape comes from the WGSL kernel and matches the CPU's", async () => {
  const at = "pmodel=ddpm&pdim=32&ps=30";
  const cpu = await theoryAt(at);
  assert.equal(cpu.theory.path, "tensor");
  await cpu.page.close();
  const { page, problems } = await open(`?mode=theory&backend=webgpu&${at}`);
  await page.waitForFunction(() => window.geonoise.theory, null, { timeout: 300000, polling: 500 });
  const gpu = await page.evaluate(() => window.geonoise.theory);
  assert.equal(await page.evaluate(() => window.geonoise.backend), "webgpu");
  assert.equal(gpu.path, "kernel");
  const rel = (a, b) => Math.max(...a.map((v, i) => Math.abs(v - b[i]))) / Math.max(...b.map(Math.abs));
  const [e, g, p] = [rel(gpu.energy, cpu.theory.energy), rel(gpu.grad2, cpu.theory.grad2), rel(gpu.pre2, cpu.theory.pre2)];
  console.log(`landscape, kernel (SwiftShader) vs tensor path (CPU), DDPM D = 32: energy ${e.toExponential(1)}, grad ${g.toExponential(1)}, preconditioned ${p.toExponential(1)}`);
  for (const [name, v] of [["energy", e], ["grad E_marg", g], ["gain x grad", p]]) assert.ok(v < 1e-4, `${name} differs by ${v}`);
  await page.screenshot({ path: path.join(artifacts, "page-theory-webgpu.png"), fullPage: true });
  assert.deepEqual(problems.filter((x) => !/GPU|WebGPU/i.test(x)), []);
  await page.close();
});

test("Theory tab: the concentration view's shells overlap at D = 2 and part at D = 512, and the posterior over t narrows", async () => {
  const { page, problems } = await theoryAt("pmodel=fm&pdim=2");
  await page.waitForFunction(() => window.geonoise.concentration?.dim === 2, null, { timeout: 60000 });
  const low = await page.evaluate(() => window.geonoise.concentration);
  // Drag D up: the view follows.
  await page.fill("#pdim", "512");
  await page.dispatchEvent("#pdim", "change");
  await page.waitForFunction(() => window.geonoise.concentration?.dim === 512, null, { timeout: 120000 });
  const high = await page.evaluate(() => window.geonoise.concentration);
  assert.equal(low.levels.length, 5);
  // At D = 512 the lowest two levels can still touch: there the data's own norm (|x|^2 / D) varies
  // more than the noise adds (b^2).
  assert.ok(low.parted === 0 && high.parted >= 3, `shells apart: D = 2 ${low.parted}, D = 512 ${high.parted}`);
  low.t_std.forEach((s, k) => assert.ok(high.t_std[k] < s, `level ${k}: the spread of t at D = 512 ${high.t_std[k]} vs D = 2 ${s}`));
  assert.match(high.caption, new RegExp(`${high.parted} of 4 neighbouring shells are apart`));
  assert.match(await page.locator("#concentration-caption").textContent(), /Concentration \(App\. C\) at D = 512/);
  console.log(`# concentration: D = 2 ${low.parted}/4 apart, spread of t ${low.t_std.map((s) => s.toFixed(3)).join(" ")}; D = 512 ${high.parted}/4, ${high.t_std.map((s) => s.toFixed(3)).join(" ")}`);
  await page.locator("#concentration").screenshot({ path: path.join(artifacts, "theory-concentration-d512.png") });
  assert.deepEqual(problems, []);
  await page.close();
});
