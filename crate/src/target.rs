//! Regression targets and the unified sampler coefficients (paper Table 1, Eq. 19 / 63).
//!
//! A parameterization fixes the schedule (`a`, `b`), the target `f = c(t) x + d(t) eps`, the
//! noise-level prior `p(t)` on `[t_min, t_max]`, and how `t` is fed to a conditional network.

use crate::schedule::Schedule;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// EqM's target scale `g(t) = s * min(1, t / (1 - kappa))` with EqM's defaults.
pub const EQM_S: f64 = 4.0;
pub const EQM_KAPPA: f64 = 0.8;

/// uEDM's `sigma_data`, the data's standard deviation per coordinate: the toy circles are scaled
/// so that `E||x||^2 = 2` in their plane (radii `2/sqrt(5)` and `4/sqrt(5)`), i.e. 1 per coordinate.
pub const UEDM_SIGMA_DATA: f64 = 1.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parameterization {
    /// Flow Matching, velocity target `eps - x` on the linear path.
    Fm,
    /// DDPM / DDIM, noise target `eps` on the VP schedule.
    Ddpm,
    /// EDM, signal target `x` on the VE schedule (`t` = sigma).
    Edm,
    /// Equilibrium Matching, target `g(t) (eps - x)` on the linear path.
    Eqm,
    /// uEDM (Sun et al.): EDM with its preconditioning kept in the sampler and no sigma in the
    /// network, `D(u; sigma) = c_skip u + c_out F(c_in u)`. Here the network's own input
    /// `v = c_in u` is the path ([`Schedule::Preconditioned`]) and `F`'s training target
    /// `(x - c_skip u) / c_out` is `c x + d eps` with `c = sigma / (s R)`, `d = -s / R`,
    /// `R = sqrt(sigma^2 + s^2)`: about `-eps` at small sigma and `x / s` at large sigma.
    Uedm,
}

/// The prior over noise levels, used for training and by the closed-form blind field.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prior {
    /// Uniform on `[t_min, t_max]`.
    Uniform,
    /// Uniform in `ln t` on `[t_min, t_max]` (EDM's sigma range spans four decades).
    LogUniform,
}

impl Prior {
    /// Density `p(t)` on `[lo, hi]` (zero outside).
    pub fn density(&self, t: f64, lo: f64, hi: f64) -> f64 {
        if t < lo || t > hi {
            return 0.0;
        }
        match self {
            Prior::Uniform => 1.0 / (hi - lo),
            Prior::LogUniform => 1.0 / (t * (hi / lo).ln()),
        }
    }

    /// Inverse CDF: maps `q` in [0, 1] to a noise level.
    pub fn quantile(&self, q: f64, lo: f64, hi: f64) -> f64 {
        match self {
            Prior::Uniform => lo + q * (hi - lo),
            Prior::LogUniform => lo * (hi / lo).powf(q),
        }
    }
}

impl Parameterization {
    pub const ALL: [Parameterization; 5] =
        [Parameterization::Fm, Parameterization::Ddpm, Parameterization::Edm, Parameterization::Eqm, Parameterization::Uedm];

    pub fn name(&self) -> &'static str {
        match self {
            Parameterization::Fm => "fm",
            Parameterization::Ddpm => "ddpm",
            Parameterization::Edm => "edm",
            Parameterization::Eqm => "eqm",
            Parameterization::Uedm => "uedm",
        }
    }

    /// The name as the paper writes it (FM, DDPM, EDM, EqM).
    pub fn display_name(&self) -> &'static str {
        match self {
            Parameterization::Fm => "FM",
            Parameterization::Ddpm => "DDPM",
            Parameterization::Edm => "EDM",
            Parameterization::Eqm => "EqM",
            Parameterization::Uedm => "uEDM",
        }
    }

    pub fn schedule(&self) -> Schedule {
        match self {
            Parameterization::Fm | Parameterization::Eqm => Schedule::Linear,
            Parameterization::Ddpm => Schedule::DDPM,
            Parameterization::Edm => Schedule::Ve,
            Parameterization::Uedm => Schedule::Preconditioned { sigma_data: UEDM_SIGMA_DATA },
        }
    }

    /// Default noise-level range `[t_min, t_max]`: training draws `t` from the prior on it,
    /// samplers run from `t_max` down to `t_min`, the closed form integrates over it.
    pub fn default_range(&self) -> (f64, f64) {
        match self {
            Parameterization::Fm | Parameterization::Eqm | Parameterization::Ddpm => (1e-3, 1.0),
            Parameterization::Edm | Parameterization::Uedm => (2e-3, 80.0),
        }
    }

    /// Whether `t` is EDM's sigma (range up to 80) rather than a position on a `[0, 1]` path.
    pub fn sigma_range(&self) -> bool {
        matches!(self, Parameterization::Edm | Parameterization::Uedm)
    }

    pub fn prior(&self) -> Prior {
        if self.sigma_range() {
            Prior::LogUniform
        } else {
            Prior::Uniform
        }
    }

    /// EqM's gradient scale `g(t)`.
    pub fn eqm_g(t: f64) -> f64 {
        EQM_S * (t / (1.0 - EQM_KAPPA)).min(1.0)
    }

    /// Target coefficients `(c, d)`: `f = c x + d eps`.
    pub fn target_coeffs(&self, t: f64) -> (f64, f64) {
        match self {
            Parameterization::Fm => (-1.0, 1.0),
            Parameterization::Ddpm => (0.0, 1.0),
            Parameterization::Edm => (1.0, 0.0),
            Parameterization::Eqm => {
                let g = Self::eqm_g(t);
                (-g, g)
            }
            Parameterization::Uedm => {
                let s = UEDM_SIGMA_DATA;
                let r = t.hypot(s);
                (t / (s * r), -s / r)
            }
        }
    }

    pub fn a(&self, t: f64) -> f64 {
        self.schedule().a(t)
    }
    pub fn b(&self, t: f64) -> f64 {
        self.schedule().b(t)
    }

    /// Unified sampler coefficients (Eq. 63): `du/dt = mu(t) u + nu(t) f(u)` with
    /// `mu = (a' d - b' c) / (a d - b c)`, `nu = (b' a - a' b) / (a d - b c)`.
    pub fn mu_nu(&self, t: f64) -> (f64, f64) {
        let s = self.schedule();
        let (a, b, da, db) = (s.a(t), s.b(t), s.da(t), s.db(t));
        let (c, d) = self.target_coeffs(t);
        let det = a * d - b * c;
        ((da * d - db * c) / det, (db * a - da * b) / det)
    }

    /// The gain of the energy-aligned decomposition (Eq. 14): `lambda(t) = b (a d - b c) / a`,
    /// so that `f*(u, t) = (c / a) u + lambda(t) grad E_t(u)`.
    pub fn lambda(&self, t: f64) -> f64 {
        let (a, b) = (self.a(t), self.b(t));
        let (c, d) = self.target_coeffs(t);
        b * (a * d - b * c) / a
    }

    /// The scalar fed to a conditional network's sinusoidal embedding: `t` itself on `[0, 1]`
    /// paths, EDM's `ln(sigma) / 4` where `t` is sigma (EDM, uEDM's conditional variant).
    pub fn time_input(&self, t: f64) -> f64 {
        if self.sigma_range() {
            t.max(1e-12).ln() / 4.0
        } else {
            t
        }
    }

    /// Log signal-to-noise ratio `ln(a^2 / b^2)` (`-inf` where `a = 0`, FM's and EqM's `t = 1`).
    pub fn log_snr(&self, t: f64) -> f64 {
        2.0 * (self.a(t).abs().ln() - self.b(t).abs().ln())
    }

    /// The time grid a sampler walks with `steps` steps and the spacing `grid` (see
    /// [`TimeGrid`]): `steps + 1` points, strictly decreasing, from `t_max` to `t_min`.
    pub fn sampling_grid_with(&self, grid: TimeGrid, steps: usize, t_min: f64, t_max: f64) -> Vec<f64> {
        let n = steps.max(1);
        let grid = match grid {
            TimeGrid::Default if self.sigma_range() => TimeGrid::Rho7,
            TimeGrid::Default => TimeGrid::Uniform,
            g => g,
        };
        let rho = |r: f64| {
            let (lo, hi) = (t_min.powf(1.0 / RHO), t_max.powf(1.0 / RHO));
            (hi + r * (lo - hi)).powf(RHO)
        };
        let mut g: Vec<f64> = match grid {
            TimeGrid::Rho7 => (0..=n).map(|i| rho(i as f64 / n as f64)).collect(),
            TimeGrid::LogSnr => {
                let lam_lo = self.log_snr(t_min);
                let lam_hi = self.log_snr(t_max);
                if lam_hi.is_finite() {
                    (0..=n).map(|i| self.t_of_log_snr(lam_hi + (i as f64 / n as f64) * (lam_lo - lam_hi), t_min, t_max)).collect()
                } else {
                    // The SNR is 0 at t_max (pure noise): the first step goes to the level whose
                    // log-SNR mirrors t_min's, the other n - 1 are uniform in log-SNR from there.
                    let start = (-lam_lo).min(lam_lo);
                    let rest: Vec<f64> = match n {
                        1 => vec![t_min],
                        _ => (0..n).map(|i| self.t_of_log_snr(start + (i as f64 / (n - 1) as f64) * (lam_lo - start), t_min, t_max)).collect(),
                    };
                    std::iter::once(t_max).chain(rest).collect()
                }
            }
            _ => (0..=n).map(|i| t_max + (i as f64 / n as f64) * (t_min - t_max)).collect(),
        };
        // Exact ends, whatever rounding the spacing did.
        g[0] = t_max;
        g[n] = t_min;
        g
    }

    /// The `t` in `[t_min, t_max]` with log-SNR `lam` (log-SNR decreases in `t`): bisection in f64.
    pub fn t_of_log_snr(&self, lam: f64, t_min: f64, t_max: f64) -> f64 {
        let (mut lo, mut hi) = (t_min, t_max);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if self.log_snr(mid) > lam {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }
}

/// EDM's step-spacing exponent.
pub const RHO: f64 = 7.0;

/// How a sampler spaces its steps between `t_max` and `t_min`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
pub enum TimeGrid {
    /// The parameterization's own: uniform in `t` on the `[0, 1]` paths, EDM's rho = 7 for VE.
    #[default]
    Default,
    /// Uniform in `t`.
    Uniform,
    /// EDM's spacing, `t_i = (t_max^(1/7) + i/N (t_min^(1/7) - t_max^(1/7)))^7`: steps crowd
    /// near `t_min`, where the fields change fastest.
    Rho7,
    /// Uniform in the log signal-to-noise ratio `ln(a^2 / b^2)`. Where the SNR is 0 at `t_max`
    /// (FM and EqM start from pure noise), the first step goes to the level whose log-SNR mirrors
    /// `t_min`'s and the rest are uniform from there.
    LogSnr,
}

impl fmt::Display for Parameterization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Parameterization {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "fm" | "flow" | "flow-matching" => Ok(Parameterization::Fm),
            "ddpm" | "ddim" => Ok(Parameterization::Ddpm),
            "edm" => Ok(Parameterization::Edm),
            "eqm" => Ok(Parameterization::Eqm),
            "uedm" => Ok(Parameterization::Uedm),
            other => Err(format!("unknown model '{other}': expected one of fm, ddpm, edm, eqm, uedm")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent check of Eq. 63: integrate the ODE with the *true* target along a fixed
    /// (x, eps) pair and compare with the analytic path `u(t) = a x + b eps`.
    #[test]
    fn sampler_ode_follows_the_forward_path() {
        let (x, eps) = (0.7f64, -1.3f64);
        for p in Parameterization::ALL {
            let (lo, hi) = if p.sigma_range() { (0.05, 5.0) } else { (0.05, 0.95) };
            // du/dt evaluated with the exact target f = c x + d eps must equal a' x + b' eps.
            for k in 0..=10 {
                let t = lo + (hi - lo) * k as f64 / 10.0;
                let s = p.schedule();
                let u = s.a(t) * x + s.b(t) * eps;
                let (c, d) = p.target_coeffs(t);
                let f = c * x + d * eps;
                let (mu, nu) = p.mu_nu(t);
                let lhs = mu * u + nu * f;
                let rhs = s.da(t) * x + s.db(t) * eps;
                assert!((lhs - rhs).abs() < 1e-9 * (1.0 + rhs.abs()), "{p} at t={t}: {lhs} vs {rhs}");
            }
        }
    }

    #[test]
    fn closed_forms_of_mu_nu() {
        for &t in &[0.01, 0.3, 0.9] {
            let (mu, nu) = Parameterization::Fm.mu_nu(t);
            assert!(mu.abs() < 1e-15 && (nu - 1.0).abs() < 1e-15);
            let (mu, nu) = Parameterization::Edm.mu_nu(t);
            assert!((mu - 1.0 / t).abs() < 1e-12 && (nu + 1.0 / t).abs() < 1e-12);
            let s = Schedule::DDPM;
            let (mu, nu) = Parameterization::Ddpm.mu_nu(t);
            assert!((mu - s.da(t) / s.a(t)).abs() < 1e-12);
            assert!((nu - (s.db(t) * s.a(t) - s.da(t) * s.b(t)) / s.a(t)).abs() < 1e-12);
            // EqM: mu = 0, nu = 1 / g.
            let (mu, nu) = Parameterization::Eqm.mu_nu(t);
            assert!(mu.abs() < 1e-12 && (nu - 1.0 / Parameterization::eqm_g(t)).abs() < 1e-12);
        }
    }

    #[test]
    fn lambda_matches_fm_closed_form() {
        // FM: lambda = t (1 - t + t) / (1 - t) = t / (1 - t).
        for &t in &[0.1, 0.5, 0.9] {
            assert!((Parameterization::Fm.lambda(t) - t / (1.0 - t)).abs() < 1e-12);
        }
    }

    #[test]
    fn every_time_grid_runs_down_from_t_max_to_t_min_with_its_spacing() {
        for p in Parameterization::ALL {
            let (lo, hi) = p.default_range();
            for grid in [TimeGrid::Default, TimeGrid::Uniform, TimeGrid::Rho7, TimeGrid::LogSnr] {
                for n in [1, 2, 10, 1000] {
                    let g = p.sampling_grid_with(grid, n, lo, hi);
                    assert_eq!(g.len(), n + 1, "{p} {grid:?} {n}");
                    assert!(g[0] == hi && g[n] == lo, "{p} {grid:?} {n}: {} .. {}", g[0], g[n]);
                    assert!(g.windows(2).all(|w| w[1] < w[0]), "{p} {grid:?} {n}: not decreasing");
                }
            }
            // Default: uniform in t except EDM, whose default is rho = 7.
            let want = if p.sigma_range() { TimeGrid::Rho7 } else { TimeGrid::Uniform };
            assert_eq!(p.sampling_grid_with(TimeGrid::Default, 10, lo, hi), p.sampling_grid_with(want, 10, lo, hi));
            // Uniform: equal steps in t. Rho7: equal steps in t^(1/7).
            let u = p.sampling_grid_with(TimeGrid::Uniform, 10, lo, hi);
            assert!(u.windows(2).all(|w| ((w[0] - w[1]) - (hi - lo) / 10.0).abs() < 1e-12));
            let r = p.sampling_grid_with(TimeGrid::Rho7, 10, lo, hi);
            let d = (hi.powf(1.0 / RHO) - lo.powf(1.0 / RHO)) / 10.0;
            assert!(r.windows(2).all(|w| ((w[0].powf(1.0 / RHO) - w[1].powf(1.0 / RHO)) - d).abs() < 1e-9));
            // LogSnr: equal steps in ln(a^2/b^2), after a first step from pure noise where the
            // SNR at t_max is 0 (FM, EqM).
            let l = p.sampling_grid_with(TimeGrid::LogSnr, 10, lo, hi);
            let lam: Vec<f64> = l.iter().map(|t| p.log_snr(*t)).collect();
            let from = if lam[0].is_finite() { 0 } else { 1 };
            let step = (lam[10] - lam[from]) / (10 - from) as f64;
            assert!(step > 0.0, "{p}: log-SNR must grow as t falls");
            for k in from..10 {
                assert!(((lam[k + 1] - lam[k]) - step).abs() < 1e-6 * step.abs().max(1.0), "{p}: step {k} of the log-SNR grid: {} vs {step}", lam[k + 1] - lam[k]);
            }
            if from == 1 {
                assert!((lam[1] + lam[10]).abs() < 1e-6, "{p}: the first level after pure noise mirrors t_min's log-SNR");
            }
        }
    }

    #[test]
    fn priors_integrate_to_one() {
        for (prior, lo, hi) in [(Prior::Uniform, 1e-3, 1.0), (Prior::LogUniform, 2e-3, 80.0)] {
            let n = 200_000;
            let mut s = 0.0;
            for i in 0..n {
                let q0 = i as f64 / n as f64;
                let q1 = (i + 1) as f64 / n as f64;
                let (t0, t1) = (prior.quantile(q0, lo, hi), prior.quantile(q1, lo, hi));
                s += 0.5 * (prior.density(t0, lo, hi) + prior.density(t1, lo, hi)) * (t1 - t0);
            }
            assert!((s - 1.0).abs() < 1e-4, "{prior:?}: {s}");
        }
    }

    #[test]
    fn parse_names() {
        assert_eq!("FM".parse::<Parameterization>().unwrap(), Parameterization::Fm);
        assert!("xyz".parse::<Parameterization>().is_err());
    }
}
