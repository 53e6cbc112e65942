//! How good a set of generated images is, against the real test images of the same data set.
//!
//! The classifier sees every sample clipped to [-1, 1], as a picture of it shows it; a sample
//! with a non-finite pixel is counted as diverged and left out of the rest.
//!
//! - **Fréchet distance** in the feature space of the project's classifier (`classifier.rs`):
//!   `||m1 - m2||^2 + Tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2)` between Gaussian fits of the
//!   samples' and the real images' features. Not Inception-FID: it ranks models on the same data,
//!   and is not comparable to published FIDs.
//! - **Confident share**: the share of samples whose most probable class has probability at
//!   least `CONFIDENT` (0.9) under the classifier: does the sample look like any class at all.
//! - **Residual noise** (Laplacian energy): the mean of the squared 4-neighbour Laplacian
//!   `4 p - (up + down + left + right)` over interior pixels, and its ratio to the real images'.
//!   Grain and high-frequency artifacts, the failure the paper describes for blind noise
//!   prediction, raise it; a real image set scores 1. It is taken on the samples as they come
//!   out of the sampler, before the clip: Fashion-MNIST's background sits at -1, where a clip
//!   would hide every negative speck of noise.

use super::classifier::{argmax, embed, Classifier, CLASSES};
use crate::interval::{bootstrap, jackknife, wilson, Interval, JACKKNIFE_GROUPS, RESAMPLES};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

pub const CONFIDENT: f32 = 0.9;

/// The mean squared Laplacian of each image (rows of `side * side`).
pub fn laplacian_energy(rows: &[f32], side: usize) -> Vec<f64> {
    let c = |v: f32| v as f64;
    rows.chunks(side * side)
        .map(|img| {
            let mut sum = 0.0;
            for r in 1..side - 1 {
                for k in 1..side - 1 {
                    let p = |r: usize, k: usize| c(img[r * side + k]);
                    let l = 4.0 * p(r, k) - p(r - 1, k) - p(r + 1, k) - p(r, k - 1) - p(r, k + 1);
                    sum += l * l;
                }
            }
            sum / ((side - 2) * (side - 2)) as f64
        })
        .collect()
}

/// Mean and covariance (row-major `f x f`, divided by `n - 1`) of rows of `f` features.
pub fn gaussian_fit(rows: &[f32], f: usize) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len() / f;
    let mut mean = vec![0.0; f];
    for r in rows.chunks(f) {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v as f64 / n as f64;
        }
    }
    let mut cov = vec![0.0; f * f];
    for r in rows.chunks(f) {
        for i in 0..f {
            let di = r[i] as f64 - mean[i];
            for j in i..f {
                cov[i * f + j] += di * (r[j] as f64 - mean[j]);
            }
        }
    }
    let denom = (n.max(2) - 1) as f64;
    for i in 0..f {
        for j in i..f {
            cov[i * f + j] /= denom;
            cov[j * f + i] = cov[i * f + j];
        }
    }
    (mean, cov)
}

/// Eigenvalues and eigenvectors (columns of the row-major result) of a symmetric matrix, by
/// cyclic Jacobi rotations.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    for _sweep in 0..100 {
        let off: f64 = (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i * n + j].powi(2)).sum();
        let scale: f64 = (0..n).map(|i| a[i * n + i].powi(2)).sum::<f64>().max(1e-300);
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                c[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    c
}

/// `C^1/2` of a symmetric positive semi-definite `n x n` matrix, from its eigenvectors.
pub fn psd_root(c: &[f64], n: usize) -> Vec<f64> {
    let (w, v) = symmetric_eigen(c, n);
    let mut root = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            root[i * n + j] = (0..n).map(|k| v[i * n + k] * w[k].max(0.0).sqrt() * v[j * n + k]).sum();
        }
    }
    root
}

/// The Fréchet distance between two Gaussians `N(m1, c1)`, `N(m2, c2)` in `n` dimensions.
pub fn frechet(m1: &[f64], c1: &[f64], m2: &[f64], c2: &[f64], n: usize) -> f64 {
    frechet_with_root(m1, c1, &psd_root(c1, n), m2, c2, n)
}

/// [`frechet`] with `C1^1/2` given (the real images' side, the same for every set scored).
pub fn frechet_with_root(m1: &[f64], c1: &[f64], root: &[f64], m2: &[f64], c2: &[f64], n: usize) -> f64 {
    let mean: f64 = m1.iter().zip(m2).map(|(a, b)| (a - b).powi(2)).sum();
    // Tr (C1^1/2 C2 C1^1/2)^1/2 from the eigenvalues of the symmetric product (the same as
    // Tr (C1 C2)^1/2).
    let m = matmul(&matmul(root, c2, n), root, n);
    let sym: Vec<f64> = (0..n * n).map(|k| 0.5 * (m[k] + m[(k % n) * n + k / n])).collect();
    let (mw, _) = symmetric_eigen(&sym, n);
    let tr_root: f64 = mw.iter().map(|x| x.max(0.0).sqrt()).sum();
    let tr: f64 = (0..n).map(|i| c1[i * n + i] + c2[i * n + i]).sum();
    mean + tr - 2.0 * tr_root
}

/// What the real images look like to the metrics, computed once per data set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reference {
    pub n: usize,
    pub mean: Vec<f64>,
    pub cov: Vec<f64>,
    pub laplacian_energy: f64,
    pub confident_share: f64,
}

/// The scores of one set of samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageMetrics {
    pub n: usize,
    pub diverged: usize,
    /// Fréchet distance to the real images in the classifier's feature space.
    pub frechet: f64,
    /// Share of samples the classifier gives a class with probability >= 0.9.
    pub confident_share: f64,
    /// Mean squared Laplacian of the samples.
    pub laplacian_energy: f64,
    /// The same over the real images' (1 for real images).
    pub laplacian_ratio: f64,
    /// How many samples the classifier puts in each class.
    pub class_counts: Vec<usize>,
    /// 95 % intervals of the three scores (absent in scores made before they were).
    #[serde(default)]
    pub intervals: Option<ImageIntervals>,
}

/// 95 % intervals of a set's scores over the finite samples, the reference held fixed: the
/// residual noise by a percentile bootstrap ([`RESAMPLES`] resamples), the Fréchet distance by
/// a delete-a-group jackknife ([`jackknife`]: a bootstrap's repeats bias it upward), the
/// confident share by Wilson's interval. They say how much the numbers move with the samples
/// drawn, not with the training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageIntervals {
    pub frechet: Interval,
    pub confident_share: Interval,
    pub laplacian_ratio: Interval,
}

/// The numbers a live view shows under a grid at every frame: cheap, no classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameMetrics {
    pub n: usize,
    /// Samples with a non-finite pixel (left out of the mean).
    pub diverged: usize,
    /// Mean squared Laplacian of the finite samples (NaN where none is finite).
    pub laplacian_energy: f64,
}

pub fn frame_metrics(rows: &[f32], side: usize) -> Result<FrameMetrics, String> {
    let d = side * side;
    if side < 3 || rows.len() % d != 0 {
        return Err(format!("{} values do not make rows of {side} x {side} images", rows.len()));
    }
    let (good, diverged) = finite(rows, d);
    let lap = laplacian_energy(&good, side);
    let mean = if lap.is_empty() { f64::NAN } else { lap.iter().sum::<f64>() / lap.len() as f64 };
    Ok(FrameMetrics { n: rows.len() / d, diverged, laplacian_energy: mean })
}

/// The classifier's verdict on a set of samples: the numbers shown when a live run ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub n: usize,
    pub diverged: usize,
    /// Share of the finite samples the classifier gives a class with probability >= 0.9.
    pub confident_share: f64,
    /// How many finite samples the classifier puts in each class.
    pub class_counts: Vec<usize>,
    /// Each finite sample's most probable class and its probability, in order.
    pub classes: Vec<(usize, f32)>,
}

pub fn verdict(net: &Classifier, side: usize, rows: &[f32], device: &Device) -> Result<Verdict, String> {
    let d = side * side;
    if rows.is_empty() || rows.len() % d != 0 {
        return Err(format!("{} values do not make rows of {side} x {side} images", rows.len()));
    }
    let (good, diverged) = finite(rows, d);
    let (_, probs) = if good.is_empty() { (vec![], vec![]) } else { embed(net, side, &clip(&good), device) };
    let mut class_counts = vec![0; CLASSES];
    let classes: Vec<(usize, f32)> = probs.chunks(CLASSES).map(|p| (argmax(p), p[argmax(p)])).collect();
    classes.iter().for_each(|&(c, _)| class_counts[c] += 1);
    Ok(Verdict { n: rows.len() / d, diverged, confident_share: confident(&probs), class_counts, classes })
}

/// Rows with a non-finite pixel removed; and how many were removed.
fn finite(rows: &[f32], d: usize) -> (Vec<f32>, usize) {
    let good: Vec<f32> = rows.chunks(d).filter(|r| r.iter().all(|v| v.is_finite())).flatten().copied().collect();
    let diverged = rows.len() / d - good.len() / d;
    (good, diverged)
}

fn clip(rows: &[f32]) -> Vec<f32> {
    rows.iter().map(|v| v.clamp(-1.0, 1.0)).collect()
}

/// Feature statistics of `rows` (clipped) and their Laplacian energy and confident share.
pub fn reference(net: &Classifier, side: usize, rows: &[f32], device: &Device) -> Reference {
    let (rows, _) = finite(rows, side * side);
    let (feats, probs) = embed(net, side, &clip(&rows), device);
    let f = feats.len() / (rows.len() / (side * side)).max(1);
    let (mean, cov) = gaussian_fit(&feats, f);
    let lap = laplacian_energy(&rows, side);
    Reference {
        n: lap.len(),
        mean,
        cov,
        laplacian_energy: lap.iter().sum::<f64>() / lap.len().max(1) as f64,
        confident_share: confident(&probs),
    }
}

fn confident(probs: &[f32]) -> f64 {
    confident_count(probs) as f64 / (probs.len() / CLASSES).max(1) as f64
}

/// How many rows of class probabilities give one class at least `CONFIDENT`.
fn confident_count(probs: &[f32]) -> usize {
    probs.chunks(CLASSES).filter(|p| p.iter().cloned().fold(0f32, f32::max) >= CONFIDENT).count()
}

/// Scores `rows` (samples, rows of `side * side` on the models' scale) against `real`.
pub fn score(net: &Classifier, real: &Reference, side: usize, rows: &[f32], device: &Device) -> Result<ImageMetrics, String> {
    let d = side * side;
    if rows.is_empty() || rows.len() % d != 0 {
        return Err(format!("{} values do not make rows of {side} x {side} images", rows.len()));
    }
    let n = rows.len() / d;
    let (good, diverged) = finite(rows, d);
    if good.len() < 2 * d {
        return Err(format!("only {} of {n} samples are finite: too few to score", good.len() / d));
    }
    let (feats, probs) = embed(net, side, &clip(&good), device);
    let f = real.mean.len();
    let (mean, cov) = gaussian_fit(&feats, f);
    let real_root = psd_root(&real.cov, f);
    let frechet = frechet_with_root(&real.mean, &real.cov, &real_root, &mean, &cov, f);
    let lap = laplacian_energy(&good, side);
    let lap_mean = lap.iter().sum::<f64>() / lap.len() as f64;
    let mut class_counts = vec![0; CLASSES];
    probs.chunks(CLASSES).for_each(|p| class_counts[argmax(p)] += 1);
    let good_n = lap.len();
    let frechet_ci = jackknife(frechet, good_n, JACKKNIFE_GROUPS, |idx| {
        let rows: Vec<f32> = idx.iter().flat_map(|&i| feats[i * f..(i + 1) * f].iter().copied()).collect();
        let (m, c) = gaussian_fit(&rows, f);
        frechet_with_root(&real.mean, &real.cov, &real_root, &m, &c, f)
    });
    let lap_ci = bootstrap(good_n, RESAMPLES, 1, |idx| idx.iter().map(|&i| lap[i]).sum::<f64>() / idx.len() as f64);
    Ok(ImageMetrics {
        n,
        diverged,
        frechet,
        confident_share: confident(&probs),
        laplacian_energy: lap_mean,
        laplacian_ratio: lap_mean / real.laplacian_energy,
        class_counts,
        intervals: Some(ImageIntervals { frechet: frechet_ci, confident_share: wilson(confident_count(&probs), good_n), laplacian_ratio: lap_ci.scaled(1.0 / real.laplacian_energy) }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn eigen_decomposition_reconstructs_the_matrix() {
        let n = 6;
        let mut rng = Rng::new(3);
        let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let a: Vec<f64> = (0..n * n).map(|k| (0..n).map(|j| b[(k / n) * n + j] * b[(k % n) * n + j]).sum()).collect();
        let (w, v) = symmetric_eigen(&a, n);
        for i in 0..n {
            for j in 0..n {
                let r: f64 = (0..n).map(|k| v[i * n + k] * w[k] * v[j * n + k]).sum();
                assert!((r - a[i * n + j]).abs() < 1e-9, "({i},{j}): {r} vs {}", a[i * n + j]);
            }
        }
    }

    #[test]
    fn frechet_distance_has_its_closed_forms() {
        let n = 3;
        let eye: Vec<f64> = (0..9).map(|k| if k % 4 == 0 { 1.0 } else { 0.0 }).collect();
        let zero = vec![0.0; 3];
        assert!(frechet(&zero, &eye, &zero, &eye, n).abs() < 1e-9);
        // Means apart by (1, 2, 2): squared distance 9.
        assert!((frechet(&zero, &eye, &[1.0, 2.0, 2.0], &eye, n) - 9.0).abs() < 1e-9);
        // Isotropic covariances s1^2 I and s2^2 I: n (s1 - s2)^2.
        let four: Vec<f64> = eye.iter().map(|v| 4.0 * v).collect();
        assert!((frechet(&zero, &eye, &zero, &four, n) - 3.0).abs() < 1e-9);
        // Diagonal covariances: sum (sqrt a_i - sqrt b_i)^2.
        let a = [1.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.25];
        let b = [4.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.25];
        assert!((frechet(&zero, &a, &zero, &b, n) - (1.0 + 4.0)).abs() < 1e-9);
    }

    #[test]
    fn frame_metrics_leave_diverged_samples_out() {
        let side = 4;
        let mut rows = vec![0.0f32; 3 * side * side];
        rows[side + 1] = 1.0; // one bright interior pixel in the first image
        rows[2 * side * side] = f32::NAN;
        let m = frame_metrics(&rows, side).unwrap();
        assert_eq!((m.n, m.diverged), (3, 1));
        // The first image: 16 at the pixel, 1 at each of its two interior neighbours, over 4.
        assert!((m.laplacian_energy - (16.0 + 1.0 + 1.0) / 4.0 / 2.0).abs() < 1e-12, "{m:?}");
        assert!(frame_metrics(&rows[..5], side).is_err());
        assert!(frame_metrics(&[f32::NAN; 16], side).unwrap().laplacian_energy.is_nan());
    }

    #[test]
    fn laplacian_energy_is_zero_on_flat_and_ramp_images_and_large_on_noise() {
        let side = 8;
        let flat = vec![0.3f32; side * side];
        let ramp: Vec<f32> = (0..side * side).map(|k| (k % side) as f32 * 0.1 - 0.3).collect();
        let mut rng = Rng::new(1);
        let noise: Vec<f32> = (0..side * side).map(|_| rng.normal() as f32 * 0.5).collect();
        let e = laplacian_energy(&[flat, ramp, noise].concat(), side);
        assert!(e[0].abs() < 1e-12 && e[1].abs() < 1e-10, "{e:?}");
        assert!(e[2] > 1.0, "{e:?}");
    }
}
