//! The toy data of Sec. 7.2: two concentric circles in 2-D, lifted to R^D by a seeded matrix
//! `P` (D x 2, orthonormal columns). Samples are read back in the plane with `P^T u`.
//!
//! Radii: the inner circle has radius `2/sqrt(5) ≈ 0.894`, the outer `4/sqrt(5) ≈ 1.789`
//! (ratio 1:2), each holding half the mass. With those radii every coordinate of the 2-D data has
//! unit variance (`(r_in^2 + r_out^2) / 4 = 1`), so the data is normalised like the unit-variance
//! noise it is mixed with. The gap between the circles is `r_out - r_in ≈ 0.894`.

use crate::rng::Rng;
use burn::tensor::{Device, Tensor, TensorData};

pub const R_INNER: f64 = 0.894_427_190_999_915_9; // 2 / sqrt(5)
pub const R_OUTER: f64 = 1.788_854_381_999_831_8; // 4 / sqrt(5)
pub const MIN_DIM: usize = 2;
pub const MAX_DIM: usize = 2048;

/// Checks an ambient dimension against the supported range.
pub fn check_dim(dim: usize) -> Result<(), String> {
    if (MIN_DIM..=MAX_DIM).contains(&dim) {
        Ok(())
    } else {
        Err(format!("dimension D = {dim} is out of range: D must be between {MIN_DIM} and {MAX_DIM}"))
    }
}

/// A point of the 2-D data: a random circle (equal odds) and a uniform angle.
pub fn sample_circles_2d(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let r = if rng.uniform() < 0.5 { R_INNER } else { R_OUTER };
        let th = 2.0 * std::f64::consts::PI * rng.uniform();
        out.push((r * th.cos()) as f32);
        out.push((r * th.sin()) as f32);
    }
    out
}

/// The discrete data set used by the closed form: `n` points, half on each circle, evenly spaced
/// in angle (the inner and outer circles are offset by half a step so no two points align).
pub fn discrete_circles_2d(n: usize) -> Vec<f32> {
    let n_in = n / 2;
    let n_out = n - n_in;
    let mut out = Vec::with_capacity(2 * n);
    for (count, r, offset) in [(n_in, R_INNER, 0.5), (n_out, R_OUTER, 0.0)] {
        for i in 0..count {
            let th = 2.0 * std::f64::consts::PI * (i as f64 + offset) / count as f64;
            out.push((r * th.cos()) as f32);
            out.push((r * th.sin()) as f32);
        }
    }
    out
}

/// The lift `R^2 -> R^D`: a D x 2 matrix with orthonormal columns, from the QR decomposition
/// (Gram–Schmidt) of a Gaussian matrix drawn from `seed`. At D = 2 it is a rotation/reflection.
#[derive(Clone, Debug)]
pub struct Projection {
    pub dim: usize,
    pub seed: u64,
    /// Row-major D x 2.
    pub matrix: Vec<f32>,
}

impl Projection {
    pub fn new(dim: usize, seed: u64) -> Result<Self, String> {
        check_dim(dim)?;
        let mut rng = Rng::derive(seed, "projection");
        let g: Vec<f64> = (0..2 * dim).map(|_| rng.normal()).collect();
        let col = |j: usize| (0..dim).map(|i| g[2 * i + j]).collect::<Vec<f64>>();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let mut q0 = col(0);
        let n0 = dot(&q0, &q0).sqrt();
        q0.iter_mut().for_each(|v| *v /= n0);
        let mut q1 = col(1);
        let r01 = dot(&q0, &q1);
        q1.iter_mut().zip(&q0).for_each(|(v, q)| *v -= r01 * q);
        let n1 = dot(&q1, &q1).sqrt();
        q1.iter_mut().for_each(|v| *v /= n1);
        let mut matrix = Vec::with_capacity(2 * dim);
        for i in 0..dim {
            matrix.push(q0[i] as f32);
            matrix.push(q1[i] as f32);
        }
        Ok(Projection { dim, seed, matrix })
    }

    /// `P` as a D x 2 tensor.
    pub fn tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(self.matrix.clone(), [self.dim, 2]), device)
    }

    /// `x2 P^T`: rows of 2-D points to rows in R^D.
    pub fn lift(&self, x2: Tensor<2>) -> Tensor<2> {
        let p = self.tensor(&x2.device());
        x2.matmul(p.transpose())
    }

    /// `u P`: rows in R^D to their coordinates in the data plane.
    pub fn project(&self, u: Tensor<2>) -> Tensor<2> {
        let p = self.tensor(&u.device());
        u.matmul(p)
    }

    /// `u P` of host rows (n x D, row-major), computed on Flex: n x 2 values.
    pub fn project_host(&self, u: &[f32]) -> Vec<f32> {
        let xy = self.project(host_tensor(u.to_vec(), self.dim, &Device::flex()));
        xy.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 tensor data")
    }
}

/// Rows of host floats as a tensor.
pub fn host_tensor(values: Vec<f32>, cols: usize, device: &Device) -> Tensor<2> {
    let rows = values.len() / cols.max(1);
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::read_f32 as read;

    #[test]
    fn projection_has_orthonormal_columns_at_every_supported_dim() {
        let device = Device::flex();
        for dim in [2, 3, 8, 128, 1024] {
            let p = Projection::new(dim, 42).unwrap();
            let pt = p.tensor(&device);
            let gram = read(pt.clone().transpose().matmul(pt));
            for (k, want) in [1.0, 0.0, 0.0, 1.0].iter().enumerate() {
                assert!((gram[k] - want).abs() < 1e-5, "D={dim}: gram {gram:?}");
            }
        }
        assert!(Projection::new(1, 0).is_err());
        assert!(Projection::new(2049, 0).is_err());
    }

    #[test]
    fn lift_then_project_is_identity_and_seeds_differ() {
        let device = Device::flex();
        let x = discrete_circles_2d(16);
        let p = Projection::new(64, 3).unwrap();
        let back = read(p.project(p.lift(host_tensor(x.clone(), 2, &device))));
        for (a, b) in x.iter().zip(&back) {
            assert!((a - b).abs() < 1e-5);
        }
        assert_ne!(Projection::new(64, 4).unwrap().matrix, p.matrix);
        assert_eq!(Projection::new(64, 3).unwrap().matrix, p.matrix);
    }

    #[test]
    fn data_is_normalised_and_on_the_circles() {
        let mut rng = Rng::new(5);
        let x = sample_circles_2d(&mut rng, 50_000);
        let var: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64;
        assert!((var - 1.0).abs() < 0.02, "per-coordinate second moment {var}");
        for pt in x.chunks(2).chain(discrete_circles_2d(10).chunks(2)) {
            let r = ((pt[0] as f64).powi(2) + (pt[1] as f64).powi(2)).sqrt();
            assert!((r - R_INNER).abs() < 1e-5 || (r - R_OUTER).abs() < 1e-5);
        }
    }
}
