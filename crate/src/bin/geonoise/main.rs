//! `geonoise`: the native command line over the same core the browser runs.
//! Every command prints JSON on stdout and a one-line human summary on stderr.

use burn::tensor::Device;
use clap::{Parser, Subcommand, ValueEnum};
use geonoise::checkpoint::{self, Precision, TrainingInfo};
use geonoise::pretrained::{self, Bounds, Entry, GridRecipe, Manifest};
use geonoise::data::{host_tensor, Projection};
use geonoise::dataset::{DataSet, DataSpec, Shape};
use geonoise::metrics::{self, Metrics};
use geonoise::model::ModelConfig;
use geonoise::oracle::{self, Oracle, OracleField};
use geonoise::sample::{read_f32, Field, SampleConfig, Sampler, Solver};
use geonoise::target::{Parameterization, TimeGrid};
use geonoise::train::{TrainConfig, Trainer};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

mod figure;
mod images;
mod regimes;

#[derive(Parser)]
#[command(name = "geonoise", version, about = "Blind vs noise-conditioned diffusion: the concentric-circles toy and the image experiment of 'The Geometry of Noise'")]
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
        #[command(flatten)]
        data: DataArg,
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
    /// Train the grid of shipped checkpoints (models x blind/conditional x D) into a folder with
    /// its manifest. Resumes: a cell whose file and manifest entry already match is skipped.
    TrainGrid {
        #[arg(long, default_value = "pretrained")]
        out: PathBuf,
        /// Parameterizations, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "fm,ddpm,edm,eqm,uedm")]
        models: Vec<Parameterization>,
        /// Ambient dimensions, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "2,8,32,128,512")]
        dims: Vec<usize>,
        /// One step count for every D (the recipe trains longer from D = 128 on).
        #[arg(long)]
        steps: Option<usize>,
        #[arg(long)]
        width: Option<usize>,
        #[arg(long)]
        depth: Option<usize>,
        #[arg(long, value_enum)]
        precision: Option<Precision>,
        /// Retrain cells that are already done.
        #[arg(long)]
        force: bool,
        /// Measure the metrics of up-to-date cells again from their files (the same evaluation
        /// run), without training: how a manifest gains a metric added after it was written.
        #[arg(long)]
        rescore: bool,
    },
    /// The paper's three regimes measured: clean fraction, radial error and off-manifold norm of
    /// every model, blind and conditional, trained and exact, at each D, under several samplers
    /// (resumable: the results file keeps every measured cell).
    Regimes(regimes::Args),
    /// The paper's Figure 5: samples projected to the data plane, rows = models, columns = D.
    Figure {
        /// PNG to write (omit with --table for the table alone).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Use the closed-form fields instead of the checkpoints.
        #[arg(long)]
        oracle: bool,
        /// Folder with manifest.json and the checkpoints.
        #[arg(long, default_value = "pretrained")]
        pretrained: PathBuf,
        /// Print the metrics grid as Markdown instead of JSON.
        #[arg(long)]
        table: bool,
        #[arg(long, value_delimiter = ',', default_value = "fm,ddpm")]
        models: Vec<Parameterization>,
        #[arg(long, value_delimiter = ',', default_value = "2,8,32,128,512")]
        dims: Vec<usize>,
        /// Samples per cell.
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long, default_value_t = 100)]
        steps: usize,
        /// Solver (the ODE's Euler by default; `ancestral` or `sde` for the stochastic ones).
        #[arg(long = "sampler", value_enum, default_value_t = Solver::Euler)]
        solver: Solver,
        /// Spacing of the steps (see `sample --time-grid`).
        #[arg(long, value_enum, default_value_t = TimeGrid::Default)]
        time_grid: TimeGrid,
        /// Seed of the starting noise, shared by every cell of a column.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Oracle only: the data set (see `train --data`).
        #[command(flatten)]
        data: DataArg,
        /// Oracle only: data points and quadrature levels.
        #[arg(long, default_value_t = 128)]
        data_points: usize,
        #[arg(long, default_value_t = 64)]
        grid: usize,
    },
    /// The paper's image experiment (Sec. 7.1): U-Nets on Fashion-MNIST / MNIST, sample grids,
    /// the metric table.
    Images {
        #[command(subcommand)]
        command: images::ImagesCommand,
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
    /// Time single training and sampling steps on `--device` (Flex by default), the median of
    /// each, as JSON: the project's side of `node bench/run.mjs native` (its peer is
    /// bench/torch_step.py; `--device wgpu` against its `--device cuda` on a GPU machine).
    BenchStep {
        #[arg(long, default_value_t = 128)]
        dim: usize,
        #[arg(long, default_value_t = 128)]
        width: usize,
        #[arg(long, default_value_t = 3)]
        depth: usize,
        #[arg(long, default_value_t = 512)]
        batch: usize,
        /// Timed steps of each kind (after 3 warm-up steps).
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Trajectories of the sampling steps.
        #[arg(long, default_value_t = 2000)]
        n: usize,
        /// Threads of Flex's pool (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
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
    #[command(flatten)]
    data: DataArg,
    /// How many points of the data set the closed form sums over (a drawn set: all of its own).
    #[arg(long, default_value_t = oracle::DEFAULT_POINTS)]
    data_points: usize,
    /// Noise levels in the quadrature grid.
    #[arg(long, default_value_t = oracle::DEFAULT_GRID)]
    grid: usize,
}

/// The 2-D data set lifted into R^D.
#[derive(clap::Args, Clone, Default)]
pub(crate) struct DataArg {
    /// The data set: a shape (circles, three-rings, spiral, swiss-roll, checkerboard, two-moons)
    /// or a JSON file of drawn points ({"points": [[x, y], …]}, e.g. the page's Draw export).
    /// The circles by default.
    #[arg(long = "data")]
    data: Option<String>,
}

impl DataArg {
    pub(crate) fn spec(&self) -> Res<DataSpec> {
        let Some(v) = &self.data else { return Ok(DataSpec::default()) };
        if let Ok(name) = Shape::from_name(v) {
            return Ok(DataSpec::Shape { name });
        }
        let path = PathBuf::from(v);
        if !path.exists() {
            return Err(format!("--data {v}: neither a shape ({}) nor a file", Shape::ALL.map(|s| s.name()).join(", ")));
        }
        let json: Value = serde_json::from_slice(&read_file(&path)?).map_err(|e| format!("{v}: not valid JSON: {e}"))?;
        DataSpec::from_json(&json).map_err(|e| format!("{v}: {e}"))
    }

    fn given(&self) -> bool {
        self.data.is_some()
    }
}

pub(crate) type Res<T> = Result<T, String>;

fn device(arg: DeviceArg) -> Res<Device> {
    match arg {
        DeviceArg::Flex => Ok(Device::flex()),
        DeviceArg::Wgpu => Device::wgpu_options().init().map_err(|e| format!("no wgpu adapter could be initialised: {e}")),
    }
}

/// The command as a person would type it (`geonoise …`, whatever path ran the binary): what a
/// results file records.
pub(crate) fn command_line() -> String {
    std::iter::once("geonoise".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" ")
}

pub(crate) fn emit(value: &Value, pretty: bool) {
    let s = if pretty { serde_json::to_string_pretty(value) } else { serde_json::to_string(value) }.unwrap();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{s}");
}

pub(crate) fn read_file(path: &PathBuf) -> Res<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

pub(crate) fn write_file(path: &PathBuf, bytes: &[u8]) -> Res<()> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn rows(v: &[f32], cols: usize) -> Vec<Vec<f32>> {
    v.chunks(cols).map(|r| r.to_vec()).collect()
}

fn summary_metrics(m: &Metrics) -> String {
    format!(
        "clean {:.1}%, radial error mean {:.4} median {:.4} p90 {:.4}, off-manifold mean {:.4} median {:.4}, inner {:.2}, MMD {:.5}, diverged {:.1}%",
        100.0 * m.clean_fraction,
        m.radial_error_mean,
        m.radial_error_median,
        m.radial_error_p90,
        m.off_manifold_mean,
        m.off_manifold_median,
        m.inner_fraction,
        m.mmd,
        100.0 * m.diverged_fraction
    )
}

/// Draws `cfg.n` samples from `field`; returns (final rows of D, trajectory frames as JSON).
fn run_sampler(field: Rc<dyn Field>, cfg: &SampleConfig, proj: &Projection, device: &Device, trajectory: bool) -> Res<(Vec<f32>, Vec<Value>)> {
    let mut s = Sampler::new(field, cfg.clone(), proj, device)?;
    let mut frames = vec![];
    let record = |f: geonoise::sample::Frame| json!({"step": f.step, "t": f.t, "xy": f.xy.map(|xy| rows(&read_f32(xy), 2))});
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

fn oracle_from(args: &OracleArgs, device: &Device) -> Res<(Oracle, Projection, bool, DataSet)> {
    let model = args.model.ok_or("--model is required for the oracle")?;
    let dim = args.dim.ok_or("--dim is required for the oracle")?;
    let proj = Projection::new(dim, args.projection_seed)?;
    let data = args.data.spec()?.build()?;
    let o = Oracle::for_data(model, model.default_range(), &proj, &data, args.data_points, args.grid, device)?;
    Ok((o, proj, args.blind, data))
}

/// Runs `tr` to its last step, reading the loss back every `every` steps (each read waits for the
/// device) and showing progress on stderr. Returns the loss curve, and the step and loss of the
/// first non-finite loss if training diverged (it stops there).
fn drive(tr: &mut Trainer, every: usize, label: &str) -> Curve {
    drive_saving(tr, every, label, &mut |_| Ok(())).expect("no saving")
}

/// A run's loss curve (step, loss), and the step and loss where it diverged, if it did.
type Curve = (Vec<(usize, f32)>, Option<(usize, f32)>);

/// [`drive`], calling `save` at the logged steps about once a minute (a resumable run's copy).
fn drive_saving(tr: &mut Trainer, every: usize, label: &str, save: &mut dyn FnMut(&Trainer) -> Res<()>) -> Res<Curve> {
    let mut saved_at = Instant::now();
    let start = Instant::now();
    let first = tr.steps_done();
    let every = every.max(1);
    let mut curve = vec![];
    while !tr.finished() {
        tr.step();
        let k = tr.steps_done();
        if k % every == 0 || tr.finished() {
            let loss = tr.loss().unwrap_or(f32::NAN);
            if !loss.is_finite() {
                eprintln!();
                return Ok((curve, Some((k, loss))));
            }
            curve.push((k, loss));
            if saved_at.elapsed().as_secs() >= 60 && !tr.finished() {
                save(tr)?;
                saved_at = Instant::now();
            }
            let rate = (k - first) as f64 / start.elapsed().as_secs_f64().max(1e-9);
            let eta = (tr.config.steps - k) as f64 / rate.max(1e-9);
            eprint!("\r{label}: step {k}/{}  loss {loss:.5}  {rate:.0} steps/s  eta {eta:.0}s   ", tr.config.steps);
        }
    }
    eprintln!();
    Ok((curve, None))
}

#[allow(clippy::too_many_arguments)]
fn cmd_train(mut config: TrainConfig, data: DataArg, conditional: bool, out: PathBuf, log_every: usize, eval_samples: usize, dev: &Device, pretty: bool) -> Res<()> {
    if !config.model.blind && !conditional {
        return Err("say --blind or --conditional".into());
    }
    config.model.blind = !conditional;
    config.model.data = data.spec()?;
    let data = config.model.data.build()?;
    let mut tr = Trainer::new(config.clone(), dev)?;
    let start = Instant::now();
    let label = config.model.label();
    let (curve, diverged) = drive(&mut tr, log_every, &label);
    let last = curve.last().map(|(_, l)| *l);
    if let Some((k, loss)) = diverged {
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
        "loss_curve": curve.iter().map(|(k, l)| json!([k, l])).collect::<Vec<_>>(),
    });
    if eval_samples > 0 {
        let cfg = SampleConfig { n: eval_samples, ..Default::default() };
        let (samples, _) = run_sampler(Rc::new(model.clone()), &cfg, tr.projection(), dev, false)?;
        let m = metrics::compute_for(&samples, tr.projection(), &data)?;
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
    let (field, proj, source, model_cfg, data): (Rc<dyn Field>, Projection, Value, Value, DataSet) = if let Some(path) = &checkpoint {
        let bytes = read_file(path)?;
        let (model, header) = checkpoint::load(&bytes, dev, &checkpoint::Expected::any()).map_err(|e| format!("{}: {e}", path.display()))?;
        if oargs.data.given() {
            return Err(format!("{} knows the data it was trained on ({}); --data is for --oracle", path.display(), model.config.data.label()));
        }
        let proj = Projection::new(model.config.dim, model.config.projection_seed)?;
        let data = model.config.data.build()?;
        let cfg = json!(header.config);
        (Rc::new(model), proj, json!({"checkpoint": path.display().to_string()}), cfg, data)
    } else if oracle_mode {
        if !oargs.blind && !oargs.conditional {
            return Err("say --blind or --conditional for the oracle sampler".into());
        }
        let (o, proj, blind, data) = oracle_from(&oargs, dev)?;
        let src = json!({"oracle": {"model": o.param, "blind": blind, "dim": o.dim, "data_points": oargs.data_points, "grid": oargs.grid, "projection_seed": proj.seed}});
        let mut cfg = json!({"model": o.param, "blind": blind, "dim": o.dim, "t_min": o.range.0, "t_max": o.range.1, "projection_seed": proj.seed});
        if !data.is_circles() {
            cfg["data"] = json!(data.spec);
        }
        (Rc::new(OracleField { oracle: o, blind }), proj, src, cfg, data)
    } else {
        return Err("give --checkpoint FILE or --oracle".into());
    };
    let start = Instant::now();
    let (samples, frames) = run_sampler(field.clone(), &config, &proj, dev, trajectory)?;
    let secs = start.elapsed().as_secs_f64();
    let m = metrics::compute_for(&samples, &proj, &data)?;
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
    let (o, proj, _, _) = oracle_from(&args, dev)?;
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
    // The data the samples are read against: the file's model config says (the circles if not).
    let data = match v["config"].get("data") {
        Some(d) => DataSpec::from_json(d).map_err(|e| format!("{}: {e}", path.display()))?.build()?,
        None => DataSet::circles(),
    };
    let m = metrics::compute_for(&vals, &proj, &data)?;
    eprintln!("{} samples, D={dim}: {}", m.n, summary_metrics(&m));
    emit(&json!(m), pretty);
    Ok(())
}

fn cmd_bench(dim: usize, batch: usize, steps: usize, n: usize, sample_steps: usize, pretty: bool) -> Res<()> {
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
        s.step();
        plane(&s);
        let t1 = Instant::now();
        while s.step().is_some() {}
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
fn cmd_bench_step(model: ModelConfig, batch: usize, steps: usize, n: usize, threads: usize, dev: &Device, pretty: bool) -> Res<()> {
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

fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("manifest.json")
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Res<()> {
    write_file(&manifest_path(dir), serde_json::to_string_pretty(manifest).unwrap().as_bytes())
}

/// The metrics of a checkpoint as shipped (its bytes, after the precision round trip), sampled
/// with the grid's evaluation run.
fn shipped_metrics(bytes: &[u8], proj: &Projection, eval: &SampleConfig, dev: &Device) -> Res<Metrics> {
    let (model, _) = checkpoint::load(bytes, dev, &checkpoint::Expected::any()).map_err(|e| e.to_string())?;
    let (samples, _) = run_sampler(Rc::new(model), eval, proj, dev, false)?;
    metrics::compute(&samples, proj)
}

pub(crate) fn read_manifest(dir: &Path) -> Res<Option<Manifest>> {
    let p = manifest_path(dir);
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    Manifest::parse(&text).map(Some)
}

#[allow(clippy::too_many_arguments)]
fn cmd_train_grid(out: PathBuf, models: Vec<Parameterization>, dims: Vec<usize>, steps: Option<usize>, width: Option<usize>, depth: Option<usize>, precision: Option<Precision>, force: bool, rescore: bool, dev: &Device, pretty: bool) -> Res<()> {
    let mut recipe = GridRecipe::default();
    if let Some(steps) = steps {
        // One step count for every D.
        recipe.steps = steps;
        recipe.long_steps = 0;
    }
    recipe.width = width.unwrap_or(recipe.width);
    recipe.depth = depth.unwrap_or(recipe.depth);
    recipe.precision = precision.unwrap_or(recipe.precision);
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let command = command_line();
    let mut manifest = match read_manifest(&out)? {
        // Entries whose config still matches the recipe are kept (and skipped below); the rest
        // are retrained. The manifest then records the recipe every entry follows.
        Some(mut m) => {
            m.recipe = recipe.clone();
            m
        }
        None => Manifest::new(command.clone(), recipe.clone()),
    };
    // A rescore measures the files the recorded command made: that command stays the record.
    if !rescore {
        manifest.command = command;
    }
    let eval = pretrained::eval_config();
    let total = models.len() * dims.len() * 2;
    let mut done = 0;
    let grid_start = Instant::now();
    for &model in &models {
        for &blind in &[false, true] {
            for &dim in &dims {
                done += 1;
                let file = pretrained::file_name(model, blind, dim);
                let path = out.join(&file);
                let config = recipe.train_config(model, blind, dim);
                let label = config.model.label();
                // The cell's entry, if its file is the one the recipe makes.
                let current = manifest.find(model, blind, dim).filter(|e| e.config == config && std::fs::metadata(&path).map(|m| m.len() as usize == e.bytes).unwrap_or(false)).cloned();
                if rescore {
                    match current {
                        Some(mut entry) => {
                            let bytes = std::fs::read(&path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
                            let proj = Projection::new(dim, config.model.projection_seed)?;
                            entry.metrics = shipped_metrics(&bytes, &proj, &eval, dev).map_err(|err| format!("{}: {err}", path.display()))?;
                            eprintln!("[{done}/{total}] {label}: rescored: {}", summary_metrics(&entry.metrics));
                            manifest.upsert(entry);
                            write_manifest(&out, &manifest)?;
                        }
                        None => eprintln!("[{done}/{total}] {label}: not up to date (no file, or another recipe); --rescore does not train, skipped"),
                    }
                    continue;
                }
                if current.is_some() && !force {
                    eprintln!("[{done}/{total}] {label}: up to date, skipped");
                    continue;
                }
                // A cell cut off part way (its copy saved about once a minute) goes on from there.
                let partial = out.join(format!("{file}.partial"));
                let start = Instant::now();
                let partial_info = partial.with_extension("partial.json");
                let (mut tr, train_secs_before) = match resume_partial(&partial, &partial_info, &config, dev) {
                    Some((tr, secs)) => {
                        eprintln!("[{done}/{total}] {label}: going on from step {} of {} ({})", tr.steps_done(), config.steps, partial.display());
                        (tr, secs)
                    }
                    None => {
                        eprintln!("[{done}/{total}] {label}: training {} steps", config.steps);
                        (Trainer::new(config.clone(), dev)?, 0.0)
                    }
                };
                let mut save = |tr: &Trainer| -> Res<()> {
                    let training = TrainingInfo { train: tr.config.clone(), steps_done: tr.steps_done(), final_loss: None };
                    let bytes = checkpoint::save(&tr.model(), Some(&training)).map_err(|e| e.to_string())?;
                    write_file(&partial, &bytes)?;
                    let info = PartialInfo { seconds: train_secs_before + start.elapsed().as_secs_f64() };
                    write_file(&partial_info, serde_json::to_string(&info).map_err(|e| e.to_string())?.as_bytes())
                };
                let (curve, diverged) = drive_saving(&mut tr, 500, &format!("  {label}"), &mut save)?;
                if let Some((k, loss)) = diverged {
                    return Err(format!("{label}: loss is {loss} at step {k}; grid stopped, earlier cells are kept"));
                }
                let last = curve.last().map(|(_, l)| *l);
                let secs = train_secs_before + start.elapsed().as_secs_f64();
                let info = TrainingInfo { train: tr.config.clone(), steps_done: tr.steps_done(), final_loss: last };
                let bytes = checkpoint::save_as(&tr.model(), Some(&info), recipe.precision).map_err(|e| e.to_string())?;
                write_file(&path, &bytes)?;
                let _ = std::fs::remove_file(&partial);
                let _ = std::fs::remove_file(&partial_info);
                let m = shipped_metrics(&bytes, tr.projection(), &eval, dev)?;
                eprintln!("  {label}: {}", summary_metrics(&m));
                manifest.upsert(Entry {
                    file,
                    model,
                    blind,
                    dim,
                    bytes: bytes.len(),
                    config,
                    steps: tr.steps_done(),
                    final_loss: last,
                    train_seconds: secs,
                    bounds: Bounds::from_metrics(&m),
                    metrics: m,
                });
                write_manifest(&out, &manifest)?;
            }
        }
    }
    let total_bytes: usize = manifest.entries.iter().map(|e| e.bytes).sum();
    eprintln!("grid: {} entries, {:.1} MB, {:.0}s this run", manifest.entries.len(), total_bytes as f64 / 1e6, grid_start.elapsed().as_secs_f64());
    emit(&json!({"out": out.display().to_string(), "entries": manifest.entries.len(), "bytes": total_bytes, "seconds": grid_start.elapsed().as_secs_f64()}), pretty);
    Ok(())
}

/// What a cell's copy in progress records beside its weights (whose metadata holds the run and
/// its steps): the seconds spent training it so far.
#[derive(serde::Serialize, serde::Deserialize)]
struct PartialInfo {
    seconds: f64,
}

/// The run a cell's copy in progress (`FILE.partial`) holds, if it is of this recipe's `config`;
/// with the seconds trained so far (from `info`). Anything else there is set aside with a message.
fn resume_partial(partial: &Path, info: &Path, config: &TrainConfig, dev: &Device) -> Option<(Trainer, f64)> {
    let bytes = std::fs::read(partial).ok()?;
    let info: Option<PartialInfo> = std::fs::read(info).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let found = checkpoint::load(&bytes, dev, &checkpoint::Expected::config(&config.model)).map_err(|e| e.to_string()).and_then(|(model, header)| {
        let done = header.training.filter(|t| t.train == TrainConfig { model: config.model.resolved(), ..config.clone() }).ok_or("it was saved by another recipe")?.steps_done;
        Trainer::resume(config.clone(), &model, done, dev)
    });
    match found {
        Ok(tr) => Some((tr, info.map(|i| i.seconds).unwrap_or(0.0))),
        Err(e) => {
            eprintln!("  {}: not resumed ({e}); training the cell from the start", partial.display());
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[allow(clippy::too_many_arguments)]
fn cmd_figure(out: Option<PathBuf>, oracle_mode: bool, dir: PathBuf, table: bool, models: Vec<Parameterization>, dims: Vec<usize>, scfg: SampleConfig, data: DataSet, data_points: usize, grid: usize, dev: &Device, pretty: bool) -> Res<()> {
    scfg.validate()?;
    let (n, steps, seed) = (scfg.n, scfg.steps, scfg.seed);
    if out.is_none() && !table {
        return Err("give --out FILE.png, --table, or both".into());
    }
    let manifest = if oracle_mode {
        None
    } else {
        Some(read_manifest(&dir)?.ok_or(format!("no manifest.json in {}; train the grid first (pretrained/train-all.sh) or use --oracle", dir.display()))?)
    };
    let mut rows = vec![];
    let mut slots = vec![];
    for &model in &models {
        for &blind in &[false, true] {
            let row = format!("{} {}", model.display_name(), if blind { "Blind" } else { "Cond" });
            rows.push(row.clone());
            for &dim in &dims {
                let proj = Projection::new(dim, manifest.as_ref().map(|m| m.recipe.projection_seed).unwrap_or(0))?;
                let field: Rc<dyn Field> = if oracle_mode {
                    let o = Oracle::for_data(model, model.default_range(), &proj, &data, data_points, grid, dev)?;
                    Rc::new(OracleField { oracle: o, blind })
                } else {
                    let m = manifest.as_ref().unwrap();
                    let Some(e) = m.find(model, blind, dim) else {
                        slots.push(figure::Slot::Missing("not in manifest".into()));
                        continue;
                    };
                    let bytes = match read_file(&dir.join(&e.file)) {
                        Ok(b) => b,
                        Err(err) => {
                            eprintln!("{row} D={dim}: {err}");
                            slots.push(figure::Slot::Missing("file missing".into()));
                            continue;
                        }
                    };
                    let (model, _) = checkpoint::load(&bytes, dev, &checkpoint::Expected::any()).map_err(|err| format!("{}: {err}", e.file))?;
                    Rc::new(model)
                };
                let (samples, _) = run_sampler(field, &scfg, &proj, dev, false)?;
                let m = metrics::compute_for(&samples, &proj, &data)?;
                eprintln!("{row} D={dim}: {}", summary_metrics(&m));
                let xy = read_f32(proj.project(host_tensor(samples, dim, &Device::flex())));
                slots.push(figure::Slot::Cell(figure::Cell { row: row.clone(), dim, xy, metrics: m }));
            }
        }
    }
    if let Some(path) = &out {
        let title = format!(
            "{}{}: {} samples, {} {} steps ({} grid), seed {} (same starting noise per column)",
            if oracle_mode { "Closed-form fields" } else { "Trained models" },
            if data.is_circles() { String::new() } else { format!(" on {}", data.spec.label()) },
            n,
            scfg.solver.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default(),
            steps,
            scfg.time_grid.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default(),
            seed
        );
        figure::draw(path, &title, &rows, &dims, &slots, &data)?;
        eprintln!("wrote {}", path.display());
    }
    if table {
        let of = if data.is_circles() { "a circle".to_string() } else { format!("the data ({})", data.spec.label()) };
        println!("clean fraction / radial error median / radial error p90 / off-manifold norm (mean) / diverged, {n} samples per cell (clean: within {:.3} of {of})\n", geonoise::metrics::CLEAN_TOLERANCE);
        print!("{}", figure::table(&rows, &dims, &slots));
    } else {
        let cells: Vec<Value> = slots
            .iter()
            .filter_map(|s| match s {
                figure::Slot::Cell(c) => Some(json!({"row": c.row, "dim": c.dim, "metrics": c.metrics})),
                figure::Slot::Missing(_) => None,
            })
            .collect();
        emit(&json!({"out": out.map(|p| p.display().to_string()), "oracle": oracle_mode, "rows": rows, "dims": dims, "cells": cells}), pretty);
    }
    Ok(())
}

fn run(cli: Cli) -> Res<()> {
    let pretty = cli.pretty;
    let dev = || device(cli.device);
    match cli.command {
        Command::Train { config, data, conditional, out, log_every, eval_samples } => cmd_train(config, data, conditional, out, log_every, eval_samples, &dev()?, pretty),
        Command::Sample { checkpoint, oracle, oracle_args, config, trajectory, out } => {
            cmd_sample(checkpoint, oracle, oracle_args, config, trajectory, out, &dev()?, pretty)
        }
        Command::Oracle { oracle_args, points } => cmd_oracle(oracle_args, points, &dev()?, pretty),
        Command::Metrics { samples } => cmd_metrics(samples, pretty),
        Command::TrainGrid { out, models, dims, steps, width, depth, precision, force, rescore } => {
            cmd_train_grid(out, models, dims, steps, width, depth, precision, force, rescore, &dev()?, pretty)
        }
        Command::Figure { out, oracle, pretrained, table, models, dims, n, steps, solver, time_grid, seed, data, data_points, grid } => {
            let scfg = SampleConfig { n, steps, solver, time_grid, seed, ..Default::default() };
            if data.given() && !oracle {
                return Err("--data is for --oracle: the shipped checkpoints are trained on the circles".into());
            }
            cmd_figure(out, oracle, pretrained, table, models, dims, scfg, data.spec()?.build()?, data_points, grid, &dev()?, pretty)
        }
        Command::Images { command } => images::run(command, &dev()?, pretty),
        Command::Regimes(args) => regimes::run(args, &dev()?, pretty),
        Command::Bench { dim, batch, steps, n, sample_steps } => cmd_bench(dim, batch, steps, n, sample_steps, pretty),
        Command::BenchStep { dim, width, depth, batch, steps, n, threads } => cmd_bench_step(ModelConfig { width, depth, ..ModelConfig::new(Parameterization::Fm, false, dim) }, batch, steps, n, threads, &dev()?, pretty),
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_arg_reads_a_shape_or_a_file_of_points_and_names_what_it_wanted() {
        let arg = |v: &str| DataArg { data: Some(v.to_string()) }.spec();
        assert_eq!(DataArg::default().spec().unwrap(), DataSpec::default());
        assert_eq!(arg("spiral").unwrap(), DataSpec::Shape { name: Shape::Spiral });
        let dir = std::env::temp_dir().join(format!("geonoise-data-arg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        // The page's export, a bare list, and a samples file's config all read.
        let want = DataSpec::Points { points: vec![[0.0, 1.0], [2.0, 3.0]] };
        assert_eq!(arg(&file("a.json", r#"{"points": [[0, 1], [2, 3]]}"#)).unwrap(), want);
        assert_eq!(arg(&file("b.json", "[[0, 1], [2, 3]]")).unwrap(), want);
        assert_eq!(arg(&file("c.json", r#"{"config": {"data": {"kind": "points", "points": [[0, 1], [2, 3]]}}, "samples": []}"#)).unwrap(), want);
        assert!(arg(&file("g.json", r#"{"samples": []}"#)).unwrap_err().contains("a data set is {\"points\": [[x, y], …]}"));
        assert!(arg(&file("d.json", r#"{"points": [[0, 1]]}"#)).unwrap_err().contains("at least 2 points"));
        assert!(arg(&file("e.json", r#"{"points": [[0, 1], [2]]}"#)).unwrap_err().contains("data point 1"));
        assert!(arg(&file("f.json", "not json")).unwrap_err().contains("not valid JSON"));
        assert!(arg("moons").unwrap_err().contains("neither a shape (circles, three-rings, spiral"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
