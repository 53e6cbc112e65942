// The notebook widget's front end (anywidget; python/geonoise/figure.py is its other half):
// <geonoise-figure> in a notebook cell, its settings the widget's traits, its results sent back to
// Python when a run ends.
//
// anywidget imports this module from a Blob URL, so nothing can be fetched from beside it: the
// files the figure needs (the wasm core, the checkpoints, the style sheet) are asked of Python,
// which sends them as message buffers from the package, and each becomes a Blob URL that
// files.js resolves for the figure and the worker alike. The worker is this bundle's
// GEONOISE_WORKER_SOURCE (build.sh notebook bundles www/worker.js into it), started from a Blob.
//
// Messages (anywidget custom messages):
//   widget -> Python  {type: "files", id, paths}           send these package files
//                     {type: "result", run, keys, models}  a run ended: models {key: {dim, n, metrics,
//                                                          …}}, buffers: each key's samples (f32), in
//                                                          `keys` order
//                     {type: "status", text}               what the figure shows ("loading", errors)
//   Python -> widget  {type: "files", id, paths, missing}  buffers: the files of `paths`, in order
//                     {type: "play"}                       press Play
import { figureFiles, figureSettings } from "./geonoise-figure.js";
import { CORES, blobUrls, isProvided, provide } from "./files.js";

/* global GEONOISE_WORKER_SOURCE */
// The figure attribute each trait sets (trait name -> attribute).
const ATTRIBUTES = { models: "models", dim: "dim", fields: "fields", data: "data", sampler: "sampler", time_grid: "grid", steps: "steps", samples_per_panel: "samples", seed: "seed", speed: "speed", backend: "backend" };

const waiting = new Map(); // request id -> {resolve, reject} of a files request in flight
let requests = 0;

/** Asks Python for `paths` not yet handed over; resolves once they are provided. */
function fetchFiles(model, paths) {
  const want = paths.filter((p) => !isProvided(p));
  if (!want.length) return Promise.resolve([]);
  const id = ++requests;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    model.send({ type: "files", id, paths: want });
  });
}

function onFiles(msg, buffers) {
  const w = waiting.get(msg.id);
  waiting.delete(msg.id);
  if (!w) return;
  const files = {};
  msg.paths.forEach((p, i) => {
    const b = buffers[i];
    files[p] = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  });
  provide(blobUrls(files));
  if (msg.missing?.length) w.reject(new Error(`the geonoise package has no ${msg.missing.join(", ")}`));
  else w.resolve(msg.paths);
}

/** The core the worker will load: the CPU one when asked for or without WebGPU, else the WebGPU
 * one (it runs on the CPU as well, when "auto" measures it faster). */
function corePaths(backend) {
  const core = CORES[backend === "cpu" || !globalThis.navigator?.gpu ? "cpu" : "webgpu"];
  return [core.js, core.wasm];
}

async function render({ model, el }) {
  if (!isProvided("worker.js")) provide(blobUrls({ "worker.js": GEONOISE_WORKER_SOURCE }));
  const status = document.createElement("div");
  status.className = "geonoise-status";
  status.style.cssText = "font: 13px sans-serif; color: #555; margin: 4px 0";
  el.appendChild(status);
  const say = (text, error = false) => {
    status.textContent = text;
    status.style.color = error ? "#b00020" : "#555";
    model.send({ type: "status", text, error });
  };
  let figure = null;
  let run = 0;

  async function build() {
    figure?.remove();
    figure = document.createElement("geonoise-figure");
    for (const [trait, attr] of Object.entries(ATTRIBUTES)) {
      const v = model.get(trait);
      if (v === null || v === undefined || v === "" || (trait === "data" && v === "toy")) continue;
      figure.setAttribute(attr, Array.isArray(v) ? v.join(",") : String(v));
    }
    if (model.get("autoplay")) figure.setAttribute("autoplay", "");
    const s = figureSettings(figure);
    say("loading the engine and the checkpoints…");
    try {
      await fetchFiles(model, [...corePaths(s.backend), ...figureFiles(s)]);
    } catch (e) {
      say(`The figure cannot start: ${e.message}`, true);
      return;
    }
    const mine = ++run;
    figure.addEventListener("geonoise-done", async () => {
      const results = await figure.results();
      if (!results || mine !== run) return;
      const keys = Object.keys(results);
      const models = {};
      for (const k of keys) {
        const { samples, ...rest } = results[k];
        models[k] = rest;
      }
      model.send({ type: "result", run: mine, keys, models }, undefined, keys.map((k) => results[k].samples.buffer));
      // After the samples (the same channel, in order): a trait change a notebook can react to.
      model.set("finished_runs", (model.get("finished_runs") ?? 0) + 1);
      model.save_changes();
      say(`done: the samples of ${keys.join(", ")} are in Python`);
    });
    el.appendChild(figure);
    say(s.notes.length ? s.notes.join(". ") : "");
  }

  const onMsg = (msg, buffers) => {
    if (msg.type === "files") onFiles(msg, buffers);
    else if (msg.type === "play") figure?.play();
  };
  model.on("msg:custom", onMsg);
  const changed = () => build();
  const names = [...Object.keys(ATTRIBUTES), "autoplay"];
  for (const n of names) model.on(`change:${n}`, changed);
  await build();
  return () => {
    model.off("msg:custom", onMsg);
    for (const n of names) model.off(`change:${n}`, changed);
    figure?.remove();
  };
}

export default { render };
