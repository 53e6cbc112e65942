// The page in a real browser: Debian's Chromium, headless, driven by playwright-core.
// WebGPU runs on SwiftShader there (a correctness target, not a speed one), so WebGPU runs are
// kept to a few steps; the CPU path runs full short samplings and is checked against the CLI.
//
// Needs: www/pkg and www/pretrained built (./build.sh wasm), GEONOISE_BIN = the native CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { browserSession, artifacts, cli, repo, safetensors } from "./browser.mjs";


const { faults, open, waitDone, exportJson } = browserSession();

function close(a, b, what) {
  const tol = 1e-3 + 1e-3 * Math.abs(b);
  assert.ok(Math.abs(a - b) <= tol, `${what}: page ${a} vs CLI ${b}`);
}

test("the time grid from the URL and the control sets the noise levels each panel's run visits", async () => {
  const { page, problems } = await open("?backend=cpu&d=8&n=16&steps=5&speed=1&grid=rho7");
  await waitDone(page, ["fm-blind", "ddpm-blind"], 120000);
  // EDM's spacing over FM's range [1e-3, 1]: equal steps in t^(1/7).
  const rho7 = [0, 1, 2, 3, 4, 5].map((i) => (1 + (i / 5) * (0.001 ** (1 / 7) - 1)) ** 7);
  const ts = await page.evaluate(() => window.geonoise.panels.get("fm-blind").frames.map((f) => f.t));
  assert.equal(ts.length, 6, JSON.stringify(ts));
  ts.forEach((t, i) => assert.ok(Math.abs(t - rho7[i]) < 1e-9, `level ${i}: ${t} vs ${rho7[i]}`));
  assert.equal(await page.locator("#grid").inputValue(), "rho7");
  // The control restarts the runs on the new grid and the URL follows.
  await page.selectOption("#grid", "uniform");
  await page.waitForFunction(() => window.geonoise.state.grid === "uniform" && window.geonoise.panels.get("fm-blind")?.done && window.geonoise.panels.get("fm-blind").frames.length === 6, null, { timeout: 120000, polling: 100 });
  const uniform = await page.evaluate(() => window.geonoise.panels.get("fm-blind").frames.map((f) => f.t));
  uniform.forEach((t, i) => assert.ok(Math.abs(t - (1 - (i / 5) * 0.999)) < 1e-9, `uniform level ${i}: ${t}`));
  assert.match(page.url(), /grid=uniform/);
  assert.deepEqual(problems, []);
  await page.close();
});

test("the reverse SDE from the URL: FM Blind gives the CLI's samples (the same noise on both sides); uEDM trains on the page", async () => {
  const { page, problems } = await open("?backend=cpu&d=8&n=60&steps=20&speed=10&solver=sde&grid=log-snr");
  await waitDone(page, ["fm-blind", "ddpm-blind"], 120000);
  assert.equal(await page.locator("#solver").inputValue(), "sde");
  const exported = await exportJson(page, "fm-blind");
  const nativeFile = path.join(artifacts, "fm-blind-d8-sde-native.json");
  cli(["sample", "--checkpoint", "pretrained/fm-blind-d8.safetensors", "--n", "60", "--steps", "20", "--seed", "0", "--sampler", "sde", "--time-grid", "log-snr", "--out", nativeFile]);
  const native = JSON.parse(fs.readFileSync(nativeFile, "utf8")).samples;
  exported.samples.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - native[i][j]) <= 1e-3 * (1 + Math.abs(native[i][j])), `sample ${i}[${j}]: page ${v} vs CLI ${native[i][j]}`)));
  // The Euler ODE from the same noise lands elsewhere: the SDE's own noise was drawn.
  await page.selectOption("#solver", "euler");
  await waitDone(page, ["fm-blind"], 120000);
  assert.match(page.url(), /solver=euler/);
  assert.doesNotMatch(page.url(), /grid=/); // log-SNR is the page's default
  const ode = await exportJson(page, "fm-blind");
  assert.ok(ode.samples.some((row, i) => Math.abs(row[0] - native[i][0]) > 1e-2), "the ODE's samples differ from the SDE's");
  // uEDM, blind and conditional, in the Train tab.
  await page.goto(page.url().replace(/\?.*$/, "?mode=train&backend=cpu&a=uedm-blind&b=uedm-cond&tdim=8&width=32&depth=1&tsteps=60&every=30&n=50&steps=10"));
  await page.waitForFunction(() => window.geonoise.backend === "cpu", null, { timeout: 60000 });
  assert.deepEqual(await page.evaluate(() => [...document.querySelectorAll(".panel h2")].map((e) => e.textContent)), ["uEDM Blind", "uEDM Cond"]);
  await page.click("#train-start");
  await page.waitForFunction(() => [...window.geonoise.panels.values()].every((p) => p.train?.finished), null, { timeout: 120000, polling: 200 });
  await waitDone(page, ["train-a", "train-b"], 120000);
  assert.deepEqual(problems, []);
  await page.close();
});

test("the regimes table: the measured numbers for the page's sampler, the opening sampler stated, a switch to the plain ODE and back", async () => {
  const results = JSON.parse(fs.readFileSync(path.join(repo, "pretrained/regimes.json"), "utf8"));
  const { page, problems } = await open("?backend=cpu&d=32&n=50&speed=10");
  await page.waitForFunction(() => window.geonoise.regimes && document.querySelector("table.regimes"), null, { timeout: 60000 });
  const s = await page.evaluate(() => window.geonoise.state);
  assert.deepEqual([s.solver, s.grid, s.steps], ["ancestral", "log-snr", 200]);
  assert.match(await page.locator("#sampler-line").textContent(), /ancestral sampler, 200 steps uniform in log-SNR: of the settings measured, the one under which/);
  assert.ok(await page.locator("#use-faithful").isHidden());
  // Each shown cell is the file's cell for this sampler, D and model.
  const cellText = (row, d) => page.evaluate(([row, d]) => {
    const tr = document.querySelector(`tr[data-row="${row}"]`);
    const col = [...document.querySelectorAll("table.regimes thead th")].findIndex((th) => th.textContent === `D = ${d}`);
    return tr && col > 0 ? tr.children[col].textContent : null;
  }, [row, d]);
  // With several seeds measured, a cell shows the medians over them.
  const median = (v) => {
    const s = [...v].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const want = (solver, grid, steps, model, blind, source, d) => {
    const found = results.cells.filter((c) => c.setting.solver === solver && c.setting.time_grid === grid && c.setting.steps === steps && c.model === model && c.blind === blind && c.source === source && c.dim === d);
    return found.length ? `${Math.round(100 * median(found.map((c) => c.metrics.clean_fraction)))}% ${median(found.map((c) => c.metrics.radial_error_p90)).toFixed(2)}` : null;
  };
  for (const [model, blind, source] of [["fm", true, "trained"], ["ddpm", true, "exact"]]) {
    const text = want("ancestral", "log-snr", 200, model, blind, source, 32);
    assert.ok(text, `regimes.json has ${model} ${blind} ${source} at D = 32 for the opening sampler`);
    assert.equal(await cellText(`${model}-${blind ? "blind" : "cond"}-${source}`, 32), text);
  }
  assert.equal(await page.locator("table.regimes thead th.here").textContent(), "D = 32");
  // The switch: the plain ODE, its own measured table, the runs restarted with it, and back.
  await page.click("#use-plain");
  await page.waitForFunction(() => window.geonoise.state.solver === "euler" && /Euler ODE, 100 steps/.test(document.querySelector("table.regimes caption").textContent), null, { timeout: 30000 });
  assert.equal(await cellText("fm-blind-trained", 32), want("euler", "default", 100, "fm", true, "trained", 32));
  assert.match(page.url(), /solver=euler/);
  await waitDone(page, ["fm-blind", "ddpm-blind"], 120000);
  assert.equal(await page.evaluate(() => window.geonoise.panels.get("fm-blind").frames.at(-1).step), 100);
  await page.click("#use-faithful");
  await page.waitForFunction(() => window.geonoise.state.solver === "ancestral", null, { timeout: 30000 });
  assert.doesNotMatch(page.url(), /solver=/);
  // Settings that were not measured say so, and list what was.
  await page.selectOption("#solver", "heun");
  assert.match(await page.locator("#regimes-table").textContent(), /were not measured\. Measured: .*Euler ODE, 100 steps/);
  assert.deepEqual(problems, []);
  await page.close();
});

test("DDIM from the URL: both panels sample to the end with the CLI's numbers (FM Blind sample by sample)", async () => {
  const { page, problems } = await open("?backend=cpu&d=8&n=200&steps=25&speed=10&solver=ddim&grid=default");
  await page.waitForFunction(() => window.geonoise.backend === "cpu", null, { timeout: 60000 });
  assert.equal(await page.locator("#solver").inputValue(), "ddim");
  await waitDone(page, ["fm-blind", "ddpm-blind"], 120000);
  for (const id of ["fm-blind", "ddpm-blind"]) {
    const exported = await exportJson(page, id);
    const nativeFile = path.join(artifacts, `${id}-d8-ddim-native.json`);
    const native = cli(["sample", "--checkpoint", `pretrained/${id}-d8.safetensors`, "--n", "200", "--steps", "25", "--sampler", "ddim", "--seed", "0", "--out", nativeFile]);
    assert.equal(native.sample.solver, "ddim");
    if (id === "fm-blind") {
      const nativeSamples = JSON.parse(fs.readFileSync(nativeFile, "utf8")).samples;
      const worst = Math.max(...exported.samples.flatMap((row, i) => row.map((v, j) => Math.abs(v - nativeSamples[i][j]) / (1 + Math.abs(nativeSamples[i][j])))));
      assert.ok(worst < 1e-3, `FM Blind under DDIM: the page and the CLI differ by ${worst}`);
    }
    close(exported.metrics.radial_error_median, native.metrics.radial_error_median, `${id} radial error median under DDIM`);
  }
  assert.match(page.url(), /solver=ddim/);
  assert.deepEqual(problems, []);
  await page.close();
});

test("CPU path: FM Blind and DDPM Blind at D=128 sample fully and match the native CLI", async () => {
  const { page, problems } = await open("?backend=cpu&d=128&n=300&steps=40&speed=10&solver=euler&grid=default");
  await page.waitForFunction(() => window.geonoise.backend === "cpu", null, { timeout: 60000 });
  await waitDone(page, ["fm-blind", "ddpm-blind"], 240000);
  for (const id of ["fm-blind", "ddpm-blind"]) {
    const exported = await exportJson(page, id);
    assert.equal(exported.dim, 128);
    assert.equal(exported.samples.length, 300);
    const file = `pretrained/${id}-d128.safetensors`;
    const nativeFile = path.join(artifacts, `${id}-d128-native.json`);
    const native = cli(["sample", "--checkpoint", file, "--n", "300", "--steps", "40", "--seed", "0", "--out", nativeFile]);
    // The same engine on both sides: sample by sample the page gives the CLI's numbers. A blind
    // DDPM trajectory that is blowing up amplifies rounding differences (wasm and native sum in
    // other orders), so a few such samples may part ways; medians and fractions stay put, means
    // move a little.
    const nativeSamples = JSON.parse(fs.readFileSync(nativeFile, "utf8")).samples;
    const same = (i) => exported.samples[i].every((v, j) => Math.abs(v - nativeSamples[i][j]) <= 1e-3 * (1 + Math.abs(nativeSamples[i][j])));
    const settled = nativeSamples.map((row, i) => i).filter((i) => nativeSamples[i].every((v) => v !== null && Math.abs(v) < 4));
    const agree = settled.filter(same).length;
    assert.ok(settled.length >= 0.8 * 300, `${id}: only ${settled.length} of 300 CLI samples within |u_i| < 4`);
    // FM Blind: every sample. DDPM Blind: its gain near the data grows without bound (the paper's
    // point), so rounding differences grow into visible ones on some trajectories.
    const share = id === "fm-blind" ? 1 : 0.9;
    assert.ok(agree >= share * settled.length, `${id}: only ${agree} of the ${settled.length} settled samples agree with the CLI's`);
    close(exported.metrics.radial_error_median, native.metrics.radial_error_median, `${id} radial_error_median`);
    // The fractions: each sample that parts ways moves one by at most one sample's share of the
    // samples it counts (the inner fraction counts those that did not diverge). For FM Blind none
    // does, so they agree to 1e-3.
    const parted = nativeSamples.filter((_, i) => !same(i)).length;
    const counted = 300 * (1 - Math.max(exported.metrics.diverged_fraction, native.metrics.diverged_fraction));
    for (const k of ["inner_fraction", "diverged_fraction"]) {
      const [a, b] = [exported.metrics[k], native.metrics[k]];
      assert.ok(Math.abs(a - b) <= 1e-3 + parted / counted, `${id} ${k}: page ${a} vs CLI ${b} (${parted} samples part ways)`);
    }
    // The scatter metrics: exact for FM Blind; for DDPM Blind within the 10 % of samples that may
    // differ (above), each moving a share by 1/300.
    for (const k of ["clean_fraction", "radial_error_p90", "off_manifold_median"]) {
      const [a, b] = [exported.metrics[k], native.metrics[k]];
      const tol = id === "fm-blind" ? 1e-3 + 1e-3 * Math.abs(b) : 0.1 * Math.abs(b) + 0.01;
      assert.ok(Number.isFinite(a) && Math.abs(a - b) <= tol, `${id} ${k}: page ${a} vs CLI ${b}`);
    }
    for (const k of ["radial_error_mean", "off_manifold_mean"]) {
      const [a, b] = [exported.metrics[k], native.metrics[k]];
      assert.ok(Math.abs(a - b) <= 0.02 * Math.abs(b) + 1e-3, `${id} ${k}: page ${a} vs CLI ${b}`);
    }
    console.log(`# ${id} D=128: ${agree} of the ${settled.length} settled samples (|u_i| < 4; ${nativeSamples.filter((_, i) => same(i)).length} of all 300) agree with the CLI's to 1e-3`);
    // The exported file is the CLI's samples format: the CLI's metrics command reads it.
    const saved = path.join(artifacts, `${id}-d128.json`);
    fs.writeFileSync(saved, JSON.stringify(exported));
    const again = cli(["metrics", "--samples", saved]);
    close(again.radial_error_median, native.metrics.radial_error_median, `${id} metrics of the exported file`);
  }
  await page.screenshot({ path: path.join(artifacts, "page-cpu-d128.png"), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});

test("WebGPU forced: initialises on SwiftShader and streams a few steps in both panels", async () => {
  const { page, problems } = await open("?backend=webgpu&d=8&n=64&steps=6&speed=1");
  await page.waitForFunction(() => window.geonoise.backend !== null, null, { timeout: 120000 });
  assert.equal(await page.evaluate(() => window.geonoise.backend), "webgpu", await page.locator("#backend-reason").textContent());
  assert.equal(await page.locator("#backend").textContent(), "WebGPU");
  await page.waitForFunction(() => ["fm-blind", "ddpm-blind"].every((id) => (window.geonoise.panels.get(id)?.frames.length || 0) >= 3), null, { timeout: 240000, polling: 500 });
  const steps = await page.evaluate(() => ["fm-blind", "ddpm-blind"].map((id) => window.geonoise.panels.get(id).frames.at(-1).step));
  assert.ok(steps.every((s) => s >= 2), `steps reached: ${steps}`);
  await page.screenshot({ path: path.join(artifacts, "page-webgpu-d8.png"), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});

test("a broken checkpoint shows its error in its panel and the other panel still runs", async () => {
  faults.set("/pretrained/ddpm-blind-d32.safetensors", "garbage");
  faults.set("/pretrained/fm-cond-d32.safetensors", "404");
  try {
    const { page, problems } = await open("?backend=cpu&d=32&n=100&steps=10&speed=10&twins=1");
    await waitDone(page, ["fm-blind", "ddpm-cond"], 120000);
    const err = (id) => page.locator(`[data-panel="${id}"] .error`).textContent();
    await page.waitForFunction(() => document.querySelectorAll(".panel.failed").length === 2, null, { timeout: 60000 });
    assert.match(await err("ddpm-blind"), /not a readable checkpoint/);
    assert.match(await err("fm-cond"), /HTTP 404/);
    assert.equal(await page.locator('[data-panel="fm-blind"] .error').isHidden(), true);
    await page.screenshot({ path: path.join(artifacts, "page-broken-checkpoint.png"), fullPage: true });
    assert.deepEqual(problems, []);
    await page.close();
  } finally {
    faults.clear();
  }
});

test("out-of-range URL parameters are clamped with a message", async () => {
  const { page, problems } = await open("?backend=cpu&d=7&n=1e9&steps=-3&seed=abc&speed=2");
  await page.waitForFunction(() => window.geonoise.backend === "cpu", null, { timeout: 60000 });
  const notice = await page.locator("#notice").textContent();
  assert.match(notice, /D=7 has no pretrained models/);
  assert.match(notice, /n=1e9 is outside/);
  const state = await page.evaluate(() => window.geonoise.state);
  assert.equal(state.d, 32);
  assert.equal(state.n, 5000);
  assert.equal(state.steps, 1);
  assert.equal(state.seed, 0);
  assert.deepEqual(problems, []);
  await page.close();
});

/** Every value of two sample sets (rows of D) agrees to float32 accuracy. */
function sameSamples(page, native, what) {
  assert.equal(page.length, native.length, `${what}: sample count`);
  let worst = 0;
  page.forEach((row, i) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - native[i][j]) / (1 + Math.abs(native[i][j]))))));
  assert.ok(worst < 1e-3, `${what}: page and CLI samples differ by up to ${worst}`);
  return worst;
}

const trained = (page, ids) => page.waitForFunction((ids) => ids.every((id) => window.geonoise.panels.get(id)?.train?.finished), ids, { timeout: 600000, polling: 500 });

test("Train tab, CPU: FM Blind and DDPM Blind at D=8 learn; the downloaded checkpoint samples the same natively and imports back", async () => {
  const { page, problems } = await open("?mode=train&backend=cpu&tdim=8&tsteps=400&every=200&width=64&depth=2&n=200&steps=20&seed=3&solver=euler&grid=default");
  await page.waitForFunction(() => window.geonoise.backend === "cpu" && window.geonoise.panels.size === 2, null, { timeout: 60000 });
  await page.click("#train-start");
  await trained(page, ["train-a", "train-b"]);
  await waitDone(page, ["train-a", "train-b"], 120000); // then both sample with the panel settings
  for (const id of ["train-a", "train-b"]) {
    const h = await page.evaluate((id) => window.geonoise.panels.get(id).train.history, id);
    assert.equal(h.at(-1)[0], 400, `${id} trained every step`);
    const mean = (xs) => xs.reduce((a, [, l]) => a + l, 0) / xs.length;
    const [first, last] = [mean(h.slice(0, 3)), mean(h.slice(-3))];
    assert.ok(h.every(([, l]) => Number.isFinite(l)), `${id}: a loss was not finite`);
    assert.ok(last < 0.8 * first, `${id}: loss did not fall (${first} -> ${last})`);
    console.log(`# ${id}: loss ${first.toFixed(3)} (first 3 reads) -> ${last.toFixed(3)} (last 3 reads)`);
  }
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-panel="train-a"] [data-t="download"]')]);
  assert.equal(download.suggestedFilename(), "geonoise-fm-blind-d8-400steps.safetensors");
  const file = path.join(artifacts, download.suggestedFilename());
  await download.saveAs(file);
  const exported = await exportJson(page, "train-a");
  const out = path.join(artifacts, "trained-fm-blind-d8-native.json");
  const native = cli(["sample", "--checkpoint", file, "--n", "200", "--steps", "20", "--seed", "3", "--sampler", "euler", "--out", out]);
  const worst = sameSamples(exported.samples, JSON.parse(fs.readFileSync(out, "utf8")).samples, "trained FM Blind");
  close(exported.metrics.radial_error_median, native.metrics.radial_error_median, "trained FM Blind radial error");
  console.log(`# trained in the page, sampled natively: largest relative difference ${worst.toExponential(2)}`);
  await page.screenshot({ path: path.join(artifacts, "page-train-cpu-d8.png"), fullPage: true });

  // The file imports back into the other panel and samples there.
  await page.setInputFiles('[data-panel="train-b"] input[type="file"]', file);
  await page.waitForFunction(() => /imported geonoise-fm-blind-d8/.test(document.querySelector('[data-panel="train-b"] .training').textContent), null, { timeout: 60000 });
  await waitDone(page, ["train-b"], 120000);
  const again = await exportJson(page, "train-b");
  sameSamples(again.samples, exported.samples, "imported checkpoint");
  assert.deepEqual(problems, []);
  await page.close();
});

test("Train tab, WebGPU: a handful of steps on SwiftShader give finite losses, and the weights read back into a checkpoint", async () => {
  const { page, problems } = await open("?mode=train&backend=webgpu&tdim=8&tsteps=6&every=3&width=32&depth=1&batch=64&n=32&steps=4");
  await page.waitForFunction(() => window.geonoise.backend !== null && window.geonoise.panels.size === 2, null, { timeout: 120000 });
  assert.equal(await page.evaluate(() => window.geonoise.backend), "webgpu", await page.locator("#backend-reason").textContent());
  await page.click("#train-start");
  await trained(page, ["train-a", "train-b"]);
  for (const id of ["train-a", "train-b"]) {
    const h = await page.evaluate((id) => window.geonoise.panels.get(id).train.history, id);
    assert.equal(h.at(-1)[0], 6);
    assert.ok(h.length >= 2 && h.every(([, l]) => Number.isFinite(l) && l > 0), `${id} losses: ${JSON.stringify(h)}`);
  }
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-panel="train-b"] [data-t="download"]')]);
  const file = path.join(artifacts, `webgpu-${download.suggestedFilename()}`);
  await download.saveAs(file);
  const native = cli(["sample", "--checkpoint", file, "--n", "16", "--steps", "2", "--out", "/dev/null"]);
  assert.equal(native.metrics.n, 16);
  await page.screenshot({ path: path.join(artifacts, "page-train-webgpu-d8.png"), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});

test("Train tab: pause holds, resume goes on; a NaN stops its run with a message and keeps the last good weights", async () => {
  const { page, problems } = await open("?mode=train&backend=cpu&tdim=8&tsteps=600&every=100&width=32&depth=1&n=100&steps=10");
  await page.waitForFunction(() => window.geonoise.backend === "cpu" && window.geonoise.panels.size === 2, null, { timeout: 60000 });
  await page.click("#train-start");
  const stepOf = (id) => page.evaluate((id) => window.geonoise.panels.get(id).train.step, id);
  await page.waitForFunction(() => window.geonoise.panels.get("train-a").train.step >= 50, null, { timeout: 60000, polling: 100 });
  await page.click("#train-pause");
  assert.equal(await page.locator("#train-pause").textContent(), "Resume");
  await page.waitForTimeout(500); // a chunk in flight lands
  const held = await stepOf("train-a");
  await page.waitForTimeout(1000);
  assert.equal(await stepOf("train-a"), held, "paused training must not step");
  await page.click("#train-pause");
  await page.waitForFunction((held) => window.geonoise.panels.get("train-a").train.step > held + 20, held, { timeout: 60000, polling: 100 });

  await page.evaluate(() => window.geonoise.injectNan("train-a"));
  await trained(page, ["train-a"]);
  const error = await page.locator('[data-panel="train-a"] .error').textContent();
  assert.match(error, /The loss became NaN at step \d+; training stopped\. The weights of step \d+ \(the last finite loss read\) are kept/);
  const kept = Number(error.match(/weights of step (\d+)/)[1]);
  assert.ok(kept >= 50, `kept weights of step ${kept}`);
  // The kept weights sample cleanly, download, and load natively; the other run carries on to its end.
  await waitDone(page, ["train-a"], 120000);
  const exported = await exportJson(page, "train-a");
  assert.equal(exported.metrics.diverged, 0, "the restored weights are finite");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-panel="train-a"] [data-t="download"]')]);
  assert.equal(download.suggestedFilename(), `geonoise-fm-blind-d8-${kept}steps.safetensors`);
  const file = path.join(artifacts, `nan-${download.suggestedFilename()}`);
  await download.saveAs(file);
  assert.equal(cli(["sample", "--checkpoint", file, "--n", "50", "--steps", "5", "--out", "/dev/null"]).metrics.diverged, 0);
  await trained(page, ["train-b"]);
  assert.equal(await stepOf("train-b"), 600);
  assert.equal(await page.locator('[data-panel="train-b"] .error').isHidden(), true);
  await page.screenshot({ path: path.join(artifacts, "page-train-nan.png"), fullPage: true });

  // Trained weights not downloaded (train-b): changing D asks first; declining keeps everything.
  const dialogs = [];
  let answer = false;
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    answer ? d.accept() : d.dismiss();
  });

  await page.fill("#tdim", "16");
  await page.locator("#tdim").dispatchEvent("change");
  assert.match(dialogs.at(-1) || "", /Changing D discards the models trained on this page/);
  assert.equal(await page.inputValue("#tdim"), "8");
  assert.equal(await stepOf("train-b"), 600, "declining keeps the trained run");
  answer = true;
  await page.fill("#tdim", "16");
  await page.locator("#tdim").dispatchEvent("change");
  assert.equal(dialogs.length, 2);
  await page.waitForFunction(() => window.geonoise.state.tdim === 16 && !window.geonoise.panels.get("train-b").train, null, { timeout: 10000 });
  assert.deepEqual(problems, []);
  await page.close();
});

test("Train tab: a GPU device lost mid-training restarts the engine on the CPU, and training goes on from the saved weights", async () => {
  const { page, problems } = await open("?mode=train&backend=webgpu&tdim=8&tsteps=40&every=10&width=32&depth=1&batch=64&n=32&steps=4");
  await page.waitForFunction(() => window.geonoise.backend !== null && window.geonoise.panels.size === 2, null, { timeout: 120000 });
  assert.equal(await page.evaluate(() => window.geonoise.backend), "webgpu");
  await page.click("#train-start");
  await page.waitForFunction(() => [...window.geonoise.panels.values()].every((p) => p.train?.saved && !p.train.finished), null, { timeout: 300000, polling: 20 });
  const saved = await page.evaluate(() => [...window.geonoise.panels.values()].map((p) => p.train.saved.step));
  await page.evaluate(() => window.geonoise.loseDevice());
  await page.waitForFunction(() => window.geonoise.backend === "cpu", null, { timeout: 120000, polling: 200 });
  assert.match(await page.locator("#notice").textContent(), /WebGPU failed \(.*(staging buffer could not be mapped|device was lost).*\)\. Restarting on the CPU/);
  await trained(page, ["train-a", "train-b"]);
  const runs = await page.evaluate(() => [...window.geonoise.panels.values()].map((p) => ({ step: p.train.step, history: p.train.history })));
  runs.forEach((r, i) => {
    assert.equal(r.step, 40);
    assert.ok(r.history.every(([, l]) => Number.isFinite(l)));
    assert.ok(saved[i] >= 10, `weights were saved before the loss (step ${saved[i]})`);
  });
  // The autosave carried the run's whole state, read back from the GPU: the run went on exactly.
  const recovered = await page.evaluate(() => [...window.geonoise.panels.values()].map((p) => p.train.recovered));
  recovered.forEach((r, i) => assert.ok(r?.exact && r.step >= saved[i], `resumed exactly from a state saved at or after step ${saved[i]}: ${JSON.stringify(r)}`));
  await page.screenshot({ path: path.join(artifacts, "page-train-device-lost.png"), fullPage: true });
  assert.deepEqual(problems.filter((p) => !/device was lost|WebGPU|GPU/i.test(p)), []);
  await page.close();
});

test("Train tab, WebGPU: a run whose GPU is lost goes on from its state on the CPU, and ends where the unbroken WebGPU run does (within float tolerance)", async () => {
  const query = "?mode=train&backend=webgpu&tdim=8&tsteps=30&every=10&width=32&depth=1&batch=64&n=16&steps=3";
  const run = async (lose) => {
    const { page, problems } = await open(query);
    await page.waitForFunction(() => window.geonoise.backend === "webgpu" && window.geonoise.panels.size === 2, null, { timeout: 120000 });
    await page.click("#train-start");
    if (lose) {
      await page.waitForFunction(() => { const t = window.geonoise.panels.get("train-a").train; return t?.resume && !t.finished; }, null, { timeout: 300000, polling: 20 });
      await page.evaluate(() => window.geonoise.loseDevice());
      await page.waitForFunction(() => window.geonoise.backend === "cpu", null, { timeout: 120000, polling: 200 });
    }
    await trained(page, ["train-a", "train-b"]);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-panel="train-a"] [data-t="download"]')]);
    const tensors = safetensors(fs.readFileSync(await download.path()));
    const recovered = await page.evaluate(() => window.geonoise.panels.get("train-a").train.recovered);
    assert.deepEqual(problems.filter((p) => !/device was lost|WebGPU|GPU/i.test(p)), []);
    await page.close();
    return { tensors, recovered };
  };
  const straight = await run(false);
  const broken = await run(true);
  assert.ok(broken.recovered?.exact && broken.recovered.step > 0 && broken.recovered.step < 30, JSON.stringify(broken.recovered));
  let worst = 0;
  for (const [name, a] of straight.tensors) {
    const [x, y] = [a, broken.tensors.get(name)].map((b) => new Float32Array(b.buffer, b.byteOffset, b.length / 4));
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]) / Math.max(Math.abs(x[i]), 1e-2));
  }
  console.log(`WebGPU run resumed on the CPU from its state: largest relative difference to the unbroken run ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-3, `the resumed run's weights differ by ${worst} (relative)`);
});

test("each tab introduces itself: one intro shown, the tab's own; a link with d= sets the opened tab's D", async () => {
  const { page, problems } = await open("?backend=cpu&d=8&n=16&steps=5&speed=10");
  await page.waitForFunction(() => window.geonoise.backend === "cpu", null, { timeout: 60000 });
  const shown = () => page.evaluate(() => [...document.querySelectorAll(".intro")].filter((e) => !e.hidden).map((e) => e.dataset.mode));
  for (const mode of ["view", "train", "theory", "images", "draw"]) {
    await page.click(`#tab-${mode}`);
    await page.waitForFunction((mode) => window.geonoise.state.mode === mode, mode, { timeout: 10000 });
    assert.deepEqual(await shown(), [mode]);
    assert.match(await page.locator(`#intro-${mode}`).textContent(), /Try:/);
  }
  assert.match(await page.locator("#intro-images").textContent(), /velocity target: FM Blind's samples are sharp, while\s+DDPM Blind's stay covered in residual noise[\s\S]*Residual noise[\s\S]*confident/);
  // A link to the Train tab with d=: the tab trains at that D, and the URL names its own key.
  await page.goto(page.url().replace(/\?.*$/, "?mode=train&backend=cpu&d=64"));
  await page.waitForFunction(() => window.geonoise.backend === "cpu" && window.geonoise.panels.size === 2, null, { timeout: 60000 });
  assert.equal(await page.locator("#tdim").inputValue(), "64");
  assert.match(page.url(), /tdim=64/);
  assert.deepEqual(await shown(), ["train"]);
  assert.ok(await page.locator("#notice").isHidden(), "no note about pretrained D");
  await page.screenshot({ path: path.join(artifacts, "page-train-intro.png"), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});
