//! Samplers on the unified ODE `du/dt = mu(t) u + nu(t) f(u [, t])` (Eq. 19 / 63), and EqM's
//! gradient descent `u <- u - eta f(u)`.
//!
//! A blind field is plugged into the same time-dependent coefficients as a conditional one; only
//! the field ignores `t`. `Sampler::step` advances one step and hands back the positions as
//! tensors (full D and the 2-D projection) so a caller can stream them, reading them back
//! synchronously or asynchronously as its platform allows.

use crate::data::{host_tensor, Projection};
use crate::model::Model;
use crate::rng::Rng;
use crate::target::{Parameterization, TimeGrid};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::rc::Rc;

/// A vector field `f(u, t)` a sampler can follow: a trained network or the closed form.
pub trait Field {
    /// `u`: [M, D] -> [M, D].
    fn eval(&self, u: Tensor<2>, t: f64) -> Tensor<2>;
    fn parameterization(&self) -> Parameterization;
    /// `(t_min, t_max)` the field was made for.
    fn range(&self) -> (f64, f64);
    fn dim(&self) -> usize;
}

impl Field for Model {
    fn eval(&self, u: Tensor<2>, t: f64) -> Tensor<2> {
        Model::eval(self, u, t)
    }
    fn parameterization(&self) -> Parameterization {
        self.config.model
    }
    fn range(&self) -> (f64, f64) {
        self.config.range()
    }
    fn dim(&self) -> usize {
        self.config.dim
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
pub enum Solver {
    /// Explicit Euler on the unified ODE.
    Euler,
    /// Heun's second-order method on the unified ODE (the last step is Euler, as in EDM).
    Heun,
    /// EqM's gradient descent `u <- u - eta f(u)` (Nesterov momentum when `momentum > 0`).
    Descent,
    /// Stochastic: the ancestral step of the forward process's Markov chain (DDPM's sampler, and
    /// DDIM with eta = 1, for any schedule). From the field's estimates `xhat`, `epshat` at `t`,
    /// the next point is drawn from `q(u_s | u_t, x = xhat)`:
    /// `u_s = a_s xhat + (alpha b_s^2 / b_t) epshat + sigma z`, with `alpha = a_t / a_s` and
    /// `sigma^2 = b_s^2 (b_t^2 - alpha^2 b_s^2) / b_t^2`. Finite at every point of every path
    /// (FM's `a(1) = 0` included), unlike an Euler–Maruyama step of the reverse SDE there.
    Ancestral,
    /// DDIM (eta = 0): from the field's estimates `xhat`, `epshat` at `t`, the point of the same
    /// path at `s`, `u_s = a_s xhat + b_s epshat` (see [`ddim_coefficients`]): deterministic, an
    /// exponential integrator of the ODE. On FM's linear path it is the Euler step.
    Ddim,
    /// DPM-Solver++(2M) (Lu et al. 2022): DDIM's exponential integrator with the clean estimate
    /// extrapolated from this step's and the last one's, second order in `lambda = log(a / b)`.
    /// With `h = lambda_s - lambda_t` and `r = h_prev / h`:
    /// `u_s = (b_s / b_t) u_t + (a_s - (b_s / b_t) a_t) D`,
    /// `D = (1 + 1 / 2r) xhat_t - (1 / 2r) xhat_prev` (see [`dpm2m_coefficients`]). The first
    /// step is DDIM's (no earlier estimate), and so is the last one in runs of under 15 steps
    /// (as diffusers' `lower_order_final`). From FM's `t = 1`, where `a = 0` and `lambda = -inf`,
    /// the next step's weight `1 / 2r` is 0: DDIM again.
    #[serde(rename = "dpm2m")]
    #[cfg_attr(not(target_family = "wasm"), value(name = "dpm2m"))]
    Dpm2m,
    /// Stochastic: Euler–Maruyama on the reverse-time SDE of the forward process (see
    /// [`sde_coefficients`]). A step from a level where `a = 0` (FM's and EqM's `t = 1`, where the
    /// SDE's drift and diffusion are infinite and the law is `N(0, b^2)` whatever the data) is the
    /// ODE's Euler step.
    Sde,
}

/// One sampling job. Shared by the CLI flags and the browser worker's messages (where a field
/// left out takes its default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::Args))]
pub struct SampleConfig {
    /// Number of samples.
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 1000))]
    pub n: usize,
    /// Number of solver steps.
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 100))]
    pub steps: usize,
    /// Solver.
    #[cfg_attr(not(target_family = "wasm"), arg(long = "sampler", value_enum, default_value_t = Solver::Euler))]
    pub solver: Solver,
    /// Seed of the starting noise (same seed and D: same noise for every model).
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 0))]
    pub seed: u64,
    /// Step size of the descent sampler (EqM's default).
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 0.003))]
    pub eta: f64,
    /// Nesterov momentum of the descent sampler (0 = plain gradient descent).
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 0.0))]
    pub momentum: f64,
    /// Spacing of the steps: the parameterization's own (default), uniform in t, EDM's rho = 7,
    /// or uniform in log-SNR.
    #[cfg_attr(not(target_family = "wasm"), arg(long, value_enum, default_value_t = TimeGrid::Default))]
    pub time_grid: TimeGrid,
    /// Clip the field's clean estimate `xhat` to [-C, C] at every step and step from the field
    /// rebuilt from it (DDPM's `clip_denoised`; images live in [-1, 1]). Off by default; the
    /// descent sampler, which has no `t`, ignores it.
    #[cfg_attr(not(target_family = "wasm"), arg(long, value_name = "C"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip: Option<f64>,
}

pub const MAX_SAMPLES: usize = 100_000;
pub const MAX_STEPS: usize = 10_000;

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig { n: 1000, steps: 100, solver: Solver::Euler, seed: 0, eta: 0.003, momentum: 0.0, time_grid: TimeGrid::Default, clip: None }
    }
}

impl SampleConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_SAMPLES).contains(&self.n) {
            return Err(format!("number of samples {} is out of range 1..={MAX_SAMPLES}", self.n));
        }
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return Err(format!("number of steps {} is out of range 1..={MAX_STEPS}", self.steps));
        }
        if !(self.eta.is_finite() && self.eta > 0.0) {
            return Err(format!("descent step size eta = {} must be > 0", self.eta));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(format!("momentum {} is out of range [0, 1)", self.momentum));
        }
        if let Some(c) = self.clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(format!("clip bound {c} must be > 0"));
            }
        }
        Ok(())
    }
}

/// The starting noise `eps` (rows of D), the same for every model of that D and seed.
pub fn starting_noise(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    Rng::derive(seed, "noise").normals_f32(n * dim)
}

/// Where a run starts, rows of D: the forward process at t_max with the (unknown) data term
/// dropped, `u = b(t_max) eps`. a(t_max) is 0 for the linear path and under 0.01 for VP.
fn starting_positions(field: &dyn Field, n: usize, seed: u64) -> Vec<f32> {
    let b = field.parameterization().b(field.range().1) as f32;
    let mut u = starting_noise(n, field.dim(), seed);
    u.iter_mut().for_each(|v| *v *= b);
    u
}

/// One streamed step.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Steps taken so far (0 = the starting noise).
    pub step: usize,
    /// The noise level the positions are at.
    pub t: f64,
    /// Positions in R^D, [n, D].
    pub u: Tensor<2>,
    /// Their coordinates in the data plane, `u P`, [n, 2] (toy data; `None` for images).
    pub xy: Option<Tensor<2>>,
}

/// Positions seen in the plane, `u P` (`P` as `[D, 2]`): on a wgpu device one small kernel
/// ([`crate::fused::project`]), elsewhere burn's matmul.
fn project(u: Tensor<2>, p: Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "webgpu")]
    return crate::fused::project::xy(u, p);
    #[cfg(not(feature = "webgpu"))]
    u.matmul(p)
}

/// A sampling run, advanced one step at a time. It shares the field, so a caller (the browser
/// worker) can keep runs of the same model alive side by side.
pub struct Sampler {
    field: Rc<dyn Field>,
    config: SampleConfig,
    grid: Vec<f64>,
    k: usize,
    u: Tensor<2>,
    prev: Option<Tensor<2>>,
    /// DPM-Solver++(2M)'s clean estimate of the step before.
    xhat_prev: Option<Tensor<2>>,
    /// The lift of the toy data, and `P` on the device; `None` where samples are images.
    projection: Option<(Projection, Tensor<2>)>,
    /// The ancestral sampler's noise, drawn on the host (the same on every backend).
    rng: Rng,
    device: Device,
}

impl Sampler {
    /// A run on the toy data: frames carry the plane coordinates `u P`.
    pub fn new(field: Rc<dyn Field>, config: SampleConfig, projection: &Projection, device: &Device) -> Result<Self, String> {
        let dim = field.dim();
        if projection.dim != dim {
            return Err(format!("projection is for D = {} but the field is for D = {dim}", projection.dim));
        }
        let mut s = Self::unprojected(field, config, device)?;
        s.projection = Some((projection.clone(), projection.tensor(device)));
        Ok(s)
    }

    /// A run whose samples are not toy points (images): frames carry `u` alone.
    pub fn unprojected(field: Rc<dyn Field>, config: SampleConfig, device: &Device) -> Result<Self, String> {
        config.validate()?;
        let dim = field.dim();
        let p = field.parameterization();
        let (lo, hi) = field.range();
        let grid = p.sampling_grid_with(config.time_grid, config.steps, lo, hi);
        let u = host_tensor(starting_positions(&*field, config.n, config.seed), dim, device);
        let rng = Rng::derive(config.seed, "ancestral");
        Ok(Sampler { field, config, grid, k: 0, u, prev: None, xhat_prev: None, projection: None, rng, device: device.clone() })
    }

    /// Before the first step, the positions `u` ([n, D]) and their plane coordinates `u P`
    /// ([n, 2]; empty for images) made again on the host from the seed, with no device work and no readback: the
    /// page's first frame needs neither (on WebGPU the first kernels to compile and the first
    /// readback took about 2 s). `u` is the device's exactly; `u P` agrees to float32 rounding.
    /// `None` once a step has been taken.
    pub fn start_on_host(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        if self.k > 0 {
            return None;
        }
        let u = starting_positions(&*self.field, self.config.n, self.config.seed);
        let xy = self.projection.as_ref().map(|(p, _)| p.project_host(&u)).unwrap_or_default();
        Some((u, xy))
    }

    pub fn total_steps(&self) -> usize {
        self.config.steps
    }

    pub fn steps_done(&self) -> usize {
        self.k
    }

    /// The noise level the current positions are at.
    pub fn t(&self) -> f64 {
        self.grid[self.k]
    }

    pub fn done(&self) -> bool {
        self.k >= self.config.steps
    }

    /// The current positions as a frame.
    pub fn frame(&self) -> Frame {
        let xy = self.projection.as_ref().map(|(_, p)| project(self.u.clone(), p.clone()));
        Frame { step: self.k, t: self.grid[self.k], u: self.u.clone(), xy }
    }

    /// The field at `(u, t)`, through [`clipped`] when the run clips.
    fn estimate(&self, u: Tensor<2>, t: f64) -> Tensor<2> {
        let f = self.field.eval(u.clone(), t);
        match self.config.clip {
            Some(c) => clipped(self.field.parameterization(), u, f, t, c),
            None => f,
        }
    }

    fn drift(&self, u: Tensor<2>, t: f64) -> Tensor<2> {
        let (mu, nu) = self.field.parameterization().mu_nu(t);
        let f = self.estimate(u.clone(), t).mul_scalar(nu);
        if mu == 0.0 {
            f
        } else {
            u.mul_scalar(mu) + f
        }
    }

    /// Advance one step; `None` once the last step is done.
    pub fn step(&mut self) -> Option<Frame> {
        self.advance().then(|| self.frame())
    }

    /// Advance one step without making its frame (whose view in the plane is a product of its
    /// own); `false` once the last step is done.
    pub fn advance(&mut self) -> bool {
        if self.done() {
            return false;
        }
        let (t0, t1) = (self.grid[self.k], self.grid[self.k + 1]);
        let h = t1 - t0;
        let u = self.u.clone();
        self.u = match self.config.solver {
            Solver::Euler => u.clone() + self.drift(u, t0).mul_scalar(h),
            // As in EDM's Heun sampler, the last step is an Euler step: the end of the path is where
            // the VP and VE fields are stiffest (|nu / b| ~ 1 / 2t), and a corrector evaluated at
            // t_min would multiply the error instead of cancelling it.
            Solver::Heun if self.k + 1 == self.config.steps => u.clone() + self.drift(u, t0).mul_scalar(h),
            Solver::Heun => {
                let d0 = self.drift(u.clone(), t0);
                let pred = u.clone() + d0.clone().mul_scalar(h);
                let d1 = self.drift(pred, t1);
                u + (d0 + d1).mul_scalar(0.5 * h)
            }
            Solver::Descent => {
                let m = self.config.momentum;
                let y = match (&self.prev, m > 0.0) {
                    (Some(prev), true) => u.clone() + (u.clone() - prev.clone()).mul_scalar(m),
                    _ => u.clone(),
                };
                self.prev = Some(u);
                y.clone() - self.field.eval(y, t0).mul_scalar(self.config.eta)
            }
            Solver::Ddim => {
                let f = self.estimate(u.clone(), t0);
                let (cu, cf) = ddim_coefficients(self.field.parameterization(), t0, t1);
                u.mul_scalar(cu) + f.mul_scalar(cf)
            }
            Solver::Dpm2m => {
                let p = self.field.parameterization();
                let f = self.estimate(u.clone(), t0);
                let (a, b) = (p.a(t0), p.b(t0));
                let (c, d) = p.target_coeffs(t0);
                let xhat = (u.clone().mul_scalar(d) - f.mul_scalar(b)).div_scalar(a * d - b * c);
                let last_low = self.k + 1 == self.config.steps && self.config.steps < 15;
                let t_prev = if self.k > 0 && !last_low { Some(self.grid[self.k - 1]) } else { None };
                let (cu, cx, w) = dpm2m_coefficients(p, t_prev, t0, t1);
                let est = match (&self.xhat_prev, w != 0.0) {
                    (Some(xp), true) => xhat.clone().mul_scalar(1.0 + w) - xp.clone().mul_scalar(w),
                    _ => xhat.clone(),
                };
                self.xhat_prev = Some(xhat);
                u.mul_scalar(cu) + est.mul_scalar(cx)
            }
            Solver::Ancestral | Solver::Sde => {
                let f = self.estimate(u.clone(), t0);
                let p = self.field.parameterization();
                let (cu, cf, sigma) = match self.config.solver {
                    Solver::Sde => sde_coefficients(p, t0, t1),
                    _ => ancestral_coefficients(p, t0, t1),
                };
                let [n, d] = u.dims();
                let next = u.mul_scalar(cu) + f.mul_scalar(cf);
                if sigma > 0.0 {
                    let z = host_tensor(self.rng.normals_f32(n * d), d, &self.device);
                    next + z.mul_scalar(sigma)
                } else {
                    next
                }
            }
        };
        self.k += 1;
        true
    }

    /// Run to the end; the final positions.
    pub fn run(mut self) -> Tensor<2> {
        while self.advance() {}
        self.u
    }
}

/// The field `f` at `(u, t)` rebuilt from its clean estimate clipped to `[-c, c]`:
/// `xhat = clamp((d u - b f) / det)`, `epshat = (u - a xhat) / b` (so `u = a xhat + b epshat`
/// still holds), `f' = c' xhat + d epshat` with `(c', d)` the target's coefficients. Every solver
/// then steps from `f'` as from the field. Unchanged where `xhat` is inside the bounds, and at
/// `b = 0`.
pub fn clipped(p: Parameterization, u: Tensor<2>, f: Tensor<2>, t: f64, c: f64) -> Tensor<2> {
    let (a, b) = (p.a(t), p.b(t));
    let (tc, td) = p.target_coeffs(t);
    let det = a * td - b * tc;
    if b <= 0.0 || det == 0.0 {
        return f;
    }
    let xhat = (u.clone().mul_scalar(td) - f.mul_scalar(b)).div_scalar(det).clamp(-c, c);
    // f' = tc xhat + td (u - a xhat) / b
    xhat.mul_scalar(tc - td * a / b) + u.mul_scalar(td / b)
}

/// The ancestral step from `t` down to `s` as `u_s = cu u_t + cf f + sigma z` (see
/// [`Solver::Ancestral`]): the field's estimates are `xhat = (d u - b f) / det` and
/// `epshat = (a f - c u) / det`, `det = a d - b c`, all at `t`.
pub fn ancestral_coefficients(p: Parameterization, t: f64, s: f64) -> (f64, f64, f64) {
    let (a, b) = (p.a(t), p.b(t));
    let (c, d) = p.target_coeffs(t);
    let det = a * d - b * c;
    let (a_s, b_s) = (p.a(s), p.b(s));
    let alpha = a / a_s;
    let var = (b_s * b_s * (b * b - alpha * alpha * b_s * b_s) / (b * b)).max(0.0);
    let ke = alpha * b_s * b_s / b;
    // u_s = a_s xhat + ke epshat + sigma z, expanded in u and f.
    let cu = (a_s * d - ke * c) / det;
    let cf = (ke * a - a_s * b) / det;
    (cu, cf, var.sqrt())
}

/// One DDIM step (eta = 0) from `t` down to `s` as `u_s = cu u_t + cf f`: the field's estimates
/// `xhat = (d u - b f) / det` and `epshat = (a f - c u) / det`, `det = a d - b c`, all at `t`, put
/// back on the path at `s`: `u_s = a_s xhat + b_s epshat`.
pub fn ddim_coefficients(p: Parameterization, t: f64, s: f64) -> (f64, f64) {
    let (a, b) = (p.a(t), p.b(t));
    let (c, d) = p.target_coeffs(t);
    let det = a * d - b * c;
    let (a_s, b_s) = (p.a(s), p.b(s));
    ((a_s * d - b_s * c) / det, (b_s * a - a_s * b) / det)
}

/// One DPM-Solver++(2M) step from `t` down to `s`, `t_prev` the level of the step before (`None`:
/// a first-order step): `u_s = cu u_t + cx D` with `D = (1 + w) xhat_t - w xhat_prev`.
/// The paper's `u_s = (b_s / b_t) u_t - a_s (e^{-h} - 1) D` with `e^{-h} = a_t b_s / (b_t a_s)`
/// written without logs: `cu = b_s / b_t`, `cx = a_s - cu a_t`, so `a_t = 0` is no special case;
/// `w = 1 / 2r`, `r = (lambda_t - lambda_prev) / (lambda_s - lambda_t)`, is 0 when `lambda_prev`
/// is `-inf` (FM's and EqM's `t = 1`).
pub fn dpm2m_coefficients(p: Parameterization, t_prev: Option<f64>, t: f64, s: f64) -> (f64, f64, f64) {
    let (a, b, a_s, b_s) = (p.a(t), p.b(t), p.a(s), p.b(s));
    let cu = b_s / b;
    let cx = a_s - cu * a;
    let lambda = |t: f64| (p.a(t) / p.b(t)).ln();
    let w = match t_prev {
        Some(tp) => {
            let r = (lambda(t) - lambda(tp)) / (lambda(s) - lambda(t));
            if r.is_finite() && r > 0.0 { 0.5 / r } else { 0.0 }
        }
        None => 0.0,
    };
    (cu, cx, w)
}

/// One Euler–Maruyama step of the reverse SDE from `t` down to `s` as
/// `u_s = cu u_t + cf f + sigma z`. The forward process `u = a x + b eps` is the SDE
/// `du = F u dt + G dW` with `F = a'/a` and `G^2 = 2 b b' - 2 F b^2`; its reversal is
/// `du = [F u - G^2 score] dt + G dW_bar` with `score = -epshat / b` and the field's
/// `epshat = (a f - c u) / (a d - b c)`, all at `t` (a blind field's `f(u)` goes into the same
/// coefficients). With `h = t - s > 0`:
/// `u_s = u - h [F u - G^2 score] + G sqrt(h) z`. Where `a(t) = 0` the step is the ODE's Euler step.
pub fn sde_coefficients(p: Parameterization, t: f64, s: f64) -> (f64, f64, f64) {
    let h = t - s;
    let sch = p.schedule();
    let (a, b, da, db) = (sch.a(t), sch.b(t), sch.da(t), sch.db(t));
    if a.abs() < 1e-12 {
        let (mu, nu) = p.mu_nu(t);
        return (1.0 - h * mu, -h * nu, 0.0);
    }
    let (c, d) = p.target_coeffs(t);
    let det = a * d - b * c;
    let big_f = da / a;
    let g2 = (2.0 * b * db - 2.0 * big_f * b * b).max(0.0);
    // drift = F u + (G^2 / b) epshat = [F - G^2 c / (b det)] u + [G^2 a / (b det)] f
    let du = big_f - g2 * c / (b * det);
    let df = g2 * a / (b * det);
    (1.0 - h * du, -h * df, (g2 * h).sqrt())
}

/// Host copy of a tensor's values (native, or Flex anywhere).
pub fn read_f32(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 tensor data")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::{R_INNER, R_OUTER};
    use burn::tensor::TensorData;

    /// A field that is the exact conditional optimum for data that is a single point `x0`:
    /// xhat = x0, f*(u, t) = (c - d a / b) x0 + (d / b) u. Every solver must land on x0.
    pub(crate) struct PointField {
        pub p: Parameterization,
        pub x0: Vec<f32>,
    }
    impl Field for PointField {
        fn eval(&self, u: Tensor<2>, t: f64) -> Tensor<2> {
            let (a, b) = (self.p.a(t), self.p.b(t));
            let (c, d) = self.p.target_coeffs(t);
            let n = u.dims()[0];
            let x0 = Tensor::<2>::from_data(TensorData::new(self.x0.clone(), [1, self.x0.len()]), &u.device()).repeat_dim(0, n);
            x0.mul_scalar(c - d * a / b) + u.mul_scalar(d / b)
        }
        fn parameterization(&self) -> Parameterization {
            self.p
        }
        fn range(&self) -> (f64, f64) {
            self.p.default_range()
        }
        fn dim(&self) -> usize {
            self.x0.len()
        }
    }

    #[test]
    fn every_parameterization_and_ode_solver_reaches_a_point_mass() {
        let device = Device::flex();
        let proj = Projection::new(4, 0).unwrap();
        let x0 = vec![0.5f32, -1.0, 0.25, 0.0];
        for p in Parameterization::ALL {
            for solver in [Solver::Euler, Solver::Heun, Solver::Ddim, Solver::Dpm2m, Solver::Ancestral, Solver::Sde] {
                let field = Rc::new(PointField { p, x0: x0.clone() });
                let cfg = SampleConfig { n: 8, steps: 200, solver, ..Default::default() };
                let out = read_f32(Sampler::new(field.clone(), cfg, &proj, &device).unwrap().run());
                let (lo, _) = p.default_range();
                // At t_min the exact ODE leaves u = a x0 + b eps; allow that residue.
                let tol = 0.05 + 5.0 * p.b(lo);
                for row in out.chunks(4) {
                    for (v, w) in row.iter().zip(&x0) {
                        assert!((v - w).abs() < tol as f32, "{p} {solver:?}: {row:?} vs {x0:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn clipping_moves_the_estimate_inside_the_bounds_and_leaves_it_alone_there() {
        let device = Device::flex();
        let proj = Projection::new(4, 0).unwrap();
        // A point mass with two coordinates outside [-1, 1]: clipped runs land on the clipped
        // point, runs with a wide bound on the point itself.
        let x0 = vec![2.0f32, -1.5, 0.25, 0.0];
        let inside = vec![1.0f32, -1.0, 0.25, 0.0];
        for p in Parameterization::ALL {
            for solver in [Solver::Euler, Solver::Ddim, Solver::Ancestral] {
                let field = Rc::new(PointField { p, x0: x0.clone() });
                let tol = (0.05 + 5.0 * p.b(p.default_range().0)) as f32;
                for (clip, want) in [(Some(1.0), &inside), (Some(10.0), &x0), (None, &x0)] {
                    let cfg = SampleConfig { n: 8, steps: 200, solver, clip, ..Default::default() };
                    let out = read_f32(Sampler::new(field.clone(), cfg, &proj, &device).unwrap().run());
                    for row in out.chunks(4) {
                        for (v, w) in row.iter().zip(want.iter()) {
                            assert!((v - w).abs() < tol, "{p} {solver:?} clip {clip:?}: {row:?} vs {want:?}");
                        }
                    }
                }
            }
        }
        // Inside the bounds the rebuilt field is the field itself.
        let p = Parameterization::Ddpm;
        let u = Tensor::<2>::from_data(TensorData::new(vec![0.3f32, -0.2, 0.1, 0.05], [1, 4]), &device);
        let f = PointField { p, x0: vec![0.5, -0.5, 0.0, 0.2] }.eval(u.clone(), 0.3);
        let g = clipped(p, u, f.clone(), 0.3, 1.0);
        for (a, b) in read_f32(f).iter().zip(read_f32(g)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!(SampleConfig { clip: Some(0.0), ..Default::default() }.validate().is_err());
        assert!(SampleConfig { clip: Some(f64::NAN), ..Default::default() }.validate().is_err());
    }

    #[test]
    fn ancestral_steps_keep_the_forward_marginals() {
        // With the exact conditional field of a point mass x0, xhat = x0 exactly, so after each
        // ancestral step u_s must be distributed as the forward process, a_s x0 + b_s eps: check
        // the mean and the variance per coordinate after a few steps, from a start at t_max.
        let device = Device::flex();
        let proj = Projection::new(2, 0).unwrap();
        for p in Parameterization::ALL {
            let x0 = [0.7f32, -0.4];
            let field = Rc::new(PointField { p, x0: x0.to_vec() });
            let cfg = SampleConfig { n: 20_000, steps: 10, solver: Solver::Ancestral, seed: 3, ..Default::default() };
            let mut s = Sampler::new(field, cfg, &proj, &device).unwrap();
            for _ in 0..6 {
                s.step();
            }
            let t = s.t();
            let (a, b) = (p.a(t), p.b(t));
            let u = read_f32(s.frame().u);
            for j in 0..2 {
                let col: Vec<f64> = u.chunks(2).map(|r| r[j] as f64).collect();
                let mean = col.iter().sum::<f64>() / col.len() as f64;
                let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64;
                let (want_mean, want_var) = (a * x0[j] as f64, b * b);
                assert!((mean - want_mean).abs() < 0.03 * (1.0 + b), "{p} at t={t}: mean {mean} vs {want_mean}");
                assert!((var / want_var - 1.0).abs() < 0.05, "{p} at t={t}: variance {var} vs {want_var}");
            }
        }
    }

    #[test]
    fn sde_steps_approach_the_forward_marginals() {
        // Euler–Maruyama on the reverse SDE with the exact field of a point mass x0: at a level t
        // reached after many steps, u must be close in law to a x0 + b eps. Measured in float64
        // on the host (no tensors): the coefficients alone decide this.
        for p in Parameterization::ALL {
            let x0 = 0.7f64;
            let (lo, hi) = p.default_range();
            let steps = 1000;
            let grid = p.sampling_grid_with(TimeGrid::Default, steps, lo, hi);
            let mut rng = Rng::new(5);
            let n = 20_000;
            let mut u: Vec<f64> = (0..n).map(|_| p.b(hi) * rng.normal()).collect();
            let stop = steps * 7 / 10;
            for k in 0..stop {
                let (t, s) = (grid[k], grid[k + 1]);
                let (a, b) = (p.a(t), p.b(t));
                let (c, d) = p.target_coeffs(t);
                let (cu, cf, sigma) = sde_coefficients(p, t, s);
                for v in u.iter_mut() {
                    let f = (c - d * a / b) * x0 + (d / b) * *v;
                    *v = cu * *v + cf * f + sigma * rng.normal();
                }
            }
            let t = grid[stop];
            let (a, b) = (p.a(t), p.b(t));
            let mean = u.iter().sum::<f64>() / n as f64;
            let var = u.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            eprintln!("{p} at t = {t:.4}: mean {mean:.4} vs {:.4}, variance {var:.5} vs {:.5}", a * x0, b * b);
            assert!((mean - a * x0).abs() < 0.03 * (1.0 + b), "{p} at t={t}: mean {mean} vs {}", a * x0);
            assert!((var / (b * b) - 1.0).abs() < 0.05, "{p} at t={t}: variance {var} vs {}", b * b);
        }
    }

    #[test]
    fn ancestral_sampling_of_the_exact_field_lands_on_the_circles() {
        let device = Device::flex();
        let proj = Projection::new(8, 1).unwrap();
        for p in [Parameterization::Fm, Parameterization::Ddpm] {
            let oracle = crate::oracle::Oracle::for_circles(p, p.default_range(), &proj, 64, 32, &device).unwrap();
            let field = Rc::new(crate::oracle::OracleField { oracle, blind: false });
            let cfg = SampleConfig { n: 400, steps: 200, solver: Solver::Ancestral, ..Default::default() };
            let out = read_f32(Sampler::new(field, cfg, &proj, &device).unwrap().run());
            let m = crate::metrics::compute(&out, &proj).unwrap();
            assert_eq!(m.diverged, 0, "{p}");
            assert!(m.radial_error_median < 0.05, "{p}: {m:?}");
            assert!((m.inner_fraction - 0.5).abs() < 0.1, "{p}: {m:?}");
        }
    }

    #[test]
    fn ddim_is_the_euler_step_on_fms_linear_path() {
        // a = 1 - t, b = t, f = eps - x: u_s = a_s xhat + b_s epshat = u + (s - t) f. An untrained
        // network is a field far from any closed form; the two solvers follow it alike.
        let device = Device::flex();
        let proj = Projection::new(6, 1).unwrap();
        for blind in [true, false] {
            let mc = crate::model::ModelConfig { width: 16, depth: 2, ..crate::model::ModelConfig::new(Parameterization::Fm, blind, 6) };
            let mut model = crate::model::Model::new(mc.clone(), 3, &device).unwrap();
            // Non-zero heads (the output layers start at zero), so the field is not u-linear.
            model = crate::model::Model::from_net(model.config.clone(), crate::params::with_weights(model.net, &crate::params::weights(&crate::model::Model::new(mc, 4, &device).unwrap().net).into_iter().map(|(k, d)| {
                let v: Vec<f32> = d.iter::<f32>().enumerate().map(|(i, x)| x + 0.05 * ((i % 7) as f32 - 3.0)).collect();
                (k, TensorData::new(v, d.shape().to_vec()))
            }).collect(), "test").unwrap());
            let field: Rc<dyn Field> = Rc::new(model);
            let run = |solver| read_f32(Sampler::new(field.clone(), SampleConfig { n: 32, steps: 12, solver, ..Default::default() }, &proj, &device).unwrap().run());
            let (euler, ddim) = (run(Solver::Euler), run(Solver::Ddim));
            let d = euler.iter().zip(&ddim).map(|(a, b)| (a - b).abs() / a.abs().max(1.0)).fold(0f32, f32::max);
            assert!(d < 1e-5, "blind {blind}: Euler and DDIM differ by {d}");
            assert!(euler.iter().any(|v| v.abs() > 0.1), "the runs moved");
        }
        for t in [1.0, 0.7, 0.2, 1e-3] {
            let (cu, cf) = ddim_coefficients(Parameterization::Fm, t, 0.5 * t);
            assert!((cu - 1.0).abs() < 1e-12 && (cf + 0.5 * t).abs() < 1e-12, "t = {t}: {cu} {cf}");
        }
    }

    #[test]
    fn heun_is_more_accurate_than_euler() {
        // For a point mass the exact ODE keeps eps = (u - a x0) / b constant, so the exact end
        // point is a(t_min) x0 + b(t_min) (u0 - a(t_max) x0) / b(t_max).
        let device = Device::flex();
        let proj = Projection::new(2, 0).unwrap();
        for p in Parameterization::ALL {
            let x0 = [R_INNER, R_OUTER];
            let field = Rc::new(PointField { p, x0: x0.iter().map(|v| *v as f32).collect() });
            let (lo, hi) = p.default_range();
            let u0 = starting_noise(16, 2, 0);
            let err = |solver| {
                let cfg = SampleConfig { n: 16, steps: 20, solver, ..Default::default() };
                let out = read_f32(Sampler::new(field.clone(), cfg, &proj, &device).unwrap().run());
                let mut e = 0.0;
                for (r, row) in out.chunks(2).enumerate() {
                    for j in 0..2 {
                        let start = p.b(hi) * u0[2 * r + j] as f64;
                        let exact = p.a(lo) * x0[j] + p.b(lo) * (start - p.a(hi) * x0[j]) / p.b(hi);
                        e += (row[j] as f64 - exact).abs();
                    }
                }
                e
            };
            let (eu, he, dd, dp) = (err(Solver::Euler), err(Solver::Heun), err(Solver::Ddim), err(Solver::Dpm2m));
            // DDIM reads xhat and epshat off the field and puts them back on the path: for a
            // point mass both are exact, so every step is, on every path. So is DPM-Solver++(2M),
            // whose clean estimates are all the point.
            assert!(dd < 1e-3, "{p}: DDIM error {dd}");
            assert!(dp < 1e-3, "{p}: DPM-Solver++(2M) error {dp}");
            match p {
                // Linear and VE paths: u(t) is linear in t, so both solvers are exact up to rounding.
                Parameterization::Fm | Parameterization::Eqm | Parameterization::Edm => assert!(eu < 1e-3 && he < 1e-3, "{p}: {eu} {he}"),
                _ => assert!(he < eu, "{p}: Heun error {he} vs Euler {eu}"),
            }
        }
    }

    #[test]
    fn the_first_frame_is_made_on_the_host_as_the_device_has_it() {
        let device = Device::flex();
        let proj = Projection::new(16, 3).unwrap();
        for p in Parameterization::ALL {
            let field: Rc<dyn Field> = Rc::new(PointField { p, x0: vec![0.5; 16] });
            let cfg = SampleConfig { n: 50, steps: 4, seed: 11, ..Default::default() };
            let mut s = Sampler::new(field, cfg, &proj, &device).unwrap();
            let (u, xy) = s.start_on_host().expect("no step taken yet");
            let f = s.frame();
            assert_eq!(u, read_f32(f.u), "{p}");
            for (a, b) in xy.iter().zip(read_f32(f.xy.unwrap())) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{p}: {a} vs {b}");
            }
            s.step();
            assert!(s.start_on_host().is_none());
        }
    }

    #[test]
    fn frames_stream_every_step_and_noise_is_shared() {
        let device = Device::flex();
        let proj = Projection::new(3, 0).unwrap();
        let field = Rc::new(PointField { p: Parameterization::Fm, x0: vec![0.0, 0.0, 0.0] });
        let cfg = SampleConfig { n: 5, steps: 7, ..Default::default() };
        let mut s = Sampler::new(field.clone(), cfg.clone(), &proj, &device).unwrap();
        let f0 = s.frame();
        assert_eq!(read_f32(f0.u.clone()), starting_noise(5, 3, 0));
        let mut count = 0;
        while let Some(f) = s.step() {
            count += 1;
            assert_eq!(f.step, count);
            assert_eq!(f.xy.unwrap().dims(), [5, 2]);
            assert_eq!(f.u.dims(), [5, 3]);
        }
        assert_eq!(count, 7);
        assert!(Sampler::new(field.clone(), SampleConfig { n: 0, ..cfg.clone() }, &proj, &device).is_err());
        assert!(Sampler::new(field.clone(), cfg, &Projection::new(4, 0).unwrap(), &device).is_err());
    }

    #[test]
    fn time_grids_are_named_the_same_in_json_and_on_the_command_line() {
        for (name, grid) in [("default", TimeGrid::Default), ("uniform", TimeGrid::Uniform), ("rho7", TimeGrid::Rho7), ("log-snr", TimeGrid::LogSnr)] {
            let cfg: SampleConfig = serde_json::from_str(&format!(r#"{{"time_grid": "{name}"}}"#)).unwrap();
            assert_eq!(cfg.time_grid, grid);
            assert_eq!(<TimeGrid as clap::ValueEnum>::from_str(name, false).unwrap(), grid);
        }
        assert!(serde_json::from_str::<SampleConfig>(r#"{"time_grid": "cosine"}"#).is_err());
    }

    #[test]
    fn the_time_grid_sets_the_levels_a_run_visits() {
        let device = Device::flex();
        let proj = Projection::new(8, 0).unwrap();
        let oracle = crate::oracle::Oracle::for_circles(Parameterization::Fm, Parameterization::Fm.default_range(), &proj, 16, 16, &device).unwrap();
        let field = Rc::new(crate::oracle::OracleField { oracle, blind: true });
        for grid in [TimeGrid::Uniform, TimeGrid::Rho7, TimeGrid::LogSnr] {
            let cfg = SampleConfig { n: 4, steps: 5, time_grid: grid, ..Default::default() };
            let mut s = Sampler::new(field.clone(), cfg, &proj, &device).unwrap();
            let mut ts = vec![s.t()];
            while let Some(f) = s.step() {
                ts.push(f.t);
            }
            let (lo, hi) = field.range();
            assert_eq!(ts, Parameterization::Fm.sampling_grid_with(grid, 5, lo, hi), "{grid:?}");
        }
    }

    #[test]
    fn a_partial_config_takes_defaults_for_the_rest() {
        let cfg: SampleConfig = serde_json::from_str(r#"{"n": 5, "solver": "heun"}"#).unwrap();
        assert_eq!(cfg, SampleConfig { n: 5, solver: Solver::Heun, ..Default::default() });
        assert!(serde_json::from_str::<SampleConfig>(r#"{"solver": "rk4"}"#).is_err());
    }

    #[test]
    fn descent_contracts_towards_the_data() {
        let device = Device::flex();
        let proj = Projection::new(2, 0).unwrap();
        // EqM's target near a point mass: f = g (eps - x) ~ g (u - x0) / t; descent pulls u to x0.
        let field = Rc::new(PointField { p: Parameterization::Eqm, x0: vec![1.0, 0.0] });
        for momentum in [0.0, 0.3] {
            let cfg = SampleConfig { n: 4, steps: 400, solver: Solver::Descent, momentum, eta: 0.01, ..Default::default() };
            let out = read_f32(Sampler::new(field.clone(), cfg, &proj, &device).unwrap().run());
            for r in out.chunks(2) {
                assert!(((r[0] - 1.0).powi(2) + r[1].powi(2)).sqrt() < 0.2, "momentum {momentum}: {r:?}");
            }
        }
    }
}
