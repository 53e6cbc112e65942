// The notebook package in real notebook runtimes: `marimo run` serves python/examples/
// blind_vs_cond.py from the pip-installed package (GEONOISE_PYTHON: a Python with geonoise,
// marimo and JupyterLab, which ./build.sh test sets up), headless Chromium opens it, the figures
// play on the CPU path, and Python checks what came back (python/tests/check_results.py: the
// samples' shapes, and `geonoise metrics` on the same samples equal to the figure's metrics).
// JupyterLab runs the .ipynb twin, and its cells print what they computed from the returned samples.
//
// Needs: python/geonoise/static built (./build.sh notebook) and installed, GEONOISE_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { spawn, execFileSync } from "node:child_process";
import { chromium } from "playwright-core";
import { CHROMIUM } from "./serve.mjs";
import { artifacts, repo } from "./browser.mjs";

const python = process.env.GEONOISE_PYTHON;
let browser;
before(async () => {
  browser = await chromium.launch(CHROMIUM);
});
after(async () => browser?.close());

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** A notebook server, `python -m` ARGS(port) from the repository root, logging to `log`;
 * resolves once `probe` (a path under its URL) answers. */
async function server(args, log, probe = "") {
  const port = await freePort();
  const proc = spawn(python, ["-m", ...args(port)], { cwd: repo, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, MARIMO_SKIP_UPDATE_CHECK: "1" } });
  const out = fs.createWriteStream(log);
  proc.stdout.pipe(out);
  proc.stderr.pipe(out);
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; i < 240; i++) {
    if (proc.exitCode !== null) throw new Error(`${args(port).slice(0, 2).join(" ")} exited (${proc.exitCode}); see ${log}`);
    try {
      if ((await fetch(url + probe)).ok) return { proc, url };
    } catch {}
    await new Promise((r) => setTimeout(r, 500));
  }
  proc.kill();
  throw new Error(`${args(port).slice(0, 2).join(" ")} did not answer at ${url}; see ${log}`);
}

/** `marimo run NOTEBOOK -- ARGS` on a free port; resolves once it answers. */
const marimo = (notebook, args, log) => server((port) => ["marimo", "run", notebook, "--headless", "--no-token", "--port", String(port), "--no-sandbox", "--", ...args], log);

/** Waits until every file in `files` exists under `dir`. */
async function filesAppear(dir, files, timeout, problems, log) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    const text = fs.readFileSync(log, "utf8");
    if (/Traceback|Error:/.test(text)) throw new Error(`the notebook failed: ${text.slice(text.search(/Traceback|Error:/), 3000)}`);
    if (files.every((f) => fs.existsSync(path.join(dir, f)))) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`after ${timeout / 1000} s, missing ${files.filter((f) => !fs.existsSync(path.join(dir, f))).join(", ")} in ${dir}; browser problems: ${problems.join(" | ")}`);
}

test("Notebook (marimo): the example's figures (D = 8, and MNIST's U-Nets) play on the CPU path in the notebook and their samples and metrics arrive in Python, equal to geonoise metrics on the same samples", { skip: python ? false : "GEONOISE_PYTHON is not set (./build.sh test sets it up)" }, async () => {
  const dir = path.join(artifacts, "notebook-results");
  fs.rmSync(dir, { recursive: true, force: true });
  const log = path.join(artifacts, "notebook-marimo.log");
  const { proc, url } = await marimo("python/examples/blind_vs_cond.py", ["--dims", "8", "--samples", "300", "--steps", "60", "--backend", "cpu", "--images", "mnist", "--image-steps", "10", "--save", dir], log);
  const page = await browser.newPage({ viewport: { width: 1100, height: 1600 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  try {
    await page.goto(url);
    const files = ["d8-fm-blind.json", "d8-ddpm-blind.json", "mnist-fm-blind.json", "mnist-ddpm-blind.json"];
    await filesAppear(dir, files, 300000, problems, log);
    // The figures drew: a canvas per toy panel and an image grid per image panel, done.
    const done = await page.evaluate(() => [...document.querySelectorAll("*")].flatMap((e) => (e.shadowRoot ? [...e.shadowRoot.querySelectorAll("geonoise-figure")] : [])).length);
    console.log(`# figures found in widget shadow roots: ${done}`);
    await page.screenshot({ path: path.join(artifacts, "notebook-marimo.png"), fullPage: true });
    const expect = { toy: { dim: 8, n: 300, models: ["fm-blind", "ddpm-blind"] }, images: { data: "mnist", n: 16, steps: 10, models: ["fm-blind", "ddpm-blind"] } };
    const report = execFileSync(python, [path.join(repo, "python/tests/check_results.py"), dir, process.env.GEONOISE_BIN, JSON.stringify(expect)], { encoding: "utf8" });
    console.log(`# ${report.trim()}`);
    const r = JSON.parse(report);
    // The regime itself, as the page shows it at D = 8: FM Blind lands nearer the circles.
    assert.ok(r["d8-fm-blind"].radial_error_median < r["d8-ddpm-blind"].radial_error_median, report);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
    proc.kill();
  }
});

/** Every text in the page, shadow roots included (marimo and the figure keep theirs there). */
const deepText = (page) =>
  page.evaluate(() => {
    const out = [];
    const walk = (root) => {
      for (const el of root.querySelectorAll("*")) {
        if (el.shadowRoot) walk(el.shadowRoot);
        if (!el.children.length && el.textContent.trim()) out.push(el.textContent.trim());
      }
    };
    walk(document);
    return out.join("\n");
  });

test("Notebook (marimo): a figure says what is wrong, not a blank cell: an engine core that will not load, a corrupt checkpoint, an attribute out of range", { skip: python ? false : "GEONOISE_PYTHON is not set (./build.sh test sets it up)" }, async () => {
  const cases = [
    ["wasm", /the engine's core \(pkg-cpu\/geonoise_bg\.wasm\) could not be loaded: .*WebAssembly/],
    ["checkpoint", /pretrained\/fm-blind-d8\.safetensors: .+/],
    ["dim", /dim="7" has no shipped checkpoints \(2, 8, 32, 128, 512\); using 32/],
  ];
  for (const [fault, want] of cases) {
    const log = path.join(artifacts, `notebook-fault-${fault}.log`);
    const { proc, url } = await marimo("python/tests/faults_notebook.py", ["--fault", fault], log);
    const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
    try {
      await page.goto(url);
      let text = "";
      for (let i = 0; i < 120 && !want.test(text); i++) {
        await new Promise((r) => setTimeout(r, 500));
        text = await deepText(page);
      }
      await page.screenshot({ path: path.join(artifacts, `notebook-fault-${fault}.png`) });
      assert.match(text, want, `${fault}: the cell shows\n${text}`);
      console.log(`# ${fault}: ${text.split("\n").find((l) => want.test(l))}`);
      if (fault === "dim") {
        // Out of range is a note, and the figure still plays (at D = 32).
        for (let i = 0; i < 120 && !/step\s*10 \/ 10/.test(text); i++) {
          await new Promise((r) => setTimeout(r, 500));
          text = await deepText(page);
        }
        assert.match(text, /D = 32/);
      }
    } finally {
      await page.close();
      proc.kill();
    }
  }
});

test("Notebook (marimo): a trait set in Python restarts the figure in the page with it (D = 8, then 32), and the new run's samples arrive", { skip: python ? false : "GEONOISE_PYTHON is not set (./build.sh test sets it up)" }, async () => {
  const out = path.join(artifacts, "notebook-change.json");
  fs.rmSync(out, { force: true });
  const log = path.join(artifacts, "notebook-change.log");
  const { proc, url } = await marimo("python/tests/faults_notebook.py", ["--fault", "change", "--out", out], log);
  const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  try {
    await page.goto(url);
    await filesAppear(path.dirname(out), [path.basename(out)], 120000, [], log);
    const r = JSON.parse(fs.readFileSync(out, "utf8"));
    assert.equal(r.dim, 32);
    assert.deepEqual(r.shapes, { "fm-blind": [50, 32], "ddpm-blind": [50, 32] });
    assert.match(await deepText(page), /D = 32/);
    console.log(`# after fig.dim = 32 in Python: ${JSON.stringify(r)}`);
  } finally {
    await page.close();
    proc.kill();
  }
});

/** `jupyter lab` on a free port with `root` as its root; resolves once it answers. */
const jupyter = (root, log) => server((port) => ["jupyter", "lab", "--no-browser", "--port", String(port), "--IdentityProvider.token=", "--ServerApp.password=", `--ServerApp.root_dir=${root}`, "--allow-root", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"], log, "api");

test("Notebook (JupyterLab): the .ipynb example runs; its figures (D = 2, 32, 512 and Fashion-MNIST) play and the next cells compute from the returned samples", { skip: python ? false : "GEONOISE_PYTHON is not set (./build.sh test sets it up)" }, async () => {
  // A copy of the example: JupyterLab saves what it runs, and the repository's copy stays clean.
  const root = path.join(artifacts, "jupyter");
  fs.rmSync(root, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  fs.copyFileSync(path.join(repo, "python/examples/blind_vs_cond.ipynb"), path.join(root, "blind_vs_cond.ipynb"));
  const { proc, url } = await jupyter(root, path.join(artifacts, "notebook-jupyter.log"));
  const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  // Ours are the errors of the widget, its worker and the engine (modules from blob: URLs);
  // JupyterLab's own console errors (its settings and extension requests) are not checked here.
  page.on("console", (m) => {
    if (m.type() === "error" && /blob:|geonoise|anywidget|wasm|worker/i.test(`${m.text()} ${m.location()?.url ?? ""}`)) problems.push(`console: ${m.text()}`);
  });
  try {
    await page.goto(`${url}lab/tree/blind_vs_cond.ipynb`);
    await page.waitForSelector(".jp-Notebook", { timeout: 120000 });
    // The kernel is up once the status bar says Idle.
    await page.waitForFunction(() => /\(ipykernel\) \| Idle/.test(document.body.innerText), null, { timeout: 120000, polling: 500 });
    await page.click('.lm-MenuBar-itemLabel:text("Run")');
    await page.click('.lm-Menu-itemLabel:text("Run All Cells")');
    // The figures autoplay when scrolled into view: scroll the notebook down and up until all
    // four show Replay (every panel at its last step).
    const replays = () => page.evaluate(() => {
      let n = 0;
      const walk = (root) => {
        for (const el of root.querySelectorAll("*")) {
          if (el.shadowRoot) walk(el.shadowRoot);
          if (el.tagName === "BUTTON" && el.textContent === "Replay") n++;
        }
      };
      walk(document);
      return n;
    });
    const t0 = Date.now();
    for (let i = 0; (await replays()) < 4; i++) {
      assert.ok(Date.now() - t0 < 400000, `after ${(Date.now() - t0) / 1000} s only ${await replays()} of 4 figures ended; ${problems.join(" | ")}`);
      await page.mouse.move(600, 700);
      await page.mouse.wheel(0, i % 20 < 10 ? 400 : -400);
      await new Promise((r) => setTimeout(r, 1000));
    }
    console.log(`# JupyterLab: the four figures ended ${((Date.now() - t0) / 1000).toFixed(0)} s after Run All`);
    // Now the cells that read the samples, again (a click that misses its cell is tried again).
    const outputs = () => page.evaluate(() => [...document.querySelectorAll(".jp-OutputArea-output pre")].map((e) => e.textContent).join("\n"));
    const complete = (t) => /D = 512 +ddpm-blind/.test(t) && /classifier confident/.test(t);
    let text = "";
    for (let attempt = 0; attempt < 3 && !complete(text); attempt++) {
      for (const needle of ["r_inner, r_outer", "for key, x in pictures"]) {
        const cell = page.locator(".jp-Cell", { hasText: needle }).first();
        await cell.scrollIntoViewIfNeeded();
        await cell.locator(".jp-InputArea-editor").click();
        await page.keyboard.press("Shift+Enter");
      }
      for (let i = 0; i < 60 && !complete(text); i++) {
        await new Promise((r) => setTimeout(r, 500));
        text = await outputs();
      }
    }
    await page.locator(".jp-Cell", { hasText: "r_inner, r_outer" }).first().scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(artifacts, "notebook-jupyter.png") });
    console.log(text.split("\n").map((l) => `# ${l}`).join("\n"));
    assert.match(text, /figures ended: \[2, 32, 512\]/);
    for (const d of [2, 32, 512]) for (const m of ["fm-blind", "ddpm-blind"]) assert.match(text, new RegExp(`D = +${d} +${m} +\\(1000, ${d}\\)`));
    // The residual noise recomputed from the returned pixels equals the figure's.
    const images = [...text.matchAll(/(\S+) +\(16, 28, 28\) +Laplacian energy (\S+) +\(the figure: (\S+)\)/g)];
    assert.equal(images.length, 2, text);
    for (const [, key, mine, theirs] of images) assert.equal(mine, theirs, key);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
    proc.kill();
  }
});
