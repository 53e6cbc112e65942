//! `geonoise figure`: the paper's Figure 5 as a grid of 2-D projections (rows: model, columns: D),
//! from the shipped checkpoints or from the closed-form fields, with the metrics as a table.


use crate::io::{emit, read_file, read_manifest, summary_metrics, Res};
use crate::sample::run_sampler;
use burn::tensor::Device;
use clap::ValueEnum;
use geonoise::checkpoint;
use geonoise::data::{host_tensor, Projection, R_INNER, R_OUTER};
use geonoise::dataset::DataSet;
use geonoise::metrics::{self, Metrics};
use geonoise::oracle::{Oracle, OracleField};
use geonoise::sample::{read_f32, Field, SampleConfig};
use geonoise::target::Parameterization;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// One cell of the grid: the projected samples of one model at one D.
pub struct Cell {
    pub row: String,
    pub dim: usize,
    /// Plane coordinates of the samples; non-finite rows are skipped when drawing.
    pub xy: Vec<f32>,
    pub metrics: Metrics,
}

/// One cell's panel, or a note that the model is missing.
pub enum Slot {
    Cell(Cell),
    Missing(String),
}

const CELL: u32 = 170;
const LEFT: u32 = 120;
const TOP: u32 = 70;
const EXTENT: f64 = 2.6;

fn register_fonts() {
    // The bytes live in the binary; no system font is looked up.
    let _ = register_font("sans-serif", FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT);
}

/// Draws `rows` x `dims` slots to a PNG at `out`.
pub fn draw(out: &Path, title: &str, rows: &[String], dims: &[usize], slots: &[Slot], data: &DataSet) -> Result<(), String> {
    register_fonts();
    let (w, h) = (LEFT + CELL * dims.len() as u32 + 10, TOP + CELL * rows.len() as u32 + 10);
    let root = BitMapBackend::new(out, (w, h)).into_drawing_area();
    let e = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", out.display());
    root.fill(&WHITE).map_err(|x| e(&x))?;
    root.draw(&Text::new(title.to_string(), (10, 10), ("sans-serif", 22).into_font())).map_err(|x| e(&x))?;
    for (j, d) in dims.iter().enumerate() {
        let x = (LEFT + CELL * j as u32 + CELL / 2 - 25) as i32;
        root.draw(&Text::new(format!("D = {d}"), (x, TOP as i32 - 28), ("sans-serif", 18).into_font())).map_err(|x| e(&x))?;
    }
    for (i, r) in rows.iter().enumerate() {
        let y = (TOP + CELL * i as u32 + CELL / 2 - 10) as i32;
        root.draw(&Text::new(r.clone(), (8, y), ("sans-serif", 18).into_font())).map_err(|x| e(&x))?;
    }
    let circle = |r: f64| (0..=240).map(move |k| {
        let th = 2.0 * std::f64::consts::PI * k as f64 / 240.0;
        (r * th.cos(), r * th.sin())
    });
    for (idx, slot) in slots.iter().enumerate() {
        let (i, j) = (idx / dims.len(), idx % dims.len());
        let (x0, y0) = ((LEFT + CELL * j as u32) as i32, (TOP + CELL * i as u32) as i32);
        let area = root.clone().shrink((x0 + 3, y0 + 3), (CELL - 6, CELL - 6));
        area.fill(&RGBColor(248, 248, 248)).map_err(|x| e(&x))?;
        let mut chart = ChartBuilder::on(&area)
            .build_cartesian_2d(-EXTENT..EXTENT, -EXTENT..EXTENT)
            .map_err(|x| e(&x))?;
        if data.is_circles() {
            for r in [R_INNER, R_OUTER] {
                chart.draw_series(LineSeries::new(circle(r), RGBColor(180, 180, 180).stroke_width(1))).map_err(|x| e(&x))?;
            }
        } else {
            // Another data set: its evenly spread points, in gray under the samples.
            let pts: Vec<(f64, f64)> = data.discrete(1024).chunks(2).map(|p| (p[0] as f64, p[1] as f64)).collect();
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 1, RGBColor(170, 170, 170).filled()))).map_err(|x| e(&x))?;
        }
        match slot {
            Slot::Missing(why) => {
                area.draw(&Text::new(why.clone(), (10, CELL as i32 / 2 - 8), ("sans-serif", 14).into_font().color(&RED))).map_err(|x| e(&x))?;
            }
            Slot::Cell(c) => {
                let pts = c.xy.chunks(2).filter(|p| p[0].is_finite() && p[1].is_finite()).map(|p| (p[0] as f64, p[1] as f64));
                chart
                    .draw_series(pts.filter(|(x, y)| x.abs() < EXTENT && y.abs() < EXTENT).map(|(x, y)| Circle::new((x, y), 1, RGBColor(31, 90, 180).mix(0.5).filled())))
                    .map_err(|x| e(&x))?;
                let m = &c.metrics;
                // The clean fraction with its Wilson interval, the radial error's 90th percentile, and
                // the share diverged where any did.
                let div = if m.diverged > 0 { format!(", div {:.0}%", 100.0 * m.diverged_fraction) } else { String::new() };
                let note = format!("{} clean, p90 {:.3}{div}", m.clean_text(), m.radial_error_p90);
                area.draw(&Text::new(note, (4, CELL as i32 - 22), ("sans-serif", 11).into_font())).map_err(|x| e(&x))?;
            }
        }
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// The metrics grid as Markdown: one row per model, one column per D; each cell is the clean
/// fraction (its Wilson interval) / radial error median / its 90th percentile / off-manifold norm (mean) / diverged.
pub fn table(rows: &[String], dims: &[usize], slots: &[Slot]) -> String {
    let mut s = String::from("| model |");
    for d in dims {
        s += &format!(" D = {d} |");
    }
    s += "\n|---|";
    for _ in dims {
        s += "---|";
    }
    s += "\n";
    for (i, r) in rows.iter().enumerate() {
        s += &format!("| {r} |");
        for j in 0..dims.len() {
            match &slots[i * dims.len() + j] {
                Slot::Cell(c) => {
                    let m = &c.metrics;
                    s += &format!(" {} / {:.3} / {:.3} / {:.3} / {:.0}% |", m.clean_text(), m.radial_error_median, m.radial_error_p90, m.off_manifold_mean, 100.0 * m.diverged_fraction)
                }
                Slot::Missing(_) => s += " (missing) |",
            }
        }
        s += "\n";
    }
    s
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn cmd_figure(out: Option<PathBuf>, oracle_mode: bool, dir: PathBuf, print_table: bool, models: Vec<Parameterization>, dims: Vec<usize>, scfg: SampleConfig, data: DataSet, data_points: usize, grid: usize, dev: &Device, pretty: bool) -> Res<()> {
    scfg.validate()?;
    let (n, steps, seed) = (scfg.n, scfg.steps, scfg.seed);
    if out.is_none() && !print_table {
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
                        slots.push(Slot::Missing("not in manifest".into()));
                        continue;
                    };
                    let bytes = match read_file(&dir.join(&e.file)) {
                        Ok(b) => b,
                        Err(err) => {
                            eprintln!("{row} D={dim}: {err}");
                            slots.push(Slot::Missing("file missing".into()));
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
                slots.push(Slot::Cell(Cell { row: row.clone(), dim, xy, metrics: m }));
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
        draw(path, &title, &rows, &dims, &slots, &data)?;
        eprintln!("wrote {}", path.display());
    }
    if print_table {
        let of = if data.is_circles() { "a circle".to_string() } else { format!("the data ({})", data.spec.label()) };
        println!("clean fraction (its 95 % Wilson interval) / radial error median / radial error p90 / off-manifold norm (mean) / diverged, {n} samples per cell (clean: within {:.3} of {of})\n", geonoise::metrics::CLEAN_TOLERANCE);
        print!("{}", table(&rows, &dims, &slots));
    } else {
        let cells: Vec<Value> = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Cell(c) => Some(json!({"row": c.row, "dim": c.dim, "metrics": c.metrics})),
                Slot::Missing(_) => None,
            })
            .collect();
        emit(&json!({"out": out.map(|p| p.display().to_string()), "oracle": oracle_mode, "rows": rows, "dims": dims, "cells": cells}), pretty);
    }
    Ok(())
}
