// What the page asks of a WebGPU device beyond what wgpu asks for.
//
// wgpu's WebGPU backend never requests the "subgroups" feature (wgpu keeps subgroups native-only),
// yet cubecl's WGSL kernels that use subgroup operations begin with `enable subgroups;`. On a
// device without the feature the browser's WebGPU rejects those shader modules, and burn's matmul
// autotune, which tries such kernels among its candidates, dies on the first one (an uncaptured
// WebGPU error is a panic in cubecl-wgpu). Asking for the feature wherever the adapter has it
// makes those kernels valid. Shared by the worker and the benches (bench/page.js, bench/dawn.mjs)
// so that both run the core under the same device.

/** Patches `scope.GPUAdapter` so every device requested also asks for "subgroups" where offered. */
export function requestSubgroups(scope) {
  const Adapter = scope.GPUAdapter;
  if (!Adapter || Adapter.prototype.requestDevice.geonoiseSubgroups) return;
  const requestDevice = Adapter.prototype.requestDevice;
  const patched = function (desc = {}) {
    const wanted = new Set(desc.requiredFeatures || []);
    if (this.features.has("subgroups")) wanted.add("subgroups");
    return requestDevice.call(this, { ...desc, requiredFeatures: [...wanted] });
  };
  patched.geonoiseSubgroups = true;
  Adapter.prototype.requestDevice = patched;
}
