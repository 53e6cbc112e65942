// The page's whole state: one object, mirrored in the URL's query string so a shared link
// reproduces the view (seed included). Pure logic, no DOM: tests import it directly.

export const DIMS = [2, 8, 32, 128, 512];
export const SOLVERS = ["euler", "heun"];
export const BACKENDS = ["auto", "webgpu", "cpu"];
export const LIMITS = { n: [1, 5000], steps: [1, 1000], seed: [0, 2 ** 31 - 1], speed: [1, 10] };

export const DEFAULTS = Object.freeze({
  d: 32, // ambient dimension
  twins: false, // also show the conditional twins (2x2 grid)
  n: 1000, // samples per panel
  solver: "euler",
  steps: 100,
  seed: 0,
  speed: 3, // solver steps per drawn frame
  backend: "auto",
});

/** Parses a query string into a state; returns {state, notes} where notes say what was fixed. */
export function parseState(query) {
  const params = new URLSearchParams(query);
  const state = { ...DEFAULTS };
  const notes = [];
  const int = (key) => {
    if (!params.has(key)) return;
    const raw = params.get(key);
    const v = Number(raw);
    const [lo, hi] = LIMITS[key];
    if (!Number.isFinite(v) || !Number.isInteger(v)) {
      notes.push(`${key}=${raw} is not a whole number; using ${state[key]}`);
      return;
    }
    const c = Math.min(hi, Math.max(lo, v));
    if (c !== v) notes.push(`${key}=${raw} is outside ${lo}..${hi}; using ${c}`);
    state[key] = c;
  };
  for (const key of Object.keys(LIMITS)) int(key);
  if (params.has("d")) {
    const v = Number(params.get("d"));
    if (DIMS.includes(v)) state.d = v;
    else notes.push(`D=${params.get("d")} has no pretrained models; pretrained D are ${DIMS.join(", ")}; using ${state.d}`);
  }
  const pick = (key, allowed) => {
    if (!params.has(key)) return;
    const v = params.get(key);
    if (allowed.includes(v)) state[key] = v;
    else notes.push(`${key}=${v} is not one of ${allowed.join(", ")}; using ${state[key]}`);
  };
  pick("solver", SOLVERS);
  pick("backend", BACKENDS);
  if (params.has("twins")) state.twins = ["1", "true", "yes"].includes(params.get("twins"));
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

/** The panels to show: FM Blind and DDPM Blind, plus the conditional twins. */
export function panelsFor(state) {
  const blind = [
    { id: "fm-blind", model: "fm", blind: true, title: "FM Blind" },
    { id: "ddpm-blind", model: "ddpm", blind: true, title: "DDPM Blind" },
  ];
  if (!state.twins) return blind;
  return [
    ...blind,
    { id: "fm-cond", model: "fm", blind: false, title: "FM Cond" },
    { id: "ddpm-cond", model: "ddpm", blind: false, title: "DDPM Cond" },
  ];
}

/** Checkpoint file of a panel at D, as named by `geonoise train-grid`. */
export function checkpointUrl(panel, d, base = "pretrained/") {
  return `${base}${panel.model}-${panel.blind ? "blind" : "cond"}-d${d}.safetensors`;
}
