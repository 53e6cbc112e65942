// The page's whole state: one object, mirrored in the URL's query string so a shared link
// reproduces the view (seed included). Pure logic, no DOM: tests import it directly.

export const DIMS = [2, 8, 32, 128, 512];
// Samplers (crate/src/sample.rs, Solver): Euler and Heun on the ODE, DDIM (eta = 0); the
// ancestral step and Euler–Maruyama on the reverse SDE, both stochastic.
export const SOLVERS = ["euler", "heun", "ddim", "dpm2m", "ancestral", "sde"];
// How the sampler spaces its steps (crate/src/target.rs, TimeGrid): the parameterization's own,
// uniform in t, EDM's rho = 7, uniform in log-SNR.
export const GRIDS = ["default", "uniform", "rho7", "log-snr"];
export const BACKENDS = ["auto", "webgpu", "cpu"];
export const MODES = ["view", "train", "theory", "images", "draw", "itrain"];
export const PMODELS = ["fm", "ddpm", "edm", "eqm", "uedm"];
// What drives the view tab's panels: the shipped checkpoints, or the closed-form fields.
export const FIELDS = ["trained", "exact"];
// The closed-form fields' data set and quadrature grid on the page: small enough for a live
// panel on the CPU (each step of the blind field weighs every data point at every level).
export const ORACLE = { points: 128, grid: 48 };
export const TRAIN_MODELS = ["fm-blind", "ddpm-blind", "edm-blind", "eqm-blind", "uedm-blind", "fm-cond", "ddpm-cond", "edm-cond", "eqm-cond", "uedm-cond"];
// Whole-number settings and their ranges. tdim..every belong to the Train tab.
export const LIMITS = {
  n: [1, 5000], steps: [1, 1000], seed: [0, 2 ** 31 - 1], speed: [1, 10],
  tdim: [2, 1024], width: [4, 1024], depth: [0, 16], batch: [1, 4096], tsteps: [1, 200000], every: [10, 100000],
  pdim: [2, 1024], ps: [0, 100],
  images: [4, 64], isteps: [1, 1000],
  dd: [2, 1024], dn: [1, 5000],
  ich: [1, 256], ibatch: [1, 1024], itsteps: [1, 100000], ievery: [10, 100000],
};
// Real-valued settings and their ranges.
export const FLOATS = { lr: [1e-6, 1], poff: [0, 2], ilr: [1e-6, 1], iema: [0, 0.9999] };

/** The page's opening sampler: the measured setting under which the shipped models show the
 * paper's three regimes most clearly (the README's regimes table, `geonoise regimes`). */
export const FAITHFUL = Object.freeze({ solver: "ancestral", grid: "log-snr", steps: 200 });
/** The plain sampler a switch goes back to: Euler on the ODE, the parameterization's own grid
 * (uniform in t for FM, DDPM and EqM), 100 steps — the shipped figures' sampler. */
export const PLAIN = Object.freeze({ solver: "euler", grid: "default", steps: 100 });

export const DEFAULTS = Object.freeze({
  d: 32, // ambient dimension
  twins: false, // also show the conditional twins (2x2 grid)
  others: false, // the Images tab: also the paper's other blind models (EqM Blind, uEDM Blind)
  idata: "fashion-mnist", // the Images tab's data set: its shipped U-Nets (IMAGE_DATA)
  n: 1000, // samples per panel
  ...FAITHFUL, // solver, grid, steps
  seed: 0,
  speed: 3, // solver steps per drawn frame
  backend: "auto",
  mode: "view", // "view": the pretrained models; "train": train two models here
  fields: "trained", // "exact": the view tab samples the closed-form fields instead
  tdim: 32, // D of the models trained on the page (any 2..1024)
  a: "fm-blind", // the two models trained side by side
  b: "ddpm-blind",
  width: 128,
  depth: 3,
  batch: 256,
  lr: 5e-3,
  tsteps: 3000,
  every: 250, // a quick sample of the models in training every this many steps
  pmodel: "fm", // the Theory tab's parameterization, D, distance off the plane, and the probe's
  pdim: 32, //   noise level (0..100 across the model's range, log-spaced)
  poff: 0,
  ps: 40,
  images: 16, // the Images tab: images per panel, and its own sampler: the ancestral chain (DDPM's
  isolver: "ancestral", //   own sampler and each conditional model's best in the shipped image table,
  igrid: "default", //   100 steps over the parameterization's own grid), so the live numbers estimate the table's
  isteps: 100,
  shape: "two-moons", // the Draw view's data: a named shape, or "drawn" (the points in `pts`)
  pts: "", //   the drawing, encoded (encodePoints)
  dd: 8, //   its D
  dn: 500, //   and its samples per panel (the exact fields weigh every data point at every step)
  tdata: "circles", // the data the Train tab trains on (a shape, or "drawn": the Draw view's drawing)
  ia: "fm-blind", // the Train images tab: the two U-Nets trained side by side on Fashion-MNIST,
  ib: "ddpm-blind", //   their channels, batch, learning rate, EMA decay, steps and preview interval
  ich: 8,
  ibatch: 32,
  ilr: 2e-3,
  iema: 0.99,
  itsteps: 1500,
  ievery: 100,
});

// The 2-D data sets (crate/src/dataset.rs, Shape), and "drawn": the person's own points.
export const SHAPES = ["circles", "three-rings", "spiral", "swiss-roll", "checkerboard", "two-moons"];
export const DATA_CHOICES = [...SHAPES, "drawn"];
// The most points a drawing keeps: the exact fields weigh every one at every step, and the URL
// carries them (4 characters each).
export const MAX_DRAWN = 256;
// A drawing lives in the plane's plotted square [-EXTENT, EXTENT]^2 (view.js's EXTENT).
const BOX = 2.6;
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Points of the plane as URL text: each coordinate clamped to the plotted square and kept to
 *  12 bits (1/788 of its side), two coordinates in four base64url characters. */
export function encodePoints(points) {
  const q = (v) => Math.round(((Math.min(BOX, Math.max(-BOX, v)) + BOX) / (2 * BOX)) * 4095);
  return points.map(([x, y]) => {
    const bits = (q(x) << 12) | q(y);
    return [18, 12, 6, 0].map((s) => B64[(bits >> s) & 63]).join("");
  }).join("");
}

/** The points of `encodePoints`' text, or null where the text is not such a list. */
export function decodePoints(text) {
  if (text.length % 4 !== 0 || /[^A-Za-z0-9_-]/.test(text)) return null;
  const out = [];
  for (let i = 0; i < text.length; i += 4) {
    const bits = [...text.slice(i, i + 4)].reduce((acc, c) => (acc << 6) | B64.indexOf(c), 0);
    const v = (k) => (k / 4095) * 2 * BOX - BOX;
    out.push([v(bits >> 12), v(bits & 4095)]);
  }
  return out;
}

/** At most `max` of `points`, evenly spaced along the list (a stroke's order), ends kept. */
export function thinPoints(points, max = MAX_DRAWN) {
  if (points.length <= max) return points;
  return Array.from({ length: max }, (_, i) => points[Math.round((i * (points.length - 1)) / (max - 1))]);
}

/** A data choice in words, as the data menus show it: "two moons", "my drawing". */
export function dataTitle(choice) {
  return choice === "drawn" ? "my drawing" : choice.replace("-", " ");
}

/** The data set a choice names, as the core takes it (a `DataSpec`): a shape, or the drawing. */
export function dataSpec(choice, pts) {
  if (choice === "drawn") return { kind: "points", points: decodePoints(pts) ?? [] };
  return { kind: "shape", name: choice };
}

// The Images tab shares the sampling controls with the toy view; these of them keep their own
// values there (a U-Net step costs far more than a toy step, and the image table used Euler).
export const IMAGE_KEYS = Object.freeze({ n: "images", solver: "isolver", grid: "igrid", steps: "isteps" });
// The Draw view keeps its own sample count; its sampler is the toy view's.
export const DRAW_KEYS = Object.freeze({ n: "dn" });

/** The state key a sampling control stands for in the current tab. */
export function controlKey(state, key) {
  const keys = { images: IMAGE_KEYS, itrain: IMAGE_KEYS, draw: DRAW_KEYS }[state.mode];
  return keys?.[key] ?? key;
}

/** What "auto" times on each backend (backend.js): the job the current tab is about to do. The
 * Images tab is timed on the toy's network at the images' D. */
export function probeJob(state) {
  if (state.mode === "train") return { kind: "train", dim: state.tdim, batch: state.batch };
  if (state.mode === "itrain") return { kind: "train", dim: 784, batch: state.ibatch };
  const dim = { images: 784, draw: state.dd }[state.mode] ?? state.d;
  return { kind: "sample", dim, n: state[controlKey(state, "n")] };
}

/** The sampling job the current tab's panels run (`SampleConfig`, crate/src/sample.rs). */
export function sampleConfigOf(state) {
  const k = (key) => state[controlKey(state, key)];
  return { n: k("n"), steps: k("steps"), solver: k("solver"), time_grid: k("grid"), seed: state.seed };
}

// Every URL key: the tab it belongs to ("all": every tab) and what it sets. A key left out of the
// URL takes its DEFAULTS value; the README's "URL keys" table is this one.
export const URL_KEYS = Object.freeze({
  mode: ["all", "the tab: view (Pretrained models), train, theory, images, draw, itrain (Train images)"],
  backend: ["all", "auto, webgpu or cpu"],
  seed: ["view, train, images, draw, itrain", "the seed of the starting noise (and of training in the Train tabs)"],
  speed: ["view, train, images, draw, itrain", "sampler steps per drawn frame"],
  d: ["view", "D of the pretrained panels (2, 8, 32, 128, 512); a link to another tab that has a D sets that tab's D with it (see D_KEYS)"],
  twins: ["view, images", "also show the conditional twins"],
  others: ["images", "also show the paper's other blind models, EqM Blind and uEDM Blind (Fashion-MNIST)"],
  idata: ["images", "the Images tab's data set: fashion-mnist or mnist (each has its own shipped U-Nets)"],
  fields: ["view", "trained (the shipped checkpoints) or exact (the closed-form fields)"],
  n: ["view, train", "samples per panel"],
  solver: ["view, train, draw", "sampler: euler, heun, ddim, dpm2m, ancestral, sde"],
  grid: ["view, train, draw", "time grid: default, uniform, rho7, log-snr"],
  steps: ["view, train, draw", "sampler steps"],
  tdim: ["train", "D of the models trained on the page (2..1024)"],
  a: ["train", "the left model, e.g. fm-blind"],
  b: ["train", "the right model, e.g. ddpm-blind"],
  tdata: ["train", "the data trained on: a shape, or drawn (the Draw tab's drawing)"],
  width: ["train", "width of the network"],
  depth: ["train", "residual blocks of the network"],
  batch: ["train", "batch size of each training step"],
  lr: ["train", "learning rate"],
  tsteps: ["train", "training steps"],
  every: ["train", "a preview every this many steps"],
  pmodel: ["theory", "the parameterization: fm, ddpm, edm, eqm, uedm"],
  pdim: ["theory", "D of the closed form (2..1024)"],
  poff: ["theory", "distance of the landscape off the data plane (0..2)"],
  ps: ["theory", "the probe's noise level (0..100 across the model's range, log-spaced)"],
  images: ["images, itrain", "images per panel (4..64)"],
  isolver: ["images, itrain", "the Images tab's sampler (and the Train images tab's, once a run ends)"],
  igrid: ["images, itrain", "the Images tab's time grid"],
  isteps: ["images, itrain", "the Images tab's sampler steps"],
  shape: ["draw", "the data: a shape, or drawn (the points in pts)"],
  pts: ["draw, train", "the drawing, 4 characters a point"],
  dd: ["draw", "D of the Draw tab (2..1024)"],
  dn: ["draw", "samples per panel in the Draw tab"],
  ia: ["itrain", "the left U-Net, e.g. fm-blind"],
  ib: ["itrain", "the right U-Net, e.g. ddpm-blind"],
  ich: ["itrain", "channels of the U-Nets' first level"],
  ibatch: ["itrain", "images in each training step"],
  ilr: ["itrain", "learning rate (Adam, cosine-decayed to a tenth)"],
  iema: ["itrain", "decay of the moving average of the weights (what is sampled and saved)"],
  itsteps: ["itrain", "training steps"],
  ievery: ["itrain", "a preview of both U-Nets every this many steps"],
});

/** The key each tab reads its D from. The Images tab has none: its images are 28×28 (D = 784). */
export const D_KEYS = Object.freeze({ view: "d", train: "tdim", theory: "pdim", draw: "dd" });

/** Parses a query string into a state; returns {state, notes} where notes say what was fixed. */
export function parseState(query) {
  const params = new URLSearchParams(query);
  const state = { ...DEFAULTS };
  const notes = [];
  function pick(key, allowed) {
    if (!params.has(key)) return;
    const v = params.get(key);
    if (allowed.includes(v)) state[key] = v;
    else notes.push(`${key}=${v} is not one of ${allowed.join(", ")}; using ${state[key]}`);
  }
  /** The whole number `from` in the URL (the key itself by default) into `key`, clamped to its range. */
  const int = (key, from = key) => {
    if (!params.has(from)) return;
    const raw = params.get(from);
    const v = Number(raw);
    const [lo, hi] = LIMITS[key];
    if (!Number.isFinite(v) || !Number.isInteger(v)) {
      notes.push(`${from}=${raw} is not a whole number; using ${state[key]}`);
      return;
    }
    const c = Math.min(hi, Math.max(lo, v));
    if (c !== v) notes.push(`${from}=${raw} is outside ${lo}..${hi}; using ${c}`);
    state[key] = c;
  };
  for (const key of Object.keys(LIMITS)) int(key);
  pick("mode", MODES);
  // A link to a tab with a D of its own and `d=` but not that tab's key: the tab's D follows `d`
  // (`?mode=train&d=64` trains at D = 64). The pretrained view's D takes `d` only where it has
  // checkpoints for it, so then the note about pretrained D is left out.
  const ownD = D_KEYS[state.mode];
  const follows = ownD && ownD !== "d" && params.has("d") && !params.has(ownD);
  if (follows) int(ownD, "d");
  for (const [key, [lo, hi]] of Object.entries(FLOATS)) {
    if (!params.has(key)) continue;
    const raw = params.get(key);
    const v = Number(raw);
    if (!Number.isFinite(v) || raw.trim() === "") notes.push(`${key}=${raw} is not a number; using ${state[key]}`);
    else if (v < lo || v > hi) notes.push(`${key}=${raw} is outside ${lo}..${hi}; using ${(state[key] = Math.min(hi, Math.max(lo, v)))}`);
    else state[key] = v;
  }
  if (params.has("d")) {
    const v = Number(params.get("d"));
    if (DIMS.includes(v)) state.d = v;
    else if (!follows) notes.push(`D=${params.get("d")} has no pretrained models; pretrained D are ${DIMS.join(", ")}; using ${state.d}`);
  }
  pick("solver", SOLVERS);
  pick("grid", GRIDS);
  pick("isolver", SOLVERS);
  pick("igrid", GRIDS);
  pick("shape", DATA_CHOICES);
  pick("tdata", DATA_CHOICES);
  if (params.has("pts")) {
    const raw = params.get("pts");
    const pts = decodePoints(raw);
    if (!pts) notes.push("pts= is not a drawing this page wrote; the drawing is empty");
    else if (pts.length > MAX_DRAWN) {
      notes.push(`the drawing has ${pts.length} points; it keeps ${MAX_DRAWN} of them, evenly spread`);
      state.pts = encodePoints(thinPoints(pts));
    } else state.pts = raw;
  }
  pick("backend", BACKENDS);
  pick("fields", FIELDS);
  pick("pmodel", PMODELS);
  pick("a", TRAIN_MODELS);
  pick("b", TRAIN_MODELS);
  pick("idata", Object.keys(IMAGE_DATA));
  pick("ia", IMAGE_TRAIN_MODELS);
  pick("ib", IMAGE_TRAIN_MODELS);
  for (const key of ["twins", "others"]) if (params.has(key)) state[key] = ["1", "true", "yes"].includes(params.get(key));
  return { state, notes };
}

/** The query string for a state (defaults left out). */
export function serializeState(state) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) {
    if (v === DEFAULTS[k]) continue;
    params.set(k, typeof v === "boolean" ? (v ? "1" : "0") : String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}

/** The panels to show: FM Blind and DDPM Blind, plus the conditional twins; with exact fields,
 * the closed-form field of each. */
export function panelsFor(state) {
  if (state.mode === "images") return imagePanels(state.twins, state.others, state.idata);
  if (state.mode === "draw") return drawPanels();
  if (state.mode === "itrain") return imageTrainPanels(state);
  const exact = state.fields === "exact";
  const list = [
    { id: "fm-blind", model: "fm", blind: true },
    { id: "ddpm-blind", model: "ddpm", blind: true },
    ...(state.twins ? [{ id: "fm-cond", model: "fm", blind: false }, { id: "ddpm-cond", model: "ddpm", blind: false }] : []),
  ];
  return list.map((p) => ({ ...p, exact, title: `${modelTitle(p.id)}${exact ? " (exact)" : ""}` }));
}

/** The Images tab's panels: the shipped U-Nets of a data set (IMAGE_DATA), the blind pair, with
 * the twins their conditional twins, and with `others` the paper's other blind models where that
 * data set has them (trained the same way; the default page stays FM against DDPM). */
export const IMAGE_MODELS = ["fm-blind", "ddpm-blind", "fm-cond", "ddpm-cond"];
export const OTHER_IMAGE_MODELS = ["eqm-blind", "uedm-blind"];

/** The data sets with shipped U-Nets: what the page calls each, the folder of pretrained/ its
 * models, classifier and table lie in (pretrained/images/train-all.sh), and the models it has. */
export const IMAGE_DATA = Object.freeze({
  "fashion-mnist": Object.freeze({ title: "Fashion-MNIST", dir: "images/", models: [...IMAGE_MODELS, ...OTHER_IMAGE_MODELS] }),
  mnist: Object.freeze({ title: "MNIST", dir: "images/mnist/", models: IMAGE_MODELS }),
});

/** A data set's entry of IMAGE_DATA (Fashion-MNIST for a name it does not have). */
export function imageData(name) {
  return IMAGE_DATA[name] ?? IMAGE_DATA["fashion-mnist"];
}

export function imagePanels(twins, others = false, data = "fashion-mnist") {
  const keys = [...IMAGE_MODELS.slice(0, twins ? 4 : 2), ...(others ? OTHER_IMAGE_MODELS : [])];
  return keys.filter((key) => imageData(data).models.includes(key)).map((key) => {
    const [model, kind] = key.split("-");
    return { id: `img-${key}`, key, model, blind: kind === "blind", image: true, data, title: modelTitle(key) };
  });
}

/** A file of a data set's shipped image models, its path in pretrained/: "images/mnist/table.json". */
export function imageFile(data, file) {
  return `${imageData(data).dir}${file}`;
}

/** The U-Nets the Train images tab can train: the paper's four and its other blind models. */
export const IMAGE_TRAIN_MODELS = [...IMAGE_MODELS, ...OTHER_IMAGE_MODELS];
/** What the Train images tab trains on (build.sh makes it from Debian's Fashion-MNIST) and the
 * classifier that scores its previews. */
export const IMAGE_TRAIN_DATA = Object.freeze({ url: "data/fashion-mnist-train-10k.idx.gz", name: "fashion-mnist", scorer: "pretrained/images/classifier.safetensors" });
/** The previews: the same 16 starting noises for both U-Nets, a few DDIM steps (DDIM is Euler
 * on FM's path), the same at every preview. */
export const IMAGE_PREVIEW = Object.freeze({ n: 16, steps: 20, solver: "ddim" });

/** The two panels of the Train images tab. */
export function imageTrainPanels(state) {
  return [state.ia, state.ib].map((key, i) => {
    const [model, kind] = key.split("-");
    return { id: i === 0 ? "itrain-a" : "itrain-b", key, model, blind: kind === "blind", image: true, data: IMAGE_TRAIN_DATA.name, title: modelTitle(key) };
  });
}

/** The `ImageTrainConfig` the worker gets for a Train images panel (the CLI's `geonoise images
 * train` flags: `--channels ich --mults 1,2 --patch 2 --batch ibatch --lr ilr --ema iema --steps
 * itsteps --seed seed --data fashion-mnist`). */
export function imageTrainConfig(panel, state) {
  return {
    net: { model: panel.model, blind: panel.blind, channels: state.ich, mults: [1, 2], side: 28, patch: 2, t_min: null, t_max: null },
    data: IMAGE_TRAIN_DATA.name,
    steps: state.itsteps,
    batch: state.ibatch,
    lr: state.ilr,
    ema: state.iema,
    grad_clip: 1,
    seed: state.seed,
  };
}

/** The Draw view's panels: the exact blind FM and DDPM fields on the drawn (or picked) data. */
export function drawPanels() {
  return [
    { id: "draw-fm", model: "fm", blind: true, exact: true, draw: true, title: "FM Blind (exact)" },
    { id: "draw-ddpm", model: "ddpm", blind: true, exact: true, draw: true, title: "DDPM Blind (exact)" },
  ];
}

/** What the worker needs to build a panel's closed-form field at D (on `data`, a DataSpec; the
 * circles when left out). */
export function oracleConfig(panel, d, data) {
  return { model: panel.model, blind: panel.blind, dim: d, ...ORACLE, ...(data ? { data } : {}) };
}

/** The worker message that gives a view panel its model at D: the closed-form field for an exact
 * panel, else the shipped checkpoint (fetched from `base`, a folder's URL or a function from a file's
 * path in pretrained/ to its URL), which must be the panel's model. */
export function sourceMessage(panel, d, base = "pretrained/", data = undefined) {
  if (panel.draw) return { type: "oracle", panel: panel.id, config: oracleConfig(panel, d, data) };
  const at = typeof base === "function" ? base : (file) => `${base}${file}`;
  if (panel.image) return { type: "load", panel: panel.id, url: at(imageFile(panel.data, `${panel.key}.safetensors`)), image: true, scorer: at(imageFile(panel.data, "classifier.safetensors")) };
  if (panel.exact) return { type: "oracle", panel: panel.id, config: oracleConfig(panel, d) };
  return { type: "load", panel: panel.id, url: at(checkpointFile(panel, d)), expect: { model: panel.model, blind: panel.blind, dim: d } };
}

/** Each parameterization as the paper writes it. */
export const MODEL_NAMES = { fm: "FM", ddpm: "DDPM", edm: "EDM", eqm: "EqM", uedm: "uEDM" };

/** How the paper names a model key such as "eqm-blind": "EqM Blind". */
export function modelTitle(key) {
  const [model, kind] = key.split("-");
  return `${MODEL_NAMES[model] ?? model.toUpperCase()} ${kind === "blind" ? "Blind" : "Cond"}`;
}

/** The two panels of the Train tab. */
export function trainPanels(state) {
  return [state.a, state.b].map((key, i) => {
    const [model, kind] = key.split("-");
    return { id: i === 0 ? "train-a" : "train-b", model, blind: kind === "blind", title: modelTitle(key) };
  });
}

/** The `TrainConfig` the worker gets for a Train-tab panel (the CLI's `geonoise train` flags). */
export function trainConfig(panel, state) {
  return {
    model: { model: panel.model, blind: panel.blind, dim: state.tdim, width: state.width, depth: state.depth, t_min: null, t_max: null, projection_seed: 0, data: dataSpec(state.tdata, state.pts) },
    steps: state.tsteps,
    batch: state.batch,
    lr: state.lr,
    optimizer: "adam",
    weight_decay: 0,
    grad_clip: 1,
    seed: state.seed,
  };
}

/** Checkpoint file of a panel at D, as named by `geonoise train-grid`. */
export function checkpointUrl(panel, d, base = "pretrained/") {
  return `${base}${checkpointFile(panel, d)}`;
}

/** The shipped checkpoint of a toy panel at D = `d`, its name in pretrained/. */
export function checkpointFile(panel, d) {
  return `${panel.model}-${panel.blind ? "blind" : "cond"}-d${d}.safetensors`;
}
