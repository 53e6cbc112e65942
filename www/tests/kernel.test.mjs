// The oracle's WGSL kernel in the browser: WebGPU on SwiftShader runs shaders/oracle.wgsl, the
// wasm Flex build runs the tensor path, on the same points (www/tests/oracle-kernel.html).
//
// Needs: www/pkg built (./build.sh wasm).
import { test } from "node:test";
import assert from "node:assert/strict";
import { browserSession } from "./browser.mjs";

const { open } = browserSession();

test("oracle kernel on WebGPU (SwiftShader) agrees with the tensor path at D = 2 to 512", async () => {
  const { page, problems } = await open("tests/oracle-kernel.html");
  await page.waitForFunction(() => window.result, null, { timeout: 300000, polling: 500 });
  const result = await page.evaluate(() => window.result);
  assert.equal(result.error, undefined, result.error);
  for (const r of result.rows) {
    console.log(`${r.model} D=${r.dim} N=${r.points} K=${r.grid}, ${r.m} points: posterior ${r.posterior.toExponential(1)} (bound ${r.postTol.toExponential(1)}), energy ${r.energy.toExponential(1)}, gain ${r.gain.toExponential(1)}, field ${r.field.toExponential(1)}, grad ${r.grad_energy.toExponential(1)}; tensor path (wasm Flex) ${r.tensorMs.toFixed(0)} ms, kernel (SwiftShader) ${r.kernelMs.toFixed(0)} ms (first call, with the shader compile: ${r.firstMs.toFixed(0)} ms)`);
    assert.ok(r.finite, `${r.model} D=${r.dim}: non-finite kernel output`);
    assert.ok(r.posterior < r.postTol, `${r.model} D=${r.dim}: posterior differs by ${r.posterior}`);
    for (const k of ["energy", "gain", "field", "grad_energy"]) assert.ok(r[k] < 1e-4, `${r.model} D=${r.dim}: ${k} differs by ${r[k]}`);
  }
  assert.equal(result.rows.length, 5);
  assert.deepEqual(problems, []);
  await page.close();
});
