// The closed-form blind oracle (THEORY.md; crate/src/oracle/mod.rs is the tensor twin and the
// reference): for each query point u (one workgroup per point), over the data x_1..x_N and the
// grid t_1..t_K,
//
//   log p(u|t_k) = logsumexp_i(-||u - a_k x_i||^2 / 2 b_k^2) + const_k
//   p(t_k|u)     = softmax_k(log q_k + log p(u|t_k)),        E_marg(u) = -logsumexp_k(...)
//   f*(u)        = sum_k p(t_k|u) [(c - d a/b)_k xhat_k + (d/b)_k u]
//   grad E_marg  = sum_k p(t_k|u) (u - a_k xhat_k) / b_k^2
//
// with xhat_k = sum_i w_ki x_i and w_ki = softmax_i of the same logits. The squared distances
// are expanded around u's nearest data point x_r exactly as the tensor path does (`dist2` there),
// so float32 keeps its precision when b is small:
//
//   w = u - x_r, delta = 1 - a,  e_i = <w, x_r - x_i>
//   ||u - a x_i||^2 = ||w||^2 + 2 delta <w, x_r> + delta^2 ||x_r||^2
//                   + 2a (e_i + delta F[r,i]) + a^2 P[r,i]
//
// where F[r,i] = <x_r, x_r - x_i> and P[r,i] = ||x_r - x_i||^2 are tables of the data. The
// fields are written around x_r too, so no two large terms cancel near the data (where 1/b^2 is
// huge): with c_i = sum_k p(t_k|u) beta_k w_ki and xhat_k = x_r - sum_i w_ki (x_r - x_i),
//
//   f*(u)       = E[d/b] w + E[c + d (1-a)/b] x_r - sum_i c_i (x_r - x_i)    (beta = c - d a/b)
//   grad E_marg = E[1/b^2] w + E[(1-a)/b^2] x_r + sum_i c_i (x_r - x_i)      (beta = a/b^2)

// Threads per workgroup; the host's WORKGROUP (kernel.rs) is the same number.
const WG: u32 = 64u;
// Largest data set and grid the workgroup memory holds (kernel.rs checks before launching).
const NMAX: u32 = 512u;
const KMAX: u32 = 256u;
// Columns of the per-level coefficient table (kernel.rs `Coef` writes them in this order).
const NC: u32 = 11u;
const C_DELTA: u32 = 0u; // 1 - a
const C_A: u32 = 1u; // a
const C_INV_2B2: u32 = 2u; // 1 / (2 b^2)
const C_JOINT: u32 = 3u; // log q_k - D log b - log N - (D/2) log 2 pi
const C_ALPHA: u32 = 4u; // c - d a / b: weight of xhat in the conditional field
const C_A_B2: u32 = 5u; // a / b^2: weight of xhat in grad E_t
const C_D_B: u32 = 6u; // d / b: weight of w in the field
const C_INV_B2: u32 = 7u; // 1 / b^2: weight of w in grad E_t
const C_FIELD_X: u32 = 8u; // c + d (1 - a) / b: weight of x_r in the field
const C_GRAD_X: u32 = 9u; // (1 - a) / b^2: weight of x_r in grad E_t
const C_LAMBDA: u32 = 10u; // lambda(t), whose posterior mean is the gain

struct Params {
  m: u32, // query points in this launch
  n: u32, // data points
  k: u32, // grid levels
  d: u32, // dimension D
}

// binding 0: sizes.
@group(0) @binding(0) var<uniform> params: Params;
// binding 1: query points, [M, D] row-major.
@group(0) @binding(1) var<storage, read> u: array<f32>;
// binding 2: the data tables, one after another: X [N, D], ||x_i||^2 [N], F [N, N], P [N, N].
@group(0) @binding(2) var<storage, read> data: array<f32>;
// binding 3: per-level coefficients, [K, NC].
@group(0) @binding(3) var<storage, read> coef: array<f32>;
// binding 4: per query point, one row of K + 2 + 2D: posterior [K], E_marg, the gain
// E[lambda | u], f*(u) [D], grad E_marg [D].
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> e: array<f32, NMAX>; // <w, x_r - x_i>
var<workgroup> c_field: array<f32, NMAX>; // sum_k p(t_k|u) alpha_k w_ki
var<workgroup> c_grad: array<f32, NMAX>; // sum_k p(t_k|u) (a/b^2)_k w_ki
var<workgroup> lse: array<f32, KMAX>; // logsumexp_i of the logits at level k
var<workgroup> post: array<f32, KMAX>; // p(t_k|u)
var<workgroup> red_v: array<f32, WG>; // reduction scratch
var<workgroup> red_i: array<u32, WG>;
var<workgroup> row: vec4<f32>; // ||w||^2, <w, x_r>, ||x_r||^2, r (as bits)
var<workgroup> sums: vec4<f32>; // E[d/b], E[1/b^2], E[c + d(1-a)/b], E[(1-a)/b^2]

fn x_at(i: u32, j: u32) -> f32 {
  return data[i * params.d + j];
}
fn xnorm2(i: u32) -> f32 {
  return data[params.n * params.d + i];
}
fn table_f(r: u32, i: u32) -> f32 {
  return data[params.n * params.d + params.n + r * params.n + i];
}
fn table_p(r: u32, i: u32) -> f32 {
  return data[params.n * params.d + params.n + params.n * params.n + r * params.n + i];
}
fn cf(k: u32, c: u32) -> f32 {
  return coef[k * NC + c];
}

// -||u - a_k x_i||^2 / 2 b_k^2 from the row's expansion terms.
fn logit(k: u32, i: u32, r: u32, s0: f32, hr: f32, s2: f32) -> f32 {
  let delta = cf(k, C_DELTA);
  let a = cf(k, C_A);
  let vv = s0 + 2.0 * delta * hr + delta * delta * s2;
  let d2 = max(vv + 2.0 * a * (e[i] + delta * table_f(r, i)) + a * a * table_p(r, i), 0.0);
  return -d2 * cf(k, C_INV_2B2);
}

// Sum of red_v over the workgroup (every thread calls it; the result is in red_v[0]).
fn reduce_sum(t: u32) {
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (t < s) {
      red_v[t] = red_v[t] + red_v[t + s];
    }
  }
  workgroupBarrier();
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let m = wg.x + wg.y * 65535u;
  // Whole workgroups leave together, so every barrier below is reached by all or none.
  if (m >= params.m) {
    return;
  }
  let n = params.n;
  let kk = params.k;
  let d = params.d;
  let ub = m * d;

  // 1. The nearest data point r: argmin_i ||x_i||^2 - 2 <u, x_i>.
  var best = 3.4e38;
  var best_i = 0u;
  for (var i = t; i < n; i += WG) {
    var g = 0.0;
    for (var j = 0u; j < d; j++) {
      g += u[ub + j] * x_at(i, j);
    }
    let v = xnorm2(i) - 2.0 * g;
    if (v < best) {
      best = v;
      best_i = i;
    }
  }
  red_v[t] = best;
  red_i[t] = best_i;
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (t < s && (red_v[t + s] < red_v[t] || (red_v[t + s] == red_v[t] && red_i[t + s] < red_i[t]))) {
      red_v[t] = red_v[t + s];
      red_i[t] = red_i[t + s];
    }
  }
  workgroupBarrier();
  let r = red_i[0];

  // 2. w = u - x_r: h_i = <w, x_i> into e, and ||w||^2.
  for (var i = t; i < n; i += WG) {
    var h = 0.0;
    for (var j = 0u; j < d; j++) {
      h += (u[ub + j] - x_at(r, j)) * x_at(i, j);
    }
    e[i] = h;
  }
  var w2 = 0.0;
  for (var j = t; j < d; j += WG) {
    let w = u[ub + j] - x_at(r, j);
    w2 += w * w;
  }
  red_v[t] = w2;
  reduce_sum(t);
  if (t == 0u) {
    row = vec4<f32>(red_v[0], e[r], xnorm2(r), 0.0);
  }
  workgroupBarrier();
  let s0 = row.x;
  let hr = row.y;
  let s2 = row.z;
  for (var i = t; i < n; i += WG) {
    e[i] = hr - e[i];
  }
  workgroupBarrier();

  // 3. logsumexp over the data at each level (one level per thread at a time).
  for (var k = t; k < kk; k += WG) {
    // One pass: the running sum is rescaled whenever the maximum moves.
    var mx = -3.4e38;
    var sum = 0.0;
    for (var i = 0u; i < n; i++) {
      let l = logit(k, i, r, s0, hr, s2);
      if (l > mx) {
        sum = sum * exp(mx - l) + 1.0;
        mx = l;
      } else {
        sum += exp(l - mx);
      }
    }
    lse[k] = mx + log(sum);
  }
  workgroupBarrier();

  // 4. The posterior over the grid and E_marg (one thread: K is small).
  let ob = m * (kk + 2u + 2u * d);
  if (t == 0u) {
    var mx = -3.4e38;
    for (var k = 0u; k < kk; k++) {
      mx = max(mx, lse[k] + cf(k, C_JOINT));
    }
    var sum = 0.0;
    for (var k = 0u; k < kk; k++) {
      let p = exp(lse[k] + cf(k, C_JOINT) - mx);
      post[k] = p;
      sum += p;
    }
    var acc = vec4<f32>(0.0);
    var gain = 0.0;
    for (var k = 0u; k < kk; k++) {
      let p = post[k] / sum;
      post[k] = p;
      out[ob + k] = p;
      acc += p * vec4<f32>(cf(k, C_D_B), cf(k, C_INV_B2), cf(k, C_FIELD_X), cf(k, C_GRAD_X));
      gain += p * cf(k, C_LAMBDA);
    }
    out[ob + kk] = -(mx + log(sum));
    out[ob + kk + 1u] = gain;
    sums = acc;
  }
  workgroupBarrier();

  // 5. Per data point, the posterior-weighted softmax weights for the two fields.
  for (var i = t; i < n; i += WG) {
    var cfld = 0.0;
    var cgrd = 0.0;
    for (var k = 0u; k < kk; k++) {
      let w = post[k] * exp(logit(k, i, r, s0, hr, s2) - lse[k]);
      cfld += w * cf(k, C_ALPHA);
      cgrd += w * cf(k, C_A_B2);
    }
    c_field[i] = cfld;
    c_grad[i] = cgrd;
  }
  workgroupBarrier();

  // 6. f*(u) and grad E_marg, one coordinate per thread at a time.
  for (var j = t; j < d; j += WG) {
    let xr = x_at(r, j);
    var f = 0.0;
    var g = 0.0;
    for (var i = 0u; i < n; i++) {
      let dx = xr - x_at(i, j); // zero at i = r
      f += c_field[i] * dx;
      g += c_grad[i] * dx;
    }
    let w = u[ub + j] - xr;
    out[ob + kk + 2u + j] = w * sums.x + xr * sums.z - f;
    out[ob + kk + 2u + d + j] = w * sums.y + xr * sums.w + g;
  }
}
