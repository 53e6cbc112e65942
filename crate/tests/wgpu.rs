//! The native wgpu path (Mesa lavapipe where there is no GPU) agrees with Flex for a training
//! step and a sampling step, of the toy's MLP and of the image U-Net, and a run resumed from its
//! state file on wgpu ends where the unbroken run does. Skipped when no adapter exists, unless GEONOISE_REQUIRE_WGPU is set
//! (CI installs lavapipe and sets it, so there the test cannot silently skip).

use burn::tensor::Device;
use geonoise::image::idx::Images;
use geonoise::image::train::{ImageTrainConfig, ImageTrainer};
use geonoise::image::unet::UNetConfig;
use geonoise::model::ModelConfig;
use geonoise::params::weights;
use geonoise::sample::{read_f32, SampleConfig, Sampler, Solver};
use geonoise::target::Parameterization;
use geonoise::train::{TrainConfig, Trainer};
use std::rc::Rc;

/// The wgpu device, or None (the test skips) where there is no adapter and none is required.
/// Initialised once for the tests of this file (a second init is refused).
fn wgpu() -> Option<Device> {
    static DEVICE: std::sync::OnceLock<Result<Device, String>> = std::sync::OnceLock::new();
    match DEVICE.get_or_init(|| Device::wgpu_options().init().map_err(|e| e.to_string())) {
        Ok(d) => Some(d.clone()),
        Err(e) => {
            if std::env::var_os("GEONOISE_REQUIRE_WGPU").is_some() {
                panic!("GEONOISE_REQUIRE_WGPU is set but no wgpu adapter initialised: {e}");
            }
            eprintln!("skipping: no wgpu adapter ({e})");
            None
        }
    }
}

/// The fused optimizer step (one kernel per parameter on wgpu) against burn's Adam and AdamW on
/// Flex: the same gradients for 100 steps give the same weights and moments, with and without
/// clipping, for a parameter one cube steps and for one over `ONE_CUBE` values (two kernels).
#[test]
fn the_fused_adam_step_gives_burns_weights() {
    use burn::module::Param;
    use burn::nn::Linear;
    use burn::optim::GradientsParams;
    use burn::tensor::{Tensor, TensorData};
    use geonoise::optimizer::NamedOptimizer;
    use geonoise::rng::Rng;
    let Some(wgpu) = wgpu() else { return };
    assert!(geonoise::fused::runs_on(&wgpu) && !geonoise::fused::runs_on(&Device::flex()));
    let big = 300; // 90,000 weights > ONE_CUBE
    assert!(big * big > geonoise::fused::adam::ONE_CUBE);
    for (weight_decay, clip, width) in [(None, 0.5, 24), (Some(0.01f32), 0.0, 24), (Some(0.01), 2.0, big), (None, 0.0, big)] {
        let run = |dev: &Device| {
            let dev = dev.clone().autodiff();
            let mut rng = Rng::new(7);
            let t2 = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [width, width]), &dev);
            let t1 = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [width]), &dev);
            let mut net = Linear { weight: Param::from_tensor(t2(rng.normals_f32(width * width))), bias: Some(Param::from_tensor(t1(rng.normals_f32(width)))) };
            let mut opt = NamedOptimizer::adam(1e-8, weight_decay, clip);
            for k in 0..100 {
                // d/dW sum(W * G) = G exactly: both devices step on the same gradients. Their
                // scale changes, so the clip bites on some steps and not on others.
                let scale = [0.05f32, 1.0, 20.0][k % 3];
                let g: Vec<f32> = rng.normals_f32(width * width).into_iter().map(|x| x * scale).collect();
                let gb: Vec<f32> = rng.normals_f32(width).into_iter().map(|x| x * scale).collect();
                let loss = (net.weight.val() * t2(g)).sum() + (net.bias.as_ref().unwrap().val() * t1(gb)).sum();
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = opt.step(1e-2 * (1.0 + (k % 2) as f64), net, grads);
            }
            (weights(&net), opt.state())
        };
        let (wa, sa) = run(&Device::flex());
        let (wb, sb) = run(&wgpu);
        let what = format!("weight decay {weight_decay:?}, clip {clip}, width {width}");
        let diff = |a: &burn::tensor::TensorData, b: &burn::tensor::TensorData| {
            let (a, b) = (a.try_to_vec::<f32>().unwrap(), b.try_to_vec::<f32>().unwrap());
            a.iter().zip(&b).map(|(x, y)| (x - y).abs() / x.abs().max(1e-3)).fold(0f32, f32::max)
        };
        let mut worst = 0f32;
        for (name, a) in &wa {
            let d = diff(a, &wb[name]);
            assert!(d < 1e-4, "{what}: {name} differs by {d} (relative)");
            worst = worst.max(d);
        }
        eprintln!("{what}: the weights after 100 steps differ by at most {worst:e} (relative)");
        assert_eq!(sa.scalars, sb.scalars, "{what}: step counts");
        assert_eq!(sa.tensors.keys().collect::<Vec<_>>(), sb.tensors.keys().collect::<Vec<_>>());
        for (name, a) in &sa.tensors {
            let d = diff(a, &sb.tensors[name]);
            assert!(d < 1e-4, "{what}: {name} differs by {d} (relative)");
        }
        // The weights moved (the comparison is not of two unchanged nets).
        let start = Rng::new(7).normals_f32(4);
        assert!((wa["weight"].try_to_vec::<f32>().unwrap()[0] - start[0]).abs() > 1e-3, "{what}: the weights did not move");
    }
}

/// The fused forward kernel (`Model::eval` on wgpu: the whole MLP in one dispatch) against burn's
/// forward pass on Flex, over the shapes it takes: widths to its limit (and one past it, which
/// falls back to burn's path), no blocks and several, D below, at and above its 256 threads, one
/// row and a ragged last tile, blind and conditional nets.
#[test]
fn the_fused_forward_pass_gives_burns_values() {
    use burn::tensor::{Tensor, TensorData};
    use geonoise::model::{time_embedding, Model};
    use geonoise::rng::Rng;
    let Some(wgpu) = wgpu() else { return };
    let flex = Device::flex();
    let (mut worst, mut worst_burn) = (0f32, 0f32);
    for (k, (dim, width, depth, blind)) in [(8, 32, 2, false), (2, 128, 3, true), (300, 64, 1, false), (256, 256, 2, false), (16, 48, 0, true), (8, 300, 1, false)].into_iter().enumerate() {
        let mc = ModelConfig { width, depth, ..ModelConfig::new(Parameterization::Ddpm, blind, dim) };
        let fused = geonoise::fused::mlp::Packed::of(&Model::new(mc.clone(), 1, &wgpu).unwrap().net).is_some();
        assert_eq!(fused, width <= geonoise::fused::mlp::MAX_WIDTH, "width {width}");
        for m in [1, 37, 300] {
            let mut rng = Rng::new(k as u64 * 100 + m as u64);
            let u = rng.normals_f32(m * dim);
            let t = 0.3;
            // The zero-initialised output heads would hide most of the net: non-zero weights.
            let weights: std::collections::BTreeMap<_, _> = weights(&Model::new(mc.clone(), 1, &flex).unwrap().net)
                .into_iter()
                .map(|(name, d)| {
                    let n = d.num_elements();
                    (name, TensorData::new(rng.normals_f32(n).into_iter().map(|x| x * 0.2).collect::<Vec<f32>>(), d.shape().to_vec()))
                })
                .collect();
            let on = |dev: &Device| {
                let net = geonoise::params::with_weights(Model::new(mc.clone(), 1, dev).unwrap().net, &weights, "test").unwrap();
                let model = Model::from_net(mc.resolved(), net);
                let x = Tensor::<2>::from_data(TensorData::new(u.clone(), [m, dim]), dev);
                let reference = model.net.forward(x.clone(), time_embedding(&model.config, &vec![t; m], dev));
                (read_f32(model.eval(x, t)), read_f32(reference))
            };
            let (fused_out, burn_wgpu) = on(&wgpu);
            let (_, burn_flex) = on(&flex);
            // Differences relative to the output's scale (the random weights make it large).
            let scale = burn_flex.iter().fold(1f32, |a, y| a.max(y.abs()));
            let diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) / scale;
            let between_backends = diff(&burn_wgpu, &burn_flex);
            for (what, other) in [("burn on wgpu", &burn_wgpu), ("burn on Flex", &burn_flex)] {
                let d = diff(&fused_out, other);
                assert!(d < 1e-5, "D {dim}, width {width}, depth {depth}, blind {blind}, {m} rows: the fused pass and {what} differ by {d} of the output's scale {scale}");
                worst = worst.max(d);
                worst_burn = worst_burn.max(between_backends);
            }
        }
    }
    eprintln!("the fused forward pass and burn's differ by at most {worst:e} of the output's scale (burn on wgpu and on Flex: {worst_burn:e})");
}

/// How far `got` is from `reference`: the largest difference, over the reference's largest value
/// (at least 1). A length that differs counts as infinitely far.
fn off_by(got: &[f32], reference: &[f32]) -> f32 {
    if got.len() != reference.len() {
        return f32::INFINITY;
    }
    let scale = reference.iter().fold(1f32, |a, y| a.max(y.abs()));
    got.iter().zip(reference).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) / scale
}

/// The samplers' projection kernel (`u P`, each frame's positions in the plane) against burn's
/// matmul on Flex: no rows, one, a few over a cube's 256, 2,000 (a page's frame), D from 2 to 300,
/// and a transposed (strided) input.
#[test]
fn the_projection_kernel_gives_burns_matmul() {
    use burn::tensor::{Tensor, TensorData};
    use geonoise::rng::Rng;
    let Some(wgpu) = wgpu() else { return };
    let flex = Device::flex();
    let mut worst = 0f32;
    for (k, (n, dim)) in [(0, 8), (1, 2), (257, 128), (2000, 128), (300, 300), (33, 7)].into_iter().enumerate() {
        let mut rng = Rng::new(40 + k as u64);
        let (u, p) = (rng.normals_f32(n * dim), rng.normals_f32(dim * 2));
        let on = |dev: &Device, transposed: bool| {
            let p = Tensor::<2>::from_data(TensorData::new(p.clone(), [dim, 2]), dev);
            let u = match transposed {
                false => Tensor::<2>::from_data(TensorData::new(u.clone(), [n, dim]), dev),
                // The same matrix stored column by column, read through its strides.
                true => {
                    let t: Vec<f32> = (0..dim).flat_map(|j| (0..n).map(move |r| (r, j))).map(|(r, j)| u[r * dim + j]).collect();
                    Tensor::<2>::from_data(TensorData::new(t, [dim, n]), dev).transpose()
                }
            };
            read_f32(geonoise::fused::project::xy(u, p))
        };
        let reference = on(&flex, false);
        assert_eq!(reference.len(), 2 * n);
        for transposed in [false, true] {
            let d = off_by(&on(&wgpu, transposed), &reference);
            assert!(d < 1e-5, "{n} rows at D {dim} (transposed: {transposed}): the kernel and burn's matmul differ by {d} of the output's scale");
            worst = worst.max(d);
        }
    }
    eprintln!("the projection kernel and burn's matmul differ by at most {worst:e} of the output's scale");
}

/// The small linear kernel (the U-Net's time path on wgpu) against burn's `Linear` on Flex with the
/// same weights: one row, a batch of images' rows, more outputs than a cube's threads, odd sizes.
#[test]
fn the_small_linear_kernel_gives_burns_linear() {
    use burn::nn::LinearConfig;
    use burn::tensor::{Tensor, TensorData};
    use geonoise::rng::Rng;
    let Some(wgpu) = wgpu() else { return };
    let flex = Device::flex();
    let mut worst = 0f32;
    for (k, (m, d_in, d_out)) in [(1, 32, 64), (16, 128, 256), (300, 7, 5), (3, 1, 300)].into_iter().enumerate() {
        let mut rng = Rng::new(60 + k as u64);
        let (x, w, b) = (rng.normals_f32(m * d_in), rng.normals_f32(d_in * d_out), rng.normals_f32(d_out));
        let on = |dev: &Device| {
            let mut layer = LinearConfig::new(d_in, d_out).init(dev);
            layer.weight = burn::module::Param::from_tensor(Tensor::<2>::from_data(TensorData::new(w.clone(), [d_in, d_out]), dev));
            layer.bias = Some(burn::module::Param::from_tensor(Tensor::<1>::from_data(TensorData::new(b.clone(), [d_out]), dev)));
            read_f32(geonoise::fused::linear::forward(&layer, Tensor::<2>::from_data(TensorData::new(x.clone(), [m, d_in]), dev)))
        };
        let reference = on(&flex);
        assert_eq!(reference.len(), m * d_out);
        let d = off_by(&on(&wgpu), &reference);
        assert!(d < 1e-5, "{m} rows, {d_in} -> {d_out}: the kernel and burn's Linear differ by {d} of the output's scale");
        worst = worst.max(d);
    }
    eprintln!("the small linear kernel and burn's Linear differ by at most {worst:e} of the output's scale");
}

/// The fused `SiLU(GroupNorm(x + t))` (the U-Net's samplers on wgpu) against burn's `GroupNorm`
/// and SiLU on Flex: with and without the time term, groups of a few values and of more than the
/// cube's 256 threads, and an input read through strides (a permuted tensor, as a convolution's
/// output can be).
#[test]
fn the_fused_group_norm_gives_burns_values() {
    use burn::nn::GroupNormConfig;
    use burn::tensor::{activation, Tensor, TensorData};
    use geonoise::rng::Rng;
    let Some(wgpu) = wgpu() else { return };
    let flex = Device::flex();
    let mut worst = 0f32;
    for (k, (n, c, side, groups, with_t, permuted)) in [(3, 16, 7, 8, true, false), (1, 6, 14, 6, false, false), (2, 32, 14, 8, true, true), (1, 64, 4, 8, false, true)].into_iter().enumerate() {
        let mut rng = Rng::new(40 + k as u64);
        let x = rng.normals_f32(n * c * side * side).into_iter().map(|v| v * 3.0 + 1.0).collect::<Vec<f32>>();
        let t = rng.normals_f32(n * c);
        let gamma = rng.normals_f32(c);
        let beta = rng.normals_f32(c);
        let input = |dev: &Device| {
            let x = Tensor::<4>::from_data(TensorData::new(x.clone(), [n, c, side, side]), dev);
            // The same values in a strided layout: stored as NHWC, viewed as NCHW.
            if permuted {
                Tensor::<4>::from_data(x.permute([0, 2, 3, 1]).into_data(), dev).permute([0, 3, 1, 2])
            } else {
                x
            }
        };
        let t_of = |dev: &Device| with_t.then(|| Tensor::<2>::from_data(TensorData::new(t.clone(), [n, c]), dev));
        let mut norm = GroupNormConfig::new(groups, c).init(&flex);
        norm.gamma = Some(burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(gamma.clone(), [c]), &flex)));
        norm.beta = Some(burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(beta.clone(), [c]), &flex)));
        let reference = {
            let x = match t_of(&flex) {
                Some(t) => input(&flex) + t.reshape([n, c, 1, 1]),
                None => input(&flex),
            };
            activation::silu(norm.forward(x)).into_data().try_to_vec::<f32>().unwrap()
        };
        let g = Tensor::<1>::from_data(TensorData::new(gamma.clone(), [c]), &wgpu);
        let b = Tensor::<1>::from_data(TensorData::new(beta.clone(), [c]), &wgpu);
        let fused = geonoise::fused::norm::group_norm_silu(input(&wgpu), t_of(&wgpu), g, b, groups, norm.epsilon).into_data().try_to_vec::<f32>().unwrap();
        let d = fused.iter().zip(&reference).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0f32, f32::max);
        assert!(d < 1e-5, "N {n}, C {c}, {side}x{side}, {groups} groups, t {with_t}, strided {permuted}: the fused norm differs by {d}");
        worst = worst.max(d);
    }
    eprintln!("the fused group norm and burn's differ by at most {worst:e}");
}

/// 1,000 training steps of the toy from one seed, on wgpu (the fused training step: forward,
/// backward and clipped Adam in three kernels) and on Flex (burn's autodiff and Adam): the same
/// batches give the same losses, within float tolerance, to the end.
#[test]
fn a_thousand_steps_on_wgpu_end_at_the_loss_of_flex() {
    use geonoise::train::OptimizerKind;
    let Some(wgpu) = wgpu() else { return };
    // The toy's recipe; then AdamW without clipping, a conditional DDPM net with no blocks, D over
    // the kernels' 256 threads and a batch that leaves the last tile of rows short; batch 1; and a
    // width over the kernels' limit, which trains on burn's path (with the fused Adam step).
    let fm = ModelConfig { width: 32, depth: 2, ..ModelConfig::new(Parameterization::Fm, true, 8) };
    let ddpm = ModelConfig { width: 16, depth: 0, ..ModelConfig::new(Parameterization::Ddpm, false, 300) };
    let wide = ModelConfig { width: 260, depth: 1, ..ModelConfig::new(Parameterization::Fm, false, 4) };
    for cfg in [
        TrainConfig { steps: 1000, batch: 64, seed: 3, ..TrainConfig::new(fm.clone()) },
        TrainConfig { steps: 200, batch: 26, seed: 4, optimizer: OptimizerKind::Adamw, weight_decay: 0.01, grad_clip: 0.0, ..TrainConfig::new(ddpm) },
        TrainConfig { steps: 100, batch: 1, seed: 5, ..TrainConfig::new(fm) },
        TrainConfig { steps: 100, batch: 16, seed: 6, ..TrainConfig::new(wide) },
    ] {
        let losses = |dev: &Device| {
            let mut tr = Trainer::new(cfg.clone(), dev).unwrap();
            assert_eq!(tr.is_fused(), geonoise::fused::runs_on(dev) && cfg.model.width <= geonoise::fused::mlp::MAX_WIDTH);
            let mut v = vec![];
            while !tr.finished() {
                tr.step();
                if tr.steps_done() % 100 == 0 {
                    v.push(tr.loss().unwrap());
                }
            }
            v
        };
        let (a, b) = (losses(&Device::flex()), losses(&wgpu));
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs() / x.abs()).fold(0f32, f32::max);
        eprintln!("{}: losses every 100 steps, Flex {a:?}\n  wgpu {b:?}\n  differ by at most {worst:e} (relative)", cfg.model.label());
        assert!(worst < 1e-5, "{}: after {} steps the losses differ by {worst} (relative): Flex {a:?}, wgpu {b:?}", cfg.model.label(), cfg.steps);
    }

    // A NaN on the fused path: the loss reads NaN, and the weights of the last finite loss read
    // come back (as on burn's path, the run stops there: its moments hold the NaN too).
    let mc = ModelConfig { width: 32, depth: 1, ..ModelConfig::new(Parameterization::Fm, true, 8) };
    let mut tr = Trainer::new(TrainConfig { steps: 20, batch: 32, ..TrainConfig::new(mc) }, &wgpu).unwrap();
    assert!(tr.is_fused());
    (0..5).for_each(|_| tr.step());
    assert!(tr.loss().unwrap().is_finite());
    let good = weights(&tr.model().net);
    tr.inject_nan();
    tr.step();
    assert!(tr.loss().unwrap().is_nan());
    assert!(weights(&tr.model().net)["output.weight"].iter::<f32>().any(f32::is_nan), "the NaN reached the weights");
    assert_eq!(tr.restore_last_good(), Some(5));
    assert_eq!(weights(&tr.model().net), good);
}

/// Whether two safetensors files hold the same header (as JSON: its maps' order is free) and the
/// same bytes after it.
fn same_file(a: &[u8], b: &[u8]) -> bool {
    let split = |f: &[u8]| {
        let n = u64::from_le_bytes(f[..8].try_into().unwrap()) as usize;
        (serde_json::from_slice::<serde_json::Value>(&f[8..8 + n]).unwrap(), f[8 + n..].to_vec())
    };
    split(a) == split(b)
}

/// The fused step recorded once and replayed (`fused::replay`) gives the launch path's run to the
/// bit: the same losses, weights and state file, through a loss read, a snapshot of the model
/// and a state file taken mid-run (a replay updates the buffers in place, so what was handed out
/// must be copies that later steps leave alone), and a batch of one row, and a NaN after which
/// the last good weights come back; for Adam with clipping and AdamW without.
#[test]
fn a_replayed_training_step_is_the_launched_one() {
    use geonoise::train::OptimizerKind;
    let Some(wgpu) = wgpu() else { return };
    let fm = ModelConfig { width: 32, depth: 2, ..ModelConfig::new(Parameterization::Fm, true, 8) };
    let ddpm = ModelConfig { width: 16, depth: 1, ..ModelConfig::new(Parameterization::Ddpm, false, 20) };
    for cfg in [
        TrainConfig { steps: 100, batch: 64, seed: 7, ..TrainConfig::new(fm.clone()) },
        TrainConfig { steps: 100, batch: 26, seed: 8, optimizer: OptimizerKind::Adamw, weight_decay: 0.01, grad_clip: 0.0, ..TrainConfig::new(ddpm) },
        TrainConfig { steps: 100, batch: 1, seed: 9, ..TrainConfig::new(fm.clone()) },
    ] {
        let run = |replay: bool| {
            let mut tr = Trainer::new(cfg.clone(), &wgpu).unwrap();
            tr.set_replay(replay);
            let mut losses = vec![];
            (0..10).for_each(|_| tr.step());
            assert_eq!(tr.is_replaying(), replay, "{}: replaying after 10 steps", cfg.model.label());
            losses.push(tr.loss().unwrap());
            let snapshot = tr.model();
            let at_10 = weights(&snapshot.net);
            let state = tr.pending_state(serde_json::json!({})).unwrap();
            (0..20).for_each(|_| tr.step());
            assert_eq!(weights(&snapshot.net), at_10, "{}: a model taken at step 10 changed with later steps", cfg.model.label());
            let state = state.encode().unwrap();
            assert_ne!(weights(&tr.model().net), at_10);
            losses.push(tr.loss().unwrap());
            while tr.steps_done() < cfg.steps - 5 {
                tr.step();
                if tr.steps_done() % 20 == 0 {
                    losses.push(tr.loss().unwrap());
                }
            }
            assert_eq!(tr.is_replaying(), replay);
            losses.push(tr.loss().unwrap());
            let (last_read, at_read) = (tr.steps_done(), weights(&tr.model().net));
            let end = (weights(&tr.model().net), tr.save_state(serde_json::json!({})).unwrap());
            // A NaN, and back to the weights of the last finite read (the moments hold the NaN,
            // so the run stops there, as on burn's path).
            tr.step();
            tr.inject_nan();
            tr.step();
            assert!(tr.loss().unwrap().is_nan());
            assert_eq!(tr.restore_last_good(), Some(last_read));
            assert!(!tr.is_replaying());
            assert!(weights(&tr.model().net) == at_read, "{}: the last good weights did not come back", cfg.model.label());
            (losses, end.0, state, end.1)
        };
        let (launched, replayed) = (run(false), run(true));
        assert_eq!(replayed.0, launched.0, "{}: losses", cfg.model.label());
        assert!(replayed.0.iter().all(|l| l.is_finite()));
        assert!(replayed.1 == launched.1, "{}: the weights after {} steps differ", cfg.model.label(), cfg.steps);
        assert!(same_file(&replayed.2, &launched.2), "{}: the state file taken at step 10 differs", cfg.model.label());
        assert!(same_file(&replayed.3, &launched.3), "{}: the final state file differs", cfg.model.label());
    }
}

#[test]
fn wgpu_agrees_with_flex() {
    let Some(wgpu) = wgpu() else { return };
    let flex = Device::flex();
    let mc = ModelConfig { width: 32, depth: 2, ..ModelConfig::new(Parameterization::Ddpm, false, 16) };
    let cfg = TrainConfig { steps: 3, batch: 64, seed: 5, ..TrainConfig::new(mc) };
    let mut results = vec![];
    for dev in [&flex, &wgpu] {
        let mut tr = Trainer::new(cfg.clone(), dev).unwrap();
        let mut losses = vec![];
        while !tr.finished() {
            tr.step();
            losses.push(tr.loss().unwrap());
        }
        let model = tr.model();
        let proj = tr.projection().clone();
        let mut s = Sampler::new(Rc::new(model), SampleConfig { n: 32, steps: 2, ..Default::default() }, &proj, dev).unwrap();
        let frame = s.step().unwrap();
        results.push((losses, read_f32(frame.u), read_f32(frame.xy.unwrap())));
    }
    let (a, b) = (&results[0], &results[1]);
    for (x, y) in a.0.iter().zip(&b.0) {
        assert!((x - y).abs() <= 1e-3 * x.abs().max(1.0), "losses {:?} vs {:?}", a.0, b.0);
    }
    for (va, vb) in [(&a.1, &b.1), (&a.2, &b.2)] {
        let max = va.iter().zip(vb.iter()).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(max < 1e-3, "flex and wgpu positions differ by {max}");
    }

    // The image recipe (`geonoise images train --device wgpu`): a small U-Net on 8 x 8 images.
    let side = 8;
    let images = Images { n: 32, rows: side, cols: side, pixels: (0..32 * side * side).map(|i| ((i * 37) % 256) as u8).collect() };
    let net = UNetConfig { channels: 8, mults: vec![1, 2], side, patch: 2, ..UNetConfig::new(Parameterization::Fm, true) };
    let cfg = ImageTrainConfig { steps: 3, batch: 8, ..ImageTrainConfig::new(net) };
    let cfg_images = cfg.clone();
    let mut runs = vec![];
    for dev in [&flex, &wgpu] {
        let mut tr = ImageTrainer::new(cfg.clone(), &images, dev).unwrap();
        let mut losses = vec![];
        while !tr.finished() {
            tr.step();
            losses.push(tr.loss().unwrap());
        }
        let field = Rc::new(tr.ema_model());
        let mut s = Sampler::unprojected(field, SampleConfig { n: 4, steps: 2, solver: Solver::Ancestral, ..Default::default() }, dev).unwrap();
        runs.push((losses, read_f32(s.step().unwrap().u)));
    }
    for (x, y) in runs[0].0.iter().zip(&runs[1].0) {
        assert!((x - y).abs() <= 1e-3 * x.abs().max(1.0), "U-Net losses {:?} vs {:?}", runs[0].0, runs[1].0);
    }
    let max = runs[0].1.iter().zip(&runs[1].1).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(max < 1e-3, "flex and wgpu U-Net samples differ by {max}");

    // Stopped after 5 steps and resumed from the state file, on wgpu: the weights of the unbroken
    // run (within float tolerance), for the toy's trainer and the image trainer (raw and EMA).
    let close = |a: std::collections::BTreeMap<String, burn::tensor::TensorData>, b: std::collections::BTreeMap<String, burn::tensor::TensorData>, what: &str| {
        for (name, x) in &a {
            let (x, y) = (x.try_to_vec::<f32>().unwrap(), b[name].try_to_vec::<f32>().unwrap());
            let max = x.iter().zip(&y).map(|(p, q)| (p - q).abs() / p.abs().max(1e-2)).fold(0f32, f32::max);
            assert!(max < 1e-4, "{what} {name}: the resumed run differs by {max} (relative)");
        }
    };
    let mc = ModelConfig { width: 32, depth: 2, ..ModelConfig::new(Parameterization::Fm, true, 8) };
    let cfg = TrainConfig { steps: 12, batch: 64, ..TrainConfig::new(mc) };
    let mut straight = Trainer::new(cfg.clone(), &wgpu).unwrap();
    while !straight.finished() {
        straight.step();
    }
    let mut first = Trainer::new(cfg.clone(), &wgpu).unwrap();
    (0..5).for_each(|_| first.step());
    let (mut second, _) = Trainer::resume_state(cfg, &first.save_state(serde_json::Value::Null).unwrap(), &wgpu).unwrap();
    while !second.finished() {
        second.step();
    }
    close(weights(&straight.model().net), weights(&second.model().net), "toy");
    let cfg = ImageTrainConfig { steps: 8, ..cfg_images };
    let mut straight = ImageTrainer::new(cfg.clone(), &images, &wgpu).unwrap();
    while !straight.finished() {
        straight.step();
    }
    let mut first = ImageTrainer::new(cfg.clone(), &images, &wgpu).unwrap();
    (0..3).for_each(|_| first.step());
    let (mut second, _) = ImageTrainer::resume_state(cfg, &first.save_state(serde_json::Value::Null).unwrap(), &images, &wgpu).unwrap();
    while !second.finished() {
        second.step();
    }
    close(weights(&straight.raw()), weights(&second.raw()), "U-Net raw");
    close(weights(&straight.ema_model().net), weights(&second.ema_model().net), "U-Net EMA");
}
