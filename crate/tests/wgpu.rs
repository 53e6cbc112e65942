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

#[test]
fn wgpu_agrees_with_flex() {
    let wgpu = match Device::wgpu_options().init() {
        Ok(d) => d,
        Err(e) => {
            if std::env::var_os("GEONOISE_REQUIRE_WGPU").is_some() {
                panic!("GEONOISE_REQUIRE_WGPU is set but no wgpu adapter initialised: {e}");
            }
            eprintln!("skipping: no wgpu adapter ({e})");
            return;
        }
    };
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
