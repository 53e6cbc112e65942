//! `geonoise sample` (a checkpoint or the closed-form field, to samples and their metrics) and
//! `geonoise metrics` (a samples file scored again).

use crate::io::{emit, matrix, read_file, rows, summary_metrics, write_file, Res};
use crate::oracle::{oracle_from, OracleArgs};
use burn::tensor::Device;
use geonoise::checkpoint;
use geonoise::data::{host_tensor, Projection};
use geonoise::dataset::{DataSet, DataSpec};
use geonoise::metrics;
use geonoise::oracle::OracleField;
use geonoise::sample::{read_f32, Field, SampleConfig, Sampler};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

/// Draws `cfg.n` samples from `field`; returns (final rows of D, trajectory frames as JSON).
pub(crate) fn run_sampler(field: Rc<dyn Field>, cfg: &SampleConfig, proj: &Projection, device: &Device, trajectory: bool) -> Res<(Vec<f32>, Vec<Value>)> {
    let mut s = Sampler::new(field, cfg.clone(), proj, device)?;
    let mut frames = vec![];
    let record = |f: geonoise::sample::Frame| json!({"step": f.step, "t": f.t, "xy": f.xy.map(|xy| rows(&read_f32(xy), 2))});
    if trajectory {
        frames.push(record(s.frame()));
    }
    if trajectory {
        while let Some(f) = s.step() {
            frames.push(record(f));
        }
    } else {
        while s.advance() {}
    }
    Ok((read_f32(s.frame().u), frames))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn cmd_sample(checkpoint: Option<PathBuf>, oracle_mode: bool, oargs: OracleArgs, config: SampleConfig, trajectory: bool, out: Option<PathBuf>, dev: &Device, pretty: bool) -> Res<()> {
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

pub(crate) fn cmd_metrics(path: PathBuf, pretty: bool) -> Res<()> {
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
