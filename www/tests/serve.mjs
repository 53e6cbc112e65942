// A static file server for www/ on a loopback port, shared by the tests and the bench.
// `faults` maps a path to "404", "garbage" or another path (served instead) so tests can break
// one checkpoint on purpose. `headers` go on every answer (the peer bench sends COOP/COEP so
// that TF.js's threaded wasm backend can run).
import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".wasm": "application/wasm", ".json": "application/json", ".jpg": "image/jpeg" };

export async function serve(root, faults = new Map(), headers = {}) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    const fault = faults.get(url.pathname);
    if (fault === "404") return res.writeHead(404).end("not found");
    if (fault === "garbage") return res.writeHead(200, { "content-type": "application/octet-stream" }).end(Buffer.from("this is not a checkpoint".repeat(40)));
    // A fault that is a path serves that file instead (a checkpoint of another model or D).
    const file = path.join(root, decodeURIComponent(fault?.startsWith("/") ? fault : url.pathname === "/" ? "/index.html" : url.pathname));
    if (!file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) return res.writeHead(404).end();
    const body = fs.readFileSync(file);
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] || "application/octet-stream", "content-length": body.length, "cache-control": "max-age=3600", ...headers });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { server, base: `http://127.0.0.1:${server.address().port}/` };
}

/** Debian's Chromium, headless, WebGPU allowed, no background network (see PLATFORM notes). */
export const CHROMIUM = {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--headless=new", "--enable-unsafe-webgpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
};
