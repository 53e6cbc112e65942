// The page's state and its URL (state.js): every key documented in one table with its tab, and
// a link to a tab with a D of its own setting that D through `d=`. Pure logic, no browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULTS, MODES, URL_KEYS, D_KEYS, LIMITS, parseState, serializeState, panelsFor, sourceMessage } from "../state.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

test("every URL key is in the table once, with tabs that exist, and the README's table lists the same keys", () => {
  assert.deepEqual(Object.keys(URL_KEYS).sort(), Object.keys(DEFAULTS).sort());
  for (const [key, [tabs, what]] of Object.entries(URL_KEYS)) {
    assert.ok(what.length > 10, `${key}: says what it does`);
    for (const tab of tabs.split(", ")) assert.ok(tab === "all" || MODES.includes(tab), `${key}: tab ${tab}`);
  }
  for (const [mode, key] of Object.entries(D_KEYS)) {
    assert.ok(MODES.includes(mode) && key in DEFAULTS, `${mode}: ${key}`);
    assert.match(URL_KEYS[key][0], new RegExp(mode), `${key} belongs to ${mode}`);
  }
  // The README's table: a row `| `key` | tab | … |` for each key, in the same tab.
  const readme = fs.readFileSync(path.join(repo, "README.md"), "utf8");
  const rows = new Map([...readme.matchAll(/^\| `(\w+)` \| ([^|]+) \|/gm)].map((m) => [m[1], m[2].trim()]));
  for (const [key, [tabs]] of Object.entries(URL_KEYS)) assert.equal(rows.get(key), tabs, `README row for ${key}`);
});

test("a link to a tab with its own D: the tab's D follows d= unless its own key is given", () => {
  const at = (q) => parseState(q);
  assert.equal(at("?mode=train&d=64").state.tdim, 64);
  assert.deepEqual(at("?mode=train&d=64").notes, []); // 64 is not a pretrained D, but the link is about the Train tab
  assert.equal(at("?mode=train&d=64").state.d, DEFAULTS.d);
  assert.equal(at("?mode=theory&d=128").state.pdim, 128);
  assert.equal(at("?mode=theory&d=128").state.d, 128); // a pretrained D: the view's follows too
  assert.equal(at("?mode=draw&d=512").state.dd, 512);
  assert.equal(at("?mode=train&d=64&tdim=16").state.tdim, 16); // the tab's own key wins
  assert.equal(at("?mode=draw&d=5000").state.dd, LIMITS.dd[1]); // clamped, with a note naming d
  assert.match(at("?mode=draw&d=5000").notes.join(), /d=5000 is outside 2\.\.1024/);
  // The Pretrained tab and the Images tab keep d as before.
  assert.equal(at("?d=64").state.d, DEFAULTS.d);
  assert.match(at("?d=64").notes.join(), /has no pretrained models/);
  assert.equal(at("?mode=images&d=8").state.d, 8);
  assert.equal(at("?mode=images&d=8").state.tdim, DEFAULTS.tdim);
  // What the page writes back names the tab's own key.
  assert.equal(serializeState(at("?mode=train&d=64").state), "?mode=train&tdim=64");
});

test("the Images tab's data choice: MNIST's panels load pretrained/images/mnist/ and its classifier, have no other blind models, and an unknown data set is named", () => {
  const mnist = parseState("?mode=images&idata=mnist&twins=1&others=1");
  assert.deepEqual(mnist.notes, []);
  const panels = panelsFor(mnist.state);
  assert.deepEqual(panels.map((p) => p.key), ["fm-blind", "ddpm-blind", "fm-cond", "ddpm-cond"]);
  const load = sourceMessage(panels[1], 784);
  assert.deepEqual([load.url, load.scorer, load.image], ["pretrained/images/mnist/ddpm-blind.safetensors", "pretrained/images/mnist/classifier.safetensors", true]);
  assert.equal(serializeState(mnist.state), "?twins=1&others=1&idata=mnist&mode=images");
  const fashion = parseState("?mode=images&others=1").state;
  assert.deepEqual(panelsFor(fashion).map((p) => sourceMessage(p, 784).url), ["fm-blind", "ddpm-blind", "eqm-blind", "uedm-blind"].map((m) => `pretrained/images/${m}.safetensors`));
  const bad = parseState("?mode=images&idata=cifar10");
  assert.equal(bad.state.idata, "fashion-mnist");
  assert.match(bad.notes.join(), /idata=cifar10 is not one of fashion-mnist, mnist/);
});
