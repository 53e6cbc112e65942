//! Sample-quality metrics for the toy experiment. All read the samples from a host copy
//! (rows of D floats); tensor work runs on Flex, which reads back synchronously everywhere.
//!
//! Definitions (a sample is a row `u` in R^D; `y = P^T u` its coordinates in the data plane):
//! - **diverged**: `u` has a non-finite coordinate, or `||u|| > 10 r_out` (ten times the outer
//!   radius: far outside anything the data or a converged sampler produces). Diverged samples are
//!   counted and excluded from every other metric.
//! - **radial error**: `min(| ||y|| - r_in |, | ||y|| - r_out |)`, the distance of the projected
//!   sample to the nearer circle; reported as mean, median and 90th percentile. The median alone
//!   hides a scattered minority: it stays small while over half the samples sit on a circle.
//! - **clean fraction**: the share of samples whose radial error is at most [`CLEAN_TOLERANCE`],
//!   a tenth of the gap between the circles (`(r_out - r_in) / 10`, 0.089). A point half-way
//!   between the circles has the largest radial error there is, half the gap (0.447); the
//!   tolerance is a fifth of that. Diverged samples count as not clean.
//! - **off-manifold norm**: `||u - P P^T u||`, how far the sample sits off the data plane; mean
//!   and median (a heavy tail moves the mean, a shifted bulk moves both).
//! - **inner fraction**: share of samples whose nearer circle is the inner one (the data: 0.5).
//! - **MMD**: biased squared maximum mean discrepancy between the projected samples (the first
//!   2,000 that did not diverge) and 512 evenly spaced points of the data, RBF kernel
//!   `exp(-||y - y'||^2 / (2 * 0.2^2))`. 0 for identical distributions.
//!
//! On another data set ([`compute_for`], `dataset.rs`) the same numbers are read against it: the
//! radial error is the distance to the data (the shape's curve or area, or the nearest drawn
//! point), the clean tolerance is the same 0.089 (every data set has the circles' scale), a
//! sample diverges beyond ten times the data's largest norm, the MMD is against the data's
//! discrete set, and the inner fraction, which only the circles have, is NaN.

use crate::data::{host_tensor, Projection, R_INNER, R_OUTER};
use crate::dataset::DataSet;
use crate::sample::read_f32 as read;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub const DIVERGED_NORM: f64 = 10.0 * R_OUTER;
/// The radial error under which a sample counts as clean: a tenth of the gap between the circles.
pub const CLEAN_TOLERANCE: f64 = 0.1 * (R_OUTER - R_INNER);
pub const MMD_BANDWIDTH: f64 = 0.2;
pub const MMD_MAX_SAMPLES: usize = 2000;
pub const MMD_DATA_POINTS: usize = 512;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    pub diverged: usize,
    pub diverged_fraction: f64,
    pub radial_error_mean: f64,
    pub radial_error_median: f64,
    /// Absent from files written before it was measured (read back as NaN).
    #[serde(default = "nan")]
    pub radial_error_p90: f64,
    /// Share of all `n` samples within [`CLEAN_TOLERANCE`] of a circle.
    #[serde(default = "nan")]
    pub clean_fraction: f64,
    pub off_manifold_mean: f64,
    #[serde(default = "nan")]
    pub off_manifold_median: f64,
    pub inner_fraction: f64,
    pub mmd: f64,
}

fn nan() -> f64 {
    f64::NAN
}

impl Metrics {
    /// The clean fraction's 95 % Wilson interval over the `n` samples.
    pub fn clean_interval(&self) -> crate::interval::Interval {
        crate::interval::wilson((self.clean_fraction * self.n as f64).round() as usize, self.n)
    }

    /// The clean fraction in percent with that interval: "54% (50–58)".
    pub fn clean_text(&self) -> String {
        let ci = self.clean_interval();
        format!("{:.0}% ({:.0}–{:.0})", 100.0 * self.clean_fraction, 100.0 * ci.lo, 100.0 * ci.hi)
    }
}

/// The `q`-quantile of `v` (0 <= q <= 1), linear between order statistics; `v` must not be empty.
pub fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    if lo == hi {
        return v[lo];
    }
    // Weighted sum, not `v[lo] + w (v[hi] - v[lo])`: at w = 1/2 it is exactly the mean of the
    // middle two (halving is exact), and an infinite neighbour gives infinity, not NaN.
    let w = pos - lo as f64;
    (1.0 - w) * v[lo] + w * v[hi]
}

/// The median of `v` (the mean of the middle two for an even count); `v` must not be empty.
pub fn median(v: Vec<f64>) -> f64 {
    quantile(v, 0.5)
}

/// Pairwise RBF kernel mean between two sets of 2-D rows.
fn kernel_mean(a: &Tensor<2>, b: &Tensor<2>) -> f64 {
    let an = a.clone().square().sum_dim(1); // [n,1]
    let bn = b.clone().square().sum_dim(1).transpose(); // [1,m]
    let d2 = (an + bn - a.clone().matmul(b.clone().transpose()).mul_scalar(2.0)).clamp_min(0.0);
    let k = d2.mul_scalar(-1.0 / (2.0 * MMD_BANDWIDTH * MMD_BANDWIDTH)).exp();
    read(k.mean().reshape([1, 1]))[0] as f64
}

/// Metrics of `samples` (rows of `proj.dim` floats) on the circles.
pub fn compute(samples: &[f32], proj: &Projection) -> Result<Metrics, String> {
    compute_for(samples, proj, &DataSet::circles())
}

/// Metrics of `samples` (rows of `proj.dim` floats) against the data set `data`.
pub fn compute_for(samples: &[f32], proj: &Projection, data: &DataSet) -> Result<Metrics, String> {
    // Ten times the data's largest norm: DIVERGED_NORM for the circles.
    let diverged_norm = 10.0 * data.radius();
    let d = proj.dim;
    if samples.len() % d != 0 {
        return Err(format!("{} values do not make rows of D = {d}", samples.len()));
    }
    let n = samples.len() / d;
    let good: Vec<f32> = samples
        .chunks(d)
        .filter(|r| r.iter().all(|v| v.is_finite()) && r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt() <= diverged_norm)
        .flatten()
        .copied()
        .collect();
    let m = good.len() / d;
    let diverged = n - m;
    let mut out = Metrics {
        n,
        diverged,
        diverged_fraction: if n > 0 { diverged as f64 / n as f64 } else { 0.0 },
        radial_error_mean: f64::NAN,
        radial_error_median: f64::NAN,
        radial_error_p90: f64::NAN,
        clean_fraction: if n > 0 { 0.0 } else { f64::NAN },
        off_manifold_mean: f64::NAN,
        off_manifold_median: f64::NAN,
        inner_fraction: f64::NAN,
        mmd: f64::NAN,
    };
    if m == 0 {
        return Ok(out);
    }
    let device = Device::flex();
    let u = host_tensor(good, d, &device);
    let p = proj.tensor(&device);
    let y = u.clone().matmul(p.clone());
    let off = read((u - y.clone().matmul(p.transpose())).square().sum_dim(1).sqrt());
    let yv = read(y.clone());
    let mut radial: Vec<f64> = Vec::with_capacity(m);
    let mut inner = 0usize;
    for r in yv.chunks(2) {
        if data.is_circles() {
            let rad = ((r[0] as f64).powi(2) + (r[1] as f64).powi(2)).sqrt();
            let (ei, eo) = ((rad - R_INNER).abs(), (rad - R_OUTER).abs());
            if ei < eo {
                inner += 1;
            }
            radial.push(ei.min(eo));
        } else {
            radial.push(data.distance((r[0] as f64, r[1] as f64)));
        }
    }
    out.radial_error_mean = radial.iter().sum::<f64>() / m as f64;
    out.clean_fraction = radial.iter().filter(|e| **e <= CLEAN_TOLERANCE).count() as f64 / n as f64;
    out.radial_error_p90 = quantile(radial.clone(), 0.9);
    out.radial_error_median = median(radial);
    let off: Vec<f64> = off.iter().map(|v| *v as f64).collect();
    out.off_manifold_mean = off.iter().sum::<f64>() / m as f64;
    out.off_manifold_median = median(off);
    out.inner_fraction = if data.is_circles() { inner as f64 / m as f64 } else { f64::NAN };

    let ys = y.slice([0..m.min(MMD_MAX_SAMPLES), 0..2]);
    let data = host_tensor(data.discrete(MMD_DATA_POINTS), 2, &device);
    out.mmd = (kernel_mean(&ys, &ys) + kernel_mean(&data, &data) - 2.0 * kernel_mean(&ys, &data)).max(0.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::sample::read_f32;

    fn lifted(x2: Vec<f32>, proj: &Projection) -> Vec<f32> {
        read_f32(proj.lift(host_tensor(x2, 2, &Device::flex())))
    }

    #[test]
    fn other_data_sets_are_measured_against_themselves() {
        use crate::dataset::{DataSpec, Shape};
        let proj = Projection::new(8, 1).unwrap();
        for spec in [DataSpec::Shape { name: Shape::Spiral }, DataSpec::Shape { name: Shape::Checkerboard }, DataSpec::Points { points: vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]] }] {
            let data = spec.build().unwrap();
            let mut rng = Rng::new(4);
            let on = compute_for(&lifted(data.sample(&mut rng, 600), &proj), &proj, &data).unwrap();
            assert!(on.clean_fraction == 1.0 && on.radial_error_p90 < 1e-5 && on.off_manifold_mean < 1e-5, "{spec:?}: {on:?}");
            assert!(on.mmd < 0.02 && on.inner_fraction.is_nan(), "{spec:?}: {on:?}");
            // The same samples against the circles are mostly not clean; noise is not clean
            // against either.
            let circles = compute(&lifted(data.sample(&mut rng, 600), &proj), &proj).unwrap();
            assert!(circles.clean_fraction < 0.6, "{spec:?} read as circles: {circles:?}");
            let noise: Vec<f32> = (0..600 * 8).map(|_| rng.normal() as f32).collect();
            let off = compute_for(&noise, &proj, &data).unwrap();
            assert!(off.off_manifold_mean > 2.0 && off.mmd > on.mmd, "{spec:?}: {off:?}");
            // (The clean fraction is read in the plane: a checkerboard's dark squares hold about
            // half of a 2-D Gaussian, so noise is not told apart by it there.)
            if spec != (DataSpec::Shape { name: Shape::Checkerboard }) {
                assert!(off.clean_fraction < 0.3, "{spec:?}: {off:?}");
            }
        }
    }

    #[test]
    fn clean_data_scores_perfectly_and_noise_does_not() {
        let proj = Projection::new(16, 0).unwrap();
        let mut rng = Rng::new(1);
        let clean = lifted(crate::data::sample_circles_2d(&mut rng, 1000), &proj);
        let m = compute(&clean, &proj).unwrap();
        assert_eq!(m.diverged, 0);
        assert!(m.radial_error_mean < 1e-5 && m.off_manifold_mean < 1e-5, "{m:?}");
        assert!((m.inner_fraction - 0.5).abs() < 0.05);
        assert!(m.mmd < 0.01, "{m:?}");

        let noise = rng.normals_f32(1000 * 16);
        let m2 = compute(&noise, &proj).unwrap();
        assert!(m2.radial_error_mean > 0.1 && m2.off_manifold_mean > 3.0 && m2.mmd > 10.0 * m.mmd.max(1e-4), "{m2:?}");
    }

    #[test]
    fn radial_error_and_balance_are_exact_on_known_points() {
        let proj = Projection::new(2, 0).unwrap();
        // Three points on radius 1.0 (nearer the inner circle) and one at radius 2.0.
        let pts = lifted(vec![1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 2.0, 0.0], &proj);
        let m = compute(&pts, &proj).unwrap();
        let e_in = 1.0 - R_INNER;
        let e_out = 2.0 - R_OUTER;
        assert!((m.radial_error_mean - (3.0 * e_in + e_out) / 4.0).abs() < 1e-5);
        assert!((m.radial_error_median - e_in).abs() < 1e-5);
        assert!((m.inner_fraction - 0.75).abs() < 1e-12);
    }

    #[test]
    fn scatter_metrics_are_exact_on_a_constructed_set() {
        // 10 samples in the plane at D = 8: 7 on the circles (radial error 0), one just inside the
        // tolerance, one just outside it, one half-way between the circles; lifted and then 6 of
        // them pushed off the plane by known distances.
        let proj = Projection::new(8, 3).unwrap();
        let tol = CLEAN_TOLERANCE;
        let mid = 0.5 * (R_INNER + R_OUTER);
        let radii = [R_INNER, R_INNER, R_INNER, R_OUTER, R_OUTER, R_OUTER, R_OUTER, R_OUTER + 0.99 * tol, R_INNER - 1.01 * tol, mid];
        let xy: Vec<f32> = radii.iter().enumerate().flat_map(|(i, r)| {
            let a = 0.7 * i as f64;
            [(r * a.cos()) as f32, (r * a.sin()) as f32]
        }).collect();
        let mut u = lifted(xy, &proj);
        // A unit vector orthogonal to the plane: a basis vector minus its projection, normalised.
        let p = read_f32(proj.tensor(&Device::flex()));
        let mut e: Vec<f64> = (0..8).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect();
        for c in 0..2 {
            let dot: f64 = (0..8).map(|i| e[i] * p[2 * i + c] as f64).sum();
            for i in 0..8 {
                e[i] -= dot * p[2 * i + c] as f64;
            }
        }
        let ne = e.iter().map(|v| v * v).sum::<f64>().sqrt();
        let offs = [0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 2.0, 8.0];
        for (row, off) in u.chunks_mut(8).zip(offs) {
            for i in 0..8 {
                row[i] += (off * e[i] / ne) as f32;
            }
        }
        let m = compute(&u, &proj).unwrap();
        assert!((m.clean_fraction - 0.8).abs() < 1e-12, "{m:?}");
        // The radial errors sorted: seven zeros, 0.99 tol, 1.01 tol, gap / 2; their 90th
        // percentile lies between the last two order statistics.
        let sorted = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.99 * tol, 1.01 * tol, mid - R_INNER];
        let p90 = sorted[8] + 0.1 * (sorted[9] - sorted[8]);
        assert!((m.radial_error_p90 - p90).abs() < 1e-5, "{} vs {p90}", m.radial_error_p90);
        assert!(m.radial_error_median < 1e-5);
        assert!((m.off_manifold_median - 0.5).abs() < 1e-5, "{m:?}");
        assert!((m.off_manifold_mean - 1.3).abs() < 1e-5, "{m:?}");
        // A diverged sample lowers the clean fraction (it is a sample that is not clean).
        let mut more = u.clone();
        more.extend(std::iter::repeat(f32::NAN).take(8));
        let m2 = compute(&more, &proj).unwrap();
        assert!((m2.clean_fraction - 8.0 / 11.0).abs() < 1e-12, "{m2:?}");
        assert_eq!(m2.radial_error_p90, m.radial_error_p90);
    }

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![0.1, 0.2]), 0.5 * (0.1 + 0.2));
        assert_eq!(median(vec![1.0, f64::INFINITY, f64::INFINITY]), f64::INFINITY);
        assert_eq!(median(vec![1.0, f64::INFINITY]), f64::INFINITY);
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        assert_eq!(quantile(vec![3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(quantile(vec![0.0, 10.0], 0.9), 9.0);
        assert_eq!(quantile(vec![5.0], 0.9), 5.0);
        assert_eq!(quantile((0..=10).map(f64::from).collect(), 0.9), 9.0);
    }

    #[test]
    fn metrics_written_before_the_scatter_metrics_still_read() {
        let old = r#"{"n":4,"diverged":0,"diverged_fraction":0.0,"radial_error_mean":0.1,"radial_error_median":0.05,"off_manifold_mean":0.2,"inner_fraction":0.5,"mmd":0.001}"#;
        let m: Metrics = serde_json::from_str(old).unwrap();
        assert!(m.clean_fraction.is_nan() && m.radial_error_p90.is_nan() && m.off_manifold_median.is_nan());
        assert_eq!(m.radial_error_median, 0.05);
    }

    #[test]
    fn diverged_samples_are_counted_and_excluded() {
        let proj = Projection::new(2, 0).unwrap();
        let mut pts = lifted(vec![R_INNER as f32, 0.0, 0.0, R_OUTER as f32], &proj);
        pts.extend_from_slice(&[f32::NAN, 0.0, f32::INFINITY, 1.0, 100.0, 0.0]);
        let m = compute(&pts, &proj).unwrap();
        assert_eq!((m.n, m.diverged), (5, 3));
        assert!((m.diverged_fraction - 0.6).abs() < 1e-12);
        assert!(m.radial_error_mean < 1e-5);
        let all_bad = compute(&[f32::NAN, 1.0], &proj).unwrap();
        assert_eq!(all_bad.diverged, 1);
        assert!(all_bad.radial_error_mean.is_nan());
        assert!(compute(&[1.0, 2.0, 3.0], &proj).is_err());
    }
}
