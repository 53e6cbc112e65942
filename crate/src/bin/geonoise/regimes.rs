//! `geonoise regimes`: the paper's three regimes (Fig. 5: diffuse at D = 2, FM Blind clean and
//! DDPM Blind scattered at moderate D, both clean at high D) measured, for the trained checkpoints
//! and the closed-form fields, under a few sampler settings, from the same starting noise.
//!
//! Every cell is written to a JSON file as soon as it is measured; a run that is cut off goes on
//! from there (cells of the same settings are not measured again).

use crate::io::{read_file, read_manifest, write_file, Res};
use burn::tensor::Device;
use geonoise::checkpoint;
use geonoise::data::{host_tensor, Projection};
use geonoise::interval::median_range;
use geonoise::metrics::{self, quantile, Metrics, CLEAN_TOLERANCE};
use geonoise::oracle::{Oracle, OracleField};
use geonoise::pretrained;
use geonoise::sample::{read_f32, Field, SampleConfig, Sampler, Solver};
use geonoise::target::{Parameterization, TimeGrid};
use geonoise::train::TrainConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::rc::Rc;
use std::str::FromStr;
use std::time::Instant;

/// A sampler setting: solver, time grid and step count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub name: String,
    pub solver: Solver,
    pub time_grid: TimeGrid,
    pub steps: usize,
}

impl FromStr for Setting {
    type Err = String;
    /// `ode` (Euler, the parameterization's own grid, 100 steps: the shipped figures' sampler),
    /// `fine` (Euler, uniform in log-SNR, 1,000 steps), `sde` (Euler–Maruyama on the reverse SDE,
    /// uniform in log-SNR, 1,000 steps), or `SOLVER/GRID/STEPS` (e.g. `sde/uniform/100`).
    fn from_str(s: &str) -> Result<Self, String> {
        let named = |solver, time_grid, steps| Ok(Setting { name: s.to_string(), solver, time_grid, steps });
        match s {
            "ode" => named(Solver::Euler, TimeGrid::Default, 100),
            "fine" => named(Solver::Euler, TimeGrid::LogSnr, 1000),
            "sde" => named(Solver::Sde, TimeGrid::LogSnr, 1000),
            _ => {
                let parts: Vec<&str> = s.split('/').collect();
                let [solver, grid, steps] = parts[..] else {
                    return Err(format!("sampler setting '{s}': expected ode, fine, sde or SOLVER/GRID/STEPS (e.g. sde/uniform/100)"));
                };
                let solver = <Solver as clap::ValueEnum>::from_str(solver, true).map_err(|_| format!("sampler setting '{s}': unknown solver '{solver}' (euler, heun, ddim, dpm2m, ancestral, sde)"))?;
                if solver == Solver::Descent {
                    return Err(format!("sampler setting '{s}': the descent sampler has no time grid; use euler, heun, ddim, dpm2m, ancestral or sde"));
                }
                let time_grid = <TimeGrid as clap::ValueEnum>::from_str(grid, true).map_err(|_| format!("sampler setting '{s}': unknown time grid '{grid}' (default, uniform, rho7, log-snr)"))?;
                let steps = steps.parse::<usize>().map_err(|_| format!("sampler setting '{s}': steps '{steps}' is not a whole number"))?;
                if !(1..=geonoise::sample::MAX_STEPS).contains(&steps) {
                    return Err(format!("sampler setting '{s}': steps must be 1..={}", geonoise::sample::MAX_STEPS));
                }
                named(solver, time_grid, steps)
            }
        }
    }
}

impl Setting {
    /// In words, for table headings.
    pub fn describe(&self) -> String {
        let solver = match self.solver {
            Solver::Euler => "Euler ODE",
            Solver::Heun => "Heun ODE",
            Solver::Ancestral => "ancestral",
            Solver::Ddim => "DDIM",
            Solver::Dpm2m => "DPM-Solver++(2M)",
            Solver::Sde => "Euler–Maruyama SDE",
            Solver::Descent => "descent",
        };
        let grid = match self.time_grid {
            TimeGrid::Default => "the parameterization's own grid (uniform in t; rho = 7 for uEDM)",
            TimeGrid::Uniform => "uniform in t",
            TimeGrid::Rho7 => "rho = 7",
            TimeGrid::LogSnr => "uniform in log-SNR",
        };
        format!("{solver}, {} steps, {grid}", self.steps)
    }
}

/// Where the samples come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The shipped checkpoints (`--dir`).
    Trained,
    /// The closed-form optimal fields.
    Exact,
}

/// The end of a blind run seen by the exact posterior of its D: how well the samples' own noise
/// level is pinned down where the sampler stops, and the sampler's gain there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndState {
    /// The level the last step starts from, and the sampler's `nu` (Eq. 63) there.
    pub t_last: f64,
    pub nu_last: f64,
    /// Medians over the samples of `E[t | u]` and of `sd[t | u]` at the end points.
    pub t_mean: f64,
    pub t_sd: f64,
}

/// One measured cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub source: Source,
    pub model: Parameterization,
    pub blind: bool,
    pub dim: usize,
    pub setting: Setting,
    pub n: usize,
    pub seed: u64,
    /// The closed form's data points and quadrature levels (for exact cells and the end state).
    pub data_points: usize,
    pub grid_levels: usize,
    pub metrics: Metrics,
    pub end: Option<EndState>,
    pub seconds: f64,
    /// A trained cell's training run (the manifest entry's): a cell of another run is measured again.
    #[serde(default)]
    pub trained: Option<TrainConfig>,
}

/// What makes two cells the same measurement.
type Key<'a> = (Source, Parameterization, bool, usize, &'a Setting, usize, u64, usize, usize);

impl Cell {
    fn key(&self) -> Key<'_> {
        (self.source, self.model, self.blind, self.dim, &self.setting, self.n, self.seed, self.data_points, self.grid_levels)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Results {
    pub format: String,
    pub command: String,
    pub clean_tolerance: f64,
    pub cells: Vec<Cell>,
}

const FORMAT: &str = "geonoise-regimes-1";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder of the trained checkpoints and their manifest.
    #[arg(long, default_value = "pretrained")]
    dir: PathBuf,
    /// The results file: read first (cells already there are kept), written after every cell.
    #[arg(long, default_value = "pretrained/regimes.json")]
    out: PathBuf,
    /// Parameterizations, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "fm,ddpm,eqm,uedm")]
    models: Vec<Parameterization>,
    /// Dimensions of the trained checkpoints.
    #[arg(long, value_delimiter = ',', default_value = "2,8,32,128,512")]
    dims: Vec<usize>,
    /// Dimensions of the closed-form fields.
    #[arg(long, value_delimiter = ',', default_value = "2,8,32,128,512,2048")]
    exact_dims: Vec<usize>,
    /// Sampler settings, comma separated: ode, fine, sde, or SOLVER/GRID/STEPS.
    #[arg(long, value_delimiter = ',', default_value = "ode,fine,sde")]
    settings: Vec<Setting>,
    /// Sources, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "trained,exact")]
    sources: Vec<Source>,
    /// Samples per cell (the same starting noise for every cell of a D and seed).
    #[arg(long, default_value_t = 500)]
    n: usize,
    /// Seeds of the starting noise, comma separated. With several, every cell is measured for
    /// each, and the tables give each number's median over the seeds with its range.
    #[arg(long = "seed", value_delimiter = ',', default_value = "0")]
    seeds: Vec<u64>,
    /// Data points of the closed form (half on each circle).
    #[arg(long, default_value_t = 256)]
    data_points: usize,
    /// Noise levels of the closed form's quadrature (log-spaced).
    #[arg(long, default_value_t = 128)]
    grid: usize,
    /// Print the tables as markdown (from the results file, after measuring what is missing).
    #[arg(long)]
    markdown: bool,
    /// Measure nothing: print the tables of the results file as it is.
    #[arg(long)]
    table_only: bool,
    /// With the tables, where each blind run ends as the exact posterior sees it: the medians of
    /// E[t | u] and sd[t | u] at the end points, against the level and gain of the last step.
    #[arg(long)]
    end: bool,
}

fn read_results(path: &PathBuf) -> Res<Option<Results>> {
    if !path.exists() {
        return Ok(None);
    }
    let bytes = read_file(path)?;
    let r: Results = serde_json::from_slice(&bytes).map_err(|e| format!("{}: not a regimes file ({e}); move it away to start afresh", path.display()))?;
    if r.format != FORMAT {
        return Err(format!("{}: format '{}', expected '{FORMAT}'", path.display(), r.format));
    }
    Ok(Some(r))
}

/// The field of one cell, with the training run of a trained one; or why there is none. An exact
/// cell follows `oracle`.
#[allow(clippy::too_many_arguments)]
fn field_of(source: Source, oracle: Option<&Oracle>, blind: bool, model: Parameterization, dim: usize, a: &Args, manifest: Option<&pretrained::Manifest>, dev: &Device) -> Res<(Rc<dyn Field>, Option<TrainConfig>)> {
    match (source, oracle) {
        (Source::Exact, Some(o)) => Ok((Rc::new(OracleField { oracle: o.clone(), blind }), None)),
        (Source::Exact, None) => Err("an exact cell needs its closed form".into()),
        (Source::Trained, _) => {
            let m = manifest.ok_or_else(|| format!("no manifest.json in {}", a.dir.display()))?;
            let e = m.find(model, blind, dim).ok_or("not in the manifest")?;
            let bytes = read_file(&a.dir.join(&e.file))?;
            let (net, _) = checkpoint::load(&bytes, dev, &checkpoint::Expected::any()).map_err(|err| format!("{}: {err}", e.file))?;
            Ok((Rc::new(net), Some(e.config.clone())))
        }
    }
}

/// Measures one cell.
#[allow(clippy::too_many_arguments)]
fn measure(source: Source, model: Parameterization, blind: bool, dim: usize, setting: &Setting, seed: u64, a: &Args, manifest: Option<&pretrained::Manifest>, dev: &Device) -> Res<Cell> {
    let start = Instant::now();
    let projection_seed = manifest.map(|m| m.recipe.projection_seed).unwrap_or(0);
    let proj = Projection::new(dim, projection_seed)?;
    // The closed form: the field of an exact cell, and what a blind cell's end points are read with.
    let oracle = (source == Source::Exact || blind).then(|| Oracle::for_circles(model, model.default_range(), &proj, a.data_points, a.grid, dev)).transpose()?;
    let (field, trained) = field_of(source, oracle.as_ref(), blind, model, dim, a, manifest, dev)?;
    let cfg = SampleConfig { n: a.n, steps: setting.steps, solver: setting.solver, time_grid: setting.time_grid, seed, ..Default::default() };
    let (lo, hi) = field.range();
    let mut s = Sampler::new(field, cfg, &proj, dev)?;
    let t_last = model.sampling_grid_with(setting.time_grid, setting.steps, lo, hi)[setting.steps - 1];
    while s.advance() {}
    let samples = read_f32(s.frame().u);
    let m = metrics::compute(&samples, &proj)?;
    // Where a blind run ends: the exact posterior over t at its end points (finite rows only).
    let finite: Vec<f32> = samples.chunks(dim).filter(|r| r.iter().all(|v| v.is_finite())).flatten().copied().collect();
    let end = oracle.filter(|_| blind && !finite.is_empty()).map(|o| {
        let an = o.analyze(host_tensor(finite, dim, dev));
        let col = |t| read_f32(t).into_iter().map(|v| v as f64).collect::<Vec<_>>();
        EndState { t_last, nu_last: model.mu_nu(t_last).1, t_mean: quantile(col(an.t_mean), 0.5), t_sd: quantile(col(an.t_std), 0.5) }
    });
    Ok(Cell { source, model, blind, dim, setting: setting.clone(), n: a.n, seed, data_points: a.data_points, grid_levels: a.grid, metrics: m, end, seconds: start.elapsed().as_secs_f64(), trained })
}

pub fn run(a: Args, dev: &Device, pretty: bool) -> Res<()> {
    if a.n == 0 || a.n > geonoise::sample::MAX_SAMPLES {
        return Err(format!("--n {} is out of range 1..={}", a.n, geonoise::sample::MAX_SAMPLES));
    }
    if a.seeds.is_empty() || (1..a.seeds.len()).any(|i| a.seeds[..i].contains(&a.seeds[i])) {
        return Err(format!("--seed {:?}: give one seed or several different ones", a.seeds));
    }
    let mut results = read_results(&a.out)?.unwrap_or(Results { format: FORMAT.into(), command: String::new(), clean_tolerance: CLEAN_TOLERANCE, cells: vec![] });
    if !a.table_only {
        results.command = crate::io::command_line();
        let manifest = if a.sources.contains(&Source::Trained) {
            Some(read_manifest(&a.dir)?.ok_or_else(|| format!("no manifest.json in {}: train the grid first (pretrained/train-all.sh), or measure the exact fields alone (--sources exact)", a.dir.display()))?)
        } else {
            None
        };
        let mut jobs = vec![];
        // Cheap cells first: trained before exact, the first seed before the others, conditional
        // before blind, small D first.
        for &source in &a.sources {
            let dims = if source == Source::Exact { &a.exact_dims } else { &a.dims };
            for &seed in &a.seeds {
                for blind in [false, true] {
                    for &dim in dims {
                        for &model in &a.models {
                            for setting in &a.settings {
                                jobs.push((source, model, blind, dim, setting.clone(), seed));
                            }
                        }
                    }
                }
            }
        }
        let total = jobs.len();
        let started = Instant::now();
        let mut measured = 0;
        for (k, (source, model, blind, dim, setting, seed)) in jobs.into_iter().enumerate() {
            let label = format!("[{}/{total}] {source:?} {} {} D = {dim}, {}, seed {seed}", k + 1, model.display_name(), if blind { "Blind" } else { "Cond" }, setting.name).to_lowercase();
            let key: Key = (source, model, blind, dim, &setting, a.n, seed, a.data_points, a.grid);
            // A trained cell counts as measured only for the checkpoint the manifest has now.
            let current = manifest.as_ref().filter(|_| source == Source::Trained).and_then(|m| m.find(model, blind, dim)).map(|e| &e.config);
            if results.cells.iter().any(|c| c.key() == key && c.trained.as_ref() == current) {
                continue;
            }
            match measure(source, model, blind, dim, &setting, seed, &a, manifest.as_ref(), dev) {
                Ok(cell) => {
                    measured += 1;
                    eprintln!("{label}: clean {:.1}%, radial error median {:.4} p90 {:.4}, off-manifold {:.4} ({:.1}s; {:.0}s so far)", 100.0 * cell.metrics.clean_fraction, cell.metrics.radial_error_median, cell.metrics.radial_error_p90, cell.metrics.off_manifold_mean, cell.seconds, started.elapsed().as_secs_f64());
                    results.cells.retain(|c| c.key() != cell.key());
                    results.cells.push(cell);
                    // Written beside and renamed: a run cut off mid-write keeps the file it had.
                    let tmp = a.out.with_extension("json.partial");
                    write_file(&tmp, serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?.as_bytes())?;
                    std::fs::rename(&tmp, &a.out).map_err(|e| format!("cannot write {}: {e}", a.out.display()))?;
                }
                Err(e) => eprintln!("{label}: skipped ({e})"),
            }
        }
        eprintln!("{measured} cells measured in {:.0}s; {} in {}", started.elapsed().as_secs_f64(), results.cells.len(), a.out.display());
    }
    if a.markdown || a.table_only {
        print!("{}", tables(&results, &a));
    } else {
        crate::io::emit(&serde_json::to_value(&results).map_err(|e| e.to_string())?, pretty);
    }
    Ok(())
}

/// One markdown table per setting: rows are model × blind/conditional × source, columns D; each
/// cell "clean % · radial error median / p90 · off-manifold mean". With one seed the clean fraction
/// carries its Wilson interval over the samples; with several, every number is the median over the
/// seeds, and the clean fraction and the end state carry their range over them.
pub fn tables(r: &Results, a: &Args) -> String {
    let mut out = String::new();
    let mut dims: Vec<usize> = a.dims.iter().chain(&a.exact_dims).copied().collect();
    dims.sort_unstable();
    dims.dedup();
    let several = a.seeds.len() > 1;
    let seeds_text = if several { format!("seeds {}", a.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")) } else { format!("seed {}", a.seeds[0]) };
    for setting in &a.settings {
        let cells: Vec<&Cell> = r.cells.iter().filter(|c| c.setting == *setting && c.n == a.n && a.seeds.contains(&c.seed) && c.data_points == a.data_points && c.grid_levels == a.grid).collect();
        if cells.is_empty() {
            continue;
        }
        // The cells of one place in the table, one per seed measured.
        let at = |model: Parameterization, blind: bool, source: Source, dim: usize| -> Vec<&Cell> { cells.iter().filter(|c| c.model == model && c.blind == blind && c.source == source && c.dim == dim).copied().collect() };
        let seen = |found: &[&Cell]| if several && found.len() < a.seeds.len() { format!(" [{} of {} seeds]", found.len(), a.seeds.len()) } else { String::new() };
        let legend = if several {
            format!("medians over the {} seeds: clean % (its range over the seeds) · radial error median / p90 · off-manifold norm (mean)", a.seeds.len())
        } else {
            "clean % (its 95 % Wilson interval) · radial error median / p90 · off-manifold norm (mean)".to_string()
        };
        out += &format!("\n**{}** ({}; {} samples per cell, {seeds_text}): {legend}\n\n", setting.name, setting.describe(), a.n);
        out += &format!("| model | {} |\n|---|{}\n", dims.iter().map(|d| format!("D = {d}")).collect::<Vec<_>>().join(" | "), "---|".repeat(dims.len()));
        for &model in &a.models {
            for blind in [true, false] {
                for &source in &a.sources {
                    let row: Vec<String> = dims
                        .iter()
                        .map(|&d| match &at(model, blind, source, d)[..] {
                            [] => "".into(),
                            [c] if !several => {
                                let m = &c.metrics;
                                format!("{} · {:.3} / {:.2} · {:.2}", m.clean_text(), m.radial_error_median, m.radial_error_p90, m.off_manifold_mean)
                            }
                            found => {
                                let med = |f: fn(&Metrics) -> f64| median_range(&found.iter().map(|c| f(&c.metrics)).collect::<Vec<_>>());
                                let (clean, lo, hi) = med(|m| 100.0 * m.clean_fraction);
                                format!("{clean:.0}% ({lo:.0}–{hi:.0}) · {:.3} / {:.2} · {:.2}{}", med(|m| m.radial_error_median).0, med(|m| m.radial_error_p90).0, med(|m| m.off_manifold_mean).0, seen(found))
                            }
                        })
                        .collect();
                    if row.iter().all(|s| s.is_empty()) {
                        continue;
                    }
                    let src = if source == Source::Exact { "exact" } else { "trained" };
                    out += &format!("| {} {} ({src}) | {} |\n", model.display_name(), if blind { "Blind" } else { "Cond" }, row.join(" | "));
                }
            }
        }
        if a.end {
            let what = if several { "E[t | u] (median over the seeds, its range) / sd[t | u] (median over the seeds)" } else { "E[t | u] / sd[t | u]" };
            out += &format!("\nWhere the blind runs end (**{}**): the last step starts at t and has gain nu; at the end points the exact posterior gives {what} (medians over the samples)\n\n", setting.name);
            out += &format!("| model | last step: t, nu | {} |\n|---|---|{}\n", dims.iter().map(|d| format!("D = {d}")).collect::<Vec<_>>().join(" | "), "---|".repeat(dims.len()));
            for &model in &a.models {
                for &source in &a.sources {
                    let Some(first) = dims.iter().flat_map(|&d| at(model, true, source, d)).find_map(|c| c.end.clone()) else { continue };
                    let text: Vec<String> = dims
                        .iter()
                        .map(|&d| {
                            let found: Vec<&Cell> = at(model, true, source, d).into_iter().filter(|c| c.end.is_some()).collect();
                            let ends: Vec<&EndState> = found.iter().filter_map(|c| c.end.as_ref()).collect();
                            match &ends[..] {
                                [] => "".into(),
                                [e] if !several => format!("{:.2e} / {:.1e}", e.t_mean, e.t_sd),
                                _ => {
                                    let (t, lo, hi) = median_range(&ends.iter().map(|e| e.t_mean).collect::<Vec<_>>());
                                    let sd = median_range(&ends.iter().map(|e| e.t_sd).collect::<Vec<_>>()).0;
                                    format!("{t:.2e} ({lo:.1e}–{hi:.1e}) / {sd:.1e}{}", seen(&found))
                                }
                            }
                        })
                        .collect();
                    let src = if source == Source::Exact { "exact" } else { "trained" };
                    out += &format!("| {} Blind ({src}) | {:.2e}, {:.3} | {} |\n", model.display_name(), first.t_last, first.nu_last, text.join(" | "));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// The shipped `pretrained/regimes.json`: every trained cell was measured on the checkpoint the
    /// manifest lists now, and cells measured again here give the recorded numbers.
    #[test]
    fn the_shipped_table_is_current_and_reproduces() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let results = read_results(&root.join("pretrained/regimes.json")).unwrap().expect("pretrained/regimes.json is shipped");
        let manifest = read_manifest(&root.join("pretrained")).unwrap().expect("the manifest");
        assert!(results.cells.len() >= 100, "{} cells", results.cells.len());
        for c in results.cells.iter().filter(|c| c.source == Source::Trained) {
            let e = manifest.find(c.model, c.blind, c.dim).expect("a manifest entry for every trained cell");
            assert_eq!(c.trained.as_ref(), Some(&e.config), "{:?} {} {} D = {}: measured on another checkpoint", c.source, c.model, c.blind, c.dim);
        }
        let dir = root.join("pretrained");
        let a = Cli::parse_from(["regimes", "--dir", dir.to_str().unwrap(), "--n", "200"]).args;
        let dev = Device::flex();
        for (source, model, blind, dim) in [(Source::Trained, Parameterization::Fm, true, 8), (Source::Exact, Parameterization::Ddpm, false, 8)] {
            let setting: Setting = "ode".parse().unwrap();
            let shipped = results.cells.iter().find(|c| c.key() == (source, model, blind, dim, &setting, 200, 0, 256, 128)).expect("the cell is shipped");
            let again = measure(source, model, blind, dim, &setting, 0, &a, Some(&manifest), &dev).unwrap();
            // Another CPU may round differently in the last bits: one sample may change sides.
            let (m, w) = (&again.metrics, &shipped.metrics);
            let what = format!("{source:?} {model} blind {blind} D = {dim}: {m:?} vs shipped {w:?}");
            assert!((m.clean_fraction - w.clean_fraction).abs() <= 1.0 / 200.0, "{what}");
            for (x, y) in [(m.radial_error_median, w.radial_error_median), (m.off_manifold_median, w.off_manifold_median)] {
                assert!((x - y).abs() <= 1e-3 * (1.0 + y.abs()), "{what}");
            }
        }
    }

    /// With several seeds a cell reads the median over them and the range; a seed not measured yet
    /// is counted, and one seed keeps the Wilson interval.
    #[test]
    fn several_seeds_give_medians_and_ranges() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let shipped = read_results(&root.join("pretrained/regimes.json")).unwrap().unwrap();
        let ode: Setting = "ode".parse().unwrap();
        let base = shipped.cells.iter().find(|c| c.source == Source::Exact && c.model == Parameterization::Fm && c.blind && c.dim == 8 && c.setting == ode && c.n == 200 && c.seed == 0).unwrap().clone();
        let mut cells = vec![];
        for (seed, clean, t) in [(0, 0.60, 0.062), (1, 0.70, 0.013), (2, 0.90, 0.011)] {
            let mut c = base.clone();
            c.seed = seed;
            c.metrics.clean_fraction = clean;
            c.end.as_mut().unwrap().t_mean = t;
            cells.push(c);
        }
        let r = Results { format: FORMAT.into(), command: String::new(), clean_tolerance: CLEAN_TOLERANCE, cells };
        let args = |seeds: &str| Cli::parse_from(["regimes", "--n", "200", "--models", "fm", "--sources", "exact", "--settings", "ode", "--exact-dims", "8", "--dims", "8", "--end", "--seed", seeds]).args;
        let three = tables(&r, &args("0,1,2"));
        assert!(three.contains("| FM Blind (exact) | 70% (60–90) · "), "{three}");
        assert!(three.contains("1.30e-2 (1.1e-2–6.2e-2) / "), "{three}");
        let four = tables(&r, &args("0,1,2,3"));
        assert!(four.contains("70% (60–90)") && four.contains("[3 of 4 seeds]"), "{four}");
        let one = tables(&r, &args("1"));
        assert!(one.contains("| FM Blind (exact) | 70% (63–76) · ") && one.contains("1.30e-2 / "), "{one}");
        assert!(Cli::try_parse_from(["regimes", "--seed", "x"]).is_err());
    }

    #[test]
    fn settings_parse_by_name_and_by_parts() {
        let s: Setting = "sde".parse().unwrap();
        assert_eq!((s.solver, s.time_grid, s.steps), (Solver::Sde, TimeGrid::LogSnr, 1000));
        let s: Setting = "heun/rho7/50".parse().unwrap();
        assert_eq!((s.solver, s.time_grid, s.steps), (Solver::Heun, TimeGrid::Rho7, 50));
        for bad in ["euler/uniform", "rk4/uniform/10", "euler/cosine/10", "euler/uniform/0", "descent/uniform/10", "euler/uniform/x"] {
            assert!(bad.parse::<Setting>().is_err(), "{bad}");
        }
    }
}
