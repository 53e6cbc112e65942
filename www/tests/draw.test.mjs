// The Draw view: the person's own data (drawn strokes or a picked shape) lifted into R^D, the
// exact blind FM and DDPM fields sampling it at once, the drawing in the URL, bad drawings, and
// "Train both here". Checked against `geonoise sample --oracle --data FILE` on the same points.
//
// Needs: www/pkg, www/pkg-cpu and www/pretrained built (./build.sh wasm), GEONOISE_BIN = the
// native CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { browserSession, artifacts, cli } from "./browser.mjs";
import { decodePoints, encodePoints } from "../state.js";

const { open, waitDone, exportJson } = browserSession();
const IDS = ["draw-fm", "draw-ddpm"];

/** A stroke through the page's own pointer handlers: plane points, scaled to the canvas. */
async function stroke(page, points) {
  const box = await page.locator("#draw-canvas").boundingBox();
  const at = ([x, y]) => [box.x + ((x + 2.6) / 5.2) * box.width, box.y + ((2.6 - y) / 5.2) * box.height];
  await page.mouse.move(...at(points[0]));
  await page.mouse.down();
  for (const p of points.slice(1)) await page.mouse.move(...at(p), { steps: 4 });
  await page.mouse.up();
}

const arc = (cx, cy, r, from, to, k) => Array.from({ length: k }, (_, i) => {
  const a = from + ((to - from) * i) / (k - 1);
  return [cx + r * Math.cos(a), cy + r * Math.sin(a)];
});

const errors = (page) => page.evaluate((ids) => ids.map((id) => document.querySelector(`[data-panel="${id}"] .error`).textContent), IDS);

test("Draw view: two strokes become the data, both exact fields sample it like the CLI, and the link reproduces the drawing", async () => {
  const query = "?mode=draw&backend=cpu&dd=8&dn=120&steps=20&speed=10&solver=euler&grid=default";
  const { page, problems } = await open(query);
  await waitDone(page, IDS, 120000); // the opening shape (two moons)
  assert.match(await page.locator('[data-panel="draw-fm"] .status').textContent(), /closed form over 128 data points/);
  await stroke(page, arc(-1.2, 0, 0.6, 0, Math.PI, 12));
  await stroke(page, arc(1.2, 0.3, 0.5, Math.PI, 2 * Math.PI, 12));
  await page.waitForFunction(() => window.geonoise.state.shape === "drawn" && (window.geonoise.state.pts || "").length > 40, null, { timeout: 30000 });
  await waitDone(page, IDS, 120000);
  const st = await page.evaluate(() => window.geonoise.state);
  const points = decodePoints(st.pts);
  assert.ok(points.length >= 20 && points.length <= 256, `${points.length} points drawn`);
  assert.match(page.url(), /shape=drawn/);
  assert.match(page.url(), new RegExp(`pts=${st.pts}`));
  assert.match(await page.locator('[data-panel="draw-fm"] .status').textContent(), new RegExp(`closed form over ${points.length} data points`));
  assert.deepEqual(await errors(page), ["", ""]);

  // The page's samples are the CLI's on the same points.
  const file = path.join(artifacts, "drawn-points.json");
  fs.writeFileSync(file, JSON.stringify({ points }));
  const fm = await exportJson(page, "draw-fm");
  assert.deepEqual(fm.config.data, { kind: "points", points });
  const out = path.join(artifacts, "drawn-fm-native.json");
  cli(["sample", "--oracle", "--model", "fm", "--blind", "--dim", "8", "--data", file, "--data-points", "128", "--grid", "48", "--n", "120", "--steps", "20", "--seed", "0", "--sampler", "euler", "--out", out]);
  const native = JSON.parse(fs.readFileSync(out, "utf8"));
  let worst = 0;
  fm.samples.forEach((row, i) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - native.samples[i][j]) / (1 + Math.abs(native.samples[i][j]))))));
  assert.ok(worst < 1e-3, `page vs CLI: ${worst}`);
  assert.ok(Math.abs(fm.metrics.clean_fraction - native.metrics.clean_fraction) <= 0.01, `clean ${fm.metrics.clean_fraction} vs ${native.metrics.clean_fraction}`);
  console.log(`# drawn data, D = 8, Euler 20: page vs CLI largest relative difference ${worst.toExponential(2)}; FM Blind clean ${fm.metrics.clean_fraction}`);
  await page.screenshot({ path: path.join(artifacts, "draw-cpu.png"), fullPage: true });

  // A share link opens the same drawing and the same samples.
  const { page: again, problems: p2 } = await open(new URL(page.url()).search);
  await waitDone(again, IDS, 120000);
  const fm2 = await exportJson(again, "draw-fm");
  assert.deepEqual(fm2.samples, fm.samples);
  assert.deepEqual(p2, []);
  await again.close();
  assert.deepEqual(problems, []);
  await page.close();
});

test("Draw view: no points, one point, 10,000 points, points far outside and a broken link each get a clear message", async () => {
  const { page, problems } = await open("?mode=draw&backend=cpu&dd=8&dn=50&steps=5&speed=10&solver=euler&grid=default&shape=spiral");
  await waitDone(page, IDS, 120000);
  await page.click("#draw-clear");
  await page.waitForFunction(() => document.querySelectorAll(".panel.failed").length === 2, null, { timeout: 30000 });
  (await errors(page)).forEach((e) => assert.match(e, /needs at least 2 points; it has 0/));
  // One click: one point.
  await stroke(page, [[0.5, 0.5]]);
  await page.waitForFunction(() => /it has 1/.test(document.querySelector('[data-panel="draw-fm"] .error').textContent), null, { timeout: 30000 });
  // A stroke that leaves the canvas is clamped to its edge.
  await stroke(page, [[0.5, 0.5], [2.0, 0.5], [6.0, 0.5], [9.0, -7.0]]);
  await waitDone(page, IDS, 120000);
  const pts = decodePoints(await page.evaluate(() => window.geonoise.state.pts));
  assert.ok(pts.every(([x, y]) => Math.abs(x) <= 2.6 && Math.abs(y) <= 2.6) && pts.some(([x]) => x > 2.5), JSON.stringify(pts));
  assert.deepEqual(await errors(page), ["", ""]);
  await page.close();

  // A stroke of 10,000 points through the page's own pointer handlers: kept to 256, evenly
  // spread along it, with a notice; the panels sample.
  const { page: big, problems: p2 } = await open("?mode=draw&backend=cpu&dd=8&dn=50&steps=5&speed=10&shape=drawn");
  await big.evaluate(() => {
    const c = document.querySelector("#draw-canvas");
    const r = c.getBoundingClientRect();
    const ev = (type, i) => {
      // A zigzag across the canvas: every point is a full step from the one before.
      const x = r.left + 20 + ((i * 37) % (r.width - 40));
      const y = r.top + 20 + ((Math.floor(i / 11) * 5) % (r.height - 40));
      c.dispatchEvent(new PointerEvent(type, { clientX: x, clientY: y, pointerId: 1, bubbles: true }));
    };
    ev("pointerdown", 0);
    for (let i = 1; i < 10000; i++) ev("pointermove", i);
    ev("pointerup", 9999);
  });
  await big.waitForFunction(() => /The drawing has \d+ points; it keeps 256 of them/.test(document.querySelector("#notice").textContent), null, { timeout: 30000 });
  const drawn = Number((await big.locator("#notice").textContent()).match(/has (\d+) points/)[1]);
  assert.ok(drawn >= 9000, `${drawn} points drawn`);
  await waitDone(big, IDS, 120000);
  assert.match(await big.locator('[data-panel="draw-fm"] .status').textContent(), /closed form over 256 data points/);
  assert.equal(decodePoints(await big.evaluate(() => window.geonoise.state.pts)).length, 256);
  await big.close();
  // A link with more points than a drawing keeps (one written elsewhere): the same.
  const many = Array.from({ length: 600 }, (_, i) => [2 * Math.cos(i / 30), 2 * Math.sin(i / 50)]);
  const { page: link, problems: p4 } = await open(`?mode=draw&backend=cpu&dd=8&dn=50&steps=5&speed=10&shape=drawn&pts=${encodePoints(many)}`);
  assert.match(await link.locator("#notice").textContent(), /the drawing has 600 points; it keeps 256 of them/);
  await waitDone(link, IDS, 120000);
  await link.close();

  // A link whose drawing was cut or typed: named, and the drawing is empty.
  const { page: broken, problems: p3 } = await open("?mode=draw&backend=cpu&shape=drawn&pts=abc!");
  assert.match(await broken.locator("#notice").textContent(), /pts= is not a drawing this page wrote/);
  await broken.waitForFunction(() => document.querySelectorAll(".panel.failed").length === 2, null, { timeout: 30000 });
  await broken.close();
  assert.deepEqual([...problems, ...p2, ...p3, ...p4], []);
});

test("Draw view: a picked shape samples at once; Train both here trains the blind pair on the drawing, and the checkpoint knows its data", async () => {
  const { page, problems } = await open("?mode=draw&backend=cpu&dd=2&dn=100&steps=10&speed=10&solver=euler&grid=default&shape=checkerboard&width=32&depth=1&batch=64&tsteps=60&every=30");
  await waitDone(page, IDS, 120000);
  assert.equal(await page.evaluate(() => window.geonoise.panels.get("draw-fm").view.data?.length), 1024);
  await stroke(page, arc(0, 0, 1.5, 0, 2 * Math.PI, 16));
  await waitDone(page, IDS, 120000);
  await page.click("#draw-train");
  await page.waitForFunction(() => window.geonoise.state.mode === "train" && window.geonoise.panels.size === 2, null, { timeout: 30000 });
  const st = await page.evaluate(() => window.geonoise.state);
  assert.deepEqual([st.tdata, st.tdim, st.a, st.b], ["drawn", 2, "fm-blind", "ddpm-blind"]);
  assert.match(page.url(), /tdata=drawn/);
  await page.click("#train-start");
  await page.waitForFunction(() => ["train-a", "train-b"].every((id) => window.geonoise.panels.get(id)?.train?.finished), null, { timeout: 300000, polling: 250 });
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('[data-panel="train-a"] [data-t="download"]')]);
  const file = path.join(artifacts, "drawn-trained.safetensors");
  await download.saveAs(file);
  const native = cli(["sample", "--checkpoint", file, "--n", "50", "--steps", "10"]);
  assert.equal(native.config.data.kind, "points");
  // (The file's JSON goes through serde_json, which may round a float's last bit.)
  const want = decodePoints(st.pts);
  native.config.data.points.forEach((p, i) => p.forEach((v, j) => assert.ok(Math.abs(v - want[i][j]) < 1e-12, `point ${i}: ${v} vs ${want[i][j]}`)));
  assert.equal(native.config.data.points.length, want.length);
  assert.deepEqual(problems, []);
  await page.close();
});
