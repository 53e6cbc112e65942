// Where the page's files come from, for the page, <geonoise-figure> and the worker alike.
//
// Served (the page, a paper's page embedding the figure): beside these modules, so a path such
// as "pkg/geonoise_bg.wasm" is resolved against this module's URL.
// In a notebook (the anywidget front end, imported from a Blob URL, with no server behind it) the
// widget is handed the files as bytes and `provide`s each as a Blob URL before anything loads; the
// worker gets the same map in its "init" message. A path neither provided nor servable is an error
// that names it.
let BASE = null;
try {
  BASE = new URL(".", import.meta.url); // a blob: URL is no base: nothing is served then
  if (BASE.protocol === "blob:") BASE = null;
} catch {
  BASE = null;
}
// path -> URL (a Blob URL). One map for the whole page: a notebook may import this module several
// times (once per widget), and the figure element is defined by the first of them.
const provided = (globalThis.geonoiseFiles ??= new Map());

/** The two wasm cores' files: pkg/ has WebGPU and the CPU, pkg-cpu/ the CPU alone. */
export const CORES = Object.freeze({
  webgpu: Object.freeze({ js: "pkg/geonoise.js", wasm: "pkg/geonoise_bg.wasm" }),
  cpu: Object.freeze({ js: "pkg-cpu/geonoise.js", wasm: "pkg-cpu/geonoise_bg.wasm" }),
});

/** Makes `files` ({path: URL}) the source of those paths. */
export function provide(files) {
  for (const [path, url] of Object.entries(files ?? {})) provided.set(path, url);
}

/** The map handed over so far (what a worker started from here is given). */
export function providedFiles() {
  return Object.fromEntries(provided);
}

/** How to name `url` in a message: the path it was handed over as (a Blob URL says nothing), else
 * the URL itself. */
export function nameOf(url) {
  for (const [path, u] of provided) if (u === url) return path;
  return url;
}

/** Whether `path` was handed over (rather than served). */
export function isProvided(path) {
  return provided.has(path);
}

/** The URL to fetch or import `path` from. */
export function fileUrl(path) {
  if (provided.has(path)) return provided.get(path);
  if (!BASE) throw new Error(`${path} was not handed to this figure (no server here to fetch it from)`);
  return new URL(path, BASE).href;
}

/** Blob URLs of `bytes` for each {path: Uint8Array | ArrayBuffer | string}, typed by extension. */
export function blobUrls(files) {
  const type = (p) => (p.endsWith(".wasm") ? "application/wasm" : p.endsWith(".js") ? "text/javascript" : p.endsWith(".css") ? "text/css" : p.endsWith(".json") ? "application/json" : "application/octet-stream");
  return Object.fromEntries(Object.entries(files).map(([p, b]) => [p, URL.createObjectURL(new Blob([b], { type: type(p) }))]));
}
