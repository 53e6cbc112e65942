//! How well a model's clean estimate recovers held-out images, level by level: the error of
//! `xhat = (d u - b f) / (a d - b c)` for `u = a x + b eps` at matched signal-to-noise ratios.
//!
//! Two models on different paths (FM's linear path, DDPM's VP schedule) are compared at the same
//! log-SNR `ln(a^2 / b^2)`: `u / a = x + (b / a) eps` holds the same information about `x` on
//! any path at that ratio, so the best possible error is the same and what differs is the
//! network. A blind model's field goes into the same formula with the true level's
//! coefficients, as the sampler does.

use crate::data::host_tensor;
use crate::interval::{bootstrap, Interval, RESAMPLES};
use crate::rng::Rng;
use crate::sample::{read_f32, Field};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// The clean estimate's error at one level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenoiseLevel {
    /// `ln(a^2 / b^2)` asked for.
    pub log_snr: f64,
    /// The model's level with that ratio.
    pub t: f64,
    /// Mean over images of the per-pixel squared error of `xhat` (pixels on [-1, 1]).
    pub mse: f64,
    /// 95 % percentile-bootstrap interval of `mse` over the images.
    pub interval: Interval,
}

/// The level in `[lo, hi]` at which `field`'s path has log-SNR `lambda` (it falls as `t` grows);
/// `None` where the path does not reach it.
pub fn level_of(field: &dyn Field, lambda: f64) -> Option<f64> {
    let p = field.parameterization();
    let (lo, hi) = field.range();
    (lambda <= p.log_snr(lo) && lambda >= p.log_snr(hi)).then(|| p.t_of_log_snr(lambda, lo, hi))
}

/// The clean estimate's error on `images` (rows of `dim` pixels on [-1, 1]) at each log-SNR of
/// `levels` the model's path reaches, with noise from `seed` (the same noise for every model).
pub fn denoising_error(field: &dyn Field, images: &[f32], levels: &[f64], seed: u64, device: &Device) -> Result<Vec<DenoiseLevel>, String> {
    let dim = field.dim();
    if images.is_empty() || images.len() % dim != 0 {
        return Err(format!("{} values do not make rows of {dim} pixels", images.len()));
    }
    let n = images.len() / dim;
    let p = field.parameterization();
    let mut out = vec![];
    for (k, &lambda) in levels.iter().enumerate() {
        let Some(t) = level_of(field, lambda) else {
            continue;
        };
        let (a, b) = (p.a(t), p.b(t));
        let (c, d) = p.target_coeffs(t);
        let det = a * d - b * c;
        let eps = Rng::derive(seed ^ k as u64, "denoise").normals_f32(images.len());
        let u: Vec<f32> = images.iter().zip(&eps).map(|(x, e)| (a * *x as f64 + b * *e as f64) as f32).collect();
        let mut err = Vec::with_capacity(n);
        // A few hundred images at a time keep the U-Net's activations small.
        for (rows, x) in u.chunks(256 * dim).zip(images.chunks(256 * dim)) {
            let ut = host_tensor(rows.to_vec(), dim, device);
            let f = field.eval(ut.clone(), t);
            let xhat = read_f32((ut.mul_scalar(d) - f.mul_scalar(b)).div_scalar(det));
            err.extend(xhat.chunks(dim).zip(x.chunks(dim)).map(|(h, x)| h.iter().zip(x).map(|(h, x)| ((h - x) as f64).powi(2)).sum::<f64>() / dim as f64));
        }
        let mse = err.iter().sum::<f64>() / n as f64;
        let interval = bootstrap(n, RESAMPLES, k as u64, |idx| idx.iter().map(|&i| err[i]).sum::<f64>() / idx.len() as f64);
        out.push(DenoiseLevel { log_snr: lambda, t, mse, interval });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::tests::PointField;
    use crate::target::Parameterization;

    #[test]
    fn the_exact_field_of_one_image_recovers_it_at_every_level_on_every_path() {
        let device = Device::flex();
        let x: Vec<f32> = (0..16).map(|i| (i as f32 / 7.5) - 1.0).collect();
        let images: Vec<f32> = [x.clone(), x.clone()].concat();
        for p in Parameterization::ALL {
            for (bias, want) in [(0.0f32, 0.0), (0.1, 0.01)] {
                // The exact field of a one-image data set, its image moved by `bias`.
                let field = PointField { p, x0: x.iter().map(|v| v + bias).collect() };
                let rows = denoising_error(&field, &images, &[-4.0, 0.0, 4.0], 0, &device).unwrap();
                assert!(!rows.is_empty(), "{p}: no level reached");
                for r in &rows {
                    assert!((p.log_snr(r.t) - r.log_snr).abs() < 1e-6, "{p}: level {} has log-SNR {}", r.t, p.log_snr(r.t));
                    assert!((r.mse - want).abs() < 1e-4 + 1e-3 * p.b(r.t) / p.a(r.t), "{p} bias {bias} at {}: {}", r.log_snr, r.mse);
                }
            }
        }
        // A level the path does not reach is left out; a ragged input is refused.
        let field = PointField { p: Parameterization::Ddpm, x0: x.clone() };
        assert!(denoising_error(&field, &images, &[60.0], 0, &device).unwrap().is_empty());
        assert!(denoising_error(&field, &images[..5], &[0.0], 0, &device).is_err());
    }
}
