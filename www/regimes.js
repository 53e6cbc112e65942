// The regimes table: what `geonoise regimes` measured (pretrained/regimes.json) for the sampler
// settings the page is using — clean fraction and radial-error p90 of every model, blind and
// conditional, trained and exact, at each D. Pure functions of the results and the state (no DOM):
// pretrained-tab.js puts what they return on the page.

import { MODEL_NAMES } from "./state.js";

const SOLVER_WORDS = { euler: "Euler ODE", heun: "Heun ODE", ddim: "DDIM (eta = 0)", dpm2m: "DPM-Solver++(2M)", ancestral: "ancestral sampler", sde: "reverse SDE (Euler–Maruyama)" };
const GRID_WORDS = { default: "the default grid", uniform: "uniform in t", rho7: "EDM's ρ = 7", "log-snr": "uniform in log-SNR" };

/** A sampler setting in words: "ancestral sampler, 200 steps uniform in log-SNR". */
export function describe(s) {
  return `${SOLVER_WORDS[s.solver] ?? s.solver}, ${s.steps} steps ${GRID_WORDS[s.grid] ?? s.grid}`;
}

/** The settings the results file holds, each once: [{solver, grid, steps}]. */
export function measuredSettings(results) {
  const seen = new Map();
  for (const c of results?.cells ?? []) {
    const s = { solver: c.setting.solver, grid: c.setting.time_grid, steps: c.setting.steps };
    seen.set(`${s.solver}/${s.grid}/${s.steps}`, s);
  }
  return [...seen.values()];
}

/** The cells measured with the state's sampler settings (none if those were not measured). */
export function cellsFor(results, state) {
  return (results?.cells ?? []).filter((c) => c.setting.solver === state.solver && c.setting.time_grid === state.grid && c.setting.steps === state.steps);
}

const pct = (v) => `${Math.round(100 * v)}%`;

/** The 95 % Wilson interval of k successes in n trials, as the core's `interval::wilson`. */
export function wilson(k, n) {
  if (!(n > 0)) return { lo: 0, hi: 1 };
  const z = 1.959963984540054;
  const p = k / n;
  const d = 1 + (z * z) / n;
  const mid = (p + (z * z) / (2 * n)) / d;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return { lo: Math.max(0, mid - half), hi: Math.min(1, mid + half) };
}

/** "54% (47–61)": a clean fraction of n samples with its Wilson interval. */
export function cleanText(fraction, n) {
  const ci = wilson(Math.round(fraction * n), n);
  return `${pct(fraction)} (${Math.round(100 * ci.lo)}–${Math.round(100 * ci.hi)})`;
}

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** The table for the state's settings as HTML, with the state's D marked; or a line saying which
 * settings were measured. */
export function renderTable(results, state) {
  if (!results) return `<p class="reason">The regimes table is not here (pretrained/regimes.json; <code>geonoise regimes</code> makes it).</p>`;
  const cells = cellsFor(results, state);
  if (!cells.length) {
    const list = measuredSettings(results).map(describe).join("; ");
    return `<p class="reason">These sampler settings (${describe(state)}) were not measured. Measured: ${list}.</p>`;
  }
  const dims = [...new Set(cells.map((c) => c.dim))].sort((a, b) => a - b);
  const models = [...new Set(cells.map((c) => c.model))];
  const head = dims.map((d) => `<th${d === state.d ? ' class="here"' : ""}>D = ${d}</th>`).join("");
  const rows = [];
  for (const model of models) {
    for (const blind of [true, false]) {
      for (const source of ["trained", "exact"]) {
        // One cell per seed measured: with several, the median over the seeds and their range.
        const row = dims.map((d) => cells.filter((c) => c.model === model && c.blind === blind && c.source === source && c.dim === d));
        if (row.every((found) => !found.length)) continue;
        const tds = row
          .map((found, i) => {
            if (!found.length) return `<td${dims[i] === state.d ? ' class="here"' : ""}></td>`;
            const at = (f) => median(found.map((c) => f(c.metrics)));
            const clean = at((m) => m.clean_fraction);
            const spread =
              found.length > 1
                ? `range ${pct(Math.min(...found.map((c) => c.metrics.clean_fraction)))}–${pct(Math.max(...found.map((c) => c.metrics.clean_fraction)))} over ${found.length} seeds (medians shown)`
                : ((ci) => `95 % interval ${pct(ci.lo)}–${pct(ci.hi)}`)(wilson(Math.round(clean * found[0].n), found[0].n));
            const title = `clean ${pct(clean)} (${spread}), radial error median ${at((m) => m.radial_error_median).toFixed(3)}, p90 ${at((m) => m.radial_error_p90).toFixed(3)}, off-manifold mean ${at((m) => m.off_manifold_mean).toFixed(3)}, ${found[0].n} samples`;
            const shade = `background: rgba(31, 90, 180, ${(0.08 + 0.35 * clean).toFixed(2)})`;
            return `<td class="${dims[i] === state.d ? "here" : ""}" style="${shade}" title="${title}">${pct(clean)} <small>${at((m) => m.radial_error_p90).toFixed(2)}</small></td>`;
          })
          .join("");
        rows.push(`<tr data-row="${model}-${blind ? "blind" : "cond"}-${source}"><th>${MODEL_NAMES[model] ?? model} ${blind ? "Blind" : "Cond"} <small>${source}</small></th>${tds}</tr>`);
      }
    }
  }
  const n = cells[0].n;
  const seeds = new Set(cells.map((c) => c.seed)).size;
  const over = seeds > 1 ? `; medians over ${seeds} seeds of the starting noise (each cell's title gives the range)` : "; each cell's title gives the 95 % interval";
  return `<table class="regimes"><caption>${describe(state)}: clean fraction (samples within ${(results.clean_tolerance ?? 0.089).toFixed(3)} of a circle) and <small>the radial error's 90th percentile</small>, ${n} samples per cell from the same starting noise${over}</caption><thead><tr><th></th>${head}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}
