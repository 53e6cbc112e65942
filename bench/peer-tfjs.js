// The peer: the project's toy model and training step written the way a TF.js user would write
// them (tfjs-core ops, fused matmul + bias, tf.variableGrads, tf.train.adam). Same architecture
// as crate/src/model.rs, same loss and optimizer settings as crate/src/train.rs:
//
//   u (D) -> Linear -> [h <- h + fc2(SiLU(fc1(SiLU(h)) + time(emb)))] x depth -> SiLU -> z
//   f(u) = output(z) + gain(z) * u
//
// Flow Matching, noise-conditioned: u = (1 - t) x + t eps, target eps - x, t ~ U[1e-3, 1],
// 32 sinusoidal time features, MSE loss, each parameter's gradient clipped to norm 1, Adam
// (eps 1e-8) with the cosine learning rate of TrainConfig::lr_at. The batch (circle points, t and
// its features) is drawn on the host as the project does; eps comes from tf.randomNormal.
// `tf` is the global the TF.js UMD bundles define.

const R_INNER = 2 / Math.sqrt(5);
const R_OUTER = 4 / Math.sqrt(5);
const FREQS = 16;

/** A D x 2 orthonormal lift (Gram-Schmidt of two Gaussian columns), row-major. */
function projection(dim) {
  const g = () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  const a = Array.from({ length: dim }, g);
  const b = Array.from({ length: dim }, g);
  const dot = (x, y) => x.reduce((s, v, i) => s + v * y[i], 0);
  const na = Math.sqrt(dot(a, a));
  const q0 = a.map((v) => v / na);
  const r = dot(q0, b);
  const c = b.map((v, i) => v - r * q0[i]);
  const nc = Math.sqrt(dot(c, c));
  const p = new Float32Array(2 * dim);
  for (let i = 0; i < dim; i++) {
    p[2 * i] = q0[i];
    p[2 * i + 1] = c[i] / nc;
  }
  return p;
}

function timeFeatures(t, out, offset) {
  for (let k = 0; k < FREQS; k++) {
    const w = Math.exp((-Math.log(10000) * k) / FREQS);
    out[offset + k] = Math.sin(1000 * t * w);
    out[offset + FREQS + k] = Math.cos(1000 * t * w);
  }
}

function linear(dIn, dOut, zero) {
  const k = 1 / Math.sqrt(dIn);
  const init = (shape) => (zero ? tf.zeros(shape) : tf.randomUniform(shape, -k, k));
  return { w: tf.variable(init([dIn, dOut])), b: tf.variable(init([dOut])) };
}

const silu = (x) => tf.mul(x, tf.sigmoid(x));
const dense = (x, l) => tf.fused.matMul({ a: x, b: l.w, bias: l.b });

export class TfjsToy {
  /** `{dim, width, depth, batch, lr, steps}` as in the project's TrainConfig. */
  constructor({ dim, width, depth, batch, lr = 5e-3, steps = 10000 }) {
    Object.assign(this, { dim, width, depth, batch, lr, steps, k: 0 });
    this.proj = tf.transpose(tf.tensor2d(projection(dim), [dim, 2]));
    this.net = {
      input: linear(dim, width, false),
      blocks: Array.from({ length: depth }, () => ({ fc1: linear(width, width, false), time: linear(2 * FREQS, width, false), fc2: linear(width, width, false) })),
      output: linear(width, dim, true),
      gain: linear(width, 1, true),
    };
    this.vars = [this.net.input, ...this.net.blocks.flatMap((b) => [b.fc1, b.time, b.fc2]), this.net.output, this.net.gain].flatMap((l) => [l.w, l.b]);
    this.optimizer = tf.train.adam(lr, 0.9, 0.999, 1e-8);
    this.loss = null;
  }

  forward(u, emb) {
    let h = dense(u, this.net.input);
    for (const b of this.net.blocks) {
      const z = tf.add(dense(silu(h), b.fc1), dense(emb, b.time));
      h = tf.add(h, dense(silu(z), b.fc2));
    }
    const z = silu(h);
    return tf.add(dense(z, this.net.output), tf.mul(dense(z, this.net.gain), u));
  }

  /** The host half of a batch: circle points, t and the time features. */
  hostBatch() {
    const n = this.batch;
    const x2 = new Float32Array(2 * n);
    const ts = new Float32Array(n);
    const emb = new Float32Array(2 * FREQS * n);
    for (let i = 0; i < n; i++) {
      const r = Math.random() < 0.5 ? R_INNER : R_OUTER;
      const th = 2 * Math.PI * Math.random();
      x2[2 * i] = r * Math.cos(th);
      x2[2 * i + 1] = r * Math.sin(th);
      const t = 1e-3 + Math.random() * (1 - 1e-3);
      ts[i] = t;
      timeFeatures(t, emb, 2 * FREQS * i);
    }
    return { x2, ts, emb };
  }

  lrAt(k) {
    const p = Math.min(k / Math.max(this.steps, 1), 1);
    return this.lr * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * p)));
  }

  /** One optimizer step; reads nothing back. */
  step() {
    const { x2, ts, emb } = this.hostBatch();
    this.optimizer.learningRate = this.lrAt(this.k);
    const loss = tf.tidy(() => {
      const n = this.batch;
      const x = tf.matMul(tf.tensor2d(x2, [n, 2]), this.proj);
      const t = tf.tensor2d(ts, [n, 1]);
      const eps = tf.randomNormal([n, this.dim]);
      const u = tf.add(tf.mul(x, tf.sub(1, t)), tf.mul(eps, t));
      const target = tf.sub(eps, x);
      const e = tf.tensor2d(emb, [n, 2 * FREQS]);
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.sub(this.forward(u, e), target))), this.vars);
      // Each parameter's gradient clipped to norm 1, as burn's GradientClipping::Norm does.
      const clipped = {};
      for (const [name, g] of Object.entries(grads)) {
        clipped[name] = tf.mul(g, tf.minimum(1, tf.div(1, tf.add(tf.norm(g), 1e-30))));
      }
      this.optimizer.applyGradients(clipped);
      return value;
    });
    this.loss?.dispose();
    this.loss = loss;
    this.k++;
  }

  /** `k` optimizer steps, then the last loss (waiting for the device). */
  trainSteps(k) {
    for (let i = 0; i < k; i++) this.step();
    return this.read();
  }

  /** Sampling: `n` trajectories from N(0, I) (the project's FM sampler, Euler: mu = 0, nu = 1). */
  startSampling(n, steps) {
    tf.dispose(this.u);
    this.u = tf.randomNormal([n, this.dim]);
    this.grid = Array.from({ length: steps + 1 }, (_, i) => 1 - (i / steps) * (1 - 1e-3));
    this.s = 0;
  }

  /** One Euler step of every trajectory: u <- u + h f(u, t). Reads nothing back. */
  sampleStep() {
    const n = this.u.shape[0];
    const [t0, t1] = [this.grid[this.s], this.grid[this.s + 1]];
    const emb = new Float32Array(2 * FREQS);
    timeFeatures(t0, emb, 0);
    const next = tf.tidy(() => {
      const e = tf.tile(tf.tensor2d(emb, [1, 2 * FREQS]), [n, 1]);
      return tf.add(this.u, tf.mul(this.forward(this.u, e), t1 - t0));
    });
    this.u.dispose();
    this.u = next;
    this.s++;
  }

  /** `k` sampling steps, then the plane coordinates read back. */
  sampleSteps(k) {
    for (let i = 0; i < k; i++) this.sampleStep();
    return this.readSamples();
  }

  /** The plane coordinates of the trajectories, read back (what the page draws each frame). */
  async readSamples() {
    const xy = tf.matMul(this.u, this.proj, false, true);
    const v = await xy.data();
    xy.dispose();
    return v;
  }

  /** Waits for the device and returns the last loss. */
  async read() {
    return (await this.loss.data())[0];
  }

  dispose() {
    this.loss?.dispose();
    this.optimizer.dispose();
    this.proj.dispose();
    tf.dispose(this.u);
    for (const v of this.vars) v.dispose();
  }
}
