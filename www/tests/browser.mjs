// What every browser test file shares: the static server (with its fault table), one headless
// Chromium for the file, and helpers to open the page and wait on it.
import { before, after } from "node:test";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chromium } from "playwright-core";
import { serve, CHROMIUM } from "./serve.mjs";
import { safetensorsHeader } from "../export.js";

const here = path.dirname(fileURLToPath(import.meta.url));
export const www = path.resolve(here, "..");
export const artifacts = path.join(here, "artifacts");
export const repo = path.resolve(here, "../..");

/** Runs the native CLI (GEONOISE_BIN) in the repository root; its JSON output, parsed. */
export function cli(args) {
  const bin = process.env.GEONOISE_BIN;
  assert.ok(bin, "GEONOISE_BIN must point at the native CLI");
  return JSON.parse(execFileSync(bin, args, { cwd: repo, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], maxBuffer: 1 << 28 }));
}
fs.mkdirSync(artifacts, { recursive: true });

/** Every tensor of a safetensors file (a checkpoint the page downloaded), by name: its bytes. */
export function safetensors(bytes) {
  const { header, size: n } = safetensorsHeader(bytes);
  const out = new Map();
  for (const [name, t] of Object.entries(header)) if (name !== "__metadata__") out.set(name, Buffer.from(bytes.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1])));
  return out;
}

/** Registers the file's before/after hooks; returns the helpers. */
export function browserSession() {
  // Paths the server answers wrongly on purpose: {path: "404" | "garbage" | another path}.
  const faults = new Map();
  let server;
  let base;
  let browser;

  before(async () => {
    ({ server, base } = await serve(www, faults));
    browser = await chromium.launch(CHROMIUM);
  });

  after(async () => {
    await browser?.close();
    server?.close();
  });

  /** Opens the page; collects uncaught errors and console errors. `setup(page)` runs before the
   * page loads (e.g. to route requests). */
  async function open(query, setup) {
    const page = await browser.newPage({ viewport: { width: 1100, height: 1300 } });
    const problems = [];
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    if (setup) await setup(page);
    await page.goto(base + query);
    return { page, problems };
  }

  async function waitDone(page, ids, timeout) {
    await page.waitForFunction((ids) => ids.every((id) => window.geonoise.panels.get(id)?.done), ids, { timeout, polling: 250 });
  }

  async function exportJson(page, id) {
    await page.evaluate((id) => {
      window.geonoise.lastExport = null;
      document.querySelector(`[data-panel="${id}"] [data-x="json"]`).click();
    }, id);
    await page.waitForFunction(() => window.geonoise.lastExport, null, { timeout: 30000 });
    return JSON.parse(await page.evaluate(() => window.geonoise.lastExport.text));
  }

  return { faults, open, waitDone, exportJson };
}
