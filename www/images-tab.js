// The Images tab's controller: the shipped U-Nets of the chosen data set (Fashion-MNIST or MNIST)
// sampling side by side (the panels are images.js's ImagePanelView), that data set's measured
// image table for the sampler in use, the close-up of a clicked image, and the image exports.
import { ImagePanelView, drawDetail, renderImageTable, samplesImageJson, samplesNpy } from "./images.js";
import { saveBlob } from "./view.js";
import { imageData, imageFile, imagePanels } from "./state.js";

export function imagesTab(app, sampling) {
  const { $, panels, state } = app;
  const tables = new Map(); // data set -> its pretrained/images table.json (null: not there), once fetched
  let detail = null; // the image in close-up: {panel, index}

  /** Residual noise is read against the data set's own real test images. */
  function setReference(v, data) {
    const table = tables.get(data);
    if (table) v.setReference({ laplacian: table.real_laplacian_energy });
  }

  function view(panel) {
    const v = new ImagePanelView(app.grid, panel, { onExport: sampling.exportPanel, onPick: pick });
    setReference(v, panel.data);
    return v;
  }

  /** Fetches the chosen data set's table (once), then shows it. */
  async function load() {
    const data = state.idata;
    if (!tables.has(data)) {
      tables.set(data, undefined);
      tables.set(data, await app.fetchJson(`pretrained/${imageFile(data, "table.json")}`));
      for (const p of panels.values()) if (p.panel.image && p.panel.data === data) setReference(p.view, data);
    }
    render();
  }

  function render() {
    $("#images-view").hidden = state.mode !== "images";
    if (state.mode !== "images") return;
    if (!tables.has(state.idata)) return void load();
    // The table's rows: the data set's four and, with `others`, its other blind models (the panels' keys with the twins).
    const models = imagePanels(true, state.others, state.idata).map((p) => p.key);
    $("#images-table").innerHTML = renderImageTable(tables.get(state.idata) ?? null, state.isolver, state.isteps, models, imageData(state.idata).title);
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
    const name = `geonoise-${p.panel.key}-${p.panel.data}-seed${state.seed}`;
    const npy = kind === "npy";
    const body = npy ? samplesNpy(msg.samples, msg.side) : samplesImageJson(msg, { panel: p.panel.id, model: p.panel.key, data: p.panel.data, backend: app.backend, metrics: p.metrics, verdict: p.view.verdict });
    const file = `${name}.${npy ? "npy" : "json"}`;
    window.geonoise.lastExport = { kind, file, text: npy ? null : body, bytes: npy ? body : null };
    saveBlob(new Blob([body], { type: npy ? "application/octet-stream" : "application/json" }), file);
  }

  return { build: () => sampling.build({ view }), load, render, onFrame, clear, save };
}
