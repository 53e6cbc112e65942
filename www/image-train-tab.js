// The Train images tab's controller: two U-Nets (FM Blind and DDPM Blind by default) trained side
// by side in the worker on the same Fashion-MNIST slice from the same seed, the core's image
// trainer with its moving average, their losses on one chart, and every few steps a preview of
// both from the same 16 starting noises (images.js's ImagePanelView draws them, with the residual
// noise and the classifier's confident share). Everything else a training run has (pause,
// autosaved copies, recovery after a crash or a lost GPU, downloads, loading a state back) is
// the Train tab's controller (train-tab.js, trainingTab) with this tab's `kind`.
import { IMAGE_PREVIEW, IMAGE_TRAIN_DATA, IMAGE_TRAIN_MODELS, imageTrainConfig, imageTrainPanels } from "./state.js";
import { ImagePanelView } from "./images.js";
import { trainingTab } from "./train-tab.js";

export function imageTrainTab(app, sampling) {
  const { state } = app;
  const status = (net, batch) => `U-Net of ${net.channels} channels, batch ${batch}, Fashion-MNIST (10,000 training images)`;
  let reference = null; // the real images' Laplacian energy (pretrained/images/table.json)
  app.fetchJson("pretrained/images/table.json").then((t) => {
    reference = t ? { laplacian: t.real_laplacian_energy } : null;
    for (const p of app.panels.values()) if (p.panel.image && reference) p.view.setReference(reference);
  });
  return trainingTab(app, sampling, {
    mode: "itrain",
    image: true,
    ids: { controls: "itrain-controls", chart: "itrain-chart", loss: "iloss", start: "itrain-start", pause: "itrain-pause", reset: "itrain-reset" },
    keys: { steps: "itsteps", every: "ievery", ints: ["ich", "ibatch", "itsteps", "ievery"], floats: ["ilr", "iema"], menus: ["ia", "ib"], rebuild: [] },
    models: IMAGE_TRAIN_MODELS,
    preview: IMAGE_PREVIEW,
    // What the worker trains on, fetched once (with a progress bar) and read by the core's IDX
    // reader; the classifier that scores the previews.
    startExtra: { images: IMAGE_TRAIN_DATA.url, scorer: IMAGE_TRAIN_DATA.scorer },
    panels: () => imageTrainPanels(state),
    config: (panel) => imageTrainConfig(panel, state),
    view: (panel, actions) => {
      const v = new ImagePanelView(app.grid, panel, actions);
      if (reference) v.setReference(reference);
      return v;
    },
    modelOf: (config) => config.net,
    status: (config) => status(config.net, config.batch),
    buildStatus: () => status({ channels: state.ich }, state.ibatch),
    fileName: (config, step) => `geonoise-unet-${config.net.model}-${config.net.blind ? "blind" : "cond"}-c${config.net.channels}-${step}steps.safetensors`,
    importedText: (c) => `a U-Net (${c.model} ${c.blind ? "blind" : "conditional"}, ${c.channels} channels), sampled with the tab's sampler`,
    /** Both models' previews: the same noises, a few DDIM steps of the moving average. */
    showPreview: (p, msg) => {
      p.view.clear();
      p.view.push(msg.pixels, { step: msg.steps, total: msg.steps, t: msg.t, side: msg.side });
      p.view.setMetrics(msg.metrics, undefined, undefined, msg.t, msg.verdict);
      p.view.setStatus(`preview at training step ${msg.step}: ${IMAGE_PREVIEW.n} images, ${IMAGE_PREVIEW.steps} DDIM steps of the moving average`);
      window.geonoise.previews.push({ panel: p.panel.id, step: msg.step, metrics: msg.metrics, verdict: msg.verdict });
    },
  });
}
