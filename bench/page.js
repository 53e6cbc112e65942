// The in-browser half of `node bench/run.mjs`: the project's wasm core and the TF.js peer in one
// page, timed A/B interleaved by bench/ab.js (which bench/dawn.mjs shares on Dawn in Node).
import { instrument, makeBench } from "./ab.js";
import { requestSubgroups } from "../www/webgpu-features.js";

requestSubgroups(self);

// `?pkg=PATH/` loads another build of the core (e.g. one with other burn features).
const pkg = new URLSearchParams(location.search).get("pkg") || "../www/pkg/";
const { default: init, Engine } = await import(`${pkg}geonoise.js`);

const log = (s) => (document.getElementById("log").textContent += s + "\n");
const counts = instrument(self);
const checkpoint = async (file) => new Uint8Array(await (await fetch(`../www/pretrained/${file}`)).arrayBuffer());
const bench = makeBench({ Engine, counts, checkpoint, tf: self.tf, gpu: navigator.gpu });
for (const what of ["train", "sample"]) {
  const f = bench[what];
  bench[what] = async (o) => {
    const r = await f(o);
    log(`${what} ${o.backend} vs ${o.peerBackend}: ${r.project.ms.toFixed(2)} vs ${r.peer.ms.toFixed(2)} ms/step`);
    return r;
  };
}
window.bench = bench;

await init();
window.bench.ready = true;
log("ready");
