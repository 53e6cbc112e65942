//! Training an image model: the toy's objective `E || f_theta(u [, t]) - f ||^2` on real images,
//! with the paper's recipe where the machine allows (Adam, batch 128, EMA 0.999 of the weights,
//! 10,000 steps). The EMA weights are what is saved and sampled.
//!
//! A run resumes exactly: `save_state` writes its whole state (raw and EMA weights, Adam's moments
//! by parameter name, the step, the batch stream's position; `resume.rs`) and `resume_state` goes
//! on from it as if it had never stopped. `resume` goes on from raw and EMA weights alone (Adam's
//! moments start afresh, and the batches come from a stream of their own): a continuation.

use super::idx::{DataName, Images};
use super::store::Stored;
use super::unet::{ImageModel, UNet, UNetConfig};
use crate::model::time_rows;
use crate::optimizer::NamedOptimizer;
use crate::params::with_weights;
use crate::resume::{PendingState, RunState};
use crate::rng::Rng;
use crate::train::{cosine_lr, noise_levels};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// One image training run. Shared by the CLI flags and the checkpoints' training record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::Args))]
pub struct ImageTrainConfig {
    #[cfg_attr(not(target_family = "wasm"), command(flatten))]
    pub net: UNetConfig,
    /// The data set.
    #[cfg_attr(not(target_family = "wasm"), arg(long, value_enum, default_value_t = DataName::FashionMnist))]
    pub data: DataName,
    /// Number of optimizer steps.
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 10_000))]
    pub steps: usize,
    /// Batch size.
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 128))]
    pub batch: usize,
    /// Peak learning rate (Adam; cosine-decayed to a tenth by the last step).
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 1e-3))]
    pub lr: f64,
    /// Decay of the exponential moving average of the weights.
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 0.999))]
    pub ema: f64,
    /// Clip each parameter's gradient to this norm (0 = off).
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 1.0))]
    pub grad_clip: f64,
    /// Seed of the initial weights and the batches.
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 0))]
    pub seed: u64,
    /// How each image's squared error is weighted by its noise level.
    #[cfg_attr(not(target_family = "wasm"), arg(long, value_enum, default_value_t = LossWeighting::Uniform))]
    #[serde(default, skip_serializing_if = "LossWeighting::is_uniform")]
    pub weighting: LossWeighting,
}

/// How the training loss weighs each image's squared error by its noise level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
pub enum LossWeighting {
    /// Every level alike, `|f_theta - f|^2`: the paper's objective, and the toy's.
    #[default]
    Uniform,
    /// `max(|f_theta - f|^2, |xhat_theta - x|^2)`, the error of the target or of the clean
    /// estimate it implies, whichever is larger: the weight `max(1, (b / (a d - b c))^2)`
    /// (Salimans & Ho's truncated-SNR weighting; `max(1, b^2 / a^2)` for DDPM's noise target,
    /// 1 everywhere for FM's velocity, whose clean estimate's error `t |f_theta - f|` is never the
    /// larger). Normalised by the batch's mean weight.
    Truncated,
    /// `min(SNR, 5) |xhat_theta - x|^2` with `SNR = a^2 / b^2`: Hang et al.'s min-SNR-γ weighting
    /// (γ = 5), the clean estimate's error weighed by the signal-to-noise ratio, bounded. As a
    /// weight on the target's error, `min(a^2 / b^2, 5) (b / (a d - b c))^2`: for DDPM's noise
    /// target `min(1, 5 b^2 / a^2)`, the plain loss wherever the SNR is at most 5 and less where
    /// it is higher, so no level's weight exceeds the plain loss's. Normalised by the batch's mean
    /// weight.
    MinSnr,
}

/// γ of [`LossWeighting::MinSnr`], the value Hang et al. recommend.
pub const MIN_SNR_GAMMA: f64 = 5.0;

impl LossWeighting {
    pub fn is_uniform(&self) -> bool {
        *self == LossWeighting::Uniform
    }

    /// The weight of an image at a level with path coefficients `a`, `b` and target coefficients
    /// `c`, `d`.
    pub fn weight(&self, a: f64, b: f64, c: f64, d: f64) -> f64 {
        match self {
            LossWeighting::Uniform => 1.0,
            LossWeighting::Truncated => (b / (a * d - b * c)).powi(2).max(1.0),
            LossWeighting::MinSnr => (a * a / (b * b)).min(MIN_SNR_GAMMA) * (b / (a * d - b * c)).powi(2),
        }
    }
}

impl ImageTrainConfig {
    pub fn new(net: UNetConfig) -> Self {
        ImageTrainConfig { net, data: DataName::FashionMnist, steps: 10_000, batch: 128, lr: 1e-3, ema: 0.999, grad_clip: 1.0, seed: 0, weighting: LossWeighting::Uniform }
    }

    /// Bytes a run of this config holds, roughly: every parameter nine times (weights,
    /// gradients, Adam's two moments, the moving average, and the copies a run keeps to go back
    /// to its last good step) and a step's activations and their gradients for the batch, with a
    /// half again for the allocator. What the page checks before it starts a run.
    pub fn memory_estimate(&self) -> u64 {
        let floats = 9 * self.net.param_count() as u64 + (self.batch * self.net.activations_per_image()) as u64;
        floats * 4 * 3 / 2
    }

    pub fn validate(&self) -> Result<(), String> {
        self.net.validate()?;
        if !(1..=4096).contains(&self.batch) {
            return Err(format!("batch size {} is out of range 1..=4096", self.batch));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 1.0) {
            return Err(format!("learning rate {} is out of range (0, 1]", self.lr));
        }
        if !(self.ema.is_finite() && (0.0..1.0).contains(&self.ema)) {
            return Err(format!("EMA decay {} is out of range [0, 1)", self.ema));
        }
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            return Err(format!("gradient clip {} must be >= 0", self.grad_clip));
        }
        Ok(())
    }
}

/// Every float parameter of a module, flattened, in visiting order.
struct Gather(Vec<Tensor<1>>);

impl ModuleVisitor for Gather {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

/// `e <- decay e + (1 - decay) w` for every parameter, `w` taken in the same visiting order.
struct Blend {
    source: VecDeque<Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let w = self.source.pop_front().expect("the two modules have the same parameters");
        let decay = self.decay;
        param.map(|e| {
            let dims = e.dims();
            e.mul_scalar(decay) + w.reshape(dims).mul_scalar(1.0 - decay)
        })
    }
}

/// The moving average `ema` moved towards `net` (two modules of the same architecture, on the
/// same plain device).
pub fn ema_update<M: Module>(ema: M, net: &M, decay: f64) -> M {
    let mut g = Gather(vec![]);
    net.visit(&mut g);
    ema.map(&mut Blend { source: g.0.into(), decay })
}

/// The training record saved with an image checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageTrainingInfo {
    pub train: ImageTrainConfig,
    pub steps_done: usize,
    pub final_loss: Option<f32>,
    /// Wall-clock seconds of training, summed over resumed sessions.
    pub seconds: f64,
}

pub struct ImageTrainer {
    pub config: ImageTrainConfig,
    /// On the autodiff device; `None` only inside `step`.
    net: Option<UNet>,
    /// The moving average, on the plain device.
    ema: UNet,
    optim: NamedOptimizer,
    device: Device,
    /// The training images on the models' scale, rows of `side * side`.
    data: Vec<f32>,
    n: usize,
    rng: Rng,
    step: usize,
    last_loss: Option<Tensor<1>>,
    /// The run as it was at the last loss read that came back finite (`note_loss`).
    last_good: Option<Snapshot>,
    /// Fault injection: the next batch carries a NaN (see `inject_nan`).
    poison: bool,
}

/// Everything a step changes, kept whole so a run can go back to it: weights, moving average,
/// Adam's moments, the step and the batch stream. The tensors are shared, not copied.
#[derive(Clone)]
struct Snapshot {
    step: usize,
    net: UNet,
    ema: UNet,
    optim: NamedOptimizer,
    rng: Rng,
}

/// A checkpoint of a run's moving average with its tensors still on the device, to be read back
/// (`encode`, or `encode_async` on WebGPU): the file `geonoise images train` writes.
pub struct PendingCheckpoint {
    config: UNetConfig,
    seed: u64,
    info: serde_json::Value,
    reads: crate::params::Reads,
}

impl PendingCheckpoint {
    /// The file's bytes (f32), read back synchronously.
    pub fn encode(self) -> Result<Vec<u8>, String> {
        let PendingCheckpoint { config, seed, info, reads } = self;
        checkpoint_file(&config, seed, &info, reads.read())
    }

    /// The file's bytes (f32), read back asynchronously.
    pub async fn encode_async(self) -> Result<Vec<u8>, String> {
        let PendingCheckpoint { config, seed, info, reads } = self;
        checkpoint_file(&config, seed, &info, reads.read_async().await?)
    }
}

/// A U-Net file of `config` holding the weights `values` (by name) and the training record `info`.
fn checkpoint_file(config: &UNetConfig, seed: u64, info: &serde_json::Value, values: std::collections::BTreeMap<String, TensorData>) -> Result<Vec<u8>, String> {
    let net = with_weights(UNet::init(config, seed, &Device::flex()), &values, "the moving average")?;
    super::store::save(&net, config, Some(info), crate::checkpoint::Precision::F32).map_err(|e| e.to_string())
}

impl ImageTrainer {
    /// A fresh run on `images` (the training split).
    pub fn new(config: ImageTrainConfig, images: &Images, device: &Device) -> Result<ImageTrainer, String> {
        config.validate()?;
        let net = UNet::init(&config.net, config.seed, device);
        let ema = net.clone();
        let rng = Rng::derive(config.seed, "image batches");
        Self::with(config, net, ema, 0, images, device, rng)
    }

    /// Goes on from the raw and EMA weights of step `step`.
    pub fn resume(config: ImageTrainConfig, raw: UNet, ema: UNet, step: usize, images: &Images, device: &Device) -> Result<ImageTrainer, String> {
        config.validate()?;
        let rng = Rng::derive(config.seed, &format!("image batches from step {step}"));
        Self::with(config, raw, ema, step, images, device, rng)
    }

    /// The run's whole state as a state file (`resume.rs`), with `extra` (e.g. the seconds
    /// trained) kept beside it. Reads the device back synchronously.
    pub fn save_state(&self, extra: serde_json::Value) -> Result<Vec<u8>, String> {
        self.pending_state(extra)?.encode()
    }

    /// Goes on with the run a state file (`save_state`) holds, exactly where it stopped; with the
    /// `extra` it was saved with. The file must be a state of `config`'s run.
    pub fn resume_state(config: ImageTrainConfig, bytes: &[u8], images: &Images, device: &Device) -> Result<(ImageTrainer, serde_json::Value), String> {
        config.validate()?;
        let config = ImageTrainConfig { net: config.net.resolved(), ..config };
        let st = RunState::read_for(bytes, <UNet as Stored>::FORMAT, &config, config.steps)?;
        let ema = st.ema.as_ref().ok_or("it holds no moving average of the weights")?;
        let raw = with_weights(UNet::init(&config.net, config.seed, device), &st.weights, "the state's weights")?;
        let ema = with_weights(UNet::init(&config.net, config.seed, device), ema, "the state's moving average")?;
        let mut tr = Self::with(config, raw, ema, st.step, images, device, st.rng.clone())?;
        let net = tr.net.as_ref().expect("trainer net present between steps");
        tr.optim.restore(&st.optimizer, net, device, "the state")?;
        Ok((tr, st.extra))
    }

    fn with(config: ImageTrainConfig, net: UNet, ema: UNet, step: usize, images: &Images, device: &Device, rng: Rng) -> Result<ImageTrainer, String> {
        let side = config.net.side;
        if (images.rows, images.cols) != (side, side) {
            return Err(format!("the images are {} x {}, the network is for {side} x {side}", images.rows, images.cols));
        }
        if images.n == 0 {
            return Err("no training images".into());
        }
        let optim = NamedOptimizer::adam(1e-8, None, config.grad_clip);
        let ad = device.clone().autodiff();
        Ok(ImageTrainer {
            config: ImageTrainConfig { net: config.net.resolved(), ..config },
            net: Some(net.to_device(&ad).train()),
            ema: ema.to_device(device),
            optim,
            device: ad,
            data: images.unit_rows(images.n),
            n: images.n,
            rng,
            step,
            last_loss: None,
            last_good: None,
            poison: false,
        })
    }

    pub fn steps_done(&self) -> usize {
        self.step
    }

    pub fn finished(&self) -> bool {
        self.step >= self.config.steps
    }

    /// One optimizer step on a fresh batch, then the EMA update. Reads nothing back.
    pub fn step(&mut self) {
        let cfg = &self.config;
        let (b, d, s) = (cfg.batch, cfg.net.dim(), cfg.net.side);
        let p = cfg.net.model;
        let (lo, hi) = cfg.net.range();
        let mut x = Vec::with_capacity(b * d);
        for _ in 0..b {
            let i = self.rng.below(self.n);
            x.extend_from_slice(&self.data[i * d..(i + 1) * d]);
        }
        let mut eps = self.rng.normals_f32(b * d);
        if std::mem::take(&mut self.poison) {
            eps[0] = f32::NAN;
        }
        let (ts, coeffs) = noise_levels(p, (lo, hi), b, &mut self.rng);
        let dev = &self.device;
        let x = Tensor::<4>::from_data(TensorData::new(x, [b, 1, s, s]), dev);
        let eps = Tensor::<4>::from_data(TensorData::new(eps, [b, 1, s, s]), dev);
        let co = Tensor::<2>::from_data(TensorData::new(coeffs.clone(), [b, 4]), dev);
        let col = |j: usize| co.clone().slice([0..b, j..j + 1]).reshape([b, 1, 1, 1]);
        let u = x.clone() * col(0) + eps.clone() * col(1);
        let target = x * col(2) + eps * col(3);
        let emb = time_rows(p, cfg.net.blind, &ts, dev);

        let net = self.net.take().expect("trainer net present between steps");
        let loss = if cfg.weighting.is_uniform() {
            (net.forward(u, emb) - target).square().mean()
        } else {
            let w: Vec<f32> = coeffs.chunks(4).map(|k| cfg.weighting.weight(k[0] as f64, k[1] as f64, k[2] as f64, k[3] as f64) as f32).collect();
            let total: f32 = w.iter().sum();
            let w = Tensor::<4>::from_data(TensorData::new(w.iter().map(|v| v / total).collect::<Vec<f32>>(), [b, 1, 1, 1]), dev);
            ((net.forward(u, emb) - target).square().mean_dim(3).mean_dim(2).mean_dim(1) * w).sum()
        };
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let net = self.optim.step(cosine_lr(cfg.lr, self.step, cfg.steps), net, grads);
        self.ema = ema_update(self.ema.clone(), &net.valid(), cfg.ema);
        self.net = Some(net);
        self.last_loss = Some(loss.detach());
        self.step += 1;
    }

    /// The last step's loss, read synchronously (a finite one marks the run as good, as
    /// `note_loss`).
    pub fn loss(&mut self) -> Option<f32> {
        let t = self.last_loss.clone()?;
        let v = t.into_data().convert::<f32>().try_to_vec::<f32>().ok()?.first().copied()?;
        Some(self.note_loss(v))
    }

    /// The last step's loss, still on the device (for a caller that reads it its own way, then
    /// reports the value with `note_loss`).
    pub fn pending_loss(&self) -> Option<Tensor<1>> {
        self.last_loss.clone()
    }

    /// Records a loss value read back: a finite one marks the run as it is now as good.
    pub fn note_loss(&mut self, loss: f32) -> f32 {
        if loss.is_finite() {
            if let Some(net) = &self.net {
                self.last_good = Some(Snapshot { step: self.step, net: net.clone(), ema: self.ema.clone(), optim: self.optim.clone(), rng: self.rng.clone() });
            }
        }
        loss
    }

    /// Fault injection for tests of the NaN path: the next step's batch holds a NaN, so its loss
    /// and every weight it updates become NaN, as a blown-up run's would.
    pub fn inject_nan(&mut self) {
        self.poison = true;
    }

    /// Puts the run back as it was at the last finite loss read (weights, moving average, Adam's
    /// moments, step and batch stream); returns that step, or `None` if no loss was ever finite.
    pub fn restore_last_good(&mut self) -> Option<usize> {
        let g = self.last_good.clone()?;
        self.net = Some(g.net);
        self.ema = g.ema;
        self.optim = g.optim;
        self.rng = g.rng;
        self.step = g.step;
        self.last_loss = None;
        Some(g.step)
    }

    /// The run's state (`save_state`) with its tensors still on the device: this step's, read
    /// back by `encode` or `encode_async` whatever the run does meanwhile.
    pub fn pending_state(&self, extra: serde_json::Value) -> Result<PendingState, String> {
        let net = self.net.as_ref().expect("trainer net present between steps");
        PendingState::new(<UNet as Stored>::FORMAT, &self.config, self.step, &self.rng, net, &self.optim, Some(&self.ema), extra)
    }

    /// The moving average as a checkpoint (f32, with the training record `geonoise images
    /// train` writes: this config, the steps done, `final_loss` and `seconds`), to be read back.
    pub fn pending_checkpoint(&self, final_loss: Option<f32>, seconds: f64) -> PendingCheckpoint {
        let info = serde_json::json!(ImageTrainingInfo { train: self.config.clone(), steps_done: self.step, final_loss, seconds });
        PendingCheckpoint { config: self.config.net.clone(), seed: self.config.seed, info, reads: crate::params::weight_reads(&self.ema, "") }
    }

    /// The raw weights, on the plain device.
    pub fn raw(&self) -> UNet {
        self.net.as_ref().expect("trainer net present between steps").valid()
    }

    /// The EMA weights as a model, ready to sample.
    pub fn ema_model(&self) -> ImageModel {
        ImageModel { config: self.config.net.clone(), net: self.ema.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::read_f32;
    use crate::target::Parameterization;

    /// Small images with structure a network can learn: a bright square at a random place.
    fn squares(n: usize, side: usize) -> Images {
        let mut rng = Rng::new(4);
        let mut pixels = vec![0u8; n * side * side];
        for i in 0..n {
            let (r, c) = (rng.below(side - 3), rng.below(side - 3));
            for dr in 0..3 {
                for dc in 0..3 {
                    pixels[i * side * side + (r + dr) * side + c + dc] = 255;
                }
            }
        }
        Images { n, rows: side, cols: side, pixels }
    }

    fn config(model: Parameterization, blind: bool) -> ImageTrainConfig {
        let net = UNetConfig { channels: 8, mults: vec![1, 2], side: 8, patch: 2, ..UNetConfig::new(model, blind) };
        ImageTrainConfig { steps: 60, batch: 16, lr: 3e-3, ema: 0.9, ..ImageTrainConfig::new(net) }
    }

    #[test]
    fn truncated_weighting_weighs_the_clean_estimates_error_where_it_is_larger() {
        let w = LossWeighting::Truncated;
        for &t in &[0.01, 0.3, 0.9, 0.999] {
            // FM: xhat = u - t f, so its error is t times the target's: weight 1.
            let p = Parameterization::Fm;
            let (c, d) = p.target_coeffs(t);
            assert_eq!(w.weight(p.a(t), p.b(t), c, d), 1.0);
            // DDPM: xhat = (u - b epshat) / a: weight max(1, b^2 / a^2).
            let p = Parameterization::Ddpm;
            let (a, b) = (p.a(t), p.b(t));
            let (c, d) = p.target_coeffs(t);
            assert!((w.weight(a, b, c, d) - (b * b / (a * a)).max(1.0)).abs() < 1e-9 * (b * b / (a * a)).max(1.0));
            assert_eq!(LossWeighting::Uniform.weight(a, b, c, d), 1.0);
        }
        // On FM's path the weighted loss is the plain one, step for step.
        let device = Device::flex();
        let images = squares(64, 8);
        let run = |weighting| {
            let mut tr = ImageTrainer::new(ImageTrainConfig { steps: 8, weighting, ..config(Parameterization::Fm, false) }, &images, &device).unwrap();
            (0..8).map(|_| {
                tr.step();
                tr.loss().unwrap()
            }).collect::<Vec<f32>>()
        };
        let (plain, weighted) = (run(LossWeighting::Uniform), run(LossWeighting::Truncated));
        for (a, b) in plain.iter().zip(&weighted) {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{plain:?} vs {weighted:?}");
        }
        ddpm_trains_with(LossWeighting::Truncated, "truncated");
        assert!(serde_json::to_value(config(Parameterization::Ddpm, false)).unwrap().get("weighting").is_none(), "uniform is left out, as in older records");
    }

    #[test]
    fn min_snr_weighting_is_the_plain_noise_loss_up_to_snr_5_and_less_above() {
        let w = LossWeighting::MinSnr;
        let p = Parameterization::Ddpm;
        let (mut below, mut above) = (0, 0);
        for k in 1..200 {
            let t = k as f64 / 200.0;
            let (a, b) = (p.a(t), p.b(t));
            let (c, d) = p.target_coeffs(t);
            let snr = a * a / (b * b);
            let got = w.weight(a, b, c, d);
            // DDPM: min(1, 5 / SNR); never above the plain loss's weight.
            assert!((got - (MIN_SNR_GAMMA / snr).min(1.0)).abs() < 1e-9, "t = {t}: {got} vs SNR {snr}");
            assert!(got <= 1.0 + 1e-12);
            if snr > MIN_SNR_GAMMA { above += 1; assert!(got < 1.0) } else { below += 1; assert!((got - 1.0).abs() < 1e-9) }
        }
        assert!(below > 0 && above > 0, "the grid crosses SNR = 5: {below} below, {above} above");
        // FM: the clean estimate's error is t times the velocity's, so min(SNR, 5) t^2 = min((1-t)^2, 5 t^2).
        let p = Parameterization::Fm;
        for &t in &[0.05, 0.3, 0.9] {
            let (c, d) = p.target_coeffs(t);
            let want = ((1.0 - t) * (1.0 - t)).min(MIN_SNR_GAMMA * t * t);
            assert!((w.weight(p.a(t), p.b(t), c, d) - want).abs() < 1e-9, "t = {t}");
        }
        ddpm_trains_with(w, "min-snr");
    }

    /// A DDPM run with `weighting` trains (its loss falls) and its config names the weighting.
    fn ddpm_trains_with(weighting: LossWeighting, name: &str) {
        let device = Device::flex();
        let images = squares(64, 8);
        let mut tr = ImageTrainer::new(ImageTrainConfig { weighting, ..config(Parameterization::Ddpm, false) }, &images, &device).unwrap();
        let mut losses = vec![];
        while !tr.finished() {
            tr.step();
            losses.push(tr.loss().unwrap());
        }
        let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
        assert!(mean(&losses[losses.len() - 10..]) < mean(&losses[..5]), "{name}: {losses:?}");
        assert_eq!(serde_json::to_value(&tr.config).unwrap()["weighting"], name);
    }

    #[test]
    fn loss_falls_and_the_ema_follows_the_weights() {
        let device = Device::flex();
        let images = squares(64, 8);
        for (model, blind) in [(Parameterization::Fm, true), (Parameterization::Ddpm, false)] {
            let mut tr = ImageTrainer::new(config(model, blind), &images, &device).unwrap();
            let mut losses = vec![];
            let before = read_f32(tr.ema_model().net.input.weight.val().reshape([8, 36]));
            while !tr.finished() {
                tr.step();
                losses.push(tr.loss().unwrap());
            }
            let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
            let (first, last) = (mean(&losses[..5]), mean(&losses[losses.len() - 10..]));
            assert!(last < 0.8 * first, "{model} blind={blind}: loss {first} -> {last}");
            // The EMA sits between where the weights started and where they are now.
            let raw = read_f32(tr.raw().input.weight.val().reshape([8, 36]));
            let ema = read_f32(tr.ema_model().net.input.weight.val().reshape([8, 36]));
            let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt();
            assert!(dist(&ema, &raw) < dist(&before, &raw), "EMA did not move towards the weights");
            assert!(dist(&ema, &before) > 0.0);
        }
    }

    /// N steps straight against k, a state written and read, then N - k: the same raw and EMA
    /// weights to the bit (Flex).
    #[test]
    fn a_run_resumed_from_its_state_is_the_same_run() {
        let device = Device::flex();
        let images = squares(64, 8);
        let cfg = ImageTrainConfig { steps: 12, ..config(Parameterization::Fm, true) };
        let mut straight = ImageTrainer::new(cfg.clone(), &images, &device).unwrap();
        while !straight.finished() {
            straight.step();
        }
        let mut first = ImageTrainer::new(cfg.clone(), &images, &device).unwrap();
        for _ in 0..5 {
            first.step();
        }
        let state = first.save_state(serde_json::json!({"seconds": 1.5})).unwrap();
        drop(first);
        let (mut second, extra) = ImageTrainer::resume_state(cfg.clone(), &state, &images, &device).unwrap();
        assert_eq!((second.steps_done(), extra), (5, serde_json::json!({"seconds": 1.5})));
        while !second.finished() {
            second.step();
        }
        assert_eq!(bits(crate::params::weights(&straight.raw())), bits(crate::params::weights(&second.raw())), "raw weights");
        assert_eq!(bits(crate::params::weights(&straight.ema_model().net)), bits(crate::params::weights(&second.ema_model().net)), "EMA weights");
        // Another run's state is refused with what differs.
        let e = ImageTrainer::resume_state(ImageTrainConfig { ema: 0.5, ..cfg }, &state, &images, &device).err().unwrap();
        assert!(e.contains("another run (ema: 0.9 here, 0.5 asked)"), "{e}");
    }

    type BTreeMapOf = std::collections::BTreeMap<String, TensorData>;

    fn bits(w: BTreeMapOf) -> Vec<u32> {
        w.into_values().flat_map(|d| d.try_to_vec::<f32>().unwrap()).map(f32::to_bits).collect()
    }

    /// A step that blows up (a NaN in its batch) is undone whole: the run goes back to its last
    /// finite loss read and goes on as the run that never failed, to the bit. Its checkpoint is
    /// the moving average with the training record, as the CLI writes it.
    #[test]
    fn a_blown_up_step_is_undone_and_the_checkpoint_is_the_moving_average() {
        let device = Device::flex();
        let images = squares(64, 8);
        let cfg = ImageTrainConfig { steps: 10, ..config(Parameterization::Fm, true) };
        let mut straight = ImageTrainer::new(cfg.clone(), &images, &device).unwrap();
        for _ in 0..5 {
            straight.step();
        }
        let mut tr = ImageTrainer::new(cfg.clone(), &images, &device).unwrap();
        assert_eq!(tr.restore_last_good(), None, "nothing was ever read");
        for _ in 0..3 {
            tr.step();
        }
        assert!(tr.loss().unwrap().is_finite());
        tr.inject_nan();
        tr.step();
        assert!(tr.loss().unwrap().is_nan());
        assert!(crate::params::weights(&tr.raw()).values().any(|d| d.try_to_vec::<f32>().unwrap().iter().any(|v| v.is_nan())));
        assert_eq!(tr.restore_last_good(), Some(3));
        assert_eq!((tr.steps_done(), tr.pending_loss().is_none()), (3, true));
        tr.step();
        tr.step();
        assert_eq!(bits(crate::params::weights(&tr.raw())), bits(crate::params::weights(&straight.raw())), "raw weights");
        assert_eq!(bits(crate::params::weights(&tr.ema_model().net)), bits(crate::params::weights(&straight.ema_model().net)), "EMA weights");
        let bytes = tr.pending_checkpoint(Some(0.25), 1.5).encode().unwrap();
        let loaded = super::super::store::load::<UNet>(&bytes, &device).unwrap();
        assert_eq!(loaded.config, tr.config.net);
        assert_eq!(bits(crate::params::weights(&loaded.net)), bits(crate::params::weights(&tr.ema_model().net)), "the file holds the moving average in f32");
        let info: ImageTrainingInfo = serde_json::from_value(loaded.training.unwrap()).unwrap();
        assert_eq!(info, ImageTrainingInfo { train: tr.config.clone(), steps_done: 5, final_loss: Some(0.25), seconds: 1.5 });
    }

    #[test]
    fn ema_update_is_the_weighted_mean() {
        let device = Device::flex();
        let cfg = UNetConfig { channels: 4, mults: vec![1], side: 4, patch: 1, ..UNetConfig::new(Parameterization::Fm, true) };
        let a = UNet::init(&cfg, 1, &device);
        let b = UNet::init(&cfg, 2, &device);
        let w = |m: &UNet| read_f32(m.input.weight.val().reshape([4, 9]));
        let (wa, wb) = (w(&a), w(&b));
        let mixed = w(&ema_update(a, &b, 0.75));
        for i in 0..wa.len() {
            assert!((mixed[i] - (0.75 * wa[i] + 0.25 * wb[i])).abs() < 1e-6);
        }
    }

    #[test]
    fn wrong_image_size_and_bad_settings_are_refused() {
        let device = Device::flex();
        let e = ImageTrainer::new(config(Parameterization::Fm, true), &squares(4, 12), &device).err().unwrap();
        assert!(e.contains("12 x 12"), "{e}");
        let bad = ImageTrainConfig { ema: 1.0, ..config(Parameterization::Fm, true) };
        assert!(ImageTrainer::new(bad, &squares(4, 8), &device).is_err());
    }
}
