//! The closed-form fields for a discrete data set (paper Appendix A.3, Lemmas 1–3, Eq. 14/56).
//!
//! For data `{x_1..x_N}` (uniform) and a grid `t_1..t_K` with quadrature weights `q_k`:
//!
//! ```text
//! log p(u|t)   = logsumexp_i(-||u - a x_i||^2 / 2b^2) - D log b - log N - (D/2) log 2pi
//! w_i(u,t)     = softmax_i(-||u - a x_i||^2 / 2b^2),     xhat(u,t) = sum_i w_i x_i
//! p(t_k|u)     = q_k p(u|t_k) / sum_j q_j p(u|t_j),      E_marg(u) = -log sum_k q_k p(u|t_k)
//! f*(u,t)      = (c - d a/b) xhat + (d/b) u              f*(u) = E_{t|u} f*(u,t)
//! grad E_t(u)  = (u - a xhat) / b^2                      grad E_marg = E_{t|u} grad E_t
//! f*(u)        = E[c/a] u + lambdabar grad E_marg + Cov_{t|u}(lambda, grad E_t)
//! ```
//!
//! Everything is in log space. The squared distances for every grid level come from products
//! shared by all `t` (`U X^T`, `W X^T`, and pairwise tables of the data), expanded around each
//! row's nearest data point so float32 keeps its precision at small `b` (see `dist2`). Each
//! posterior-weighted quantity is a weighted sum of the `w_i` followed by a single product with
//! `X`, evaluated for many grid points at once as a batched matmul.
//!
//! This file is the closed form itself and the field a sampler follows. Beside it: what the
//! oracle says about a point besides the field (`analysis`: posterior, energy, decomposition,
//! drift error), the geometry of App. C (`geometry`: marginal draws, the concentration view, the
//! geometric noise estimate), the same analysis as one WGSL kernel (`kernel`), and the float64
//! reference the tests measure against (`reference`).

mod analysis;
mod geometry;
#[cfg(feature = "webgpu")]
pub mod kernel;
#[cfg(test)]
mod reference;

pub use analysis::Analysis;
pub use geometry::{geometric_noise_scale, t_from_noise_scale, Concentration};

/// The most data points and grid levels the WGSL kernel's workgroup memory holds (`NMAX`, `KMAX`
/// in `shaders/oracle.wgsl`); the page's oracle keeps within them on every backend.
pub const MAX_POINTS: usize = 512;
pub const MAX_GRID: usize = 256;

use crate::data::{host_tensor, Projection};
use crate::dataset::DataSet;
use crate::sample::Field;
use crate::target::Parameterization;
use burn::tensor::{Device, Int, Tensor, TensorData};
use std::f64::consts::PI;

/// Default number of data points (half on each circle) and of grid noise levels.
pub const DEFAULT_POINTS: usize = 256;
pub const DEFAULT_GRID: usize = 128;

/// The closed-form oracle for one parameterization and data set.
#[derive(Clone, Debug)]
pub struct Oracle {
    pub param: Parameterization,
    pub dim: usize,
    pub range: (f64, f64),
    /// Grid noise levels, increasing, log-spaced on `range`.
    pub grid: Vec<f64>,
    /// `log q_k`: prior density times quadrature width, normalised to sum to 1.
    pub log_q: Vec<f64>,
    data: Tensor<2>,
    data_norm2: Tensor<2>,
    /// `F[r, i] = <x_r, x_r - x_i>`, [N, N] (zero on the diagonal exactly).
    cross: Tensor<2>,
    /// `||x_r - x_i||^2` from direct differences, [N, N] (zero on the diagonal exactly).
    pair_dist2: Tensor<2>,
    n: usize,
    device: Device,
}

/// Each query row's nearest data point `x_r`, and `w = u - x_r` (small near the data): the
/// expansion point of the distances and of the fields.
struct Nearest {
    /// `r`, [M, 1].
    r: Tensor<2, Int>,
    /// `x_r`, [M, D].
    xr: Tensor<2>,
    /// `u - x_r`, [M, D].
    w: Tensor<2>,
}

/// The coefficients the fields are made of, at one noise level `t`. The tensor path turns each
/// into a row over the grid (`per_t`); the WGSL kernel gets them as a table (`kernel.rs`), so the
/// two paths share one set of formulas.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Level {
    /// `a(t)` (the kernel's table reads it; the tensor path uses `delta`).
    #[cfg_attr(not(feature = "webgpu"), allow(dead_code))]
    pub a: f64,
    /// `1 - a`
    pub delta: f64,
    /// `1 / (2 b^2)`
    pub inv_2b2: f64,
    /// `c - d a / b`: the weight of `xhat` in the conditional field.
    pub alpha: f64,
    /// `a / b^2`: the weight of `xhat` in `grad E_t`.
    pub a_b2: f64,
    /// `d / b`: the weight of `w = u - x_r` in the field.
    pub d_b: f64,
    /// `1 / b^2`: the weight of `w` in `grad E_t`.
    pub inv_b2: f64,
    /// `c + d (1 - a) / b`: the weight of `x_r` in the field.
    pub field_x: f64,
    /// `(1 - a) / b^2`: the weight of `x_r` in `grad E_t`.
    pub grad_x: f64,
    /// `lambda(t)`, whose posterior mean is the gain.
    pub lambda: f64,
}

impl Level {
    pub fn at(p: Parameterization, t: f64) -> Level {
        let (a, b) = (p.a(t), p.b(t));
        let (c, d) = p.target_coeffs(t);
        let (delta, b2) = (1.0 - a, b * b);
        Level {
            a,
            delta,
            inv_2b2: 1.0 / (2.0 * b2),
            alpha: c - d * a / b,
            a_b2: a / b2,
            d_b: d / b,
            inv_b2: 1.0 / b2,
            field_x: c + d * delta / b,
            grad_x: delta / b2,
            lambda: p.lambda(t),
        }
    }
}

/// Rows processed at once: bounds the [rows, K, N] intermediates to a few million floats.
fn chunk_rows(k: usize, n: usize) -> usize {
    (4_000_000 / (k * n).max(1)).clamp(1, 4096)
}

fn row_tensor(v: Vec<f64>, device: &Device) -> Tensor<2> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v.into_iter().map(|x| x as f32).collect::<Vec<_>>(), [1, n]), device)
}

impl Oracle {
    /// An oracle over arbitrary data rows `data` ([N, D]).
    pub fn new(param: Parameterization, range: (f64, f64), data: Tensor<2>, grid_size: usize) -> Result<Oracle, String> {
        let [n, dim] = data.dims();
        let (lo, hi) = range;
        if !(lo > 0.0 && lo < hi && hi.is_finite()) {
            return Err(format!("noise range [{lo}, {hi}] is invalid"));
        }
        if n == 0 || grid_size < 2 {
            return Err("the oracle needs at least one data point and two grid levels".into());
        }
        // The linear path has a = 0 at t = 1, where c/a and lambda are undefined: stop just short.
        let hi = if param.a(hi) <= 1e-6 { hi - 1e-3 * (hi - lo) } else { hi };
        let k = grid_size;
        let grid: Vec<f64> = (0..k).map(|i| lo * (hi / lo).powf(i as f64 / (k - 1) as f64)).collect();
        let prior = param.prior();
        let mut q: Vec<f64> = (0..k)
            .map(|i| {
                let left = if i == 0 { grid[0] } else { 0.5 * (grid[i - 1] + grid[i]) };
                let right = if i == k - 1 { grid[k - 1] } else { 0.5 * (grid[i] + grid[i + 1]) };
                prior.density(grid[i], lo, hi.max(range.1)) * (right - left)
            })
            .collect();
        let total: f64 = q.iter().sum();
        q.iter_mut().for_each(|v| *v /= total);
        let device = data.device();
        let data_norm2 = data.clone().square().sum_dim(1).transpose(); // [1, N]
        let gram = data.clone().matmul(data.clone().transpose()); // [N, N]
        let cross = gram.clone().mul(Tensor::eye(n, &device)).sum_dim(1) - gram; // C[r,r] - C[r,i]
        let mut rows = vec![];
        let step = (4_000_000 / (n * dim).max(1)).max(1);
        let mut start = 0;
        while start < n {
            let end = (start + step).min(n);
            let xr = data.clone().slice([start..end, 0..dim]).unsqueeze_dim::<3>(1); // [R,1,D]
            let diff = xr - data.clone().unsqueeze_dim::<3>(0); // [R,N,D]
            rows.push(diff.square().sum_dim(2).reshape([end - start, n]));
            start = end;
        }
        let pair_dist2 = Tensor::cat(rows, 0);
        Ok(Oracle { param, dim, range: (lo, hi), grid, log_q: q.iter().map(|v| v.ln()).collect(), data, data_norm2, cross, pair_dist2, n, device })
    }

    /// The oracle for the toy data: `points` evenly spaced points on the two circles, lifted by `proj`.
    pub fn for_circles(param: Parameterization, range: (f64, f64), proj: &Projection, points: usize, grid_size: usize, device: &Device) -> Result<Oracle, String> {
        Oracle::for_data(param, range, proj, &DataSet::circles(), points, grid_size, device)
    }

    /// The oracle for any 2-D data set: its discrete set of about `points` points (a drawn set:
    /// all its points), lifted by `proj`.
    pub fn for_data(param: Parameterization, range: (f64, f64), proj: &Projection, data: &DataSet, points: usize, grid_size: usize, device: &Device) -> Result<Oracle, String> {
        if points < 2 {
            return Err("the oracle needs at least two data points".into());
        }
        let x = proj.lift(host_tensor(data.discrete(points), 2, device));
        Oracle::new(param, range, x, grid_size)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The data rows `x_1..x_N`, [N, D].
    pub fn data(&self) -> &Tensor<2> {
        &self.data
    }

    /// How many data points the closed form sums over.
    pub fn points(&self) -> usize {
        self.n
    }

    /// Per-grid coefficient rows `[1, K]` of a function of `t`.
    fn per_t(&self, f: impl Fn(f64) -> f64) -> Tensor<2> {
        row_tensor(self.grid.iter().map(|&t| f(t)).collect(), &self.device)
    }

    /// Squared distances `||u - a_k x_i||^2` for noise levels `ts`, [M, K, N].
    ///
    /// Written as `||u - a x_i||^2 = ||u||^2 - 2a<u, x_i> + a^2 ||x_i||^2` this loses everything in
    /// float32 once `b` is small: the O(1) terms cancel to O(b^2) and are then divided by `2 b^2`.
    /// So each row is expanded around its nearest data point `x_r`, with `w = u - x_r` (small near
    /// the data) and `delta = 1 - a`:
    ///
    /// ```text
    /// u - a x_i = (w + delta x_r) + a (x_r - x_i)
    /// ||u - a x_i||^2 = ||w||^2 + 2 delta <w, x_r> + delta^2 ||x_r||^2
    ///                 + 2a (<w, x_r - x_i> + delta <x_r, x_r - x_i>) + a^2 ||x_r - x_i||^2
    /// ```
    ///
    /// Every term is now computed at its own scale, and the `i = r` term is exactly
    /// `||w + delta x_r||^2` (the pairwise tables are exactly zero on their diagonals).
    fn dist2(&self, u: &Tensor<2>, ts: &[f64]) -> (Tensor<3>, Nearest) {
        let p = self.param;
        let (m, k, n) = (u.dims()[0], ts.len(), self.n);
        let g = u.clone().matmul(self.data.clone().transpose()); // [M, N]
        let r = (self.data_norm2.clone() - g.mul_scalar(2.0)).argmin(1); // [M, 1] nearest data point
        let r1 = r.clone().reshape([m]);
        let xr = self.data.clone().select(0, r1.clone()); // [M, D]
        let w = u.clone() - xr.clone();
        let h = w.clone().matmul(self.data.clone().transpose()); // <w, x_i>, [M, N]
        let hr = h.clone().gather(1, r.clone()); // <w, x_r>, [M, 1]
        let e = hr.clone() - h; // <w, x_r - x_i>, [M, N]
        let s0 = w.clone().square().sum_dim(1); // [M, 1]
        let s2 = xr.clone().square().sum_dim(1); // [M, 1]
        let f = self.cross.clone().select(0, r1.clone()); // [M, N]
        let d2 = self.pair_dist2.clone().select(0, r1); // [M, N]
        let col = |f: &dyn Fn(f64) -> f64| row_tensor(ts.iter().map(|&t| f(t)).collect(), &self.device).reshape([1, k, 1]);
        let delta = col(&|t| Level::at(p, t).delta);
        let two_delta = col(&|t| 2.0 * Level::at(p, t).delta);
        let delta2 = col(&|t| Level::at(p, t).delta.powi(2));
        let two_a = col(&|t| 2.0 * p.a(t));
        let a2 = col(&|t| p.a(t) * p.a(t));
        let vv = s0.unsqueeze_dim::<3>(1) + hr.unsqueeze_dim::<3>(1) * two_delta + s2.unsqueeze_dim::<3>(1) * delta2; // [M,K,1]
        let cross = (e.unsqueeze_dim::<3>(1) + f.unsqueeze_dim::<3>(1) * delta) * two_a; // [M,K,N]
        ((vv + cross + d2.unsqueeze_dim::<3>(1) * a2).clamp_min(0.0).reshape([m, k, n]), Nearest { r, xr, w })
    }

    /// `-D log b_k - log N - (D/2) log 2 pi`: the part of `log p(u|t_k)` that is not the
    /// log-sum-exp.
    fn log_norm(&self, t: f64) -> f64 {
        let d = self.dim as f64;
        -d * self.param.b(t).ln() - (self.n as f64).ln() - 0.5 * d * (2.0 * PI).ln()
    }

    /// Shared first pass over a chunk of rows: `(logsumexp_i logits [M,K], w [M,K,N], nearest)`;
    /// `log p(u|t_k)` is the first plus `log_norm(t_k)`.
    fn likelihood(&self, u: &Tensor<2>) -> (Tensor<2>, Tensor<3>, Nearest) {
        let p = self.param;
        let m = u.dims()[0];
        let k = self.grid.len();
        let inv_2b2 = self.per_t(|t| -Level::at(p, t).inv_2b2).reshape([1, k, 1]);
        let (d2, nearest) = self.dist2(u, &self.grid);
        let logits = d2 * inv_2b2; // [M,K,N]
        let mx = logits.clone().max_dim(2); // [M,K,1]
        let e = (logits - mx.clone()).exp();
        let sum = e.clone().sum_dim(2); // [M,K,1]
        let w = e / sum.clone();
        let lse: Tensor<2> = (mx + sum.log()).reshape([m, k]);
        (lse, w, nearest)
    }

    /// `log p(u | t_k)` on the grid, [M, K].
    pub fn log_likelihood(&self, u: Tensor<2>) -> Tensor<2> {
        self.chunked(u, |o, c| vec![o.likelihood(&c).0 + o.per_t(|t| o.log_norm(t))]).remove(0)
    }

    /// Joint `log q_k + log p(u|t_k)` → (posterior [M,K], E_marg [M,1]). The constants of each
    /// level are summed in f64 and added once: at D = 512 they reach thousands, where one more
    /// float32 rounding moves the posterior by 1e-4.
    fn posterior_energy(&self, lse: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let cst: Vec<f64> = self.grid.iter().zip(&self.log_q).map(|(&t, lq)| lq + self.log_norm(t)).collect();
        let joint = lse + row_tensor(cst, &self.device);
        let mx = joint.clone().max_dim(1);
        let e = (joint - mx.clone()).exp();
        let s = e.clone().sum_dim(1);
        let post = e / s.clone();
        let energy = (mx + s.log()).neg();
        (post, energy)
    }

    /// For each coefficient row `beta_j`, `sum_k post[m,k] beta_j(t_k) (x_r - xhat_k(u))`, [M, D]:
    /// with `c_i = sum_k post[m,k] beta_j(t_k) w[m,k,i]` this is `sum_{i != r} c_i (x_r - x_i)`.
    /// Leaving out `i = r` (whose term is zero) leaves only the small weights of the other points,
    /// where `c X` itself would cancel two terms of size `beta` near the data (`beta` up to
    /// `1 / b^2`).
    fn weighted_offsets(&self, post: &Tensor<2>, w: Tensor<3>, betas: &[Tensor<2>], near: &Nearest) -> Vec<Tensor<2>> {
        let m = post.dims()[0];
        let j = betas.len();
        let b = Tensor::cat(betas.to_vec(), 0); // [J, K]
        let pb = post.clone().unsqueeze_dim::<3>(1) * b.unsqueeze_dim::<3>(0); // [M, J, K]
        let others = near.r.clone().reshape([m]).one_hot::<2>(self.n).float().neg().add_scalar(1.0); // [M, N]
        let c = pb.matmul(w) * others.unsqueeze_dim::<3>(1); // [M, J, N], column r zero
        let mass = c.clone().sum_dim(2); // [M, J, 1]
        let cx = c.reshape([m * j, self.n]).matmul(self.data.clone()).reshape([m, j, self.dim]);
        let out = mass * near.xr.clone().unsqueeze_dim::<3>(1) - cx;
        (0..j).map(|jj| out.clone().slice([0..m, jj..jj + 1, 0..self.dim]).reshape([m, self.dim])).collect()
    }

    /// `sum_k post[m,k] beta(t_k)`, [M, 1].
    fn expect(post: &Tensor<2>, beta: Tensor<2>) -> Tensor<2> {
        (post.clone() * beta).sum_dim(1)
    }

    /// Runs `f` on row chunks and concatenates each of its outputs along rows.
    fn chunked<const N: usize>(&self, u: Tensor<2>, f: impl Fn(&Self, Tensor<2>) -> Vec<Tensor<N>>) -> Vec<Tensor<N>> {
        let m = u.dims()[0];
        let step = chunk_rows(self.grid.len(), self.n);
        let mut parts: Vec<Vec<Tensor<N>>> = vec![];
        let mut start = 0;
        while start < m {
            let end = (start + step).min(m);
            let rows = u.clone().slice([start..end, 0..self.dim]);
            parts.push(f(self, rows));
            start = end;
        }
        let outs = parts.first().map(|p| p.len()).unwrap_or(0);
        (0..outs).map(|i| Tensor::cat(parts.iter().map(|p| p[i].clone()).collect(), 0)).collect()
    }

    /// The blind optimum `f*(u) = E_{t|u}[f*(u,t)]` only (what the oracle blind sampler needs).
    pub fn blind_field(&self, u: Tensor<2>) -> Tensor<2> {
        let p = self.param;
        self.chunked(u, |o, u| {
            let (logp, w, near) = o.likelihood(&u);
            let (post, _) = o.posterior_energy(logp);
            let alpha = o.per_t(|t| Level::at(p, t).alpha);
            let offsets = o.weighted_offsets(&post, w, &[alpha], &near);
            let (s_w, s_x) = o.field_weights(&post);
            vec![near.w.clone() * s_w + near.xr.clone() * s_x - offsets[0].clone()]
        })
        .remove(0)
    }

    /// `f*(u) = E[d/b] w + E[c + d (1 - a)/b] x_r - E[alpha (x_r - xhat)]` with `alpha = c - d a/b`
    /// (the conditional field `alpha xhat + (d/b) u`, written around `x_r`): the weights of `w`
    /// and `x_r`, [M, 1] each.
    fn field_weights(&self, post: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let p = self.param;
        let s_w = Self::expect(post, self.per_t(|t| Level::at(p, t).d_b));
        let s_x = Self::expect(post, self.per_t(|t| Level::at(p, t).field_x));
        (s_w, s_x)
    }

    /// The optimal denoiser `xhat(u, t)` at one noise level, [M, D].
    pub fn denoiser(&self, u: Tensor<2>, t: f64) -> Tensor<2> {
        let b = self.param.b(t);
        self.chunked(u, |o, u| {
            let m = u.dims()[0];
            let logits = o.dist2(&u, &[t]).0.reshape([m, o.n]).mul_scalar(-1.0 / (2.0 * b * b));
            let w = burn::tensor::activation::softmax(logits, 1);
            vec![w.matmul(o.data.clone())]
        })
        .remove(0)
    }

    /// The conditional optimum `f*(u, t) = (c - d a/b) xhat + (d/b) u`, [M, D].
    pub fn conditional_field(&self, u: Tensor<2>, t: f64) -> Tensor<2> {
        let p = self.param;
        let (a, b) = (p.a(t), p.b(t));
        let (c, d) = p.target_coeffs(t);
        self.denoiser(u.clone(), t).mul_scalar(c - d * a / b) + u.mul_scalar(d / b)
    }
}

/// The closed-form field as something a sampler follows: conditional (`f*(u,t)`) or blind (`f*(u)`).
pub struct OracleField {
    pub oracle: Oracle,
    pub blind: bool,
}

impl Field for OracleField {
    fn eval(&self, u: Tensor<2>, t: f64) -> Tensor<2> {
        if self.blind {
            self.oracle.blind_field(u)
        } else {
            self.oracle.conditional_field(u, t)
        }
    }
    fn parameterization(&self) -> Parameterization {
        self.oracle.param
    }
    fn range(&self) -> (f64, f64) {
        self.oracle.range
    }
    fn dim(&self) -> usize {
        self.oracle.dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::reference::*;
    use crate::rng::Rng;
    use crate::sample::{read_f32, SampleConfig, Solver};
    use crate::target::TimeGrid;

    #[test]
    fn float32_tensor_path_agrees_with_float64_reference() {
        for (param, dim) in [(Parameterization::Fm, 3), (Parameterization::Ddpm, 16), (Parameterization::Edm, 8), (Parameterization::Eqm, 32)] {
            let proj = Projection::new(dim, 1).unwrap();
            let o = Oracle::for_circles(param, param.default_range(), &proj, 24, 32, &dev()).unwrap();
            let data: Vec<f64> = read_f32(o.data.clone()).into_iter().map(|v| v as f64).collect();
            let (lo, hi) = o.range;
            let ts = [lo * 20.0, (lo * hi).sqrt(), hi * 0.5];
            let (u, _, _) = noisy_points(&o, &ts, 3);
            let an = o.analyze(rows(u.clone(), dim));
            let post = read_f32(an.posterior);
            let energy = read_f32(an.energy);
            let field = read_f32(an.field);
            let grad = read_f32(an.grad_energy);
            let k = o.grid.len();
            for r in 0..ts.len() {
                let ur: Vec<f64> = u[r * dim..(r + 1) * dim].iter().map(|v| *v as f64).collect();
                let (p64, e64, f64_, g64) = reference(&o, &data, &ur);
                assert!(max_rel(&post[r * k..(r + 1) * k], &p64) < 1e-3, "{param} posterior row {r}");
                assert!((energy[r] as f64 - e64).abs() < 1e-3 * (1.0 + e64.abs()), "{param} energy {} vs {e64}", energy[r]);
                assert!(max_rel(&field[r * dim..(r + 1) * dim], &f64_) < 2e-3, "{param} field row {r}");
                assert!(max_rel(&grad[r * dim..(r + 1) * dim], &g64) < 2e-3, "{param} grad row {r}");
            }
        }
    }

    /// A drawn data set of two clusters, as the page's Draw view makes it: the closed form over it
    /// agrees with the float64 reference at D = 2 and D = 512, and the geometry does what the
    /// theory says: at D = 512 the posterior over t at a noisy point is far narrower.
    #[test]
    fn drawn_two_clusters_follow_the_closed_form_at_d2_and_d512() {
        use crate::dataset::DataSpec;
        let points: Vec<[f64; 2]> = (0..12)
            .map(|i| {
                let (c, a) = (if i < 6 { -3.0 } else { 3.0 }, 1.3 * i as f64);
                [c + 0.3 * a.cos(), 0.3 * a.sin()]
            })
            .collect();
        let data = DataSpec::Points { points }.build().unwrap();
        let param = Parameterization::Fm;
        let mut spread = vec![];
        for dim in [2, 512] {
            let proj = Projection::new(dim, 2).unwrap();
            let o = Oracle::for_data(param, param.default_range(), &proj, &data, 64, 48, &dev()).unwrap();
            assert_eq!(o.n, 12, "a drawn set is its own discrete set");
            let x: Vec<f64> = read_f32(o.data.clone()).into_iter().map(|v| v as f64).collect();
            let ts = [0.05, 0.3, 0.7];
            let (u, _, _) = noisy_points(&o, &ts, 5);
            let an = o.analyze(rows(u.clone(), dim));
            let (post, field, grad, t_std) = (read_f32(an.posterior), read_f32(an.field), read_f32(an.grad_energy), read_f32(an.t_std));
            let k = o.grid.len();
            for r in 0..ts.len() {
                let ur: Vec<f64> = u[r * dim..(r + 1) * dim].iter().map(|v| *v as f64).collect();
                let (p64, _, f64_, g64) = reference(&o, &x, &ur);
                // At D = 512 the log-likelihoods reach thousands: one float32 step of them moves
                // the posterior by about 1e-3.
                let tol = if dim == 2 { 1e-3 } else { 3e-3 };
                assert!(max_rel(&post[r * k..(r + 1) * k], &p64) < tol, "D = {dim}: posterior row {r}");
                assert!(max_rel(&field[r * dim..(r + 1) * dim], &f64_) < tol, "D = {dim}: field row {r}");
                assert!(max_rel(&grad[r * dim..(r + 1) * dim], &g64) < tol, "D = {dim}: grad row {r}");
            }
            spread.push(t_std[1] as f64);
        }
        assert!(spread[1] < 0.2 * spread[0], "the spread of t at t = 0.3: D = 2 {} vs D = 512 {}", spread[0], spread[1]);
    }

    #[test]
    fn sde_ode_ddim_and_dpm_solver_paths_of_the_exact_fields_agree_with_float64_reference() {
        // Same starting noise, same SDE noise: the float32 tensor path (oracle + Sampler) and the
        // float64 reference follow the same trajectories; the moments of where they land agree.
        use crate::sample::Sampler;
        use std::rc::Rc;
        for dim in [8, 512] {
            let proj = Projection::new(dim, 2).unwrap();
            for param in [Parameterization::Fm, Parameterization::Ddpm, Parameterization::Uedm] {
                let o = Oracle::for_circles(param, param.default_range(), &proj, 16, 16, &dev()).unwrap();
                let data: Vec<f64> = read_f32(o.data.clone()).into_iter().map(|v| v as f64).collect();
                for blind in [true, false] {
                    for (solver, grid) in [(Solver::Euler, TimeGrid::Default), (Solver::Ddim, TimeGrid::Default), (Solver::Dpm2m, TimeGrid::Default), (Solver::Dpm2m, TimeGrid::LogSnr), (Solver::Sde, TimeGrid::Default), (Solver::Sde, TimeGrid::LogSnr)] {
                        let cfg = SampleConfig { n: 48, steps: 30, solver, time_grid: grid, seed: 4, ..Default::default() };
                        let field = Rc::new(OracleField { oracle: o.clone(), blind });
                        let got = read_f32(Sampler::new(field, cfg.clone(), &proj, &dev()).unwrap().run());
                        let want = reference_run(&o, &data, blind, &cfg);
                        let m32 = crate::metrics::compute(&got, &proj).unwrap();
                        let m64 = crate::metrics::compute(&want.iter().map(|v| *v as f32).collect::<Vec<_>>(), &proj).unwrap();
                        // Per trajectory: the distance between the two end points, against the point's norm.
                        let mut rel: Vec<f64> = got
                            .chunks(dim)
                            .zip(want.chunks(dim))
                            .map(|(g, w)| {
                                let e = g.iter().zip(w).map(|(a, b)| (*a as f64 - b).powi(2)).sum::<f64>().sqrt();
                                e / w.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-9)
                            })
                            .collect();
                        rel.sort_by(f64::total_cmp);
                        let what = format!("D = {dim} {param} {} {solver:?} {grid:?}", if blind { "blind" } else { "cond" });
                        eprintln!("{what}: end points differ by median {:.1e}, largest {:.1e}; radial error mean {:.4} vs {:.4}, off-manifold mean {:.4} vs {:.4}", rel[rel.len() / 2], rel[rel.len() - 1], m32.radial_error_mean, m64.radial_error_mean, m32.off_manifold_mean, m64.off_manifold_mean);
                        assert!(rel[rel.len() / 2] < 1e-3, "{what}: median relative difference {}", rel[rel.len() / 2]);
                        assert!((m32.radial_error_mean - m64.radial_error_mean).abs() < 0.01 + 0.02 * m64.radial_error_mean, "{what}: radial error {m32:?} vs {m64:?}");
                        assert!((m32.off_manifold_mean - m64.off_manifold_mean).abs() < 0.01 + 0.02 * m64.off_manifold_mean, "{what}: off-manifold {m32:?} vs {m64:?}");
                        // DDPM Blind amplifies float32 rounding near the data (Sec. 6): a few of its
                        // trajectories part ways, so a few samples may change sides of the tolerance.
                        assert!((m32.clean_fraction - m64.clean_fraction).abs() <= 3.0 / cfg.n as f64, "{what}: clean {} vs {}", m32.clean_fraction, m64.clean_fraction);
                    }
                }
            }
        }
    }

    #[test]
    fn dpm_solver_2m_is_nearer_the_exact_path_than_ddim_in_few_steps() {
        // The exact conditional fields, from the same starting points: where DDIM and
        // DPM-Solver++(2M) at 20, 40 and 80 steps are halfway along the log-SNR grid, against DDIM at
        // 4,000 steps at the same level (the grids are nested). Halfway, not at the end: there
        // the exact field pulls every path onto a data point, which hides the path's error.
        use crate::sample::Sampler;
        use std::rc::Rc;
        let dim = 8;
        let proj = Projection::new(dim, 2).unwrap();
        for param in [Parameterization::Fm, Parameterization::Ddpm, Parameterization::Uedm] {
            let o = Oracle::for_circles(param, param.default_range(), &proj, 16, 16, &dev()).unwrap();
            let field = Rc::new(OracleField { oracle: o, blind: false });
            let halfway = |solver, steps: usize| {
                let mut s = Sampler::new(field.clone(), SampleConfig { n: 64, steps, solver, time_grid: TimeGrid::LogSnr, seed: 5, ..Default::default() }, &proj, &dev()).unwrap();
                let mut f = s.frame();
                for _ in 0..steps / 2 {
                    f = s.step().unwrap();
                }
                (f.t, read_f32(f.u))
            };
            let (t_fine, fine) = halfway(Solver::Ddim, 4000);
            let err = |(t, x): (f64, Vec<f32>)| {
                assert!((t - t_fine).abs() <= 1e-9 * t_fine, "grids not nested: {t} vs {t_fine}");
                let mut e: Vec<f64> = x.chunks(dim).zip(fine.chunks(dim)).map(|(a, b)| a.iter().zip(b).map(|(p, q)| ((p - q) as f64).powi(2)).sum::<f64>().sqrt()).collect();
                e.sort_by(f64::total_cmp);
                e[e.len() / 2]
            };
            let mut errs = vec![];
            for steps in [20, 40, 80] {
                let (dd, dp) = (err(halfway(Solver::Ddim, steps)), err(halfway(Solver::Dpm2m, steps)));
                eprintln!("{param} {steps} steps, at t = {t_fine:.3}: median distance to the fine path, DDIM {dd:.2e}, DPM-Solver++(2M) {dp:.2e}");
                assert!(dp < 0.5 * dd, "{param} {steps} steps: DPM-Solver++(2M) {dp} vs DDIM {dd}");
                errs.push((dd, dp));
            }
            // Doubling the steps halves DDIM's error (first order) and cuts DPM-Solver++(2M)'s by
            // more than three (second order; four in the limit).
            let (ddim_gain, dpm_gain) = (errs[1].0 / errs[2].0, errs[1].1 / errs[2].1);
            assert!((1.6..2.6).contains(&ddim_gain), "{param}: DDIM's error from 40 to 80 steps fell {ddim_gain}x");
            assert!(dpm_gain > 3.0, "{param}: DPM-Solver++(2M)'s error from 40 to 80 steps fell {dpm_gain}x");
        }
    }

    #[test]
    fn fm_oracle_field_near_the_data_is_eps_minus_x() {
        let param = Parameterization::Fm;
        let dim = 256;
        let proj = Projection::new(dim, 9).unwrap();
        // 32 data points: neighbours far enough apart that at t = 0.01 the denoiser is sure which one.
        let o = Oracle::for_circles(param, param.default_range(), &proj, 32, 128, &dev()).unwrap();
        let t = 0.01;
        let (u, x, eps) = noisy_points(&o, &[t; 8], 4);
        let cond = read_f32(o.conditional_field(rows(u.clone(), dim), t));
        let blind = read_f32(o.blind_field(rows(u, dim)));
        for r in 0..8 {
            let want: Vec<f64> = (r * dim..(r + 1) * dim).map(|j| (eps[j] - x[j]) as f64).collect();
            let norm = want.iter().map(|w| w * w).sum::<f64>().sqrt();
            let c = &cond[r * dim..(r + 1) * dim];
            let err: f64 = c.iter().zip(&want).map(|(g, w)| (*g as f64 - w).powi(2)).sum::<f64>().sqrt();
            assert!(err < 5e-3 * norm, "conditional row {r}: relative error {}", err / norm);
            // Blind: the same direction, scaled by t E[1/t | u], which is 1 up to the noise-level
            // ambiguity of one draw, ||eps|| / sqrt(D) - 1 ~ 1 / sqrt(2D).
            let bl = &blind[r * dim..(r + 1) * dim];
            let dot: f64 = bl.iter().zip(&want).map(|(g, w)| *g as f64 * w).sum();
            let bn = bl.iter().map(|g| (*g as f64).powi(2)).sum::<f64>().sqrt();
            assert!(dot / (bn * norm) > 0.999, "blind row {r}: cosine {}", dot / (bn * norm));
            assert!((bn / norm - 1.0).abs() < 3.0 / (2.0 * dim as f64).sqrt(), "blind row {r}: norm ratio {}", bn / norm);
        }
    }

    #[test]
    fn quadrature_weights_follow_the_prior() {
        let proj = Projection::new(4, 0).unwrap();
        for param in Parameterization::ALL {
            let o = Oracle::for_circles(param, param.default_range(), &proj, 8, 64, &dev()).unwrap();
            let q: f64 = o.log_q.iter().map(|v| v.exp()).sum();
            assert!((q - 1.0).abs() < 1e-9);
            // Uniform prior on a log grid: weight grows with t; log-uniform prior: nearly flat.
            let first = o.log_q[1];
            let last = o.log_q[o.log_q.len() - 2];
            if param.prior() == crate::target::Prior::Uniform {
                assert!(last > first + 1.0);
            } else {
                assert!((last - first).abs() < 1e-6);
            }
        }
    }

    /// D = 1024 at the ends of every range: points on the data (t = t_min), at tiny t, and far
    /// out. Everything is log-space, so nothing over- or underflows to NaN or infinity.
    #[test]
    fn extreme_dimension_and_tiny_t_stay_finite() {
        let dim = 1024;
        let proj = Projection::new(dim, 3).unwrap();
        for param in Parameterization::ALL {
            let (lo, hi) = param.default_range();
            let o = Oracle::for_circles(param, (lo, hi), &proj, 32, 48, &dev()).unwrap();
            let (mut u, _, _) = noisy_points(&o, &[lo, lo * 1.5, (lo * hi).sqrt(), hi], 5);
            let data = read_f32(o.data.clone());
            u.extend_from_slice(&data[..dim]); // exactly a data point
            u.extend(Rng::new(9).normals_f32(dim).into_iter().map(|v| v * 1e3)); // far out
            let m = u.len() / dim;
            let an = o.analyze(rows(u.clone(), dim));
            for (name, t) in [("posterior", an.posterior), ("energy", an.energy), ("grad", an.grad_energy), ("field", an.field)] {
                let v = read_f32(t);
                assert!(v.iter().all(|x| x.is_finite()), "{param} {name}: {} non-finite of {}", v.iter().filter(|x| !x.is_finite()).count(), v.len());
            }
            for t in [lo, hi] {
                for (name, f) in [("denoiser", o.denoiser(rows(u.clone(), dim), t)), ("conditional", o.conditional_field(rows(u.clone(), dim), t)), ("drift", o.drift_error(rows(u.clone(), dim), t))] {
                    let v = read_f32(f);
                    assert!(!v.is_empty() && v.len() % m == 0, "{param} {name}: {} values for {m} points", v.len());
                    assert!(v.iter().all(|x| x.is_finite()), "{param} {name} at t = {t}");
                }
            }
        }
    }
}
