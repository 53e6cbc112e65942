//! The geometry of Appendix C: how the noise level shows in a point of R^D. Draws from the forward
//! marginal, the shells of `||u|| / sqrt(D)` that part as D grows with the posterior's spread of
//! t at each level (the page's concentration view), and the noise level read off a point's
//! distance from the data plane.

use super::Oracle;
use crate::data::{host_tensor, Projection};
use crate::rng::Rng;
use crate::sample::read_f32;
use crate::target::Parameterization;
use burn::tensor::Tensor;

/// What [`Oracle::concentration`] measures: `norms` holds `n` values per level, in order.
#[derive(Clone, Debug)]
pub struct Concentration {
    pub levels: Vec<f64>,
    pub norms: Vec<f32>,
    pub t_mean: Vec<f64>,
    pub t_std: Vec<f64>,
}

impl Oracle {
    /// `m` draws from the forward marginal at level `t`: `u = a(t) x_i + b(t) eps`, with `x_i` a
    /// data point drawn uniformly and `eps ~ N(0, I_D)` (rows of D).
    pub fn marginal_draws(&self, t: f64, m: usize, rng: &mut Rng) -> Vec<f32> {
        let d = self.dim;
        let data = read_f32(self.data.clone());
        let (a, b) = (self.param.a(t) as f32, self.param.b(t) as f32);
        let mut u = Vec::with_capacity(m * d);
        for _ in 0..m {
            let i = rng.below(self.n);
            let eps = rng.normals_f32(d);
            u.extend((0..d).map(|j| a * data[i * d + j] + b * eps[j]));
        }
        u
    }

    /// The geometry of App. C, level by level: at each `t` of `levels`, the norms `||u|| / sqrt(D)`
    /// of `n` draws from the marginal (the shells that overlap at D = 2 and part as D grows), and
    /// the mean and spread of the posterior `p(t|u)` averaged over the first `probes` of them:
    /// how well the noise level can be read off a point of that level.
    pub fn concentration(&self, levels: &[f64], n: usize, probes: usize, seed: u64) -> Result<Concentration, String> {
        let (lo, hi) = self.range;
        let d = self.dim;
        let mut rng = Rng::derive(seed, "concentration");
        let mut out = Concentration { levels: levels.to_vec(), norms: Vec::with_capacity(levels.len() * n), t_mean: vec![], t_std: vec![] };
        for &t in levels {
            if !(t >= lo && t <= hi) {
                return Err(format!("t = {t} is outside the oracle's range [{lo}, {hi}]"));
            }
            let u = self.marginal_draws(t, n.max(probes).max(1), &mut rng);
            out.norms.extend(u.chunks(d).take(n).map(|r| (r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / d as f64).sqrt() as f32));
            let k = probes.clamp(1, u.len() / d);
            let an = self.analyze(host_tensor(u[..k * d].to_vec(), d, &self.device));
            let mean = |v: Vec<f32>| v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
            out.t_mean.push(mean(read_f32(an.t_mean)));
            out.t_std.push(mean(read_f32(an.t_std)));
        }
        Ok(out)
    }
}

/// The noise level read off the geometry (Appendix C): with the data in the span of `P`
/// (d = 2), `bhat^2 = ||u - P P^T u||^2 / (D - d)`. Returns `bhat` per row, [M, 1].
/// Undefined at D = 2 (no orthogonal complement): returns NaN there.
pub fn geometric_noise_scale(u: Tensor<2>, proj: &Projection) -> Tensor<2> {
    let d = proj.dim;
    let p = proj.tensor(&u.device());
    let perp = u.clone() - u.matmul(p.clone()).matmul(p.transpose());
    let denom = d as f64 - 2.0;
    if denom <= 0.0 {
        return perp.sum_dim(1).mul_scalar(f64::NAN);
    }
    perp.square().sum_dim(1).div_scalar(denom).sqrt()
}

/// Inverts `b(t) = bhat` on `range` by bisection (b is increasing on every schedule here).
pub fn t_from_noise_scale(param: Parameterization, range: (f64, f64), bhat: f64) -> f64 {
    let (mut lo, mut hi) = range;
    if !bhat.is_finite() {
        return f64::NAN;
    }
    if bhat <= param.b(lo) {
        return lo;
    }
    if bhat >= param.b(hi) {
        return hi;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if param.b(mid) < bhat {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::reference::*;
    use crate::sample::read_f32;

    /// App. C: the norms of noisy points concentrate around `sqrt(a^2 E|x|^2 / D + b^2)`, so at
    /// D = 512 the shells of different levels part (and the posterior over t narrows) while at
    /// D = 2 they overlap.
    #[test]
    fn the_shells_part_as_dimension_grows() {
        let p = Parameterization::Fm;
        let levels = [0.1, 0.3, 0.6];
        let mut overlap = vec![];
        let mut spread = vec![];
        for dim in [2, 512] {
            let proj = Projection::new(dim, 0).unwrap();
            let o = Oracle::for_circles(p, p.default_range(), &proj, 64, 48, &dev()).unwrap();
            let c = o.concentration(&levels, 400, 8, 1).unwrap();
            assert_eq!((c.norms.len(), c.t_std.len()), (1200, 3));
            let shell = |k: usize| &c.norms[k * 400..(k + 1) * 400];
            for (k, &t) in levels.iter().enumerate() {
                // E|x|^2 = 2 for the circles (P keeps norms).
                let want = ((p.a(t).powi(2) * 2.0 / dim as f64) + p.b(t).powi(2)).sqrt();
                let mean = shell(k).iter().map(|v| *v as f64).sum::<f64>() / 400.0;
                assert!((mean - want).abs() < 0.15 * want, "D = {dim}, t = {t}: mean norm {mean} vs {want}");
            }
            // The share of the 0.3-shell's norms that fall inside the 0.6-shell's range.
            let (lo, hi) = shell(2).iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
            overlap.push(shell(1).iter().filter(|v| **v >= lo && **v <= hi).count() as f64 / 400.0);
            spread.push(c.t_std[1]);
        }
        assert!(overlap[0] > 0.3 && overlap[1] == 0.0, "shell overlap D = 2: {}, D = 512: {}", overlap[0], overlap[1]);
        assert!(spread[1] < 0.2 * spread[0], "posterior spread D = 2: {}, D = 512: {}", spread[0], spread[1]);
    }

    #[test]
    fn posterior_concentrates_as_dimension_grows() {
        // App. C: the posterior over t sharpens like 1/(D - d); the geometric estimate tracks t.
        let param = Parameterization::Fm;
        let t_true = 0.3;
        let mut stds = vec![];
        for dim in [8, 64, 512] {
            let proj = Projection::new(dim, 5).unwrap();
            let o = Oracle::for_circles(param, param.default_range(), &proj, 64, 128, &dev()).unwrap();
            let (u, _, _) = noisy_points(&o, &[t_true; 16], 7);
            let an = o.analyze(rows(u.clone(), dim));
            let mean = read_f32(an.t_mean);
            let std = read_f32(an.t_std);
            let avg_std = std.iter().map(|v| *v as f64).sum::<f64>() / 16.0;
            let avg_err = mean.iter().map(|v| (*v as f64 - t_true).abs()).sum::<f64>() / 16.0;
            stds.push(avg_std);
            if dim == 512 {
                assert!(avg_err < 0.02, "posterior mean off by {avg_err} at D=512");
                let bhat = read_f32(geometric_noise_scale(rows(u, dim), &proj));
                for b in bhat {
                    let t_hat = t_from_noise_scale(param, o.range, b as f64);
                    assert!((t_hat - t_true).abs() < 0.03, "geometric t {t_hat}");
                }
            }
        }
        assert!(stds[1] < 0.5 * stds[0] && stds[2] < 0.5 * stds[1], "posterior std by D: {stds:?}");
    }
}
