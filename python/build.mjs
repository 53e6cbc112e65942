// Builds the notebook widget's front end: www/worker.js bundled into one module, as a string inside
// the bundle of www/notebook.js (anywidget imports one file from a Blob URL: nothing beside it can
// be imported). Run by `./build.sh notebook`: node python/build.mjs OUT_FILE
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const esbuild = createRequire(path.join(repo, "www/tests/package.json"))("esbuild");
const out = process.argv[2];
if (!out) {
  console.error("usage: node python/build.mjs OUT_FILE");
  process.exit(2);
}
// The worker loads its core with import(url) of a handed-over Blob URL: a dynamic import esbuild
// leaves as it is.
const worker = await esbuild.build({ entryPoints: [path.join(repo, "www/worker.js")], bundle: true, format: "esm", write: false, logLevel: "error" });
await esbuild.build({
  entryPoints: [path.join(repo, "www/notebook.js")],
  bundle: true,
  format: "esm",
  outfile: out,
  logLevel: "error",
  define: { GEONOISE_WORKER_SOURCE: JSON.stringify(worker.outputFiles[0].text) },
});
