//! `geonoise`: the native command line over the same core the browser runs.
//! Every command prints JSON on stdout and a one-line human summary on stderr.
//!
//! This file is the argument tree and its dispatch; each command family lives in a file of its
//! own: `train` (train, train-grid), `sample` (sample, metrics), `oracle`, `figure`, `regimes`,
//! `images`, `bench` (bench, bench-step), with what they share in `io`.

use burn::tensor::Device;
use clap::{Parser, Subcommand, ValueEnum};
use geonoise::checkpoint::Precision;
use geonoise::model::ModelConfig;
use geonoise::sample::{SampleConfig, Solver};
use geonoise::target::{Parameterization, TimeGrid};
use geonoise::train::TrainConfig;
use io::{DataArg, Res};
use oracle::OracleArgs;
use std::path::PathBuf;

mod bench;
mod figure;
mod images;
mod io;
mod oracle;
mod regimes;
mod sample;
mod train;

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
        /// The run's state file, saved as it trains (default: OUT with `.state`): the weights,
        /// Adam's moments, the step and the batch stream, to resume the run exactly.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Go on from the state file exactly where the run stopped.
        #[arg(long)]
        resume: bool,
        /// Save the state every this many seconds.
        #[arg(long, default_value_t = 60.0)]
        save_every: f64,
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

fn device(arg: DeviceArg) -> Res<Device> {
    match arg {
        DeviceArg::Flex => Ok(Device::flex()),
        DeviceArg::Wgpu => Device::wgpu_options().init().map_err(|e| format!("no wgpu adapter could be initialised: {e}")),
    }
}

fn run(cli: Cli) -> Res<()> {
    let pretty = cli.pretty;
    let dev = || device(cli.device);
    match cli.command {
        Command::Train { config, data, conditional, out, state, resume, save_every, log_every, eval_samples } => {
            let state = train::StateArgs { path: state, resume, every: save_every };
            train::cmd_train(config, data, conditional, out, state, log_every, eval_samples, &dev()?, pretty)
        }
        Command::Sample { checkpoint, oracle, oracle_args, config, trajectory, out } => {
            sample::cmd_sample(checkpoint, oracle, oracle_args, config, trajectory, out, &dev()?, pretty)
        }
        Command::Oracle { oracle_args, points } => oracle::cmd_oracle(oracle_args, points, &dev()?, pretty),
        Command::Metrics { samples } => sample::cmd_metrics(samples, pretty),
        Command::TrainGrid { out, models, dims, steps, width, depth, precision, force, rescore } => {
            train::cmd_train_grid(out, models, dims, steps, width, depth, precision, force, rescore, &dev()?, pretty)
        }
        Command::Figure { out, oracle, pretrained, table, models, dims, n, steps, solver, time_grid, seed, data, data_points, grid } => {
            let scfg = SampleConfig { n, steps, solver, time_grid, seed, ..Default::default() };
            if data.given() && !oracle {
                return Err("--data is for --oracle: the shipped checkpoints are trained on the circles".into());
            }
            figure::cmd_figure(out, oracle, pretrained, table, models, dims, scfg, data.spec()?.build()?, data_points, grid, &dev()?, pretty)
        }
        Command::Images { command } => images::run(command, &dev()?, pretty),
        Command::Regimes(args) => regimes::run(args, &dev()?, pretty),
        Command::Bench { dim, batch, steps, n, sample_steps } => bench::cmd_bench(dim, batch, steps, n, sample_steps, pretty),
        Command::BenchStep { dim, width, depth, batch, steps, n, threads } => bench::cmd_bench_step(ModelConfig { width, depth, ..ModelConfig::new(Parameterization::Fm, false, dim) }, batch, steps, n, threads, &dev()?, pretty),
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
