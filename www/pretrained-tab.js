// The Pretrained tab's controller: FM Blind and DDPM Blind (and their conditional twins) sampling
// from the shipped checkpoints or the exact fields at one of the pretrained D, and the regimes
// table (pretrained/regimes.json, rendered by regimes.js) for the sampler in use.
import { FAITHFUL, PLAIN } from "./state.js";
import { renderTable, describe } from "./regimes.js";

const sameSampler = (a, b) => a.solver === b.solver && a.grid === b.grid && a.steps === b.steps;

export function pretrainedTab(app, sampling) {
  const { $, state } = app;
  let regimes = null; // the results file, once fetched

  function render() {
    $("#regimes-view").hidden = state.mode !== "view";
    if (state.mode !== "view") return;
    const faithful = sameSampler(state, FAITHFUL);
    $("#sampler-line").textContent = faithful
      ? `Sampling with the ${describe(state)}: of the settings measured, the one under which the shipped models show the paper's three regimes most clearly (both blind models diffuse at D = 2, FM Blind clean before DDPM Blind as D grows).`
      : `Sampling with the ${describe(state)}.`;
    $("#use-faithful").hidden = faithful;
    $("#use-plain").hidden = sameSampler(state, PLAIN);
    $("#regimes-table").innerHTML = renderTable(regimes, state);
  }

  function useSampler(s) {
    Object.assign(state, { solver: s.solver, grid: s.grid, steps: s.steps });
    app.writeUrl();
    app.syncControls();
    sampling.restart();
  }

  async function load() {
    regimes = await app.fetchJson("pretrained/regimes.json");
    window.geonoise.regimes = regimes;
    render();
  }

  /** The switch between the regimes' sampler and the plain ODE (D, the twins and the fields are
   * the sampling controls the shell keeps). */
  function setup() {
    app.on("use-plain", "click", () => useSampler(PLAIN));
    app.on("use-faithful", "click", () => useSampler(FAITHFUL));
  }

  return { build: () => sampling.build(), render, load, setup };
}
