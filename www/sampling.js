// The sampling panels' controller, shared by the tabs whose panels sample a model (Pretrained,
// Images, Draw; a Train-tab panel once its run ends): loading each panel's model, running the
// sampler frame by frame, the posterior at a clicked sample, and the toy panels' exports.
// `app` is the shell's context (main.js); this module knows nothing of the other tabs.
import { ORACLE, imageData, panelsFor, sourceMessage, sampleConfigOf } from "./state.js";
import { samplesCsv, trajectoryCsv, samplesJson } from "./export.js";
import { PanelView, saveBlob } from "./view.js";
import { drawPosterior } from "./theory.js";

export function samplingPanels(app) {
  const { $, panels, state } = app;
  let exportKind = null; // what the last export click asked for: "json", "csv", "traj" or "npy"

  /** The panels of the current sampling tab, each asked for its model. `view(panel)` is the tab's
   * view of one panel (by default the toy's PanelView), `source(panel)` the worker message that
   * gives it its model (by default the shipped checkpoint or exact field at the view's D). */
  function build({ view = null, source = null } = {}) {
    const list = panelsFor(state);
    app.grid.className = `panels n${list.length}`;
    for (const panel of list) {
      const v = view?.(panel) ?? new PanelView(app.grid, panel, { onExport: exportPanel, onPick: pickSample });
      panels.set(panel.id, { panel, view: v, frames: [], metrics: null, loaded: false, done: false, pending: false, gen: app.generation });
      v.setStatus("loading…");
      v.setProgress(0);
      app.post(source?.(panel) ?? sourceMessage(panel, state.d));
    }
  }

  /** Every loaded panel samples again from step 0 with the current settings. */
  function restart() {
    const gen = app.nextGeneration();
    for (const p of panels.values()) {
      if (!p.loaded) continue;
      p.frames = [];
      p.done = false;
      p.pending = false; // a frame still in flight carries the old gen and is dropped
      p.startMs = p.doneMs = undefined;
      p.gen = gen;
      p.view.clear();
      app.post({ type: "start", panel: p.panel.id, config: sampleConfigOf(state) });
      request(p, 0);
    }
  }

  function request(p, k) {
    if (p.pending || !p.loaded) return;
    p.pending = true;
    app.post({ type: "advance", panel: p.panel.id, k, gen: p.gen });
  }

  function pump(p) {
    if (app.playing && !p.done) setTimeout(() => request(p, state.speed), 16);
  }

  /** "loaded": the panel's model is in the worker; its run starts. */
  function onLoaded(p, msg, onImported) {
    p.loaded = true;
    p.view.setProgress(null);
    if (msg.config.image) p.view.setStatus(`${msg.config.side}×${msg.config.side} ${imageData(p.panel.data).title}, U-Net of ${msg.config.channels} channels`);
    else if (msg.config.oracle) p.view.setStatus(`D = ${msg.config.dim}, closed form over ${msg.config.oracle.points} data points, ${msg.config.oracle.grid} noise levels`);
    else if (msg.trained === undefined) p.view.setStatus(`D = ${msg.config.dim}, width ${msg.config.width}, depth ${msg.config.depth}`);
    if (msg.imported) onImported(p, msg);
    app.post({ type: "start", panel: msg.panel, config: sampleConfigOf(state) });
    request(p, 0);
  }

  /** "frame": a panel's positions (or images) after some step. `onImageFrame(p)` follows an
   * image panel's frame (the Images tab's close-up). */
  function onFrame(p, msg, onImageFrame) {
    if (msg.gen !== p.gen) return; // a frame of a run that was restarted meanwhile
    p.pending = false;
    if (window.geonoise.firstFrameMs === undefined) window.geonoise.firstFrameMs = performance.now();
    if (msg.done && p.doneMs === undefined) p.doneMs = performance.now();
    if (p.startMs === undefined) p.startMs = performance.now();
    p.metrics = msg.metrics;
    p.done = msg.done;
    if (msg.pixels) {
      // An image panel: the view keeps the few snapshots its close-up needs.
      p.frames.push({ step: msg.step, t: msg.t });
      p.view.push(msg.pixels, msg);
      p.view.setMetrics(msg.metrics, msg.step, msg.total, msg.t, msg.verdict);
      onImageFrame(p);
    } else {
      p.frames.push({ step: msg.step, t: msg.t, xy: msg.xy });
      p.view.push(msg.xy);
      p.view.setMetrics(msg.metrics, msg.step, msg.total);
    }
    pump(p);
  }

  /** A click on a toy panel: the posterior over t at the sample nearest the click, in the
   * current frame, against the sampler's own t at that step. */
  function pickSample(panel, [x, y]) {
    const last = panels.get(panel.id)?.frames.at(-1);
    if (!last) return;
    let best = -1;
    let dist = Infinity;
    for (let i = 0; i < last.xy.length / 2; i++) {
      const d = (last.xy[2 * i] - x) ** 2 + (last.xy[2 * i + 1] - y) ** 2;
      if (d < dist) [best, dist] = [i, d];
    }
    if (best >= 0) app.post({ type: "probe-sample", panel: panel.id, index: best, ...ORACLE });
  }

  /** "panel-probe": the posterior at the picked sample, under the panels. */
  function onPanelProbe(p, msg) {
    $("#panel-probe").hidden = false;
    const f = (v) => (Number.isFinite(v) ? v.toPrecision(3) : "–");
    const probe = { ...msg.probe, label: `${p.panel.title}, sample ${msg.probe.index} at step ${msg.probe.step}, where the sampler is at t = ${f(msg.probe.t_true)} (what the blind model never sees)` };
    drawPosterior($("#panel-posterior"), $("#panel-probe-caption"), probe, msg.grid);
    window.geonoise.panelProbe = { panel: p.panel.id, ...msg.probe, posterior: Array.from(msg.probe.posterior), caption: $("#panel-probe-caption").textContent };
  }

  /** An export button: the worker sends the panel's positions ("export"), saved by `onExport`. */
  function exportPanel(panel, kind) {
    exportKind = kind;
    app.post({ type: "export", panel: panel.id });
  }

  /** "export" of a toy panel: JSON (the CLI's samples format), CSV, or the trajectories as CSV.
   * An image panel's goes to `saveImages(p, msg, kind)` (the Images tab). */
  function onExport(p, msg, saveImages) {
    if (msg.side) return saveImages(p, msg, exportKind);
    const name = `geonoise-${p.panel.id}-d${msg.dim}-seed${state.seed}`;
    let text, file, mime;
    if (exportKind === "csv") [text, file, mime] = [samplesCsv(msg), `${name}.csv`, "text/csv"];
    else if (exportKind === "traj") [text, file, mime] = [trajectoryCsv(p.frames), `${name}-trajectories.csv`, "text/csv"];
    else [text, file, mime] = [samplesJson({ ...msg, panel: p.panel.id, metrics: p.metrics, frames: p.frames }), `${name}.json`, "application/json"];
    window.geonoise.lastExport = { kind: exportKind || "json", file, text };
    saveBlob(new Blob([text], { type: mime }), file);
  }

  return { build, restart, request, pump, onLoaded, onFrame, pickSample, onPanelProbe, exportPanel, onExport };
}
