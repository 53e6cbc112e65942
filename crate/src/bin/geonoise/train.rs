//! `geonoise train` (one model) and `geonoise train-grid` (the shipped checkpoints and their
//! manifest). Both keep the run's whole state in a file (`geonoise::resume`) saved about once a
//! minute, and go on from it exactly: a stopped run resumes as the same run.

use crate::io::{command_line, emit, read_manifest, summary_metrics, write_file, write_manifest, DataArg, Res};
use crate::sample::run_sampler;
use burn::tensor::Device;
use geonoise::checkpoint::{self, Precision, TrainingInfo};
use geonoise::data::Projection;
use geonoise::metrics::{self, Metrics};
use geonoise::pretrained::{self, Bounds, Entry, GridRecipe, Manifest};
use geonoise::resume;
use geonoise::sample::SampleConfig;
use geonoise::target::Parameterization;
use geonoise::train::{TrainConfig, Trainer};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

/// A run's loss curve (step, loss), and the step and loss where it diverged, if it did.
type Curve = (Vec<(usize, f32)>, Option<(usize, f32)>);

/// Runs `tr` to its last step, reading the loss back every `every` steps (each read waits for the
/// device) and showing progress on stderr, and calling `save` at the logged steps once `interval`
/// seconds have passed since the last (a resumable run's state). Returns the loss curve, and the
/// step and loss of the first non-finite loss if training diverged (it stops there).
fn drive_saving(tr: &mut Trainer, every: usize, interval: f64, label: &str, save: &mut dyn FnMut(&Trainer) -> Res<()>) -> Res<Curve> {
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
            if saved_at.elapsed().as_secs_f64() >= interval && !tr.finished() {
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

/// How `geonoise train` keeps and finds its state.
pub(crate) struct StateArgs {
    /// The state file (`OUT` with `.state` by default).
    pub path: Option<PathBuf>,
    /// Go on from the state file; without it an existing state is not overwritten.
    pub resume: bool,
    /// Seconds between saves of the state.
    pub every: f64,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn cmd_train(mut config: TrainConfig, data: DataArg, conditional: bool, out: PathBuf, state: StateArgs, log_every: usize, eval_samples: usize, dev: &Device, pretty: bool) -> Res<()> {
    if !config.model.blind && !conditional {
        return Err("say --blind or --conditional".into());
    }
    config.model.blind = !conditional;
    config.model.data = data.spec()?;
    let data = config.model.data.build()?;
    let state_path = state.path.unwrap_or_else(|| out.with_extension("state"));
    let label = config.model.label();
    let (mut tr, before) = if state.resume {
        let bytes = std::fs::read(&state_path).map_err(|e| format!("--resume: cannot read the state {}: {e}", state_path.display()))?;
        let (tr, extra) = Trainer::resume_state(config.clone(), &bytes, dev).map_err(|e| format!("{}: {e}", state_path.display()))?;
        eprintln!("{label}: resuming exactly from step {} of {}", tr.steps_done(), state_path.display());
        (tr, extra["seconds"].as_f64().unwrap_or(0.0))
    } else {
        if state_path.exists() {
            return Err(format!("{} holds the state of a run; add --resume to go on from it, or remove it to start afresh", state_path.display()));
        }
        (Trainer::new(config.clone(), dev)?, 0.0)
    };
    let start = Instant::now();
    let mut save = |tr: &Trainer| -> Res<()> { resume::write_atomic(&state_path, &tr.save_state(json!({"seconds": before + start.elapsed().as_secs_f64()}))?) };
    let (curve, diverged) = drive_saving(&mut tr, log_every, state.every, &label, &mut save)?;
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
    save(&tr)?;
    let model = tr.model();
    let info = TrainingInfo { train: tr.config.clone(), steps_done: tr.steps_done(), final_loss: last };
    let bytes = checkpoint::save(&model, Some(&info)).map_err(|e| e.to_string())?;
    write_file(&out, &bytes)?;
    let mut result = json!({
        "out": out.display().to_string(),
        "config": tr.config,
        "steps": tr.steps_done(),
        "final_loss": last,
        "state": state_path.display().to_string(),
        "seconds": before + secs,
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

/// The metrics of a checkpoint as shipped (its bytes, after the precision round trip), sampled
/// with the grid's evaluation run.
fn shipped_metrics(bytes: &[u8], proj: &Projection, eval: &SampleConfig, dev: &Device) -> Res<Metrics> {
    let (model, _) = checkpoint::load(bytes, dev, &checkpoint::Expected::any()).map_err(|e| e.to_string())?;
    let (samples, _) = run_sampler(Rc::new(model), eval, proj, dev, false)?;
    metrics::compute(&samples, proj)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn cmd_train_grid(out: PathBuf, models: Vec<Parameterization>, dims: Vec<usize>, steps: Option<usize>, width: Option<usize>, depth: Option<usize>, precision: Option<Precision>, force: bool, rescore: bool, dev: &Device, pretty: bool) -> Res<()> {
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
                // A cell cut off part way (its state saved about once a minute) goes on from there.
                let state = path.with_extension("state");
                let start = Instant::now();
                let (mut tr, train_secs_before) = match resume_cell(&state, &out.join(format!("{file}.partial")), &config, dev) {
                    Some((tr, secs)) => {
                        eprintln!("[{done}/{total}] {label}: going on from step {} of {}", tr.steps_done(), config.steps);
                        (tr, secs)
                    }
                    None => {
                        eprintln!("[{done}/{total}] {label}: training {} steps", config.steps);
                        (Trainer::new(config.clone(), dev)?, 0.0)
                    }
                };
                let mut save = |tr: &Trainer| -> Res<()> { resume::write_atomic(&state, &tr.save_state(json!({"seconds": train_secs_before + start.elapsed().as_secs_f64()}))?) };
                let (curve, diverged) = drive_saving(&mut tr, 500, 60.0, &format!("  {label}"), &mut save)?;
                if let Some((k, loss)) = diverged {
                    return Err(format!("{label}: loss is {loss} at step {k}; grid stopped, earlier cells are kept"));
                }
                let last = curve.last().map(|(_, l)| *l);
                let secs = train_secs_before + start.elapsed().as_secs_f64();
                let info = TrainingInfo { train: tr.config.clone(), steps_done: tr.steps_done(), final_loss: last };
                let bytes = checkpoint::save_as(&tr.model(), Some(&info), recipe.precision).map_err(|e| e.to_string())?;
                write_file(&path, &bytes)?;
                let _ = std::fs::remove_file(&state);
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

/// The run a cell's state (`FILE.state`) holds, exactly, if it is of this recipe's `config`; with
/// the seconds trained so far. A copy of weights alone from an older geonoise (`FILE.partial`)
/// goes on as a continuation. Anything else there is set aside with a message.
fn resume_cell(state: &Path, partial: &Path, config: &TrainConfig, dev: &Device) -> Option<(Trainer, f64)> {
    if let Ok(bytes) = std::fs::read(state) {
        return match Trainer::resume_state(config.clone(), &bytes, dev) {
            Ok((tr, extra)) => Some((tr, extra["seconds"].as_f64().unwrap_or(0.0))),
            Err(e) => {
                eprintln!("  {}: not resumed ({e}); training the cell from the start", state.display());
                None
            }
        };
    }
    let bytes = std::fs::read(partial).ok()?;
    let found = checkpoint::load(&bytes, dev, &checkpoint::Expected::config(&config.model)).map_err(|e| e.to_string()).and_then(|(model, header)| {
        let done = header.training.filter(|t| t.train == TrainConfig { model: config.model.resolved(), ..config.clone() }).ok_or("it was saved by another recipe")?.steps_done;
        Trainer::resume(config.clone(), &model, done, dev)
    });
    match found {
        Ok(tr) => {
            eprintln!("  {}: an older copy of weights alone: going on with fresh Adam moments, a continuation", partial.display());
            let _ = std::fs::remove_file(partial);
            let _ = std::fs::remove_file(partial.with_extension("partial.json"));
            Some((tr, 0.0))
        }
        Err(e) => {
            eprintln!("  {}: not resumed ({e}); training the cell from the start", partial.display());
            None
        }
    }
}
