//! `geonoise images …`: the paper's image experiment (Sec. 7.1) — train the U-Nets and the
//! classifier that scores them, sample grids from the same starting noise, and the metric table.

use crate::io::{emit, read_file, Res};
use burn::module::Module;
use burn::tensor::Device;
use clap::Subcommand;
use geonoise::checkpoint::Precision;
use geonoise::image::classifier::{self, Classifier, ClassifierConfig};
use geonoise::image::denoise;
use geonoise::image::idx::{read_split, to_pixel, DataName, Split};
use geonoise::image::metrics::{self, ImageIntervals, ImageMetrics, Reference};
use geonoise::image::store::{self, Loaded};
use geonoise::image::train::{ImageTrainConfig, ImageTrainer, ImageTrainingInfo};
use geonoise::image::unet::{ImageModel, UNet, UNetConfig};
use geonoise::interval::{Interval, JACKKNIFE_GROUPS, RESAMPLES};
use geonoise::sample::{read_f32, SampleConfig, Sampler, Solver};
use geonoise::target::TimeGrid;
use plotters::prelude::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Train a U-Net (FM or DDPM, blind or conditional) and save its EMA weights. The run keeps
    /// its whole state (raw and EMA weights, Adam's moments, the batch stream) in --state and,
    /// started again, resumes from it exactly: the same weights as a run that never stopped.
    Train {
        #[command(flatten)]
        config: ImageTrainConfig,
        /// Where the EMA weights go (.safetensors).
        #[arg(long)]
        out: PathBuf,
        /// The run's state file (default: the output's name with `.state`). A folder
        /// holds it as `run.state.safetensors`; an older state folder of raw and EMA weights alone
        /// is gone on from as a continuation.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Save the state every this many steps.
        #[arg(long, default_value_t = 250)]
        save_every: usize,
        /// Read the loss back every this many steps.
        #[arg(long, default_value_t = 25)]
        log_every: usize,
        /// Stop (saving the state) after this many seconds; run again to go on.
        #[arg(long)]
        max_seconds: Option<f64>,
        /// Folder of the data set's IDX files (default: where ./build.sh data installs it).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Precision::F16)]
        precision: Precision,
    },
    /// Train the classifier whose features and confidence score the samples.
    Classifier {
        #[arg(long, value_enum, default_value_t = DataName::FashionMnist)]
        data: DataName,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 3000)]
        steps: usize,
        #[arg(long, default_value_t = 128)]
        batch: usize,
        #[arg(long, default_value_t = 2e-3)]
        lr: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Sample a checkpoint: a grid PNG and/or the samples (.npy, or JSON for any other name).
    Sample {
        #[arg(long)]
        checkpoint: PathBuf,
        #[command(flatten)]
        config: SampleConfig,
        #[arg(long)]
        png: Option<PathBuf>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The paper's Figs. 2-4: one grid per model from the same starting noise (the same cell
    /// holds the same noise in every grid), side by side in one PNG.
    Figure {
        #[arg(long, default_value = "pretrained/images")]
        dir: PathBuf,
        /// Checkpoints in the folder, by name (without .safetensors).
        #[arg(long, value_delimiter = ',', default_value = "fm-blind,ddpm-blind,fm-cond,ddpm-cond")]
        models: Vec<String>,
        #[arg(long, default_value_t = 64)]
        n: usize,
        #[arg(long, default_value_t = 100)]
        steps: usize,
        #[arg(long = "sampler", value_enum, default_value_t = Solver::Euler)]
        solver: Solver,
        #[arg(long, value_enum, default_value_t = TimeGrid::Default)]
        time_grid: TimeGrid,
        /// Clip the clean estimate to [-C, C] at every step.
        #[arg(long, value_name = "C")]
        clip: Option<f64>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// The metric table: for each model, samples scored against the real test images.
    Table {
        #[arg(long, default_value = "pretrained/images")]
        dir: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "fm-blind,ddpm-blind,fm-cond,ddpm-cond")]
        models: Vec<String>,
        /// Samples per model.
        #[arg(long, default_value_t = 1000)]
        n: usize,
        /// Step counts, comma separated: one block of rows each.
        #[arg(long, value_delimiter = ',', default_value = "100")]
        steps: Vec<usize>,
        /// Samplers, comma separated: one block of rows each.
        #[arg(long = "sampler", value_enum, value_delimiter = ',', default_value = "euler")]
        solvers: Vec<Solver>,
        /// Time grids, comma separated: one block of rows each.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "default")]
        time_grid: Vec<TimeGrid>,
        /// Clipping of the clean estimate at every step, comma separated: `off` or a bound C
        /// (`1`: the images' range); one block of rows each.
        #[arg(long, value_delimiter = ',', default_value = "off", value_parser = parse_clip)]
        clip: Vec<Clip>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The classifier (default: DIR/classifier.safetensors).
        #[arg(long)]
        classifier: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print the table as Markdown (the JSON still goes to --json).
        #[arg(long)]
        markdown: bool,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// How well each model's clean estimate recovers held-out test images at matched
    /// signal-to-noise ratios: the per-pixel squared error of xhat, level by level.
    Denoise {
        #[arg(long, default_value = "pretrained/images")]
        dir: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "fm-blind,ddpm-blind,fm-cond,ddpm-cond")]
        models: Vec<String>,
        /// Test images (the first N of the test split).
        #[arg(long, default_value_t = 500)]
        n: usize,
        /// Log signal-to-noise ratios ln(a^2/b^2), comma separated.
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true, default_value = "-8,-6,-4,-2,0,2,4,6,8")]
        log_snr: Vec<f64>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The data set the models were trained on.
        #[arg(long, value_enum, default_value_t = DataName::FashionMnist)]
        data: DataName,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print a Markdown table (rows: levels; columns: models).
        #[arg(long)]
        markdown: bool,
    },
    /// Scores of a samples file (.npy or the JSON of `images sample`).
    Metrics {
        #[arg(long)]
        samples: PathBuf,
        #[arg(long, default_value = "pretrained/images/classifier.safetensors")]
        classifier: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Writes DIR/manifest.json: every U-Net and the classifier in the folder with its size,
    /// config and training record (the tests check the files against it).
    Manifest {
        #[arg(long, default_value = "pretrained/images")]
        dir: PathBuf,
        /// The command that regenerates the folder, recorded in the manifest.
        #[arg(long, default_value = "./build.sh images")]
        command: String,
    },
    /// Milliseconds per training step and per sampling step of a U-Net size on this machine.
    Bench {
        #[command(flatten)]
        net: UNetConfig,
        #[arg(long, default_value_t = 128)]
        batch: usize,
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Images per sampling step.
        #[arg(long, default_value_t = 64)]
        n: usize,
    },
}

pub fn run(command: ImagesCommand, dev: &Device, pretty: bool) -> Res<()> {
    match command {
        ImagesCommand::Train { config, out, state, save_every, log_every, max_seconds, data_dir, precision } => {
            let state = state.unwrap_or_else(|| out.with_extension("state"));
            cmd_train(config, &out, &state, save_every, log_every, max_seconds, data_dir, precision, dev, pretty)
        }
        ImagesCommand::Classifier { data, data_dir, out, steps, batch, lr, seed } => cmd_classifier(data, data_dir, &out, steps, batch, lr, seed, dev, pretty),
        ImagesCommand::Sample { checkpoint, config, png, out } => cmd_sample(&checkpoint, config, png, out, dev, pretty),
        ImagesCommand::Figure { dir, models, n, steps, solver, time_grid, clip, seed, out } => {
            cmd_figure(&dir, &models, SampleConfig { n, steps, solver, seed, time_grid, clip, ..Default::default() }, &out, dev, pretty)
        }
        ImagesCommand::Table { dir, models, n, steps, solvers, time_grid, clip, seed, classifier, data_dir, markdown, json } => {
            let classifier = classifier.unwrap_or_else(|| dir.join("classifier.safetensors"));
            let mut runs = vec![];
            for &c in &clip {
                for &grid in &time_grid {
                    for &solver in &solvers {
                        for &k in &steps {
                            runs.push(SampleConfig { n, steps: k, solver, seed, time_grid: grid, clip: c.0, ..Default::default() });
                        }
                    }
                }
            }
            cmd_table(&dir, &models, &runs, &classifier, data_dir, markdown, json, dev, pretty)
        }
        ImagesCommand::Denoise { dir, models, n, log_snr, seed, data, data_dir, markdown } => cmd_denoise(&dir, &models, n, &log_snr, seed, data, data_dir, markdown, dev, pretty),
        ImagesCommand::Metrics { samples, classifier, data_dir } => cmd_metrics(&samples, &classifier, data_dir, dev, pretty),
        ImagesCommand::Manifest { dir, command } => cmd_manifest(&dir, &command, dev, pretty),
        ImagesCommand::Bench { net, batch, steps, n } => cmd_bench(net, batch, steps, n, pretty),
    }
}

/// A clip setting on the command line: `off` or a bound.
#[derive(Clone, Copy, Debug)]
pub struct Clip(Option<f64>);

fn parse_clip(s: &str) -> Result<Clip, String> {
    match s {
        "off" | "none" => Ok(Clip(None)),
        _ => match s.parse::<f64>() {
            Ok(c) if c.is_finite() && c > 0.0 => Ok(Clip(Some(c))),
            _ => Err(format!("'{s}' is neither 'off' nor a bound > 0")),
        },
    }
}

/// How a row of the table was sampled: `ddim 100`, with the time grid and the clip where set.
fn sampler_label(cfg: &SampleConfig) -> String {
    let mut s = format!("{:?} {}", cfg.solver, cfg.steps).to_lowercase();
    if cfg.time_grid != TimeGrid::Default {
        s += &format!(", {}", serde_json::to_value(cfg.time_grid).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default());
    }
    if let Some(c) = cfg.clip {
        s += &format!(", clip {c}");
    }
    s
}

fn split(data: DataName, dir: Option<PathBuf>, which: &str) -> Res<Split> {
    read_split(&dir.unwrap_or_else(|| data.default_dir()), which)
}

/// An image model's EMA weights from a checkpoint.
pub fn load_model(path: &Path, dev: &Device) -> Res<(ImageModel, Option<Value>)> {
    let bytes = read_file(&path.to_path_buf())?;
    let Loaded { net, config, training } = store::load::<UNet>(&bytes, dev).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((ImageModel { config: config.resolved(), net }, training))
}

fn load_classifier(path: &Path, dev: &Device) -> Res<(Classifier, ClassifierConfig)> {
    let bytes = read_file(&path.to_path_buf())?;
    let Loaded { net, config, .. } = store::load::<Classifier>(&bytes, dev).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((net, config))
}

fn save(path: &Path, bytes: &[u8]) -> Res<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    // Written beside and renamed over, so a kill at any moment leaves the old file or the new one.
    geonoise::resume::write_atomic(path, bytes)
}

fn info_json(config: &ImageTrainConfig, steps_done: usize, loss: Option<f32>, seconds: f64) -> Value {
    json!(ImageTrainingInfo { train: config.clone(), steps_done, final_loss: loss, seconds })
}

#[allow(clippy::too_many_arguments)]
fn cmd_train(config: ImageTrainConfig, out: &Path, state: &Path, save_every: usize, log_every: usize, max_seconds: Option<f64>, data_dir: Option<PathBuf>, precision: Precision, dev: &Device, pretty: bool) -> Res<()> {
    config.validate()?;
    let train = split(config.data, data_dir, "train")?;
    let label = config.net.label();
    let file = if state.is_dir() { state.join("run.state.safetensors") } else { state.to_path_buf() };
    let (raw_path, ema_path) = (state.join("raw.safetensors"), state.join("ema.safetensors"));
    let (mut tr, mut seconds) = if file.exists() {
        let bytes = read_file(&file)?;
        let (tr, extra) = ImageTrainer::resume_state(config.clone(), &bytes, &train.images, dev).map_err(|e| format!("{}: {e}; give another --state, or remove it to start afresh", file.display()))?;
        let seconds = extra["seconds"].as_f64().unwrap_or(0.0);
        eprintln!("{label}: resuming exactly from step {} of {} ({seconds:.0} s of training so far)", tr.steps_done(), file.display());
        (tr, seconds)
    } else if raw_path.exists() {
        // A state folder of an older geonoise: raw and EMA weights alone.
        let (raw, info) = load_model(&raw_path, dev)?;
        let (ema, _) = load_model(&ema_path, dev)?;
        let info: ImageTrainingInfo = serde_json::from_value(info.ok_or(format!("{}: no training record", raw_path.display()))?).map_err(|e| format!("{}: training record: {e}", raw_path.display()))?;
        let want = ImageTrainConfig { net: config.net.resolved(), ..config.clone() };
        if info.train != want {
            return Err(format!(
                "{} holds a run of another config ({}); give another --state, or remove it to start afresh",
                state.display(),
                serde_json::to_string(&info.train).unwrap_or_default()
            ));
        }
        eprintln!("{label}: {} is an older state (weights alone): going on from step {} with fresh Adam moments and a batch stream of its own, a continuation; from now on the state is whole, in {}", state.display(), info.steps_done, file.display());
        (ImageTrainer::resume(config.clone(), raw.net, ema.net, info.steps_done, &train.images, dev)?, info.seconds)
    } else {
        (ImageTrainer::new(config.clone(), &train.images, dev)?, 0.0)
    };
    let params = tr.ema_model().num_params();
    eprintln!("{label}: {params} parameters, {} training images, batch {}, {} steps", train.images.n, config.batch, config.steps);
    let save_state = |tr: &ImageTrainer, seconds: f64, loss: Option<f32>| -> Res<()> { save(&file, &tr.save_state(json!({"seconds": seconds, "loss": loss}))?) };
    let start = Instant::now();
    let first = tr.steps_done();
    let mut loss = None;
    let mut curve = vec![];
    while !tr.finished() {
        tr.step();
        let k = tr.steps_done();
        if k % log_every.max(1) == 0 || tr.finished() {
            let l = tr.loss().unwrap_or(f32::NAN);
            if !l.is_finite() {
                return Err(format!("{label}: the loss became {l} at step {k}; the state of the last save is kept in {}", file.display()));
            }
            loss = Some(l);
            curve.push((k, l));
            let rate = (k - first) as f64 / start.elapsed().as_secs_f64().max(1e-9);
            eprint!("\r{label}: step {k}/{}  loss {l:.4}  {rate:.2} steps/s  eta {:.0} min   ", config.steps, (config.steps - k) as f64 / rate.max(1e-9) / 60.0);
        }
        let out_of_time = max_seconds.is_some_and(|m| start.elapsed().as_secs_f64() >= m);
        if k % save_every.max(1) == 0 || tr.finished() || out_of_time {
            save_state(&tr, seconds + start.elapsed().as_secs_f64(), loss)?;
        }
        if out_of_time && !tr.finished() {
            eprintln!("\n{label}: stopped at step {k} after --max-seconds; the state is in {}; run the same command to go on", file.display());
            emit(&json!({"label": label, "steps_done": k, "finished": false, "state": file.display().to_string(), "loss": loss}), pretty);
            return Ok(());
        }
    }
    eprintln!();
    seconds += start.elapsed().as_secs_f64();
    let info = info_json(&tr.config, tr.steps_done(), loss, seconds);
    let bytes = store::save(&tr.ema_model().net, &tr.config.net, Some(&info), precision).map_err(|e| e.to_string())?;
    save(out, &bytes)?;
    let steps_per_s = (tr.steps_done() - first) as f64 / start.elapsed().as_secs_f64().max(1e-9);
    eprintln!("{label}: {} steps, loss {:.4}, {seconds:.0} s in all; EMA weights in {}", tr.steps_done(), loss.unwrap_or(f32::NAN), out.display());
    emit(&json!({"label": label, "out": out.display().to_string(), "params": params, "steps_done": tr.steps_done(), "finished": true, "loss": loss, "seconds": seconds, "steps_per_second_this_session": steps_per_s, "loss_curve": curve}), pretty);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn cmd_classifier(data: DataName, data_dir: Option<PathBuf>, out: &Path, steps: usize, batch: usize, lr: f64, seed: u64, dev: &Device, pretty: bool) -> Res<()> {
    let train = split(data, data_dir.clone(), "train")?;
    let test = split(data, data_dir, "t10k")?;
    let cfg = ClassifierConfig::new(data);
    let start = Instant::now();
    let net = classifier::train(&cfg, &train, steps, batch, lr, seed, dev, |k, l| eprint!("\rclassifier: step {k}/{steps}  loss {l:.4}   "))?;
    eprintln!();
    let secs = start.elapsed().as_secs_f64();
    let acc = classifier::accuracy(&net, &test, dev);
    let training = json!({"steps": steps, "batch": batch, "lr": lr, "seed": seed, "seconds": secs, "test_accuracy": acc});
    let bytes = store::save(&net, &cfg, Some(&training), Precision::F16).map_err(|e| e.to_string())?;
    save(out, &bytes)?;
    eprintln!("classifier ({}): test accuracy {:.2}% after {steps} steps ({secs:.0} s); saved to {}", data.name(), 100.0 * acc, out.display());
    emit(&json!({"out": out.display().to_string(), "config": cfg, "training": training}), pretty);
    Ok(())
}

fn sample(model: &ImageModel, cfg: &SampleConfig, dev: &Device) -> Res<Vec<f32>> {
    let field = Rc::new(model.clone());
    Ok(read_f32(Sampler::unprojected(field, cfg.clone(), dev)?.run()))
}

/// `n` images of `side` (rows on the models' scale) as a gray grid: `(width, height, pixels)`.
fn grid(rows: &[f32], side: usize, cols: usize) -> (usize, usize, Vec<u8>) {
    let n = rows.len() / (side * side);
    let r = n.div_ceil(cols);
    let (w, h) = (cols * (side + 2) + 2, r * (side + 2) + 2);
    let mut px = vec![255u8; w * h];
    for (i, img) in rows.chunks(side * side).enumerate() {
        let (gy, gx) = (i / cols, i % cols);
        for y in 0..side {
            for x in 0..side {
                px[(2 + gy * (side + 2) + y) * w + 2 + gx * (side + 2) + x] = to_pixel(img[y * side + x]);
            }
        }
    }
    (w, h, px)
}

/// Grids side by side with a title each, scaled up `zoom` times, as one PNG.
fn draw_grids(out: &Path, title: &str, panels: &[(String, Vec<f32>)], side: usize, zoom: usize) -> Res<()> {
    let _ = plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT);
    let n = panels.first().map(|p| p.1.len() / (side * side)).unwrap_or(0);
    let cols = (n as f64).sqrt().ceil().max(1.0) as usize;
    let grids: Vec<_> = panels.iter().map(|(_, rows)| grid(rows, side, cols)).collect();
    let (gw, gh) = grids.first().map(|g| (g.0 * zoom, g.1 * zoom)).unwrap_or((0, 0));
    let (top, gap) = (70usize, 20usize);
    let width = panels.len() * (gw + gap) + gap;
    let height = top + gh + gap;
    let e = |x: &dyn std::fmt::Display| format!("drawing {}: {x}", out.display());
    let root = BitMapBackend::new(out, (width as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    root.draw(&Text::new(title.to_string(), (gap as i32, 10), ("sans-serif", 20).into_font())).map_err(|x| e(&x))?;
    for (p, ((name, _), (w, h, px))) in panels.iter().zip(&grids).enumerate() {
        let x0 = gap + p * (gw + gap);
        root.draw(&Text::new(name.clone(), (x0 as i32, 40), ("sans-serif", 18).into_font())).map_err(|x| e(&x))?;
        for y in 0..h * zoom {
            for x in 0..w * zoom {
                let v = px[(y / zoom) * w + x / zoom];
                root.draw_pixel(((x0 + x) as i32, (top + y) as i32), &RGBColor(v, v, v)).map_err(|x| e(&x))?;
            }
        }
    }
    root.present().map_err(|x| e(&x))
}

/// `samples` as `.npy` (float32, [n, side, side]) or JSON `{side, samples}`.
fn write_samples(path: &Path, rows: &[f32], side: usize, meta: Value) -> Res<()> {
    let n = rows.len() / (side * side);
    if path.extension().is_some_and(|e| e == "npy") {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {side}, {side}), }}");
        let mut h = header.into_bytes();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((h.len() as u16).to_le_bytes());
        bytes.extend(h);
        rows.iter().for_each(|v| bytes.extend(v.to_le_bytes()));
        save(path, &bytes)
    } else {
        let mut v = meta;
        v["side"] = json!(side);
        v["samples"] = json!(rows.chunks(side * side).map(|r| r.to_vec()).collect::<Vec<_>>());
        save(path, v.to_string().as_bytes())
    }
}

/// Reads what `write_samples` writes (and any C-order little-endian float32 .npy of [n, s, s]
/// or [n, s*s]): `(rows, side)`.
pub fn read_samples(path: &Path) -> Res<(Vec<f32>, usize)> {
    let bytes = read_file(&path.to_path_buf())?;
    let bad = |why: &str| format!("{}: {why}", path.display());
    if bytes.starts_with(b"\x93NUMPY") {
        if bytes.len() < 10 {
            return Err(bad("truncated .npy header"));
        }
        let (hl, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
            _ => return Err(bad("unknown .npy version")),
        };
        let header = std::str::from_utf8(bytes.get(start..start + hl).ok_or_else(|| bad("truncated .npy header"))?).map_err(|_| bad("unreadable .npy header"))?;
        if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
            return Err(bad("expected little-endian float32 in C order ('<f4')"));
        }
        let shape: Vec<usize> = header
            .split("'shape':")
            .nth(1)
            .and_then(|s| s.split(['(', ')']).nth(1))
            .ok_or_else(|| bad("no shape in the .npy header"))?
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse::<usize>().map_err(|_| bad("unreadable shape")))
            .collect::<Res<_>>()?;
        let side = match shape.as_slice() {
            [_, a, b] if a == b => *a,
            [_, d] if (*d as f64).sqrt().fract() == 0.0 => (*d as f64).sqrt() as usize,
            _ => return Err(bad(&format!("shape {shape:?} is not [n, side, side] or [n, side * side]"))),
        };
        let data = &bytes[start + hl..];
        let want = shape.iter().product::<usize>() * 4;
        if data.len() != want {
            return Err(bad(&format!("the header promises {want} bytes of data, the file holds {}", data.len())));
        }
        Ok((data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(), side))
    } else {
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| bad(&format!("not JSON or .npy: {e}")))?;
        let side = v["side"].as_u64().ok_or_else(|| bad("no \"side\""))? as usize;
        let rows = v["samples"].as_array().ok_or_else(|| bad("no \"samples\" array"))?;
        let mut out = Vec::with_capacity(rows.len() * side * side);
        for (i, r) in rows.iter().enumerate() {
            let r = r.as_array().filter(|r| r.len() == side * side).ok_or_else(|| bad(&format!("sample {i} is not {} numbers", side * side)))?;
            out.extend(r.iter().map(|x| x.as_f64().map(|x| x as f32).unwrap_or(f32::NAN)));
        }
        Ok((out, side))
    }
}

fn cmd_sample(checkpoint: &Path, config: SampleConfig, png: Option<PathBuf>, out: Option<PathBuf>, dev: &Device, pretty: bool) -> Res<()> {
    let (model, _) = load_model(checkpoint, dev)?;
    let start = Instant::now();
    let rows = sample(&model, &config, dev)?;
    let secs = start.elapsed().as_secs_f64();
    let side = model.config.side;
    let label = display(&model.config);
    eprintln!("{label}: {} images x {} steps in {secs:.1} s", config.n, config.steps);
    if let Some(p) = &png {
        draw_grids(p, &format!("{label}, {:?} {} steps, seed {}", config.solver, config.steps, config.seed), &[(label.clone(), rows.clone())], side, 3)?;
    }
    if let Some(p) = &out {
        write_samples(p, &rows, side, json!({"checkpoint": checkpoint.display().to_string(), "config": model.config, "sample": config}))?;
    }
    emit(&json!({"checkpoint": checkpoint.display().to_string(), "config": model.config, "sample": config, "seconds": secs, "png": png, "out": out}), pretty);
    Ok(())
}

/// "FM Blind", "DDPM Cond", …
fn display(c: &UNetConfig) -> String {
    format!("{} {}", c.model.display_name(), if c.blind { "Blind" } else { "Cond" })
}

/// [`display`], with the loss weighting where the training record names one other than the
/// paper's (`DDPM Cond, truncated-SNR loss`, `DDPM Cond, min-SNR-5 loss`).
fn model_label(c: &UNetConfig, training: Option<&Value>) -> String {
    match training.and_then(|t| t["train"]["weighting"].as_str()) {
        Some("min-snr") => format!("{}, min-SNR-{} loss", display(c), geonoise::image::train::MIN_SNR_GAMMA),
        Some(w) if w != "uniform" => format!("{}, {w}-SNR loss", display(c)),
        _ => display(c),
    }
}

fn cmd_figure(dir: &Path, models: &[String], cfg: SampleConfig, out: &Path, dev: &Device, pretty: bool) -> Res<()> {
    cfg.validate()?;
    let n = cfg.n;
    let mut panels = vec![];
    let mut side = 0;
    for name in models {
        let (model, training) = load_model(&dir.join(format!("{name}.safetensors")), dev)?;
        let label = model_label(&model.config, training.as_ref());
        let start = Instant::now();
        let rows = sample(&model, &cfg, dev)?;
        eprintln!("{label}: {n} images in {:.1} s", start.elapsed().as_secs_f64());
        side = model.config.side;
        panels.push((label, rows));
    }
    let title = format!("Same starting noise in the same cell; {}, seed {}", sampler_label(&cfg), cfg.seed);
    draw_grids(out, &title, &panels, side, 3)?;
    emit(&json!({"out": out.display().to_string(), "models": models, "sample": cfg}), pretty);
    Ok(())
}

/// The real test images' reference statistics under `net`.
fn real_reference(net: &Classifier, cfg: &ClassifierConfig, data_dir: Option<PathBuf>, dev: &Device) -> Res<Reference> {
    let test = split(cfg.data, data_dir, "t10k")?;
    Ok(metrics::reference(net, cfg.side, &test.images.unit_rows(test.images.n), dev))
}

fn metrics_row(name: &str, sampler: &str, m: &ImageMetrics) -> String {
    let ci = |f: fn(&ImageIntervals) -> Interval, digits: usize, k: f64| m.intervals.as_ref().map(|i| format!(" {}", f(i).scaled(k).show(digits))).unwrap_or_default();
    format!(
        "| {name} | {sampler} | {:.1}{} | {:.1}%{} | {:.2}{} | {:.1}% |",
        m.frechet,
        ci(|i| i.frechet, 1, 1.0),
        100.0 * m.confident_share,
        ci(|i| i.confident_share, 1, 100.0),
        m.laplacian_ratio,
        ci(|i| i.laplacian_ratio, 2, 1.0),
        100.0 * m.diverged as f64 / m.n.max(1) as f64
    )
}

#[allow(clippy::too_many_arguments)]
fn cmd_table(dir: &Path, models: &[String], runs: &[SampleConfig], classifier_path: &Path, data_dir: Option<PathBuf>, markdown: bool, json_out: Option<PathBuf>, dev: &Device, pretty: bool) -> Res<()> {
    for cfg in runs {
        cfg.validate()?;
    }
    let n = runs.first().map(|c| c.n).unwrap_or(0);
    let (net, ccfg) = load_classifier(classifier_path, dev)?;
    let real = real_reference(&net, &ccfg, data_dir.clone(), dev)?;
    // Held-out real images scored like samples: the floor of every column.
    let train = split(ccfg.data, data_dir, "train")?;
    let real_rows = train.images.unit_rows(n.min(train.images.n));
    let floor = metrics::score(&net, &real, ccfg.side, &real_rows, dev)?;
    let mut lines = vec![
        "| model | sampler | Fréchet distance (classifier features) | confident share | residual noise (Laplacian energy / real) | diverged |".to_string(),
        "|---|---|---|---|---|---|".to_string(),
        metrics_row(&format!("real training images ({})", real_rows.len() / (ccfg.side * ccfg.side)), "—", &floor),
    ];
    let mut results = vec![json!({"model": "real", "metrics": floor})];
    let mut models_loaded = vec![];
    for name in models {
        let path = dir.join(format!("{name}.safetensors"));
        models_loaded.push((name, load_model(&path, dev)?));
    }
    for cfg in runs {
        for (name, (model, training)) in &models_loaded {
            let start = Instant::now();
            let rows = sample(model, cfg, dev)?;
            let secs = start.elapsed().as_secs_f64();
            let m = metrics::score(&net, &real, model.config.side, &rows, dev)?;
            let sampler = sampler_label(cfg);
            let label = model_label(&model.config, training.as_ref());
            eprintln!("{label} ({sampler}): FD {:.2}, confident {:.1}%, residual noise {:.2}x ({secs:.0} s)", m.frechet, 100.0 * m.confident_share, m.laplacian_ratio);
            lines.push(metrics_row(&label, &sampler, &m));
            results.push(json!({"model": name, "config": model.config, "sample": cfg, "seconds": secs, "metrics": m, "training": training}));
        }
    }
    lines.push(String::new());
    lines.push(format!(
        "{n} samples a row, seed {}. In brackets: 95 % intervals over the samples drawn (Fréchet distance: delete-a-group jackknife, {JACKKNIFE_GROUPS} groups; residual noise: percentile bootstrap, {RESAMPLES} resamples; confident share: Wilson). They do not cover a retrained model.",
        runs.first().map(|c| c.seed).unwrap_or(0)
    ));
    let table = lines.join("\n");
    let all = json!({"classifier": classifier_path.display().to_string(), "real_test_images": real.n, "real_laplacian_energy": real.laplacian_energy, "real_confident_share": real.confident_share, "rows": results, "markdown": table});
    if let Some(p) = &json_out {
        save(p, serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?.as_bytes())?;
    }
    if markdown {
        println!("{table}");
    } else {
        emit(&all, pretty);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn cmd_denoise(dir: &Path, models: &[String], n: usize, levels: &[f64], seed: u64, data: DataName, data_dir: Option<PathBuf>, markdown: bool, dev: &Device, pretty: bool) -> Res<()> {
    if n == 0 || levels.is_empty() || levels.iter().any(|l| !l.is_finite()) {
        return Err("need at least one test image and finite log-SNR levels".into());
    }
    let test = split(data, data_dir, "t10k")?;
    let images = test.images.unit_rows(n.min(test.images.n));
    let count = images.len() / test.images.dim().max(1);
    let mut results = vec![];
    for name in models {
        let (model, training) = load_model(&dir.join(format!("{name}.safetensors")), dev)?;
        let label = model_label(&model.config, training.as_ref());
        if model.config.dim() != test.images.dim() {
            return Err(format!("{name}: a model of {0} x {0} images, the data set's are {1} x {1}", model.config.side, test.images.rows));
        }
        let start = Instant::now();
        let rows = denoise::denoising_error(&model, &images, levels, seed, dev)?;
        eprintln!("{label}: {} levels in {:.1} s", rows.len(), start.elapsed().as_secs_f64());
        results.push((name.clone(), label, rows));
    }
    if markdown {
        let mut lines = vec![format!("| log-SNR | {} |", results.iter().map(|r| r.1.clone()).collect::<Vec<_>>().join(" | ")), format!("|---|{}", "---|".repeat(results.len()))];
        for &l in levels {
            let cells: Vec<String> =
                results.iter().map(|(_, _, rows)| rows.iter().find(|r| r.log_snr == l).map(|r| format!("{:.4} {}", r.mse, r.interval.show(4))).unwrap_or_else(|| "—".into())).collect();
            lines.push(format!("| {l} | {} |", cells.join(" | ")));
        }
        println!("{}", lines.join("\n"));
    } else {
        let rows: Vec<Value> = results.iter().map(|(name, label, rows)| json!({"model": name, "label": label, "levels": rows})).collect();
        emit(&json!({"test_images": count, "seed": seed, "models": rows}), pretty);
    }
    Ok(())
}

fn cmd_metrics(samples: &Path, classifier_path: &Path, data_dir: Option<PathBuf>, dev: &Device, pretty: bool) -> Res<()> {
    let (rows, side) = read_samples(samples)?;
    let (net, ccfg) = load_classifier(classifier_path, dev)?;
    if side != ccfg.side {
        return Err(format!("{}: images of {side} x {side}, the classifier is for {} x {}", samples.display(), ccfg.side, ccfg.side));
    }
    let real = real_reference(&net, &ccfg, data_dir, dev)?;
    let m = metrics::score(&net, &real, side, &rows, dev)?;
    eprintln!("{}: {} samples; FD {:.2}, confident {:.1}%, residual noise {:.2}x real, diverged {}", samples.display(), m.n, m.frechet, 100.0 * m.confident_share, m.laplacian_ratio, m.diverged);
    emit(&json!({"samples": samples.display().to_string(), "metrics": m}), pretty);
    Ok(())
}

fn cmd_bench(net: UNetConfig, batch: usize, steps: usize, n: usize, pretty: bool) -> Res<()> {
    let dev = Device::flex();
    let side = net.side;
    // Random images of the right size: throughput does not depend on what the pixels are.
    let mut rng = geonoise::rng::Rng::new(0);
    let images = geonoise::image::idx::Images { n: 256, rows: side, cols: side, pixels: (0..256 * side * side).map(|_| rng.below(256) as u8).collect() };
    let cfg = ImageTrainConfig { batch, steps: 1_000_000, ..ImageTrainConfig::new(net.clone()) };
    let mut tr = ImageTrainer::new(cfg, &images, &dev)?;
    tr.step();
    tr.loss();
    let t = Instant::now();
    for _ in 0..steps {
        tr.step();
    }
    tr.loss();
    let train_ms = 1e3 * t.elapsed().as_secs_f64() / steps.max(1) as f64;
    let model = tr.ema_model();
    let params = model.num_params();
    let scfg = SampleConfig { n, steps: steps + 1, ..Default::default() };
    let mut s = Sampler::unprojected(Rc::new(model), scfg, &dev)?;
    s.advance();
    let t = Instant::now();
    while s.advance() {}
    read_f32(s.frame().u);
    let sample_ms = 1e3 * t.elapsed().as_secs_f64() / steps.max(1) as f64;
    eprintln!(
        "U-Net channels {} mults {:?}: {params} parameters; training {train_ms:.0} ms/step at batch {batch} (10,000 steps: {:.0} min); sampling {sample_ms:.0} ms/step for {n} images",
        net.channels,
        net.mults,
        train_ms * 10_000.0 / 60_000.0
    );
    emit(
        &json!({"channels": net.channels, "mults": net.mults, "params": params, "batch": batch, "train_ms": train_ms, "sample_images": n, "sample_ms": sample_ms, "threads": rayon::current_num_threads()}),
        pretty,
    );
    Ok(())
}

fn cmd_manifest(dir: &Path, command: &str, dev: &Device, pretty: bool) -> Res<()> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    names.sort();
    let (mut models, mut classifiers) = (vec![], vec![]);
    for p in names {
        let bytes = read_file(&p)?;
        let file = p.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
        if let Ok(m) = store::load::<UNet>(&bytes, dev) {
            models.push(json!({"file": file, "bytes": bytes.len(), "label": model_label(&m.config, m.training.as_ref()), "config": m.config, "params": m.net.num_params(), "training": m.training}));
        } else {
            let c = store::load::<Classifier>(&bytes, dev).map_err(|e| format!("{}: neither a U-Net nor a classifier: {e}", p.display()))?;
            classifiers.push(json!({"file": file, "bytes": bytes.len(), "config": c.config, "training": c.training}));
        }
    }
    let manifest = json!({"format": "geonoise-images", "version": 1, "command": command, "models": models, "classifiers": classifiers});
    save(&dir.join("manifest.json"), serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?.as_bytes())?;
    emit(&json!({"manifest": dir.join("manifest.json").display().to_string(), "models": models.len(), "classifiers": classifiers.len()}), pretty);
    Ok(())
}
