//! `geonoise`: the native command line over the same core the browser runs.
//! Every command prints JSON on stdout and a one-line human summary on stderr.

use burn::tensor::Device;
use clap::{Parser, Subcommand, ValueEnum};
use geonoise::checkpoint::{self, TrainingInfo};
use geonoise::data::{host_tensor, Projection};
use geonoise::metrics::{self, Metrics};
use geonoise::model::ModelConfig;
use geonoise::oracle::{self, Oracle, OracleField};
use geonoise::sample::{read_f32, Field, SampleConfig, Sampler};
use geonoise::target::Parameterization;
use geonoise::train::{TrainConfig, Trainer};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "geonoise", version, about = "Blind vs noise-conditioned diffusion on the concentric-circles toy of 'The Geometry of Noise'")]
struct Cli {
    /// Compute device: flex (CPU) or wgpu (Vulkan/Metal/DX12; Mesa lavapipe without a GPU).
    #[arg(long, global = true, value_enum, default_value_t = DeviceArg::Flex)]
    device: DeviceArg,
    /// Pretty-print the JSON output.
    #[arg(long, global = true)]
    pretty: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum DeviceArg {
    Flex,
    Wgpu,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model and save it as a checkpoint.
    Train {
        #[command(flatten)]
        config: TrainConfig,
        /// Noise-conditioned model (the default is blind only with --blind).
        #[arg(long)]
        conditional: bool,
        /// Where to write the checkpoint (.safetensors).
        #[arg(long)]
        out: PathBuf,
        /// Read the loss back every this many steps (each read waits for the device).
        #[arg(long, default_value_t = 100)]
        log_every: usize,
        /// Samples drawn after training to report metrics (0 = skip).
        #[arg(long, default_value_t = 1000)]
        eval_samples: usize,
    },
    /// Sample from a checkpoint, or from the closed-form oracle field.
    Sample {
        /// Checkpoint to sample from.
        #[arg(long, conflicts_with = "oracle")]
        checkpoint: Option<PathBuf>,
        /// Sample the closed-form field instead (needs --model, --dim and --blind/--conditional).
        #[arg(long)]
        oracle: bool,
        #[command(flatten)]
        oracle_args: OracleArgs,
        #[command(flatten)]
        config: SampleConfig,
        /// Include every step's 2-D positions.
        #[arg(long)]
        trajectory: bool,
        /// Write the full JSON here; stdout then gets a summary.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Closed-form field, posterior, energy and decomposition at given points.
    Oracle {
        #[command(flatten)]
        oracle_args: OracleArgs,
        /// JSON file: {"points": [[...]], "t": optional}. Rows of D values, or of 2 (plane coordinates, lifted by P).
        #[arg(long)]
        points: PathBuf,
    },
    /// Metrics of a samples file written by `sample`.
    Metrics {
        /// JSON with "dim", "projection_seed" and "samples" (rows of D values).
        #[arg(long)]
        samples: PathBuf,
    },
    /// Training and sampling throughput on each available device.
    Bench {
        #[arg(long, default_value_t = 128)]
        dim: usize,
        #[arg(long, default_value_t = 512)]
        batch: usize,
        /// Timed training steps per device.
        #[arg(long, default_value_t = 50)]
        steps: usize,
        /// Trajectories sampled per device.
        #[arg(long, default_value_t = 2000)]
        n: usize,
        /// Timed sampling steps per device.
        #[arg(long, default_value_t = 20)]
        sample_steps: usize,
    },
}

#[derive(clap::Args, Clone)]
struct OracleArgs {
    /// Parameterization of the oracle field.
    #[arg(long = "model")]
    model: Option<Parameterization>,
    /// Ambient dimension D.
    #[arg(long = "dim")]
    dim: Option<usize>,
    /// The blind optimum f*(u) (sampling); the default is conditional f*(u, t).
    #[arg(long)]
    blind: bool,
    #[arg(long, conflicts_with = "blind")]
    conditional: bool,
    #[arg(long, default_value_t = 0)]
    projection_seed: u64,
    /// Data points on the circles.
    #[arg(long, default_value_t = oracle::DEFAULT_POINTS)]
    data_points: usize,
    /// Noise levels in the quadrature grid.
    #[arg(long, default_value_t = oracle::DEFAULT_GRID)]
    grid: usize,
}

type Res<T> = Result<T, String>;

fn device(arg: DeviceArg) -> Res<Device> {
    match arg {
        DeviceArg::Flex => Ok(Device::flex()),
        DeviceArg::Wgpu => Device::wgpu_options().init().map_err(|e| format!("no wgpu adapter could be initialised: {e}")),
    }
}

fn emit(value: &Value, pretty: bool) {
    let s = if pretty { serde_json::to_string_pretty(value) } else { serde_json::to_string(value) }.unwrap();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
}

fn read_file(path: &PathBuf) -> Res<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write_file(path: &PathBuf, bytes: &[u8]) -> Res<()> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn rows(v: &[f32], cols: usize) -> Vec<Vec<f32>> {
    v.chunks(cols).map(|r| r.to_vec()).collect()
}

fn summary_metrics(m: &Metrics) -> String {
    format!(
        "radial error mean {:.4} median {:.4}, off-manifold {:.4}, inner {:.2}, MMD {:.5}, diverged {:.1}%",
        m.radial_error_mean,
        m.radial_error_median,
        m.off_manifold_mean,
        m.inner_fraction,
        m.mmd,
        100.0 * m.diverged_fraction
    )
}

/// Draws `cfg.n` samples from `field`; returns (final rows of D, trajectory frames as JSON).
fn run_sampler(field: &dyn Field, cfg: &SampleConfig, proj: &Projection, device: &Device, trajectory: bool) -> Res<(Vec<f32>, Vec<Value>)> {
    let mut s = Sampler::new(field, cfg.clone(), proj, device)?;
    let mut frames = vec![];
    let record = |f: geonoise::sample::Frame| json!({"step": f.step, "t": f.t, "xy": rows(&read_f32(f.xy), 2)});
    if trajectory {
        frames.push(record(s.frame()));
    }
    while let Some(f) = s.step() {
        if trajectory {
            frames.push(record(f));
        }
    }
    Ok((read_f32(s.frame().u), frames))
}

fn oracle_from(args: &OracleArgs, device: &Device) -> Res<(Oracle, Projection, bool)> {
    let model = args.model.ok_or("--model is required for the oracle")?;
    let dim = args.dim.ok_or("--dim is required for the oracle")?;
    let proj = Projection::new(dim, args.projection_seed)?;
    let o = Oracle::for_circles(model, model.default_range(), &proj, args.data_points, args.grid, device)?;
    Ok((o, proj, args.blind))
}

fn cmd_train(mut config: TrainConfig, conditional: bool, out: PathBuf, log_every: usize, eval_samples: usize, dev: &Device, pretty: bool) -> Res<()> {
    if !config.model.blind && !conditional {
        return Err("say --blind or --conditional".into());
    }
    config.model.blind = !conditional;
    let mut tr = Trainer::new(config.clone(), dev)?;
    let start = Instant::now();
    let mut curve = vec![];
    let mut last = None;
    let every = log_every.max(1);
    let label = config.model.label();
    while !tr.finished() {
        tr.step();
        let k = tr.steps_done();
        if k % every == 0 || tr.finished() {
            let loss = tr.loss().unwrap_or(f32::NAN);
            if !loss.is_finite() {
                eprintln!();
                let msg = match tr.last_good_model() {
                    Some((good_k, m)) => {
                        let info = TrainingInfo { train: tr.config.clone(), steps_done: good_k, final_loss: last };
                        let bytes = checkpoint::save(&m, Some(&info)).map_err(|e| e.to_string())?;
                        write_file(&out, &bytes)?;
                        format!("training diverged at step {k} (loss {loss}); saved the weights of step {good_k}, the last finite loss, to {}", out.display())
                    }
                    None => format!("training diverged at step {k} (loss {loss}) before any finite loss was read; nothing saved"),
                };
                return Err(msg);
            }
            last = Some(loss);
            curve.push(json!([k, loss]));
            let secs = start.elapsed().as_secs_f64();
            let rate = k as f64 / secs.max(1e-9);
            let eta = (config.steps - k) as f64 / rate.max(1e-9);
            eprint!("\r{label}: step {k}/{}  loss {loss:.5}  {rate:.0} steps/s  eta {eta:.0}s   ", config.steps);
        }
    }
    eprintln!();
    let secs = start.elapsed().as_secs_f64();
    let model = tr.model();
    let info = TrainingInfo { train: tr.config.clone(), steps_done: tr.steps_done(), final_loss: last };
    let bytes = checkpoint::save(&model, Some(&info)).map_err(|e| e.to_string())?;
    write_file(&out, &bytes)?;
    let mut result = json!({
        "out": out.display().to_string(),
        "config": tr.config,
        "steps": tr.steps_done(),
        "final_loss": last,
        "seconds": secs,
        "steps_per_second": tr.steps_done() as f64 / secs.max(1e-9),
        "bytes": bytes.len(),
        "loss_curve": curve,
    });
    if eval_samples > 0 {
        let cfg = SampleConfig { n: eval_samples, ..Default::default() };
        let (samples, _) = run_sampler(&model, &cfg, tr.projection(), dev, false)?;
        let m = metrics::compute(&samples, tr.projection())?;
        eprintln!("{label}: {}", summary_metrics(&m));
        result["metrics"] = json!(m);
        result["eval"] = json!(cfg);
    }
    eprintln!("{label}: {} steps in {secs:.1}s, final loss {:?}, saved {}", tr.steps_done(), last, out.display());
    emit(&result, pretty);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn cmd_sample(checkpoint: Option<PathBuf>, oracle_mode: bool, oargs: OracleArgs, config: SampleConfig, trajectory: bool, out: Option<PathBuf>, dev: &Device, pretty: bool) -> Res<()> {
    let (field, proj, source, model_cfg): (Box<dyn Field>, Projection, Value, Value) = if let Some(path) = &checkpoint {
        let bytes = read_file(path)?;
        let (model, header) = checkpoint::load(&bytes, dev, None).map_err(|e| format!("{}: {e}", path.display()))?;
        let proj = Projection::new(model.config.dim, model.config.projection_seed)?;
        let cfg = json!(header.config);
        (Box::new(model), proj, json!({"checkpoint": path.display().to_string()}), cfg)
    } else if oracle_mode {
        if !oargs.blind && !oargs.conditional {
            return Err("say --blind or --conditional for the oracle sampler".into());
        }
        let (o, proj, blind) = oracle_from(&oargs, dev)?;
        let src = json!({"oracle": {"model": o.param, "blind": blind, "dim": o.dim, "data_points": oargs.data_points, "grid": oargs.grid, "projection_seed": proj.seed}});
        let cfg = json!({"model": o.param, "blind": blind, "dim": o.dim, "t_min": o.range.0, "t_max": o.range.1, "projection_seed": proj.seed});
        (Box::new(OracleField { oracle: o, blind }), proj, src, cfg)
    } else {
        return Err("give --checkpoint FILE or --oracle".into());
    };
    let start = Instant::now();
    let (samples, frames) = run_sampler(field.as_ref(), &config, &proj, dev, trajectory)?;
    let secs = start.elapsed().as_secs_f64();
    let m = metrics::compute(&samples, &proj)?;
    let label = format!("{} {}-d{}", field.parameterization(), if model_cfg["blind"] == json!(true) { "blind" } else { "cond" }, proj.dim);
    eprintln!("{label}: {} samples x {} steps in {secs:.2}s; {}", config.n, config.steps, summary_metrics(&m));
    let projected = read_f32(proj.project(host_tensor(samples.clone(), proj.dim, &Device::flex())));
    let mut full = json!({
        "source": source,
        "config": model_cfg,
        "sample": config,
        "dim": proj.dim,
        "projection_seed": proj.seed,
        "seconds": secs,
        "metrics": m,
        "projected": rows(&projected, 2),
        "samples": rows(&samples, proj.dim),
    });
    if trajectory {
        full["trajectory"] = json!(frames);
    }
    match out {
        Some(path) => {
            let s = if pretty { serde_json::to_string_pretty(&full) } else { serde_json::to_string(&full) }.unwrap();
            write_file(&path, s.as_bytes())?;
            emit(&json!({"out": path.display().to_string(), "source": full["source"], "config": full["config"], "sample": full["sample"], "seconds": secs, "metrics": full["metrics"]}), pretty);
        }
        None => emit(&full, pretty),
    }
    Ok(())
}

/// A JSON number, with `null` (how non-finite values are written) read back as NaN.
fn num(v: &Value) -> Res<f32> {
    match v {
        Value::Null => Ok(f32::NAN),
        Value::Number(n) => Ok(n.as_f64().unwrap_or(f64::NAN) as f32),
        other => Err(format!("expected a number, found {other}")),
    }
}

fn matrix(v: &Value, what: &str) -> Res<(Vec<f32>, usize)> {
    let arr = v.as_array().ok_or(format!("'{what}' must be an array of rows"))?;
    let mut out = vec![];
    let mut cols = None;
    for (i, row) in arr.iter().enumerate() {
        let r = row.as_array().ok_or(format!("'{what}' row {i} is not an array"))?;
        if *cols.get_or_insert(r.len()) != r.len() {
            return Err(format!("'{what}' row {i} has {} values, row 0 has {}", r.len(), cols.unwrap()));
        }
        for x in r {
            out.push(num(x).map_err(|e| format!("'{what}' row {i}: {e}"))?);
        }
    }
    Ok((out, cols.unwrap_or(0)))
}

fn cmd_oracle(args: OracleArgs, points: PathBuf, dev: &Device, pretty: bool) -> Res<()> {
    let text = read_file(&points)?;
    let input: Value = serde_json::from_slice(&text).map_err(|e| format!("{}: not valid JSON: {e}", points.display()))?;
    let (o, proj, _) = oracle_from(&args, dev)?;
    let (vals, cols) = matrix(&input["points"], "points")?;
    if vals.is_empty() {
        return Err("'points' is empty".into());
    }
    let u = if cols == 2 && proj.dim != 2 {
        proj.lift(host_tensor(vals, 2, dev))
    } else if cols == proj.dim {
        host_tensor(vals, cols, dev)
    } else {
        return Err(format!("points have {cols} values per row; expected D = {} (or 2 for plane coordinates)", proj.dim));
    };
    let t = match &input["t"] {
        Value::Null => None,
        v => Some(v.as_f64().filter(|t| *t > 0.0).ok_or("'t' must be a positive number")?),
    };
    let an = o.analyze(u.clone());
    let m = u.dims()[0];
    let d = proj.dim;
    let k = o.grid.len();
    let post = read_f32(an.posterior);
    let col = |x: burn::tensor::Tensor<2>| read_f32(x);
    let (energy, gain, tm, ts) = (col(an.energy), col(an.gain), col(an.t_mean), col(an.t_std));
    let (field, grad, lin, gt, tr) = (col(an.field), col(an.grad_energy), col(an.linear_drift), col(an.gain_term), col(an.transport));
    let bhat = read_f32(oracle::geometric_noise_scale(u.clone(), &proj));
    let cond = t.map(|t| (read_f32(o.conditional_field(u.clone(), t)), read_f32(o.drift_error(u.clone(), t))));
    let xy = read_f32(proj.project(u));
    let mut out_points = vec![];
    for i in 0..m {
        let s = |v: &Vec<f32>| v[i * d..(i + 1) * d].to_vec();
        let mut p = json!({
            "xy": [xy[2 * i], xy[2 * i + 1]],
            "posterior": post[i * k..(i + 1) * k].to_vec(),
            "t_mean": tm[i], "t_std": ts[i],
            "b_geometric": bhat[i],
            "t_geometric": oracle::t_from_noise_scale(o.param, o.range, bhat[i] as f64),
            "energy": energy[i], "gain": gain[i],
            "field": s(&field), "grad_energy": s(&grad),
            "linear_drift": s(&lin), "gain_term": s(&gt), "transport": s(&tr),
        });
        if let Some((cf, de)) = &cond {
            p["conditional_field"] = json!(s(cf));
            p["drift_error"] = json!(de[i]);
        }
        out_points.push(p);
    }
    eprintln!("oracle {} D={}: {m} points, {k} grid levels, {} data points", o.param, d, args.data_points);
    emit(&json!({"model": o.param, "dim": d, "projection_seed": proj.seed, "t": t, "grid": o.grid, "points": out_points}), pretty);
    Ok(())
}

fn cmd_metrics(path: PathBuf, pretty: bool) -> Res<()> {
    let text = read_file(&path)?;
    let v: Value = serde_json::from_slice(&text).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
    let dim = v["dim"].as_u64().ok_or("the samples file needs \"dim\"")? as usize;
    let seed = v["projection_seed"].as_u64().ok_or("the samples file needs \"projection_seed\"")?;
    let proj = Projection::new(dim, seed)?;
    let (vals, cols) = matrix(&v["samples"], "samples")?;
    if cols != dim && !vals.is_empty() {
        return Err(format!("samples have {cols} values per row but dim is {dim}"));
    }
    let m = metrics::compute(&vals, &proj)?;
    eprintln!("{} samples, D={dim}: {}", m.n, summary_metrics(&m));
    emit(&json!(m), pretty);
    Ok(())
}

fn cmd_bench(dim: usize, batch: usize, steps: usize, n: usize, sample_steps: usize, pretty: bool) -> Res<()> {
    let mut results = vec![];
    for (name, dev) in [("flex", device(DeviceArg::Flex)), ("wgpu", device(DeviceArg::Wgpu))] {
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
        let mut s = Sampler::new(&model, scfg, &proj, &dev)?;
        s.step();
        read_f32(s.frame().xy);
        let t1 = Instant::now();
        while s.step().is_some() {}
        read_f32(s.frame().xy);
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
    emit(&json!({"dim": dim, "batch": batch, "width": 256, "depth": 4, "trajectories": n, "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), "results": results}), pretty);
    Ok(())
}

fn run(cli: Cli) -> Res<()> {
    let pretty = cli.pretty;
    let dev = || device(cli.device);
    match cli.command {
        Command::Train { config, conditional, out, log_every, eval_samples } => cmd_train(config, conditional, out, log_every, eval_samples, &dev()?, pretty),
        Command::Sample { checkpoint, oracle, oracle_args, config, trajectory, out } => {
            cmd_sample(checkpoint, oracle, oracle_args, config, trajectory, out, &dev()?, pretty)
        }
        Command::Oracle { oracle_args, points } => cmd_oracle(oracle_args, points, &dev()?, pretty),
        Command::Metrics { samples } => cmd_metrics(samples, pretty),
        Command::Bench { dim, batch, steps, n, sample_steps } => cmd_bench(dim, batch, steps, n, sample_steps, pretty),
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
