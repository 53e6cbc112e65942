// The Theory tab's controller: the closed-form oracle asked about the marginal energy, the
// posterior over t at a probe, the drift error and the concentration of the shells, drawn by
// theory.js's TheoryView. One request in flight at a time; sliders fire often, so while one is,
// only the newest waits.
import { ORACLE } from "./state.js";
import { TheoryView } from "./theory.js";

export function theoryTab(app) {
  const { $, state } = app;
  const view = new TheoryView($("#theory"), { onProbe: (xy) => request(xy) });
  let busy = false;
  let next = null; // the newest request made while one was in flight

  function request(click = null) {
    if (app.backend) send({ model: state.pmodel, dim: state.pdim, offset: state.poff, s: state.ps, res: 32, ...ORACLE, click });
  }

  function send(config) {
    if (busy) {
      next = config;
      return;
    }
    busy = true;
    app.post({ type: "theory", config });
  }

  /** A new engine, or an error from this tab's request: nothing is in flight any more. */
  function reset() {
    busy = false;
    next = null;
  }

  function onTheory(msg) {
    busy = false;
    const queued = next;
    next = null;
    if (queued) send(queued);
    view.renderLandscape(msg);
    view.renderCompare(msg.compare, state);
    window.geonoise.compare = msg.compare && { res: msg.compare.res, diff: Array.from(msg.compare.diff) };
    if (msg.stability) {
      view.renderStability(msg.stability);
      window.geonoise.stability = msg.stability;
    }
    if (msg.concentration) {
      const c = msg.concentration;
      const r = view.renderConcentration(c, $("#concentration"), $("#concentration-caption"));
      window.geonoise.concentration = { dim: c.dim, model: c.model, levels: c.levels, t_std: c.t_std, t_mean: c.t_mean, parted: r.parted, caption: r.text };
    }
    window.geonoise.theory = { res: msg.res, path: msg.path, energy: Array.from(msg.energy), grad2: Array.from(msg.grad2), pre2: Array.from(msg.pre2), grid: Array.from(msg.grid), probe: { ...msg.probe, posterior: Array.from(msg.probe.posterior) } };
  }

  function sync() {
    for (const key of ["pmodel", "pdim", "poff", "ps"]) $(`#${key}`).value = String(state[key]);
    $("#theory").hidden = state.mode !== "theory";
  }

  function setup() {
    app.on("pmodel", "change", (e) => {
      state.pmodel = e.target.value;
      app.writeUrl();
      request();
    });
    for (const key of ["pdim", "poff", "ps"]) app.on(key, key === "pdim" ? "change" : "input", (e) => app.readNumber(key, e.target) && request());
  }

  return { build: () => request(), onTheory, reset, sync, setup };
}
