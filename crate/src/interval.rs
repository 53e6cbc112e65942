//! 95 % intervals for the numbers the project compares: a percentile bootstrap over samples (for a
//! statistic of a whole set, such as a Fréchet distance), and Wilson's score interval for a
//! fraction (how many of n samples are clean, or confident).

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// The two-sided level of every interval.
pub const LEVEL: f64 = 0.95;
/// The standard normal's `1 - (1 - LEVEL) / 2` quantile.
const Z: f64 = 1.959_963_984_540_054;
/// Resamples of a bootstrap interval.
pub const RESAMPLES: usize = 200;

/// A closed interval `[lo, hi]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// `[lo, hi]` with `digits` decimals, as the tables print it.
    pub fn show(&self, digits: usize) -> String {
        format!("[{:.*}, {:.*}]", digits, self.lo, digits, self.hi)
    }

    /// The same interval with every bound multiplied by `k > 0`.
    pub fn scaled(&self, k: f64) -> Interval {
        Interval { lo: self.lo * k, hi: self.hi * k }
    }
}

/// Wilson's score interval for a fraction `k / n` (`[0, 1]` when `n = 0`). Unlike the normal
/// approximation it stays inside `[0, 1]` and is not empty at `k = 0` or `k = n`.
pub fn wilson(k: usize, n: usize) -> Interval {
    if n == 0 {
        return Interval { lo: 0.0, hi: 1.0 };
    }
    let (k, n) = (k.min(n) as f64, n as f64);
    let p = k / n;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Interval { lo: (centre - half).max(0.0), hi: (centre + half).min(1.0) }
}

/// The `q` quantile (`0..=1`) of sorted values, linearly interpolated.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of nothing");
    let x = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (i, f) = (x.floor() as usize, x.fract());
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - f) + sorted[i + 1] * f
    } else {
        sorted[i]
    }
}

/// The percentile bootstrap interval of a statistic of `n` samples: `stat` is handed `resamples`
/// times a draw of `n` indices with replacement (from a stream of `seed`, so the interval is
/// reproducible); the interval spans the middle `LEVEL` of what it returns. Non-finite values
/// are left out. `n = 0` gives an empty interval at NaN.
pub fn bootstrap(n: usize, resamples: usize, seed: u64, mut stat: impl FnMut(&[usize]) -> f64) -> Interval {
    if n == 0 || resamples == 0 {
        return Interval { lo: f64::NAN, hi: f64::NAN };
    }
    let mut rng = Rng::derive(seed, "bootstrap");
    let mut idx = vec![0; n];
    let values: Vec<f64> = (0..resamples)
        .map(|_| {
            idx.iter_mut().for_each(|i| *i = rng.below(n));
            stat(&idx)
        })
        .collect();
    let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return Interval { lo: f64::NAN, hi: f64::NAN };
    }
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - LEVEL) / 2.0;
    Interval { lo: quantile(&values, tail), hi: quantile(&values, 1.0 - tail) }
}

/// Groups of a delete-a-group jackknife.
pub const JACKKNIFE_GROUPS: usize = 20;

/// The normal interval `estimate ± z se` of a statistic whose bootstrap resamples are biased (a
/// Fréchet distance: a resample repeats about a third of its samples, which inflates its
/// covariance's error; its percentile interval lay wholly above the estimate and was twice as
/// wide as the spread over disjoint sets of real images). `se` is the delete-a-group jackknife's:
/// the `n` samples in `groups` interleaved groups, `stat` handed all but one group at a time,
/// `se^2 = (g - 1) / g * sum (theta_(-k) - mean)^2`.
pub fn jackknife(estimate: f64, n: usize, groups: usize, mut stat: impl FnMut(&[usize]) -> f64) -> Interval {
    let g = groups.min(n);
    if g < 2 {
        return Interval { lo: f64::NAN, hi: f64::NAN };
    }
    let values: Vec<f64> = (0..g).map(|k| stat(&(0..n).filter(|i| i % g != k).collect::<Vec<_>>())).collect();
    let mean = values.iter().sum::<f64>() / g as f64;
    let se = ((g - 1) as f64 / g as f64 * values.iter().map(|v| (v - mean).powi(2)).sum::<f64>()).sqrt();
    Interval { lo: estimate - Z * se, hi: estimate + Z * se }
}

/// Median, least and greatest of some values (over seeds): `(median, lo, hi)`.
pub fn median_range(values: &[f64]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    (quantile(&v, 0.5), v[0], v[v.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_has_its_textbook_values() {
        // 5 of 10: 0.2366 .. 0.7634; 0 of 10: 0 .. 0.2775; 10 of 10: 0.7225 .. 1.
        let close = |i: Interval, lo: f64, hi: f64| (i.lo - lo).abs() < 1e-4 && (i.hi - hi).abs() < 1e-4;
        assert!(close(wilson(5, 10), 0.2366, 0.7634), "{:?}", wilson(5, 10));
        assert!(close(wilson(0, 10), 0.0, 0.2775), "{:?}", wilson(0, 10));
        assert!(close(wilson(10, 10), 0.7225, 1.0), "{:?}", wilson(10, 10));
        assert_eq!(wilson(0, 0), Interval { lo: 0.0, hi: 1.0 });
        // It narrows as n grows, like 1 / sqrt(n).
        let (a, b) = (wilson(50, 100), wilson(5000, 10_000));
        assert!(((a.hi - a.lo) / (b.hi - b.lo) - 10.0).abs() < 0.25, "{a:?} {b:?}");
    }

    #[test]
    fn a_bootstrap_interval_of_a_mean_has_the_normal_width_and_covers_it() {
        let mut rng = Rng::new(7);
        let n = 2000;
        let x: Vec<f64> = (0..n).map(|_| 3.0 + 2.0 * rng.normal()).collect();
        let mean = |idx: &[usize]| idx.iter().map(|&i| x[i]).sum::<f64>() / idx.len() as f64;
        let all: Vec<usize> = (0..n).collect();
        let m = mean(&all);
        let i = bootstrap(n, 400, 1, mean);
        assert!(i.contains(m), "{i:?} misses the mean {m}");
        // The normal interval's width: 2 z sigma / sqrt(n) = 0.1753.
        let want = 2.0 * Z * 2.0 / (n as f64).sqrt();
        assert!(((i.hi - i.lo) / want - 1.0).abs() < 0.15, "width {} vs {want}", i.hi - i.lo);
        // The same seed gives the same interval; another seed another one.
        assert_eq!(bootstrap(n, 400, 1, mean), i);
        assert_ne!(bootstrap(n, 400, 2, mean), i);
    }

    #[test]
    fn quantiles_interpolate_and_medians_ignore_non_finite_values() {
        let v = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 8.0);
        assert!((quantile(&v, 0.5) - 3.0).abs() < 1e-12);
        assert_eq!(median_range(&[5.0, f64::NAN, 1.0, 3.0]), (3.0, 1.0, 5.0));
        assert!(median_range(&[]).0.is_nan());
    }
}
