// The embeddable figure: www/embed-example.html, an ordinary text page with three
// <geonoise-figure> elements (one autoplays the shipped checkpoints at D = 128; one samples the
// closed-form fields; one is the image experiment on Fashion-MNIST; the last two wait for Play).
//
// Needs: www/pkg and www/pretrained built (./build.sh wasm).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { browserSession, artifacts, cli } from "./browser.mjs";

const { open } = browserSession();

/** embed-example.html, with `window.doneFigures` listing the figures that fired geonoise-done. */
async function openExample() {
  const opened = await open("embed-example.html");
  await opened.page.evaluate(() => {
    window.doneFigures = [];
    document.querySelectorAll("geonoise-figure").forEach((f, i) => f.addEventListener("geonoise-done", () => window.doneFigures.push(i)));
  });
  return opened;
}

/** Each figure's panels: {title, step, clean, radial} (a toy panel) or {title, step, noise,
 * confident} (an image panel) from its shadow DOM. */
const figures = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll("geonoise-figure")].map((f) =>
      [...f.shadowRoot.querySelectorAll(".panel")].map((p) => {
        const m = (k) => p.querySelector(`[data-m="${k}"]`)?.textContent;
        const out = { title: p.querySelector("h2").textContent, step: m("step"), error: p.querySelector(".error").textContent };
        return p.classList.contains("image-panel") ? { ...out, noise: m("noise"), confident: m("confident") } : { ...out, clean: m("clean"), radial: m("radial") };
      }),
    ),
  );

test("embed-example.html: the autoplaying figure samples both checkpoints to the end; the other waits for Play, then samples the exact fields", async () => {
  const { page, problems } = await openExample();
  await page.waitForFunction(() => window.doneFigures.includes(0), null, { timeout: 300000, polling: 250 });
  let [first, second, images] = await figures(page);
  assert.deepEqual(first.map((p) => p.title), ["FM Blind", "DDPM Blind"]);
  assert.deepEqual(first.map((p) => p.step), ["60 / 60", "60 / 60"]);
  assert.ok(first.every((p) => /^[\d.]+ median, [\d.]+ p90$/.test(p.radial) && /^\d+% \(\d+–\d+\)$/.test(p.clean) && p.error === ""), JSON.stringify(first));
  // The second figure has drawn its starting noise and waits.
  assert.deepEqual(second.map((p) => p.step), ["0 / 30", "0 / 30"]);
  assert.deepEqual(images.map((p) => p.step), ["0 / 30", "0 / 30"]);
  assert.equal(await page.evaluate(() => window.doneFigures.includes(1)), false);
  await page.evaluate(() => document.querySelectorAll("geonoise-figure")[1].shadowRoot.querySelector(".play").click());
  await page.waitForFunction(() => window.doneFigures.includes(1), null, { timeout: 300000, polling: 250 });
  [first, second] = await figures(page);
  assert.deepEqual(second.map((p) => p.title), ["FM Blind (exact)", "DDPM Blind (exact)"]);
  assert.deepEqual(second.map((p) => p.step), ["30 / 30", "30 / 30"]);
  console.log(`checkpoints, D = 128: ${first.map((p) => `${p.title} ${p.radial}`).join(", ")}; exact, D = 8: ${second.map((p) => `${p.title} ${p.radial}`).join(", ")}`);
  await page.screenshot({ path: path.join(artifacts, "embed-example.png"), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});

test('the image figure (data="fashion-mnist"): FM Blind and DDPM Blind turn the same noise into images on Play, with their numbers', async () => {
  const { page, problems } = await openExample();
  await page.waitForFunction(() => document.querySelectorAll("geonoise-figure")[2].shadowRoot.querySelectorAll(".image-panel canvas").length === 2, null, { timeout: 60000 });
  await page.evaluate(() => document.querySelectorAll("geonoise-figure")[2].shadowRoot.querySelector(".play").click());
  await page.waitForFunction(() => window.doneFigures.includes(2), null, { timeout: 300000, polling: 250 });
  const images = (await figures(page))[2];
  assert.deepEqual(images.map((p) => p.title), ["FM Blind", "DDPM Blind"]);
  assert.deepEqual(images.map((p) => p.step), ["30 / 30", "30 / 30"]);
  assert.ok(images.every((p) => /^\d+\.\d\d×$/.test(p.noise) && /^\d+%$/.test(p.confident) && p.error === ""), JSON.stringify(images));
  console.log(`image figure, ancestral 30 steps, 16 images: ${images.map((p) => `${p.title} residual noise ${p.noise}, confident ${p.confident}`).join("; ")}`);
  await page.locator("geonoise-figure").nth(2).screenshot({ path: path.join(artifacts, "embed-images.png") });
  assert.deepEqual(problems, []);
  await page.close();
});

test("the figure's sampler attribute: sde and a grid, and dpm2m, sample to the end (results() gives the final samples); an unknown sampler is named in the bar and the page's opening sampler is used", async () => {
  const { page, problems } = await open("embed-example.html");
  await page.evaluate(() => {
    window.doneFigures = [];
    document.body.innerHTML = `<geonoise-figure dim="8" samples="100" steps="12" speed="10" sampler="sde" grid="uniform" backend="cpu" autoplay></geonoise-figure>
      <geonoise-figure dim="8" samples="100" steps="12" sampler="rk4" backend="cpu"></geonoise-figure>
      <geonoise-figure dim="8" samples="100" steps="20" speed="10" sampler="dpm2m" grid="log-snr" backend="cpu" autoplay></geonoise-figure>`;
    document.querySelectorAll("geonoise-figure").forEach((f, i) => f.addEventListener("geonoise-done", () => window.doneFigures.push(i)));
  });
  await page.waitForFunction(() => window.doneFigures.includes(0) && window.doneFigures.includes(2), null, { timeout: 120000, polling: 250 });
  const [sde, bad, dpm] = await page.evaluate(() => [...document.querySelectorAll("geonoise-figure")].map((f) => ({ solver: f.s.solver, grid: f.s.grid, note: f.shadowRoot.querySelector(".note").textContent })));
  assert.deepEqual([sde.solver, sde.grid, sde.note], ["sde", "uniform", ""]);
  assert.deepEqual([dpm.solver, dpm.grid, dpm.note], ["dpm2m", "log-snr", ""]);
  assert.deepEqual([bad.solver, bad.grid], ["ancestral", "log-snr"]);
  assert.match(bad.note, /sampler="rk4" is not one of euler, heun, ddim, dpm2m, ancestral, sde; using ancestral/);
  // results(): each panel's final samples (100 x 8) and the metrics under it; null before the end.
  const results = await page.evaluate(async () => {
    const [done, waiting] = document.querySelectorAll("geonoise-figure");
    const r = await done.results();
    return { keys: Object.keys(r), n: r["fm-blind"].n, dim: r["fm-blind"].dim, len: r["fm-blind"].samples.length, finite: r["fm-blind"].samples.every(Number.isFinite), clean: r["fm-blind"].metrics.clean_fraction, unfinished: await waiting.results() };
  });
  assert.deepEqual([results.keys, results.n, results.dim, results.len, results.finite, results.unfinished], [["fm-blind", "ddpm-blind"], 100, 8, 800, true, null]);
  assert.ok(results.clean >= 0 && results.clean <= 1, JSON.stringify(results));
  const [first, , third] = await figures(page);
  assert.deepEqual(first.map((p) => p.step), ["12 / 12", "12 / 12"]);
  assert.deepEqual(third.map((p) => p.step), ["20 / 20", "20 / 20"]);
  assert.ok(third.every((p) => /^\d+% \(\d+–\d+\)$/.test(p.clean) && p.error === ""), JSON.stringify(third));
  assert.ok(first.every((p) => /^\d+% \(\d+–\d+\)$/.test(p.clean) && p.error === ""), JSON.stringify(first));
  assert.deepEqual(problems, []);
  await page.close();
});

test('the image figure on MNIST (data="mnist"): the MNIST U-Nets give the CLI\'s samples; a model MNIST has none of is named in the bar', async () => {
  const { page, problems } = await open("embed-example.html");
  await page.evaluate(() => {
    window.doneFigures = [];
    document.body.innerHTML = `<geonoise-figure data="mnist" models="fm-blind,ddpm-blind,eqm-blind" samples="4" steps="3" speed="3" backend="cpu" autoplay></geonoise-figure>
      <geonoise-figure data="cifar" samples="10" steps="3" backend="cpu"></geonoise-figure>`;
    document.querySelectorAll("geonoise-figure").forEach((f, i) => f.addEventListener("geonoise-done", () => window.doneFigures.push(i)));
  });
  await page.waitForFunction(() => window.doneFigures.includes(0), null, { timeout: 240000, polling: 250 });
  const [mnist, toy] = await page.evaluate(() => [...document.querySelectorAll("geonoise-figure")].map((f) => ({ data: f.s.data, images: f.s.images, models: f.s.models, note: f.shadowRoot.querySelector(".note").textContent, status: [...f.shadowRoot.querySelectorAll(".status")].map((e) => e.textContent) })));
  assert.deepEqual([mnist.data, mnist.models], ["mnist", ["fm-blind", "ddpm-blind"]]);
  assert.match(mnist.note, /model "eqm-blind" is not one of fm-blind, ddpm-blind, fm-cond, ddpm-cond/);
  assert.deepEqual(mnist.status, ["MNIST", "MNIST"]);
  assert.deepEqual([toy.data, toy.images], [null, false]);
  assert.match(toy.note, /data="cifar" is not one of fashion-mnist, mnist; showing the toy/);
  const results = await page.evaluate(async () => {
    const r = await document.querySelector("geonoise-figure").results();
    return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Array.from(v.samples)]));
  });
  for (const model of ["fm-blind", "ddpm-blind"]) {
    const file = path.join(artifacts, `figure-mnist-${model}.json`);
    cli(["images", "sample", "--checkpoint", `pretrained/images/mnist/${model}.safetensors`, "--n", "4", "--steps", "3", "--sampler", "ancestral", "--seed", "0", "--out", file]);
    const native = JSON.parse(fs.readFileSync(file, "utf8")).samples.flat();
    assert.equal(results[model].length, native.length);
    const worst = Math.max(...results[model].map((v, i) => Math.abs(v - native[i]) / (1 + Math.abs(native[i]))));
    assert.ok(worst <= 1e-3, `${model}: figure vs CLI ${worst}`);
  }
  assert.deepEqual(problems, []);
  await page.close();
});
