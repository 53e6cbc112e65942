//! Noise schedules: the forward process `u = a(t) x + b(t) eps` (paper Sec. 3, Table 1).
//!
//! `t = 0` is clean data; larger `t` is noisier. Each schedule gives `a`, `b` and their exact
//! time derivatives, which the unified sampler (Eq. 63) needs.

use serde::{Deserialize, Serialize};

/// The forward-process family.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Rectified / Flow Matching path: `a = 1 - t`, `b = t`.
    Linear,
    /// Variance preserving (DDPM): `abar(t) = exp(-(beta_min t + (beta_max - beta_min) t^2 / 2))`,
    /// `a = sqrt(abar)`, `b = sqrt(1 - abar)`. `beta_min = 0.1`, `beta_max = 20` is the
    /// continuous form of DDPM's linear betas 1e-4..0.02 over 1000 steps.
    Vp { beta_min: f64, beta_max: f64 },
    /// Variance exploding (EDM): `a = 1`, `b = t` (= sigma).
    Ve,
    /// EDM's preconditioned input (uEDM): the network sees `v = c_in(sigma) u` for the VE point
    /// `u = x + sigma eps`, with `c_in = 1 / sqrt(sigma^2 + s^2)` (s = `sigma_data`). So
    /// `v = a x + b eps` with `a = c_in`, `b = sigma c_in`; the sampler walks `v`. With `s = 1`
    /// it is a variance-preserving path indexed by sigma (`a^2 + b^2 = 1`).
    Preconditioned { sigma_data: f64 },
}

impl Schedule {
    pub const DDPM: Schedule = Schedule::Vp { beta_min: 0.1, beta_max: 20.0 };

    /// Integrated beta, `B(t) = beta_min t + (beta_max - beta_min) t^2 / 2`, and `beta(t) = B'(t)`.
    fn vp_integral(beta_min: f64, beta_max: f64, t: f64) -> (f64, f64) {
        (beta_min * t + 0.5 * (beta_max - beta_min) * t * t, beta_min + (beta_max - beta_min) * t)
    }

    pub fn a(&self, t: f64) -> f64 {
        match *self {
            Schedule::Linear => 1.0 - t,
            Schedule::Vp { beta_min, beta_max } => (-0.5 * Self::vp_integral(beta_min, beta_max, t).0).exp(),
            Schedule::Ve => 1.0,
            Schedule::Preconditioned { sigma_data } => 1.0 / t.hypot(sigma_data),
        }
    }

    pub fn b(&self, t: f64) -> f64 {
        match *self {
            Schedule::Linear => t,
            // 1 - abar computed as -expm1(-B) keeps precision for small t.
            Schedule::Vp { beta_min, beta_max } => (-(-Self::vp_integral(beta_min, beta_max, t).0).exp_m1()).sqrt(),
            Schedule::Ve => t,
            Schedule::Preconditioned { sigma_data } => t / t.hypot(sigma_data),
        }
    }

    /// `da/dt`.
    pub fn da(&self, t: f64) -> f64 {
        match *self {
            Schedule::Linear => -1.0,
            Schedule::Vp { beta_min, beta_max } => {
                let (_, beta) = Self::vp_integral(beta_min, beta_max, t);
                -0.5 * beta * self.a(t)
            }
            Schedule::Ve => 0.0,
            Schedule::Preconditioned { sigma_data } => -t / t.hypot(sigma_data).powi(3),
        }
    }

    /// `db/dt`.
    pub fn db(&self, t: f64) -> f64 {
        match *self {
            Schedule::Linear => 1.0,
            Schedule::Vp { beta_min, beta_max } => {
                // b = sqrt(1 - abar), abar' = -beta abar  =>  b' = beta abar / (2 b)
                let (big_b, beta) = Self::vp_integral(beta_min, beta_max, t);
                let abar = (-big_b).exp();
                beta * abar / (2.0 * self.b(t))
            }
            Schedule::Ve => 1.0,
            Schedule::Preconditioned { sigma_data } => sigma_data * sigma_data / t.hypot(sigma_data).powi(3),
        }
    }

    /// Signal-to-noise ratio `a^2 / b^2`.
    pub fn snr(&self, t: f64) -> f64 {
        let (a, b) = (self.a(t), self.b(t));
        a * a / (b * b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn central_diff(f: impl Fn(f64) -> f64, t: f64) -> f64 {
        let h = 1e-6 * t.abs().max(1e-3);
        (f(t + h) - f(t - h)) / (2.0 * h)
    }

    #[test]
    fn derivatives_match_finite_differences() {
        for s in [Schedule::Linear, Schedule::DDPM, Schedule::Ve, Schedule::Preconditioned { sigma_data: 1.0 }, Schedule::Preconditioned { sigma_data: 0.5 }] {
            for &t in &[0.01, 0.1, 0.37, 0.8, 0.99] {
                let fa = central_diff(|t| s.a(t), t);
                let fb = central_diff(|t| s.b(t), t);
                assert!((s.da(t) - fa).abs() <= 1e-5 * (1.0 + fa.abs()), "{s:?} a' at {t}: {} vs {fa}", s.da(t));
                assert!((s.db(t) - fb).abs() <= 1e-5 * (1.0 + fb.abs()), "{s:?} b' at {t}: {} vs {fb}", s.db(t));
            }
        }
    }

    #[test]
    fn vp_is_variance_preserving_and_matches_discrete_ddpm_ends() {
        let s = Schedule::DDPM;
        for &t in &[1e-4, 0.01, 0.5, 1.0] {
            let (a, b) = (s.a(t), s.b(t));
            assert!((a * a + b * b - 1.0).abs() < 1e-12);
        }
        // DDPM's abar after 1000 linear steps 1e-4..0.02 is about 4.0e-5; the continuous form gives exp(-10.05).
        let abar1 = s.a(1.0).powi(2);
        assert!((abar1 - (-10.05f64).exp()).abs() < 1e-9);
        assert!(s.b(1e-3) > 0.0 && s.b(1e-3) < 0.011);
    }
}
