//! What the oracle says about a point besides the field (Lemma 3, Eq. 14/56, Sec. 6): the
//! posterior over the noise level, the marginal energy and its gradient, the energy-aligned
//! decomposition of the blind field, and the drift error against the field that knows t. The
//! CLI's `oracle` command and the page's probes read these.

use super::{Level, Oracle};
use burn::tensor::Tensor;

/// Everything the oracle says about a batch of points (rows of `u`).
#[derive(Clone, Debug)]
pub struct Analysis {
    /// `p(t_k | u)`, [M, K].
    pub posterior: Tensor<2>,
    /// `E_marg(u)`, [M, 1].
    pub energy: Tensor<2>,
    /// `grad E_marg(u)`, [M, D].
    pub grad_energy: Tensor<2>,
    /// The blind optimum `f*(u)`, [M, D].
    pub field: Tensor<2>,
    /// Effective gain `lambdabar(u) = E_{t|u}[lambda]`, [M, 1].
    pub gain: Tensor<2>,
    /// `E_{t|u}[c/a] u`, [M, D].
    pub linear_drift: Tensor<2>,
    /// `lambdabar grad E_marg`, [M, D].
    pub gain_term: Tensor<2>,
    /// `Cov_{t|u}(lambda, grad E_t)`, [M, D].
    pub transport: Tensor<2>,
    /// Posterior mean and standard deviation of t, [M, 1] each.
    pub t_mean: Tensor<2>,
    pub t_std: Tensor<2>,
}

impl Oracle {
    /// The full analysis of Lemma 3 and Eq. 14/56 at each row of `u`.
    pub fn analyze(&self, u: Tensor<2>) -> Analysis {
        let p = self.param;
        let mut outs = self.chunked(u, |o, u| {
            let (logp, w, near) = o.likelihood(&u);
            let (post, energy) = o.posterior_energy(logp);
            let coef = |f: &dyn Fn(f64) -> f64| o.per_t(f);
            let lv = |t| Level::at(p, t);
            let alpha = coef(&|t| lv(t).alpha);
            let a_b2 = coef(&|t| lv(t).a_b2);
            let lam_a_b2 = coef(&|t| lv(t).lambda * lv(t).a_b2);
            let offsets = o.weighted_offsets(&post, w, &[alpha, a_b2, lam_a_b2], &near);
            let (s_w, s_x) = o.field_weights(&post);
            // u - a xhat = w + (1 - a) x_r + a (x_r - xhat): each term at its own scale.
            let s_grad = Self::expect(&post, coef(&|t| lv(t).inv_b2));
            let s_grad_x = Self::expect(&post, coef(&|t| lv(t).grad_x));
            let s_lin = Self::expect(&post, coef(&|t| p.target_coeffs(t).0 / p.a(t)));
            let gain = Self::expect(&post, coef(&|t| lv(t).lambda));
            let s_lam_grad = Self::expect(&post, coef(&|t| lv(t).lambda * lv(t).inv_b2));
            let s_lam_grad_x = Self::expect(&post, coef(&|t| lv(t).lambda * lv(t).grad_x));
            let t_mean = Self::expect(&post, coef(&|t| t));
            let t_sq = Self::expect(&post, coef(&|t| t * t));
            let t_std = (t_sq - t_mean.clone().square()).clamp_min(0.0).sqrt();

            let (w, xr) = (near.w.clone(), near.xr.clone());
            let field = w.clone() * s_w + xr.clone() * s_x - offsets[0].clone();
            let grad = w.clone() * s_grad + xr.clone() * s_grad_x + offsets[1].clone();
            let lam_grad = w * s_lam_grad + xr * s_lam_grad_x + offsets[2].clone();
            let gain_term = grad.clone() * gain.clone();
            let transport = lam_grad - gain_term.clone();
            let linear = u * s_lin;
            vec![post, energy, grad, field, gain, linear, gain_term, transport, t_mean, t_std]
        });
        let mut take = || outs.remove(0);
        Analysis {
            posterior: take(),
            energy: take(),
            grad_energy: take(),
            field: take(),
            gain: take(),
            linear_drift: take(),
            gain_term: take(),
            transport: take(),
            t_mean: take(),
            t_std: take(),
        }
    }

    /// Drift perturbation error of the blind sampler against the oracle that knows `t`:
    /// `Delta(u, t) = |nu(t)| ||f*(u) - f*(u, t)||`, [M, 1].
    pub fn drift_error(&self, u: Tensor<2>, t: f64) -> Tensor<2> {
        let (_, nu) = self.param.mu_nu(t);
        let diff = self.blind_field(u.clone()) - self.conditional_field(u, t);
        diff.square().sum_dim(1).sqrt().mul_scalar(nu.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::reference::*;
    use crate::data::Projection;
    use crate::sample::read_f32;
    use crate::target::Parameterization;

    #[test]
    fn energy_aligned_decomposition_holds_to_rounding() {
        for param in Parameterization::ALL {
            let dim = 16;
            let proj = Projection::new(dim, 2).unwrap();
            let o = Oracle::for_circles(param, param.default_range(), &proj, 64, 48, &dev()).unwrap();
            let (lo, hi) = o.range;
            let ts: Vec<f64> = (0..12).map(|i| lo * (hi / lo).powf((i as f64 + 0.5) / 12.0)).collect();
            let (u, _, _) = noisy_points(&o, &ts, 11);
            let an = o.analyze(rows(u, dim));
            let sum = an.linear_drift + an.gain_term + an.transport;
            let f = read_f32(an.field);
            let s = read_f32(sum);
            for (r, (fr, sr)) in f.chunks(dim).zip(s.chunks(dim)).enumerate() {
                let scale = fr.iter().map(|v| v.abs()).fold(0f32, f32::max).max(1.0);
                let err = fr.iter().zip(sr).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(err <= 2e-4 * scale, "{param} row {r}: |f* - (drift + gain + transport)| = {err}, scale {scale}");
            }
        }
    }

    #[test]
    fn drift_error_is_bounded_for_velocity_and_grows_for_noise_prediction() {
        // Sec. 6 / App. F: as t -> 0, Delta stays bounded for FM and blows up for DDPM (nu ~ b'
        // ~ t^-1/2 once t << beta_min / (beta_max - beta_min) ~ 0.005, times a Jensen gap that does
        // not close). Low D keeps the posterior over t uncertain; the grid reaches down to 1e-6.
        let dim = 4;
        let proj = Projection::new(dim, 3).unwrap();
        let mean_delta = |param: Parameterization, t: f64| {
            let o = Oracle::for_circles(param, (1e-6, 1.0), &proj, 64, 160, &dev()).unwrap();
            let (u, _, _) = noisy_points(&o, &[t; 256], 21);
            let d = read_f32(o.drift_error(rows(u, dim), t));
            d.iter().map(|v| *v as f64).sum::<f64>() / d.len() as f64
        };
        let ts = [0.3, 1e-3, 1e-5];
        let fm: Vec<f64> = ts.iter().map(|&t| mean_delta(Parameterization::Fm, t)).collect();
        let ddpm: Vec<f64> = ts.iter().map(|&t| mean_delta(Parameterization::Ddpm, t)).collect();
        eprintln!("t = {ts:?}\nFM   Delta = {fm:?}\nDDPM Delta = {ddpm:?}");
        assert!(fm.iter().all(|&v| v < 2.0 * fm[0]), "FM drift error grew: {fm:?}");
        assert!(ddpm[1] > 2.0 * ddpm[0] && ddpm[2] > 5.0 * ddpm[1], "DDPM drift error did not grow: {ddpm:?}");
    }
}
