// The Draw tab's controller: the reader's own data (drawn on draw.js's canvas, or a shape), lifted
// into R^D and sampled at once by the exact blind FM and DDPM fields; "Train both here" takes it
// to the Train tab. Also serves the picture of any data set under a panel's samples.
import { MAX_DRAWN, DATA_CHOICES, sourceMessage, dataSpec, dataTitle, encodePoints, decodePoints, thinPoints } from "./state.js";
import { DrawView } from "./draw.js";
import { options } from "./view.js";

export function drawTab(app, sampling) {
  const { $, panels, state } = app;
  const canvas = new DrawView($("#draw-canvas"), { onChange: onDrawn });

  function build() {
    const data = dataSpec(state.shape, state.pts);
    sampling.build({ source: (panel) => sourceMessage(panel, state.dd, "pretrained/", data) });
    requestDataPoints("draw", data);
  }

  /** A data set's points as the core normalises them, for the picture under the samples of the
   * Draw panels (`id` "draw") or the Train panels ("train"). */
  function requestDataPoints(id, data) {
    if (data.kind === "points" && data.points.length < 2) return onDataPoints({ id, points: null });
    app.post({ type: "data-points", id, data, n: 512 });
  }

  function onDataPoints(msg) {
    if (msg.error) return app.showNotice(msg.error);
    const ids = msg.id === "draw" ? ["draw-fm", "draw-ddpm"] : ["train-a", "train-b"];
    for (const id of ids) panels.get(id)?.view.setData(msg.points);
    if (msg.id === "draw") canvas.setPreview(state.shape === "drawn" ? null : msg.points);
  }

  /** A stroke ended: the drawing becomes the data (thinned to MAX_DRAWN points, with a notice). */
  function onDrawn(points) {
    const kept = thinPoints(points);
    app.showNotice(kept.length < points.length ? `The drawing has ${points.length} points; it keeps ${MAX_DRAWN} of them, evenly spread along the strokes.` : "");
    if (kept.length < points.length) canvas.setPoints(kept);
    state.shape = "drawn";
    state.pts = encodePoints(kept);
    app.writeUrl();
    app.syncControls();
    app.buildPanels();
  }

  /** "Train both here": the Train tab, with FM Blind and DDPM Blind on the Draw view's data at its D. */
  function trainDrawn() {
    if (state.shape === "drawn" && (decodePoints(state.pts) ?? []).length < 2) return app.showNotice("Draw at least 2 points to train on.");
    Object.assign(state, { mode: "train", tdata: state.shape, tdim: state.dd, a: "fm-blind", b: "ddpm-blind" });
    app.writeUrl();
    app.syncControls();
    app.buildPanels();
  }

  function sync() {
    const here = state.mode === "draw";
    $("#draw").hidden = !here;
    $("#draw-controls").hidden = !here;
    $("#shape").value = state.shape;
    $("#dd").value = String(state.dd);
  }

  function setup() {
    $("#shape").innerHTML = options(DATA_CHOICES, dataTitle);
    canvas.setPoints(decodePoints(state.pts) ?? []);
    app.on("shape", "change", (e) => {
      state.shape = e.target.value;
      app.writeUrl();
      app.buildPanels();
    });
    app.on("dd", "change", (e) => app.readNumber("dd", e.target) && app.buildPanels());
    app.on("draw-clear", "click", () => {
      canvas.setPoints([]);
      onDrawn([]);
    });
    app.on("draw-train", "click", trainDrawn);
  }

  return { build, requestDataPoints, onDataPoints, sync, setup };
}
