//! A step-at-a-time trainer for `E || f_theta(u [, t]) - f ||^2` (paper Sec. 3).
//!
//! The same `Trainer::step` serves the native loop (`geonoise train`) and an async browser loop
//! that pumps a few steps per animation frame. A step issues work only: it never reads a tensor
//! back. The loss stays on the device until someone asks for it (`loss` reads it synchronously;
//! the browser reads `pending_loss` asynchronously and reports it with `note_loss`), so a caller
//! decides how often to pay for a readback.
//!
//! Batches are drawn on the host from the deterministic generator and uploaded, so a seed gives
//! the same run on every backend.

use crate::data::Projection;
use crate::dataset::DataSet;
use crate::model::{time_embedding, Model, ModelConfig, Net};
#[cfg(feature = "webgpu")]
use crate::model::time_row;
use crate::rng::Rng;
use crate::target::Parameterization;
use crate::checkpoint;
use crate::optimizer::{NamedOptimizer, OptimState};
use crate::params::with_weights;
use crate::resume::{PendingState, RunState};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(not(target_family = "wasm"), derive(clap::ValueEnum))]
pub enum OptimizerKind {
    Adam,
    Adamw,
}

/// One training run: the model it makes and how. Shared by the CLI flags, the checkpoint
/// metadata and the browser worker's messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::Args))]
pub struct TrainConfig {
    #[cfg_attr(not(target_family = "wasm"), command(flatten))]
    pub model: ModelConfig,
    /// Number of optimizer steps.
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 2000))]
    pub steps: usize,
    /// Batch size.
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 512))]
    pub batch: usize,
    /// Peak learning rate (cosine-decayed to a tenth by the last step).
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 1e-3))]
    pub lr: f64,
    /// Optimizer.
    #[cfg_attr(not(target_family = "wasm"), arg(long, value_enum, default_value_t = OptimizerKind::Adam))]
    pub optimizer: OptimizerKind,
    /// Weight decay (AdamW only).
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 0.0))]
    pub weight_decay: f64,
    /// Clip each parameter's gradient to this norm (0 = off).
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 1.0))]
    pub grad_clip: f64,
    /// Seed for the initial weights and the training batches.
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 0))]
    pub seed: u64,
}

impl TrainConfig {
    pub fn new(model: ModelConfig) -> Self {
        TrainConfig {
            model,
            steps: 2000,
            batch: 512,
            lr: 1e-3,
            optimizer: OptimizerKind::Adam,
            weight_decay: 0.0,
            grad_clip: 1.0,
            seed: 0,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.model.validate()?;
        if !(1..=65_536).contains(&self.batch) {
            return Err(format!("batch size {} is out of range 1..=65536", self.batch));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 1.0) {
            return Err(format!("learning rate {} is out of range (0, 1]", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!("weight decay {} must be >= 0", self.weight_decay));
        }
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            return Err(format!("gradient clip {} must be >= 0", self.grad_clip));
        }
        Ok(())
    }

    /// Rough peak memory of a training step, in bytes: the weights four times over (weights,
    /// gradients, Adam's two moments) plus what the backward pass keeps per sample, about
    /// `2 D + 6 (depth + 1) W` floats (fitted to the peak memory of `geonoise train` on Flex at
    /// two shapes), with half again for the allocator. The browser refuses runs above its budget
    /// before they start, rather than run out of memory part way.
    pub fn memory_estimate(&self) -> u64 {
        let m = &self.model;
        let per_sample = 2 * m.dim + 6 * (m.depth + 1) * m.width;
        let floats = 4 * m.param_count() as u64 + (self.batch * per_sample) as u64;
        floats * 4 * 3 / 2
    }

    /// Learning rate at step `k` (0-based): cosine from `lr` down to `lr / 10` over `steps`.
    pub fn lr_at(&self, k: usize) -> f64 {
        cosine_lr(self.lr, k, self.steps)
    }
}

/// Learning rate at step `k` (0-based) of `steps`: cosine from `lr` down to `lr / 10`.
pub fn cosine_lr(lr: f64, k: usize, steps: usize) -> f64 {
    let p = (k as f64 / steps.max(1) as f64).min(1.0);
    let floor = 0.1;
    lr * (floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()))
}

/// `b` noise levels drawn from `p`'s prior on `range`, and the rows `[a, b, c, d]` of each (the
/// forward process and the target), as the toy's and the image trainer's batches use them.
pub fn noise_levels(p: Parameterization, range: (f64, f64), b: usize, rng: &mut Rng) -> (Vec<f64>, Vec<f32>) {
    let prior = p.prior();
    let ts: Vec<f64> = (0..b).map(|_| prior.quantile(rng.uniform(), range.0, range.1)).collect();
    let mut coeffs = Vec::with_capacity(4 * b);
    for &t in &ts {
        let (c, d) = p.target_coeffs(t);
        coeffs.extend_from_slice(&[p.a(t) as f32, p.b(t) as f32, c as f32, d as f32]);
    }
    (ts, coeffs)
}

/// The trainer's state between steps.
pub struct Trainer {
    pub config: TrainConfig,
    /// On the autodiff device; `None` only transiently inside `step`.
    net: Option<Net>,
    /// The weights as they were at the last loss read that came back finite.
    last_good: Option<(usize, Net)>,
    optim: NamedOptimizer,
    device: Device,
    projection: Projection,
    projection_t: Tensor<2>,
    /// The 2-D data set the batches are drawn from.
    data: DataSet,
    rng: Rng,
    step: usize,
    last_loss: Option<Tensor<1>>,
    /// Fault injection: the next batch carries a NaN (see `inject_nan`).
    poison: bool,
    /// On a cubecl device, for a net the kernels take: the run in flat buffers, trained by the
    /// fused step (`fused::step`); `net` and `optim` are then only its templates, and what they
    /// would hold is unpacked from it when asked for.
    #[cfg(feature = "webgpu")]
    fused: Option<crate::fused::step::FusedRun>,
}

impl Trainer {
    /// `device` is the plain device (Flex or wgpu); the trainer wraps it with autodiff.
    pub fn new(config: TrainConfig, device: &Device) -> Result<Trainer, String> {
        config.validate()?;
        let net = Net::init(&config.model, config.seed, &device.clone().autodiff());
        Self::with_net(config, net, 0, device, None)
    }

    /// Goes on training `model` (e.g. a checkpoint saved at step `step`) under `config`, from a
    /// file of weights alone: the optimizer's moments start afresh and the batches come from a
    /// stream of their own, so this is a continuation, not the same run. A run's state file
    /// (`save_state`, `resume_state`) resumes it exactly.
    pub fn resume(config: TrainConfig, model: &Model, step: usize, device: &Device) -> Result<Trainer, String> {
        config.validate()?;
        if model.config.resolved() != config.model.resolved() {
            return Err(format!("the weights are a {} model, the run trains {}", model.config.label(), config.model.label()));
        }
        let net = model.net.clone().to_device(device).train();
        let mut tr = Self::with_net(config, net, step, device, None)?;
        tr.rng = Rng::derive(tr.config.seed, &format!("batches from step {step}"));
        Ok(tr)
    }

    /// The run's whole state as a state file (`resume.rs`): the weights, Adam's moments by
    /// parameter name, the step and the batch stream's position, with `extra` (e.g. the seconds
    /// trained) kept beside it. Reads the device back synchronously (native, or Flex in the
    /// browser).
    pub fn save_state(&self, extra: serde_json::Value) -> Result<Vec<u8>, String> {
        self.pending_state(extra)?.encode()
    }

    /// The run's state with its tensors still on the device, to be read back (`encode`, or
    /// `encode_async` on WebGPU): this step's, whatever the run does meanwhile.
    pub fn pending_state(&self, extra: serde_json::Value) -> Result<PendingState, String> {
        #[cfg(feature = "webgpu")]
        if let Some(f) = &self.fused {
            return PendingState::new(checkpoint::FORMAT, &self.config, self.step, &self.rng, &self.net_now(), &f.optimizer(&self.optim), None, extra);
        }
        let net = self.net.as_ref().expect("trainer net present between steps");
        PendingState::new(checkpoint::FORMAT, &self.config, self.step, &self.rng, net, &self.optim, None, extra)
    }

    /// Goes on with the run a state file (`save_state`) holds, exactly where it stopped: N steps
    /// straight and k steps, a stop, then N - k steps from the state give the same weights. The
    /// file must be a state of `config`'s run; anything else is refused with what differs. Returns
    /// the `extra` it was saved with too.
    pub fn resume_state(config: TrainConfig, bytes: &[u8], device: &Device) -> Result<(Trainer, serde_json::Value), String> {
        config.validate()?;
        let config = TrainConfig { model: config.model.resolved(), ..config };
        let st = RunState::read_for(bytes, checkpoint::FORMAT, &config, config.steps)?;
        if st.ema.is_some() {
            return Err("it holds a moving average of the weights, which this trainer does not keep".into());
        }
        let net = with_weights(Net::init(&config.model, config.seed, device), &st.weights, "the state")?;
        let mut tr = Self::with_net(config, net.to_device(device).train(), st.step, device, Some(&st.optimizer))?;
        tr.rng = st.rng;
        Ok((tr, st.extra))
    }

    /// The trainer of `net` at `step`, with the optimizer's state `moments` put back where a run
    /// resumes (`None`: moments start afresh).
    fn with_net(config: TrainConfig, net: Net, step: usize, device: &Device, moments: Option<&OptimState>) -> Result<Trainer, String> {
        let config = TrainConfig { model: config.model.resolved(), ..config };
        let device = device.clone().autodiff();
        let weight_decay = (config.optimizer == OptimizerKind::Adamw).then_some(config.weight_decay as f32);
        let mut optim = NamedOptimizer::adam(1e-8, weight_decay, config.grad_clip);
        if let Some(state) = moments {
            optim.restore(state, &net, &device.clone().inner(), "the state")?;
        }
        let projection = Projection::new(config.model.dim, config.model.projection_seed)?;
        let projection_t = projection.tensor(&device).transpose();
        let data = config.model.data.build()?;
        let rng = Rng::derive(config.seed, "batches");
        #[cfg(feature = "webgpu")]
        let fused = crate::fused::step::FusedRun::new(&net, &optim, &projection);
        Ok(Trainer {
            config,
            net: Some(net),
            last_good: None,
            optim,
            device,
            projection,
            projection_t,
            data,
            rng,
            step,
            last_loss: None,
            poison: false,
            #[cfg(feature = "webgpu")]
            fused,
        })
    }

    pub fn steps_done(&self) -> usize {
        self.step
    }

    pub fn finished(&self) -> bool {
        self.step >= self.config.steps
    }

    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    /// One optimizer step on a fresh batch. Issues device work only; reads nothing back.
    pub fn step(&mut self) {
        let cfg = &self.config;
        let (b, d) = (cfg.batch, cfg.model.dim);
        let p = cfg.model.model;
        let (lo, hi) = cfg.model.range();

        // Host-side batch: clean points in the plane, noise, noise levels and their coefficients.
        let x2 = self.data.sample(&mut self.rng, b);
        let mut eps = self.rng.normals_f32(b * d);
        if std::mem::take(&mut self.poison) {
            eps[0] = f32::NAN;
        }
        let (ts, coeffs) = noise_levels(p, (lo, hi), b, &mut self.rng);
        #[cfg(feature = "webgpu")]
        if let Some(f) = &mut self.fused {
            // One upload: each row's point, noise, coefficients and time features.
            // Room for the optimizer's numbers too, which the fused run appends.
            let mut rows = Vec::with_capacity(b * crate::fused::step::row_len(d) + crate::fused::step::SCALARS);
            for (r, &t) in ts.iter().enumerate() {
                rows.extend_from_slice(&x2[2 * r..2 * r + 2]);
                rows.extend_from_slice(&eps[r * d..(r + 1) * d]);
                rows.extend_from_slice(&coeffs[4 * r..4 * r + 4]);
                rows.extend_from_slice(&time_row(p, cfg.model.blind, t));
            }
            let (optim, lr) = (&self.optim, cfg.lr_at(self.step));
            self.last_loss = Some(f.step(rows, b, |time| optim.fused_step(time, lr)));
            self.step += 1;
            return;
        }
        let dev = &self.device;
        let x = Tensor::<2>::from_data(TensorData::new(x2, [b, 2]), dev).matmul(self.projection_t.clone());
        let eps = Tensor::<2>::from_data(TensorData::new(eps, [b, d]), dev);
        let co = Tensor::<2>::from_data(TensorData::new(coeffs, [b, 4]), dev);
        let col = |j: usize| co.clone().slice([0..b, j..j + 1]);
        let u = x.clone() * col(0) + eps.clone() * col(1);
        let target = x * col(2) + eps * col(3);
        let emb = time_embedding(&cfg.model, &ts, dev);

        let net = self.net.take().expect("trainer net present between steps");
        let pred = net.forward(u, emb);
        let loss = (pred - target).square().mean();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        let lr = cfg.lr_at(self.step);
        self.net = Some(self.optim.step(lr, net, grads));
        self.last_loss = Some(loss.detach());
        self.step += 1;
    }

    /// The last step's loss, still on the device (for a caller that reads it its own way, then
    /// reports the value with `note_loss`).
    pub fn pending_loss(&self) -> Option<Tensor<1>> {
        self.last_loss.clone()
    }

    /// Records a loss value read back: a finite one marks the current weights as good.
    pub fn note_loss(&mut self, loss: f32) -> f32 {
        if loss.is_finite() {
            #[cfg(feature = "webgpu")]
            if let Some(f) = &mut self.fused {
                f.mark_good(self.step);
                return loss;
            }
            if let Some(net) = &self.net {
                self.last_good = Some((self.step, net.clone()));
            }
        }
        loss
    }

    /// The last step's loss, read synchronously (native, or Flex anywhere).
    pub fn loss(&mut self) -> Option<f32> {
        let t = self.last_loss.clone()?;
        let v = t.into_data().try_to_vec::<f32>().ok()?.first().copied()?;
        Some(self.note_loss(v))
    }

    /// The model as trained so far, on the plain device, ready to sample.
    pub fn model(&self) -> Model {
        let net = self.net_now().valid();
        Model::from_net(self.config.model.clone(), net)
    }

    /// The weights at the last finite loss read, with the step they were read at.
    pub fn last_good_model(&self) -> Option<(usize, Model)> {
        #[cfg(feature = "webgpu")]
        if let Some(f) = &self.fused {
            let (k, flat) = f.good()?;
            let template = self.net.as_ref().expect("trainer net present between steps").valid();
            return Some((k, Model::from_net(self.config.model.clone(), f.net(template, Some(&flat)))));
        }
        self.last_good
            .as_ref()
            .map(|(k, net)| (*k, Model::from_net(self.config.model.clone(), net.valid())))
    }

    /// Fault injection for tests of the NaN path: the next step's batch holds a NaN, so its loss
    /// and every weight it updates become NaN, as a blown-up run's would.
    pub fn inject_nan(&mut self) {
        self.poison = true;
    }

    /// Puts back the weights of the last finite loss read (after a loss went NaN or infinite);
    /// returns the step they were read at, or `None` if no loss was ever finite.
    pub fn restore_last_good(&mut self) -> Option<usize> {
        #[cfg(feature = "webgpu")]
        if let Some(f) = &mut self.fused {
            let k = f.restore_good()?;
            self.step = k;
            self.last_loss = None;
            return Some(k);
        }
        let (k, net) = self.last_good.clone()?;
        self.net = Some(net);
        self.step = k; // the run is back where those weights were
        self.last_loss = None;
        Some(k)
    }

    pub fn device(&self) -> Device {
        self.device.clone().inner()
    }

    /// The weights now: the trainer's net, or on the fused path, views of its flat buffer (on
    /// the plain device).
    fn net_now(&self) -> Net {
        let net = self.net.as_ref().expect("trainer net present between steps");
        #[cfg(feature = "webgpu")]
        if let Some(f) = &self.fused {
            return f.net(net.valid(), None);
        }
        net.clone()
    }

    /// Whether the steps run as the fused kernels (`fused::step`) rather than burn's autodiff.
    pub fn is_fused(&self) -> bool {
        #[cfg(feature = "webgpu")]
        return self.fused.is_some();
        #[cfg(not(feature = "webgpu"))]
        false
    }

    /// Whether the last step replayed the recorded fused step (`fused::replay`): on the fused
    /// path, every step after the first once it was recorded.
    pub fn is_replaying(&self) -> bool {
        #[cfg(feature = "webgpu")]
        return self.fused.as_ref().is_some_and(|f| f.replaying());
        #[cfg(not(feature = "webgpu"))]
        false
    }

    /// Turns the recording and replay of the fused step on or off (on by default; off, every step
    /// goes through the launch path). For comparisons; a no-op off the fused path.
    pub fn set_replay(&mut self, on: bool) {
        #[cfg(feature = "webgpu")]
        if let Some(f) = &mut self.fused {
            f.set_replay(on);
        }
        #[cfg(not(feature = "webgpu"))]
        let _ = on;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_estimate_tracks_the_shape() {
        let small = TrainConfig { batch: 256, ..TrainConfig::new(ModelConfig { width: 128, depth: 3, ..ModelConfig::new(Parameterization::Fm, true, 128) }) };
        let est = small.memory_estimate();
        // The weights alone: 4 copies of every float.
        assert!(est > 16 * small.model.param_count() as u64);
        assert!(est < 16 << 20, "{est}");
        let twice = TrainConfig { batch: 512, ..small.clone() };
        assert!(twice.memory_estimate() > est);
        let wide = TrainConfig { model: ModelConfig { width: 1024, depth: 16, dim: 1024, ..small.model.clone() }, batch: 4096, ..small.clone() };
        assert!(wide.memory_estimate() > 2 << 30, "{}", wide.memory_estimate());
    }

    #[test]
    fn loss_falls_and_runs_are_reproducible() {
        let device = Device::flex();
        let mc = ModelConfig { width: 32, depth: 1, ..ModelConfig::new(Parameterization::Fm, false, 2) };
        let cfg = TrainConfig { steps: 150, batch: 128, lr: 3e-3, ..TrainConfig::new(mc) };
        let run = || {
            let mut tr = Trainer::new(cfg.clone(), &device).unwrap();
            let mut losses = vec![];
            while !tr.finished() {
                tr.step();
                losses.push(tr.loss().unwrap());
            }
            losses
        };
        let a = run();
        assert_eq!(a, run(), "same seed, same losses");
        let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
        let (first, last) = (mean(&a[..10]), mean(&a[a.len() - 30..]));
        assert!(last < 0.9 * first, "loss did not fall: first steps {first}, last steps {last}");
    }

    /// A run on another data set learns that data: after a short run at D = 2 its samples sit
    /// nearer the drawn points than the circles' do, and its checkpoint says what it was trained
    /// on (a file of the circles says nothing, as before).
    #[test]
    fn a_run_on_drawn_points_learns_them_and_its_checkpoint_knows_them() {
        use crate::dataset::DataSpec;
        let device = Device::flex();
        let spec = DataSpec::Points { points: vec![[0.0, 0.0], [4.0, 0.0], [2.0, 3.0]] };
        let mc = ModelConfig { width: 64, depth: 2, data: spec.clone(), ..ModelConfig::new(Parameterization::Fm, false, 2) };
        let cfg = TrainConfig { steps: 600, batch: 256, lr: 5e-3, ..TrainConfig::new(mc) };
        let mut tr = Trainer::new(cfg.clone(), &device).unwrap();
        while !tr.finished() {
            tr.step();
        }
        let model = tr.model();
        let bytes = crate::checkpoint::save(&model, None).unwrap();
        let (back, _) = crate::checkpoint::load(&bytes, &device, &crate::checkpoint::Expected::any()).unwrap();
        assert_eq!(back.config.data, spec);
        let circles = crate::checkpoint::save(&Model::new(ModelConfig::new(Parameterization::Fm, true, 2), 0, &device).unwrap(), None).unwrap();
        assert!(!String::from_utf8_lossy(&circles[..circles.len().min(4096)]).contains("\"data\""), "a circles file names no data set");
        let samples = crate::sample::read_f32(crate::sample::Sampler::new(std::rc::Rc::new(back), crate::sample::SampleConfig { n: 400, ..Default::default() }, tr.projection(), &device).unwrap().run());
        let data = spec.build().unwrap();
        let ours = crate::metrics::compute_for(&samples, tr.projection(), &data).unwrap();
        let theirs = crate::metrics::compute_for(&samples, tr.projection(), &crate::dataset::DataSet::circles()).unwrap();
        assert!(ours.radial_error_median < 0.5 * theirs.radial_error_median, "drawn {ours:?}\ncircles {theirs:?}");
        // A bad data set is refused before training starts.
        let bad = TrainConfig { model: ModelConfig { data: DataSpec::Points { points: vec![[1.0, 1.0]] }, ..cfg.model.clone() }, ..cfg };
        assert!(Trainer::new(bad, &device).err().unwrap().contains("at least 2 points"));
    }

    /// Every weight and bias of a model, in layer order.
    fn weights(m: &Model) -> Vec<f32> {
        let mut v = vec![];
        for l in m.net.linears() {
            v.extend(l.weight.val().flatten::<1>(0, 1).into_data().try_to_vec::<f32>().unwrap());
            v.extend(l.bias.as_ref().unwrap().val().into_data().try_to_vec::<f32>().unwrap());
        }
        v
    }

    #[test]
    fn resumed_run_continues_from_the_saved_weights() {
        let device = Device::flex();
        let mc = ModelConfig { width: 32, depth: 1, ..ModelConfig::new(Parameterization::Fm, true, 4) };
        let cfg = TrainConfig { steps: 200, batch: 128, lr: 3e-3, ..TrainConfig::new(mc) };
        let mut tr = Trainer::new(cfg.clone(), &device).unwrap();
        let mut first = vec![];
        for _ in 0..100 {
            tr.step();
            first.push(tr.loss().unwrap());
        }
        let bytes = crate::checkpoint::save(&tr.model(), None).unwrap();
        let (model, _) = crate::checkpoint::load(&bytes, &device, &crate::checkpoint::Expected::any()).unwrap();
        let mut back = Trainer::resume(cfg.clone(), &model, 100, &device).unwrap();
        assert_eq!(back.steps_done(), 100);
        let mut rest = vec![];
        while !back.finished() {
            back.step();
            rest.push(back.loss().unwrap());
        }
        assert_eq!(rest.len(), 100);
        assert!(weights(&back.model()) != weights(&model), "the resumed run must update the weights");
        let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
        // Continuing from trained weights, not from scratch: the loss stays at the trained level.
        assert!(mean(&rest[..10]) < 0.9 * mean(&first[..10]), "{} vs {}", mean(&rest[..10]), mean(&first[..10]));
        let other = ModelConfig { dim: 8, ..cfg.model.clone() };
        assert!(Trainer::resume(TrainConfig { model: other, ..cfg }, &model, 0, &device).is_err());
    }

    /// N steps straight, and k steps, the state written, a new trainer from it and N - k more:
    /// the same weights to the bit (Adam and AdamW, on Flex).
    #[test]
    fn a_run_resumed_from_its_state_is_the_same_run() {
        let device = Device::flex();
        for optimizer in [OptimizerKind::Adam, OptimizerKind::Adamw] {
            let mc = ModelConfig { width: 32, depth: 2, ..ModelConfig::new(Parameterization::Ddpm, true, 6) };
            let cfg = TrainConfig { steps: 40, batch: 64, lr: 3e-3, optimizer, weight_decay: 0.01, ..TrainConfig::new(mc) };
            let mut straight = Trainer::new(cfg.clone(), &device).unwrap();
            while !straight.finished() {
                straight.step();
            }
            let mut first = Trainer::new(cfg.clone(), &device).unwrap();
            for _ in 0..15 {
                first.step();
            }
            let state = first.save_state(serde_json::json!({"seconds": 2.0})).unwrap();
            drop(first);
            let (mut second, extra) = Trainer::resume_state(cfg.clone(), &state, &device).unwrap();
            assert_eq!((second.steps_done(), extra), (15, serde_json::json!({"seconds": 2.0})));
            while !second.finished() {
                second.step();
            }
            let (a, b) = (weights(&straight.model()), weights(&second.model()));
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{optimizer:?}: the resumed run's weights differ");
            // The old way (weights alone) is a continuation, not the same run.
            let mut cont = Trainer::resume(cfg.clone(), &Trainer::resume_state(cfg.clone(), &state, &device).unwrap().0.model(), 15, &device).unwrap();
            while !cont.finished() {
                cont.step();
            }
            assert!(weights(&cont.model()) != a, "fresh moments and another batch stream give other weights");
        }
    }

    #[test]
    fn a_state_of_another_run_or_a_damaged_one_is_refused_by_what_is_wrong() {
        let device = Device::flex();
        let mc = ModelConfig { width: 16, depth: 1, ..ModelConfig::new(Parameterization::Fm, true, 4) };
        let cfg = TrainConfig { steps: 20, batch: 16, ..TrainConfig::new(mc) };
        let mut tr = Trainer::new(cfg.clone(), &device).unwrap();
        for _ in 0..3 {
            tr.step();
        }
        let state = tr.save_state(serde_json::Value::Null).unwrap();
        let err = |c: &TrainConfig, b: &[u8]| Trainer::resume_state(c.clone(), b, &device).err().expect("refused");
        assert!(err(&TrainConfig { lr: 5e-3, ..cfg.clone() }, &state).contains("another run (lr: 0.001 here, 0.005 asked)"), "{}", err(&TrainConfig { lr: 5e-3, ..cfg.clone() }, &state));
        let wider = TrainConfig { model: ModelConfig { width: 32, ..cfg.model.clone() }, ..cfg.clone() };
        assert!(err(&wider, &state).contains("another run (model:"));
        assert!(err(&cfg, &state[..state.len() - 7]).contains("truncated or damaged"));
        assert!(err(&cfg, &[]).contains("empty"));
        let weights_file = crate::checkpoint::save(&tr.model(), None).unwrap();
        assert!(err(&cfg, &weights_file).contains("holds a geonoise-checkpoint, not a training state"));
        // A NaN in a moment, and a moment of a parameter the model does not have.
        let mut st = RunState::decode(&state, checkpoint::FORMAT).unwrap();
        let key = st.optimizer.tensors.keys().next().unwrap().clone();
        let shape = st.optimizer.tensors[&key].shape().to_vec();
        let n: usize = shape.iter().product();
        st.optimizer.tensors.insert(key.clone(), TensorData::new(vec![f32::NAN; n], shape));
        let e = err(&cfg, &st.encode().unwrap());
        assert!(e.contains(&format!("adam/{key} holds {n} non-finite values")), "{e}");
        let mut st = RunState::decode(&state, checkpoint::FORMAT).unwrap();
        st.optimizer.tensors.insert("blocks.7.fc1.weight/momentum.moment_1".into(), TensorData::new(vec![0f32; 4], [2, 2]));
        assert!(err(&cfg, &st.encode().unwrap()).contains("blocks.7.fc1.weight, which the model does not have"));
        let mut st = RunState::decode(&state, checkpoint::FORMAT).unwrap();
        st.optimizer.tensors.retain(|k, _| !k.starts_with("gain.weight/"));
        st.optimizer.scalars.retain(|k, _| !k.starts_with("gain.weight/"));
        assert!(err(&cfg, &st.encode().unwrap()).contains("no optimizer state for the parameter gain.weight"));
        let mut st = RunState::decode(&state, checkpoint::FORMAT).unwrap();
        st.optimizer.tensors.remove("gain.weight/momentum.moment_2");
        assert!(err(&cfg, &st.encode().unwrap()).contains("the optimizer's state of gain.weight is incomplete"));
        let mut st = RunState::decode(&state, checkpoint::FORMAT).unwrap();
        st.weights.remove("output.bias");
        assert!(err(&cfg, &st.encode().unwrap()).contains("no values for the parameter output.bias"));
    }

    #[test]
    fn last_good_weights_come_back_after_a_bad_loss() {
        let device = Device::flex();
        let mc = ModelConfig { width: 16, depth: 1, ..ModelConfig::new(Parameterization::Ddpm, true, 4) };
        let mut tr = Trainer::new(TrainConfig { steps: 10, batch: 32, ..TrainConfig::new(mc) }, &device).unwrap();
        assert_eq!(tr.restore_last_good(), None);
        tr.step();
        tr.loss().unwrap();
        let good = weights(&tr.model());
        tr.inject_nan();
        tr.step();
        assert!(tr.loss().unwrap().is_nan());
        assert!(weights(&tr.model()).iter().any(|w| w.is_nan()), "a NaN batch spoils the weights");
        assert_eq!(tr.restore_last_good(), Some(1));
        assert!(weights(&tr.model()) == good);
        assert_eq!(tr.steps_done(), 1);
    }

    #[test]
    fn bad_configs_are_refused() {
        let device = Device::flex();
        let mc = ModelConfig::new(Parameterization::Fm, true, 4);
        for cfg in [
            TrainConfig { batch: 0, ..TrainConfig::new(mc.clone()) },
            TrainConfig { lr: f64::NAN, ..TrainConfig::new(mc.clone()) },
            TrainConfig::new(ModelConfig { dim: 1, ..mc.clone() }),
        ] {
            assert!(Trainer::new(cfg, &device).is_err());
        }
    }

    #[test]
    fn lr_schedule_is_cosine_to_a_tenth() {
        let cfg = TrainConfig::new(ModelConfig::new(Parameterization::Fm, true, 4));
        assert!((cfg.lr_at(0) - 1e-3).abs() < 1e-12);
        assert!((cfg.lr_at(cfg.steps) - 1e-4).abs() < 1e-12);
    }
}
