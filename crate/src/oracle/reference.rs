//! The closed form in plain f64, written from the equations independently of the tensor code:
//! what the tests of every oracle room measure against (test builds only).

use super::Oracle;
use crate::data::host_tensor;
use crate::rng::Rng;
use crate::sample::{read_f32, starting_noise, SampleConfig, Solver};
use crate::target::Parameterization;
use burn::tensor::{Device, Tensor};
use std::f64::consts::PI;

pub fn dev() -> Device {
    Device::flex()
}

pub fn rows(v: Vec<f32>, cols: usize) -> Tensor<2> {
    host_tensor(v, cols, &dev())
}

/// Points `u = a(t) x + b(t) eps` with `x` drawn from the oracle's own data set, so each point
/// is a draw from the model the closed form describes. Returns (u, x, eps).
pub fn noisy_points(o: &Oracle, ts: &[f64], seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let d = o.dim;
    let data = read_f32(o.data.clone());
    let eps = rng.normals_f32(ts.len() * d);
    let mut u = vec![0f32; ts.len() * d];
    let mut x = vec![0f32; ts.len() * d];
    for (r, &t) in ts.iter().enumerate() {
        let i = rng.below(o.n);
        let (a, b) = (o.param.a(t) as f32, o.param.b(t) as f32);
        for j in 0..d {
            x[r * d + j] = data[i * d + j];
            u[r * d + j] = a * x[r * d + j] + b * eps[r * d + j];
        }
    }
    (u, x, eps)
}

/// One noise level in plain f64: `logsumexp_i(-||u - a x_i||^2 / 2b^2)` and the denoiser
/// `xhat(u, t)` (the softmax of those terms over the data).
pub fn reference_level(p: Parameterization, data: &[f64], u: &[f64], t: f64) -> (f64, Vec<f64>) {
    let d = u.len();
    let n = data.len() / d;
    let (a, b) = (p.a(t), p.b(t));
    let l: Vec<f64> = (0..n).map(|i| -(0..d).map(|j| (u[j] - a * data[i * d + j]).powi(2)).sum::<f64>() / (2.0 * b * b)).collect();
    let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = l.iter().map(|v| (v - m).exp()).sum();
    let lse = m + s.ln();
    (lse, (0..d).map(|j| (0..n).map(|i| (l[i] - lse).exp() * data[i * d + j]).sum()).collect())
}

/// Plain f64 evaluation of the closed form, written independently of the tensor code.
pub fn reference(o: &Oracle, data: &[f64], u: &[f64]) -> (Vec<f64>, f64, Vec<f64>, Vec<f64>) {
    let (d, p) = (o.dim, o.param);
    let n = data.len() / d;
    let mut joint = vec![];
    let mut xhats = vec![];
    for (k, &t) in o.grid.iter().enumerate() {
        let b = p.b(t);
        let (lse, xh) = reference_level(p, data, u, t);
        xhats.push(xh);
        joint.push(o.log_q[k] + lse - d as f64 * b.ln() - (n as f64).ln() - 0.5 * d as f64 * (2.0 * PI).ln());
    }
    let m = joint.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = joint.iter().map(|v| (v - m).exp()).sum();
    let post: Vec<f64> = joint.iter().map(|v| (v - m).exp() / s).collect();
    let energy = -(m + s.ln());
    let mut field = vec![0.0; d];
    let mut grad = vec![0.0; d];
    for (k, &t) in o.grid.iter().enumerate() {
        let (a, b) = (p.a(t), p.b(t));
        let (c, dd) = p.target_coeffs(t);
        for j in 0..d {
            field[j] += post[k] * ((c - dd * a / b) * xhats[k][j] + dd / b * u[j]);
            grad[j] += post[k] * (u[j] - a * xhats[k][j]) / (b * b);
        }
    }
    (post, energy, field, grad)
}

pub fn max_rel(a: &[f32], b: &[f64]) -> f64 {
    let scale = b.iter().map(|v| v.abs()).fold(0.0, f64::max).max(1e-12);
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max) / scale
}

/// A sampling run of the exact field in plain f64, written from the equations (not from the
/// sampler's coefficient functions): Euler on `du/dt = mu u + nu f`, or Euler–Maruyama on the
/// reverse SDE `du = [F u - G^2 score] dt + G dW` with `F = a'/a`, `G^2 = 2 b b' - 2 F b^2`.
/// The conditional score is Tweedie's `-(u - a xhat) / b^2`; the blind one comes from the blind
/// field as `-epshat / b`, `epshat = (a f - c u) / (a d - b c)`. The starting points and the
/// SDE's noise are the sampler's own draws.
pub fn reference_run(o: &Oracle, data: &[f64], blind: bool, cfg: &SampleConfig) -> Vec<f64> {
    let (p, dim, n) = (o.param, o.dim, cfg.n);
    let grid = p.sampling_grid_with(cfg.time_grid, cfg.steps, o.range.0, o.range.1);
    let b0 = p.b(o.range.1);
    let mut u: Vec<f64> = starting_noise(n, dim, cfg.seed).iter().map(|v| b0 * *v as f64).collect();
    let mut rng = Rng::derive(cfg.seed, "ancestral");
    // DPM-Solver++(2M): the clean estimates of the step before, and log(a / b).
    let mut xhat_prev: Option<Vec<f64>> = None;
    let lambda = |t: f64| (p.a(t) / p.b(t)).ln();
    for k in 0..cfg.steps {
        let (t, s) = (grid[k], grid[k + 1]);
        let h = t - s;
        let sch = p.schedule();
        let (a, b, da, db) = (sch.a(t), sch.b(t), sch.da(t), sch.db(t));
        let (c, d) = p.target_coeffs(t);
        let z = if cfg.solver == Solver::Sde { rng.normals_f32(n * dim) } else { vec![] };
        let mut xhat_now = vec![0.0; n * dim];
        for r in 0..n {
            let ur = &u[r * dim..(r + 1) * dim];
            let (field, score): (Vec<f64>, Vec<f64>) = if blind {
                let f = reference(o, data, ur).2;
                let score = (0..dim).map(|j| -(a * f[j] - c * ur[j]) / (a * d - b * c) / b).collect();
                (f, score)
            } else {
                let xh = reference_level(p, data, ur, t).1;
                let f = (0..dim).map(|j| (c - d * a / b) * xh[j] + d / b * ur[j]).collect();
                let score = (0..dim).map(|j| -(ur[j] - a * xh[j]) / (b * b)).collect();
                (f, score)
            };
            let next: Vec<f64> = if cfg.solver == Solver::Dpm2m {
                // h = lambda_s - lambda_t; D = (1 + 1/2r) xhat - (1/2r) xhat_prev, r = h_prev / h
                // (first order on the first step, and on the last in runs under 15 steps);
                // u_s = (b_s / b_t) u - a_s (e^{-h} - 1) D.
                let det = a * d - b * c;
                let xh: Vec<f64> = (0..dim).map(|j| (d * ur[j] - b * field[j]) / det).collect();
                let h = lambda(s) - lambda(t);
                let second = k > 0 && !(k + 1 == cfg.steps && cfg.steps < 15);
                let w = match (&xhat_prev, second) {
                    (Some(_), true) => {
                        let r = (lambda(t) - lambda(grid[k - 1])) / h;
                        if r.is_finite() { 0.5 / r } else { 0.0 }
                    }
                    _ => 0.0,
                };
                let big_d: Vec<f64> = (0..dim).map(|j| if w == 0.0 { xh[j] } else { (1.0 + w) * xh[j] - w * xhat_prev.as_ref().unwrap()[r * dim + j] }).collect();
                xhat_now[r * dim..(r + 1) * dim].copy_from_slice(&xh);
                let (a_s, b_s) = (p.a(s), p.b(s));
                (0..dim).map(|j| b_s / b * ur[j] - a_s * ((-h).exp() - 1.0) * big_d[j]).collect()
            } else if cfg.solver == Solver::Ddim {
                // u_s = a_s xhat + b_s epshat, both estimates from the field at t.
                let det = a * d - b * c;
                let (a_s, b_s) = (p.a(s), p.b(s));
                (0..dim).map(|j| a_s * (d * ur[j] - b * field[j]) / det + b_s * (a * field[j] - c * ur[j]) / det).collect()
            } else if cfg.solver == Solver::Sde && a != 0.0 {
                let big_f = da / a;
                let g2 = 2.0 * b * db - 2.0 * big_f * b * b;
                (0..dim).map(|j| ur[j] - h * (big_f * ur[j] - g2 * score[j]) + (g2 * h).sqrt() * z[r * dim + j] as f64).collect()
            } else {
                let (mu, nu) = p.mu_nu(t);
                (0..dim).map(|j| ur[j] - h * (mu * ur[j] + nu * field[j])).collect()
            };
            u[r * dim..(r + 1) * dim].copy_from_slice(&next);
        }
        xhat_prev = Some(xhat_now);
    }
    u
}
