//! `geonoise bench` (training, sampling, checkpoint loads and the oracle kernel on each device)
//! and `geonoise bench-step` (single steps on one device: the project's side of bench/run.mjs).

use crate::io::{emit, read_file, read_manifest, Res};
use burn::tensor::Device;
use geonoise::checkpoint;
use geonoise::data::{host_tensor, Projection};
use geonoise::metrics;
use geonoise::model::ModelConfig;
use geonoise::oracle::{self, Oracle};
use geonoise::sample::{read_f32, SampleConfig, Sampler};
use geonoise::target::Parameterization;
use geonoise::train::{TrainConfig, Trainer};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

pub(crate) fn cmd_bench(dim: usize, batch: usize, steps: usize, n: usize, sample_steps: usize, pretty: bool) -> Res<()> {
    let mut results = vec![];
    // wgpu initialises once per process: keep its handles for the oracle kernel below.
    let wgpu = Device::wgpu_options().init_with_setup().map_err(|e| format!("no wgpu adapter could be initialised: {e}"));
    for (name, dev) in [("flex", Ok(Device::flex())), ("wgpu", wgpu.as_ref().map(|(d, _)| d.clone()).map_err(|e| e.clone()))] {
        let dev = match dev {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{name}: skipped ({e})");
                results.push(json!({"device": name, "skipped": e}));
                continue;
            }
        };
        let mc = ModelConfig::new(Parameterization::Fm, true, dim);
        let cfg = TrainConfig { batch, steps: steps + 5, ..TrainConfig::new(mc) };
        let mut tr = Trainer::new(cfg, &dev)?;
        for _ in 0..5 {
            tr.step();
        }
        tr.loss();
        let t0 = Instant::now();
        for _ in 0..steps {
            tr.step();
        }
        tr.loss();
        let train_s = t0.elapsed().as_secs_f64();
        let model = tr.model();
        let proj = tr.projection().clone();
        let scfg = SampleConfig { n, steps: sample_steps + 1, ..Default::default() };
        let mut s = Sampler::new(Rc::new(model), scfg, &proj, &dev)?;
        let plane = |s: &Sampler| read_f32(s.frame().xy.expect("a toy run projects"));
        s.advance();
        plane(&s);
        let t1 = Instant::now();
        while s.advance() {}
        plane(&s);
        let sample_s = t1.elapsed().as_secs_f64();
        let r = json!({
            "device": name,
            "train_steps_per_second": steps as f64 / train_s,
            "train_ms_per_step": 1e3 * train_s / steps as f64,
            "sample_steps_per_second": sample_steps as f64 / sample_s,
            "sample_ms_per_step": 1e3 * sample_s / sample_steps as f64,
        });
        eprintln!(
            "{name}: training {:.1} steps/s ({:.2} ms/step, D={dim}, batch {batch}); sampling {:.1} steps/s ({n} trajectories)",
            steps as f64 / train_s,
            1e3 * train_s / steps as f64,
            sample_steps as f64 / sample_s
        );
        results.push(r);
    }
    // Checkpoint loading (the page and CLI load one per panel): time each shipped file on Flex.
    let dir = PathBuf::from("pretrained");
    let mut loads = vec![];
    if let Some(m) = read_manifest(&dir)? {
        for e in &m.entries {
            let t = Instant::now();
            let bytes = read_file(&dir.join(&e.file))?;
            checkpoint::load(&bytes, &Device::flex(), &checkpoint::Expected::any()).map_err(|err| format!("{}: {err}", e.file))?;
            loads.push(json!({"file": e.file, "ms": 1e3 * t.elapsed().as_secs_f64()}));
        }
        let max = loads.iter().filter_map(|l| l["ms"].as_f64()).fold(0.0, f64::max);
        eprintln!("checkpoint load (read + validate + apply, Flex): {} files, slowest {max:.1} ms", loads.len());
    }
    let oracle = match &wgpu {
        Ok((dev, setup)) => bench_oracle(n, dev, setup)?,
        Err(e) => json!({"skipped": e}),
    };
    emit(&json!({"dim": dim, "batch": batch, "width": 256, "depth": 4, "trajectories": n, "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), "results": results, "checkpoint_loads": loads, "oracle": oracle}), pretty);
    Ok(())
}

/// Median times of single training and sampling steps on Flex, at `threads` threads of its pool.
pub(crate) fn cmd_bench_step(model: ModelConfig, batch: usize, steps: usize, n: usize, threads: usize, dev: &Device, pretty: bool) -> Res<()> {
    if threads > 0 {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().map_err(|e| format!("cannot set up {threads} threads: {e}"))?;
    }
    let dev = dev.clone();
    // Each timed step ends with its result on the host (the loss; the positions' plane
    // coordinates), as the peer's `loss.item()` does.
    let timed = |f: &mut dyn FnMut()| -> f64 {
        (0..3).for_each(|_| f());
        metrics::median((0..steps.max(1)).map(|_| {
            let t = Instant::now();
            f();
            1e3 * t.elapsed().as_secs_f64()
        }).collect())
    };
    let cfg = TrainConfig { batch, steps: 1_000_000, lr: 5e-3, ..TrainConfig::new(model) };
    let mut tr = Trainer::new(cfg, &dev)?;
    let train_ms = timed(&mut || {
        tr.step();
        tr.loss();
    });
    let proj = tr.projection().clone();
    let scfg = SampleConfig { n, steps: 1000, ..Default::default() };
    let mut s = Sampler::new(Rc::new(tr.model()), scfg, &proj, &dev)?;
    let sample_ms = timed(&mut || {
        let f = s.step().expect("fewer timed steps than the sampler's");
        read_f32(f.xy.expect("a toy run projects"));
    });
    emit(&json!({"device": format!("{dev:?}"), "threads": rayon::current_num_threads(), "train_ms": train_ms, "sample_ms": sample_ms, "batch": batch, "n": n}), pretty);
    Ok(())
}

/// The oracle's full analysis (posterior, E_marg, f*, grad E_marg) at `m` points, D = 128 and
/// 512, default data and grid: the tensor path on Flex and on wgpu against the WGSL kernel on
/// the same wgpu device, each with its readback, best of three.
fn bench_oracle(m: usize, wgpu: &Device, setup: &burn::backend::wgpu::WgpuSetup) -> Res<Value> {
    let mut rows = vec![];
    for dim in [128, 512] {
        let proj = Projection::new(dim, 0)?;
        let param = Parameterization::Fm;
        let u: Vec<f32> = geonoise::rng::Rng::new(1).normals_f32(m * dim);
        let best = |f: &dyn Fn()| {
            f(); // warm-up: pipelines, autotune, allocations
            (0..3).map(|_| {
                let t = Instant::now();
                f();
                1e3 * t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
        };
        let tensor_ms = |dev: &Device| -> Res<f64> {
            let o = Oracle::for_circles(param, param.default_range(), &proj, oracle::DEFAULT_POINTS, oracle::DEFAULT_GRID, dev)?;
            Ok(best(&|| {
                let a = o.analyze(host_tensor(u.clone(), dim, dev));
                read_f32(a.field);
            }))
        };
        let flex_ms = tensor_ms(&Device::flex())?;
        let wgpu_ms = tensor_ms(wgpu)?;
        let o = Oracle::for_circles(param, param.default_range(), &proj, oracle::DEFAULT_POINTS, oracle::DEFAULT_GRID, &Device::flex())?;
        let kernel = oracle::kernel::OracleKernel::new(&o, &setup.device, &setup.queue)?;
        let kernel_ms = best(&|| {
            pollster::block_on(kernel.analyze(&u)).expect("the oracle kernel failed");
        });
        eprintln!(
            "oracle D={dim}, {m} points, N={}, K={}: tensor path {flex_ms:.0} ms (flex), {wgpu_ms:.0} ms (wgpu); WGSL kernel {kernel_ms:.0} ms (wgpu): {:.1}x the tensor path on the same device",
            oracle::DEFAULT_POINTS,
            oracle::DEFAULT_GRID,
            wgpu_ms / kernel_ms
        );
        rows.push(json!({"dim": dim, "points": m, "data_points": oracle::DEFAULT_POINTS, "grid": oracle::DEFAULT_GRID, "tensor_flex_ms": flex_ms, "tensor_wgpu_ms": wgpu_ms, "kernel_wgpu_ms": kernel_ms, "kernel_speedup_same_device": wgpu_ms / kernel_ms}));
    }
    Ok(json!(rows))
}
