// The Images tab's controller: the shipped Fashion-MNIST U-Nets sampling side by side (the panels
// are images.js's ImagePanelView), the measured image table for the sampler in use, the close-up
// of a clicked image, and the image exports.
import { ImagePanelView, drawDetail, renderImageTable, samplesImageJson, samplesNpy } from "./images.js";
import { saveBlob } from "./view.js";
import { IMAGE_MODELS, OTHER_IMAGE_MODELS } from "./state.js";

export function imagesTab(app, sampling) {
  const { $, panels, state } = app;
  let table = null; // pretrained/images/table.json, once fetched
  let detail = null; // the image in close-up: {panel, index}

  function view(panel) {
    const v = new ImagePanelView(app.grid, panel, { onExport: sampling.exportPanel, onPick: pick });
    if (table) v.setReference({ laplacian: table.real_laplacian_energy });
    return v;
  }

  async function load() {
    table = await app.fetchJson("pretrained/images/table.json");
    if (table) for (const p of panels.values()) if (p.panel.image) p.view.setReference({ laplacian: table.real_laplacian_energy });
    render();
  }

  function render() {
    $("#images-view").hidden = state.mode !== "images";
    if (state.mode === "images") $("#images-table").innerHTML = renderImageTable(table, state.isolver, state.isteps, [...IMAGE_MODELS, ...(state.others ? OTHER_IMAGE_MODELS : [])]);
  }

  /** A click on an image: it large, with its path from the starting noise (redrawn as it goes). */
  function pick(panel, index) {
    detail = { panel: panel.id, index };
    showDetail();
  }

  function showDetail() {
    const p = detail && panels.get(detail.panel);
    if (!p?.view.pixels) return;
    const caption = drawDetail($("#image-detail"), p.view, detail.index, p.view.verdict?.names ?? []);
    window.geonoise.imageDetail = { ...detail, caption, strip: p.view.strip.map((s) => s.step) };
  }

  /** A new frame of an image panel: the close-up follows it when it shows that panel. */
  function onFrame(p) {
    if (detail?.panel === p.panel.id) showDetail();
  }

  /** The panels are rebuilt: the close-up was about a panel that is gone. */
  function clear() {
    $("#image-detail").hidden = true;
    detail = null;
  }

  /** An image panel's samples: JSON (the CLI's `images sample --out` format) or .npy. */
  function save(p, msg, kind) {
    const name = `geonoise-${p.panel.key}-fashion-mnist-seed${state.seed}`;
    const npy = kind === "npy";
    const body = npy ? samplesNpy(msg.samples, msg.side) : samplesImageJson(msg, { panel: p.panel.id, model: p.panel.key, data: "fashion-mnist", backend: app.backend, metrics: p.metrics, verdict: p.view.verdict });
    const file = `${name}.${npy ? "npy" : "json"}`;
    window.geonoise.lastExport = { kind, file, text: npy ? null : body, bytes: npy ? body : null };
    saveBlob(new Blob([body], { type: npy ? "application/octet-stream" : "application/json" }), file);
  }

  return { build: () => sampling.build({ view }), load, render, onFrame, clear, save };
}
