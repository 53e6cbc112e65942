// Export of a panel's samples and trajectories. Pure functions: tests import them.

const fmt = (v) => (Number.isFinite(v) ? String(v) : "");

/** CSV of the final samples: one row per sample, x,y in the data plane then the D coordinates. */
export function samplesCsv({ dim, xy, samples }) {
  const n = xy.length / 2;
  const head = ["sample", "x", "y", ...Array.from({ length: dim }, (_, j) => `u${j}`)].join(",");
  const rows = [head];
  for (let i = 0; i < n; i++) {
    const r = [i, fmt(xy[2 * i]), fmt(xy[2 * i + 1])];
    for (let j = 0; j < dim; j++) r.push(fmt(samples[i * dim + j]));
    rows.push(r.join(","));
  }
  return rows.join("\n") + "\n";
}

/** CSV of the 2-D trajectories: step, t, sample, x, y. */
export function trajectoryCsv(frames) {
  const rows = ["step,t,sample,x,y"];
  for (const f of frames) {
    for (let i = 0; i < f.xy.length / 2; i++) rows.push(`${f.step},${f.t},${i},${fmt(f.xy[2 * i])},${fmt(f.xy[2 * i + 1])}`);
  }
  return rows.join("\n") + "\n";
}

/** JSON in the same shape `geonoise sample` writes (so `geonoise metrics --samples` reads it). */
export function samplesJson({ panel, config, sample, dim, projection_seed, xy, samples, metrics, frames }) {
  const rows = (a, c) => Array.from({ length: a.length / c }, (_, i) => Array.from(a.slice(i * c, (i + 1) * c), (v) => (Number.isFinite(v) ? v : null)));
  const out = { source: { page: panel }, config, sample, dim, projection_seed, metrics, projected: rows(xy, 2), samples: rows(samples, dim) };
  if (frames) out.trajectory = frames.map((f) => ({ step: f.step, t: f.t, xy: rows(f.xy, 2) }));
  return JSON.stringify(out);
}

/** A safetensors file's header, parsed: {__metadata__?, name: {dtype, shape, data_offsets}} and
 * `size`, the header's length in bytes (the tensors' data starts at 8 + size); null where the
 * bytes are not such a file. */
export function safetensorsHeader(bytes) {
  if (bytes.length < 8) return null;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (n <= 0 || n > bytes.length - 8) return null;
  try {
    return { header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))), size: n };
  } catch {
    return null;
  }
}

/** The run a training-state file holds (its `geonoise.state`: {config, step, …}), read from its
 * safetensors header; null for any other file (a checkpoint, garbage). */
export function trainStateHeader(bytes) {
  const meta = safetensorsHeader(bytes)?.header.__metadata__ ?? {};
  try {
    return meta["geonoise.format"] === "geonoise-train-state" ? JSON.parse(meta["geonoise.state"]) : null;
  } catch {
    return null;
  }
}
