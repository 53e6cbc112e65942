//! The oracle's WGSL kernel (`shaders/oracle.wgsl`, run on wgpu: Mesa lavapipe where there is no
//! GPU) against its tensor twin, `Oracle::analyze` on Flex: E_marg, f*(u) and grad E_marg agree
//! to 1e-4 relative at several D, for every parameterization, on points drawn at noise levels
//! across the whole range and on points far from the data; the posterior to 1e-4, or to one
//! float32 steps of the log-likelihoods it is made from where those are larger (D = 512). Skipped when no
//! adapter exists, unless GEONOISE_REQUIRE_WGPU is set (as in CI).

use burn::backend::wgpu::WgpuSetup;
use burn::tensor::Device;
use std::sync::OnceLock;
use geonoise::data::{host_tensor, Projection};
use geonoise::oracle::kernel::OracleKernel;
use geonoise::oracle::Oracle;
use geonoise::rng::Rng;
use geonoise::sample::read_f32;
use geonoise::target::Parameterization;

/// Largest |a - b| over the largest |b|: relative to the quantity's scale.
fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().map(|v| v.abs() as f64).fold(0.0, f64::max).max(1e-12);
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).fold(0.0, f64::max) / scale
}

/// Rows `a(t) x + b(t) eps` at noise levels spread over the range (data points x of the oracle),
/// then a few points far out.
fn queries(o: &Oracle, rng: &mut Rng, per_level: usize) -> Vec<f32> {
    let data = read_f32(o.data().clone());
    let d = o.dim;
    let n = data.len() / d;
    let (lo, hi) = o.range;
    let mut u = vec![];
    for s in 0..8 {
        let t = lo * (hi / lo).powf(s as f64 / 7.0);
        let (a, b) = (o.param.a(t) as f32, o.param.b(t) as f32);
        for _ in 0..per_level {
            let i = rng.below(n);
            let eps = rng.normals_f32(d);
            u.extend((0..d).map(|j| a * data[i * d + j] + b * eps[j]));
        }
    }
    u.extend(rng.normals_f32(3 * d).into_iter().map(|v| v * 5.0));
    u
}

/// The wgpu handles burn uses, initialised once for the whole test binary (a second
/// initialisation is refused); None where there is no adapter and none is required.
fn setup() -> Option<&'static WgpuSetup> {
    static SETUP: OnceLock<Option<WgpuSetup>> = OnceLock::new();
    SETUP
        .get_or_init(|| match Device::wgpu_options().init_with_setup() {
            Ok((_, s)) => Some(s),
            Err(e) => {
                if std::env::var_os("GEONOISE_REQUIRE_WGPU").is_some() {
                    panic!("GEONOISE_REQUIRE_WGPU is set but no wgpu adapter initialised: {e}");
                }
                eprintln!("skipping: no wgpu adapter ({e})");
                None
            }
        })
        .as_ref()
}

#[test]
fn wgsl_kernel_agrees_with_the_tensor_path() {
    let Some(setup) = setup() else { return };
    let flex = Device::flex();
    let mut rng = Rng::new(11);
    for (param, dim, points, grid) in [
        (Parameterization::Fm, 2, 64, 48),
        (Parameterization::Ddpm, 8, 128, 64),
        (Parameterization::Edm, 32, 96, 40),
        (Parameterization::Eqm, 128, 256, 128),
        (Parameterization::Fm, 512, 256, 128),
        (Parameterization::Ddpm, 512, 200, 100),
    ] {
        let proj = Projection::new(dim, 2).unwrap();
        let o = Oracle::for_circles(param, param.default_range(), &proj, points, grid, &flex).unwrap();
        let kernel = OracleKernel::new(&o, &setup.device, &setup.queue).unwrap();
        let u = queries(&o, &mut rng, 4);
        let m = u.len() / dim;
        let got = pollster::block_on(kernel.analyze(&u)).unwrap();
        let want = o.analyze(host_tensor(u.clone(), dim, &flex));
        // The posterior is exp of differences of log p(u|t_k) + log q_k, which reach thousands at
        // D = 512 (-D log b): one float32 step of those is 1e-4 and more, and each path rounds
        // its own way. Its bound is one such step where that exceeds 1e-4.
        let joint = read_f32(o.log_likelihood(host_tensor(u.clone(), dim, &flex)));
        let k = o.grid.len();
        // The size that matters is each row's peak (the levels that carry the posterior).
        let biggest = joint
            .chunks_exact(k)
            .map(|row| row.iter().zip(&o.log_q).map(|(v, q)| *v as f64 + q).fold(f64::NEG_INFINITY, f64::max).abs())
            .fold(0.0, f64::max);
        let post_tol = (f32::EPSILON as f64 * biggest).max(1e-4);
        let checks = [
            ("posterior", rel(&got.posterior, &read_f32(want.posterior))),
            ("energy", rel(&got.energy, &read_f32(want.energy))),
            ("gain", rel(&got.gain, &read_f32(want.gain))),
            ("field", rel(&got.field, &read_f32(want.field))),
            ("grad E_marg", rel(&got.grad_energy, &read_f32(want.grad_energy))),
        ];
        eprintln!("{param} D = {dim}, N = {points}, K = {grid}, {m} points: {checks:?}");
        eprintln!("  posterior bound {post_tol:.1e} (largest |log joint| at a row's peak: {biggest:.0})");
        for (name, err) in checks {
            let tol = if name == "posterior" { post_tol } else { 1e-4 };
            assert!(err < tol, "{param} D = {dim}: {name} differs by {err:.2e} (relative), over {tol:.1e}");
        }
        assert!(got.field.iter().chain(&got.grad_energy).all(|v| v.is_finite()));
    }
}

#[test]
fn sizes_beyond_the_workgroup_memory_are_refused() {
    let Some(setup) = setup() else { return };
    let flex = Device::flex();
    let proj = Projection::new(4, 0).unwrap();
    let o = Oracle::for_circles(Parameterization::Fm, Parameterization::Fm.default_range(), &proj, 600, 16, &flex).unwrap();
    let err = OracleKernel::new(&o, &setup.device, &setup.queue).err().expect("600 points is over the limit");
    assert!(err.contains("up to 512 data points"), "{err}");
}
