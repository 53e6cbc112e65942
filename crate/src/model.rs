//! The network of the toy experiment: one residual MLP for every parameterization.
//!
//! `u (D) -> Linear -> [residual block] x depth -> SiLU -> z`, each block
//! `h <- h + fc2(SiLU(fc1(SiLU(h)) + time(emb)))`, where `emb` is a sinusoidal embedding of the
//! noise level, and the output is
//!
//! ```text
//! f(u) = output(z) + gain(z) * u        output: W -> D, gain: W -> 1, both zero-initialised
//! ```
//!
//! Why the gated skip: off the data plane every optimal field here is a scalar times `u`
//! (`f*_perp = u_perp / t` for FM, `u_perp / b` for DDPM, `E[1/t | u] u_perp` for blind FM). A
//! plain MLP of width W < D cannot even represent the identity on D dimensions (its output has
//! rank at most W), so at D = 512 with W = 128 it learns nothing off the plane and its samples
//! diverge. The scalar head supplies exactly the missing degree of freedom; for a blind model it
//! has to infer the gain from `u` alone, which is the paper's point.
//!
//! A **blind** model is the same network with `emb` zeroed, as in the paper's protocol: it sees
//! only `u` (each block's time layer then contributes only its bias).

use crate::dataset::DataSpec;
use crate::rng::Rng;
use crate::target::Parameterization;
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation;
use burn::tensor::{Device, Tensor, TensorData, Transaction};
use serde::{Deserialize, Serialize};

/// Number of sinusoidal frequencies; the embedding has twice as many features (sin and cos).
pub const TIME_FREQS: usize = 16;
pub const TIME_FEATURES: usize = 2 * TIME_FREQS;

/// Everything that defines a model and the experiment it belongs to. Saved in every checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::Args))]
pub struct ModelConfig {
    /// Parameterization: fm, ddpm, edm, eqm or uedm.
    #[cfg_attr(not(target_family = "wasm"), arg(long = "model", default_value = "fm"))]
    pub model: Parameterization,
    /// Blind (autonomous): the network never sees the noise level.
    #[cfg_attr(not(target_family = "wasm"), arg(long, conflicts_with = "conditional"))]
    pub blind: bool,
    /// Ambient dimension D (2..=1024).
    #[cfg_attr(not(target_family = "wasm"), arg(long = "dim", default_value_t = 8))]
    pub dim: usize,
    /// Hidden width of the residual MLP.
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 256))]
    pub width: usize,
    /// Number of residual blocks.
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 4))]
    pub depth: usize,
    /// Lowest noise level (default: the parameterization's).
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub t_min: Option<f64>,
    /// Highest noise level (default: the parameterization's).
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub t_max: Option<f64>,
    /// Seed of the lift matrix P (the data set the model is trained on).
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 0))]
    pub projection_seed: u64,
    /// The 2-D data set lifted into R^D: the paper's circles unless another is given (the CLI's
    /// `--data` / `--data-points`). Left out of files when it is the circles, so every file
    /// written before it existed reads as what it was trained on.
    #[cfg_attr(not(target_family = "wasm"), arg(skip))]
    #[serde(default, skip_serializing_if = "DataSpec::is_circles")]
    pub data: DataSpec,
}

impl ModelConfig {
    pub fn new(model: Parameterization, blind: bool, dim: usize) -> Self {
        ModelConfig { model, blind, dim, width: 256, depth: 4, t_min: None, t_max: None, projection_seed: 0, data: DataSpec::default() }
    }

    /// `(t_min, t_max)`, the configured values or the parameterization's defaults.
    pub fn range(&self) -> (f64, f64) {
        let (lo, hi) = self.model.default_range();
        (self.t_min.unwrap_or(lo), self.t_max.unwrap_or(hi))
    }

    /// The same config with the time range written out, as it is saved.
    pub fn resolved(&self) -> Self {
        let (lo, hi) = self.range();
        ModelConfig { t_min: Some(lo), t_max: Some(hi), ..self.clone() }
    }

    pub fn validate(&self) -> Result<(), String> {
        crate::data::check_dim(self.dim)?;
        if !(1..=4096).contains(&self.width) {
            return Err(format!("width {} is out of range 1..=4096", self.width));
        }
        if self.depth > 64 {
            return Err(format!("depth {} is out of range 0..=64", self.depth));
        }
        let (lo, hi) = self.range();
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo < hi) {
            return Err(format!("noise range [{lo}, {hi}] is invalid: need 0 < t_min < t_max"));
        }
        if !self.model.sigma_range() && hi > 1.0 {
            return Err(format!("t_max = {hi} is above 1, the end of the {} path", self.model));
        }
        self.data.build()?;
        Ok(())
    }

    /// Number of weights (every tensor of `checkpoint::expected_tensors`).
    pub fn param_count(&self) -> usize {
        let (d, w) = (self.dim, self.width);
        let block = (w * w + w) + (TIME_FEATURES * w + w) + (w * w + w);
        (d * w + w) + self.depth * block + (w * d + d) + (w + 1)
    }

    /// A short label, e.g. `fm-blind-d128`.
    pub fn label(&self) -> String {
        format!("{}-{}-d{}", self.model, if self.blind { "blind" } else { "cond" }, self.dim)
    }
}

#[derive(Module, Debug)]
pub struct Block {
    pub fc1: Linear,
    pub time: Linear,
    pub fc2: Linear,
}

#[derive(Module, Debug)]
pub struct Net {
    pub input: Linear,
    pub blocks: Vec<Block>,
    pub output: Linear,
    pub gain: Linear,
}

/// A linear layer with PyTorch's default initialisation (`U(-k, k)`, `k = 1/sqrt(fan_in)`) drawn
/// from the host generator, so the same seed gives the same weights on every backend.
pub(crate) fn linear(rng: &mut Rng, d_in: usize, d_out: usize, zero: bool, device: &Device) -> Linear {
    let k = 1.0 / (d_in as f64).sqrt();
    let mut draw = |n: usize| -> Vec<f32> {
        (0..n).map(|_| if zero { 0.0 } else { ((2.0 * rng.uniform() - 1.0) * k) as f32 }).collect()
    };
    let w = draw(d_in * d_out);
    let b = draw(d_out);
    Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, d_out]), device)),
        bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(b, [d_out]), device))),
    }
}

impl Net {
    /// Every layer, in the order `to_device_async` rebuilds them.
    pub(crate) fn linears(&self) -> Vec<&Linear> {
        let mut v = vec![&self.input];
        for b in &self.blocks {
            v.extend([&b.fc1, &b.time, &b.fc2]);
        }
        v.extend([&self.output, &self.gain]);
        v
    }

    /// A freshly initialised network for `config`, weights drawn from `seed`.
    pub fn init(config: &ModelConfig, seed: u64, device: &Device) -> Net {
        let mut rng = Rng::derive(seed, "init");
        let (d, w) = (config.dim, config.width);
        let input = linear(&mut rng, d, w, false, device);
        let blocks = (0..config.depth)
            .map(|_| Block {
                fc1: linear(&mut rng, w, w, false, device),
                time: linear(&mut rng, TIME_FEATURES, w, false, device),
                fc2: linear(&mut rng, w, w, false, device),
            })
            .collect();
        let output = linear(&mut rng, w, d, true, device);
        let gain = linear(&mut rng, w, 1, true, device);
        Net { input, blocks, output, gain }
    }

    /// `u`: [B, D]; `emb`: [B, TIME_FEATURES], or [1, TIME_FEATURES] for one noise level shared
    /// by the batch (zeros for a blind model).
    pub fn forward(&self, u: Tensor<2>, emb: Tensor<2>) -> Tensor<2> {
        let mut h = self.input.forward(u.clone());
        for block in &self.blocks {
            let z = block.fc1.forward(silu(h.clone())) + block.time.forward(emb.clone());
            h = h + block.fc2.forward(silu(z));
        }
        let z = silu(h);
        self.output.forward(z.clone()) + self.gain.forward(z) * u
    }
}

/// SiLU, `x sigmoid(x)`, the network's activation.
///
/// On the CPU (Flex) burn's sigmoid calls the scalar `expf` once per element: `perf` put that at
/// about half of a native training step (`node bench/run.mjs native`). There the activation is
/// evaluated on the host in one vectorised pass ([`crate::host::silu`]) instead. Under autodiff it joins the
/// graph as `y = c + (x - x̄) g`, `c = silu(x)` and `g = silu'(x)` computed on the host and `x̄` the
/// detached input: the value is `c` exactly (`x - x̄` is zero) and the gradient is `g`, so the
/// backward pass costs one multiplication. Other devices use burn's own activation.
pub fn silu(x: Tensor<2>) -> Tensor<2> {
    let device = x.device();
    if device.clone().inner() != Device::flex() {
        return activation::silu(x);
    }
    let shape = x.dims();
    let data = x.clone().into_data().convert::<f32>();
    let v = data.as_slice::<f32>().expect("an f32 tensor after convert");
    let tracked = device.is_autodiff();
    let (c, g) = crate::host::silu::host_silu(v, tracked);
    let c = Tensor::<2>::from_data(TensorData::new(c, shape), &device);
    if !tracked {
        return c;
    }
    let g = Tensor::<2>::from_data(TensorData::new(g, shape), &device);
    c + (x.clone() - x.detach()) * g
}

/// Sinusoidal features of the network's time input `s` (see `Parameterization::time_input`):
/// `[sin(1000 s w_k), cos(1000 s w_k)]`, `w_k = 10000^(-k / F)`. Computed on the host, so the
/// embedding is bit-identical across backends.
pub fn time_features(s: f64) -> [f32; TIME_FEATURES] {
    let mut out = [0f32; TIME_FEATURES];
    for k in 0..TIME_FREQS {
        let w = (-(10000f64.ln()) * k as f64 / TIME_FREQS as f64).exp();
        let arg = 1000.0 * s * w;
        out[k] = arg.sin() as f32;
        out[TIME_FREQS + k] = arg.cos() as f32;
    }
    out
}

/// The embedding rows for a batch of noise levels (zeros when `blind`).
pub fn time_embedding(config: &ModelConfig, ts: &[f64], device: &Device) -> Tensor<2> {
    time_rows(config.model, config.blind, ts, device)
}

/// The embedding row of parameterization `p` at noise level `t`, zeros when `blind`: every
/// network of the project (the toy MLP, the image U-Net) is made blind this way.
pub fn time_row(p: Parameterization, blind: bool, t: f64) -> [f32; TIME_FEATURES] {
    if blind {
        [0.0; TIME_FEATURES]
    } else {
        time_features(p.time_input(t))
    }
}

/// [`time_row`] for a batch of noise levels, as a tensor.
pub fn time_rows(p: Parameterization, blind: bool, ts: &[f64], device: &Device) -> Tensor<2> {
    let n = ts.len();
    if blind {
        return Tensor::zeros([n, TIME_FEATURES], device);
    }
    let mut v = Vec::with_capacity(n * TIME_FEATURES);
    for &t in ts {
        v.extend_from_slice(&time_row(p, blind, t));
    }
    Tensor::from_data(TensorData::new(v, [n, TIME_FEATURES]), device)
}

/// A network with the config that defines it: the learned field `f_theta(u [, t])`.
#[derive(Debug, Clone)]
pub struct Model {
    pub config: ModelConfig,
    /// The weights; read-only once the model is made (the packed copy below is made from them).
    pub net: Net,
    /// On a cubecl device, the weights packed for the fused forward kernel
    /// ([`crate::fused::mlp`]), made on the first evaluation; `None` inside where it does not
    /// apply.
    #[cfg(feature = "webgpu")]
    packed: std::cell::OnceCell<Option<crate::fused::mlp::Packed>>,
    /// On the CPU, the weights copied to the host for the forward pass there
    /// ([`crate::host::mlp`]), made on the first evaluation.
    host: std::sync::OnceLock<crate::host::mlp::Mlp>,
}

impl Model {
    pub fn new(config: ModelConfig, seed: u64, device: &Device) -> Result<Model, String> {
        config.validate()?;
        let net = Net::init(&config, seed, device);
        Ok(Model::from_net(config.resolved(), net))
    }

    /// The model of `net`, made for `config`.
    pub fn from_net(config: ModelConfig, net: Net) -> Model {
        Model {
            config,
            net,
            #[cfg(feature = "webgpu")]
            packed: Default::default(),
            host: Default::default(),
        }
    }

    pub fn device(&self) -> Device {
        self.net.input.weight.val().device()
    }

    /// `f_theta(u, t)` for a whole batch at one noise level (`t` is ignored by a blind model).
    pub fn eval(&self, u: Tensor<2>, t: f64) -> Tensor<2> {
        // On a cubecl device, without autodiff: the whole net in one kernel.
        #[cfg(feature = "webgpu")]
        if !u.device().is_autodiff() {
            if let Some(packed) = self.packed.get_or_init(|| crate::fused::mlp::Packed::of(&self.net)) {
                return packed.forward(u.clone(), time_embedding(&self.config, &[t], &u.device()));
            }
        }
        let device = u.device();
        // On the CPU, without autodiff: the whole net on the host.
        if !device.is_autodiff() && device.clone().inner() == Device::flex() {
            let host = self.host.get_or_init(|| crate::host::mlp::Mlp::of(&self.net));
            let shape = u.dims();
            let data = u.into_data().convert::<f32>();
            let rows = data.as_slice::<f32>().expect("an f32 tensor after convert");
            let emb = time_row(self.config.model, self.config.blind, t);
            return Tensor::from_data(TensorData::new(host.forward(rows, &emb), shape), &device);
        }
        // One embedding row for the whole batch: each block's time layer runs once and its
        // [1, W] output is broadcast over the rows.
        let emb = time_embedding(&self.config, &[t], &device);
        self.net.forward(u, emb)
    }

    pub fn num_params(&self) -> usize {
        self.net.num_params()
    }

    /// The same model with its weights copied to `device`, read back in one asynchronous
    /// transaction: the only way to get weights off WebGPU in a browser (saving a checkpoint
    /// from there goes through this, onto Flex). Natively it also works with `pollster`.
    pub async fn to_device_async(&self, device: &Device) -> Result<Model, String> {
        let layers = self.net.linears();
        let mut tx = Transaction::default();
        for l in &layers {
            tx = tx.register(l.weight.val());
            tx = tx.register(l.bias.as_ref().expect("every layer has a bias").val());
        }
        let data = tx.execute_async().await.map_err(|e| format!("reading the weights back failed: {e:?}"))?;
        let mut data = data.into_iter();
        let mut next = || -> Linear {
            let w = data.next().expect("one weight per layer");
            let b = data.next().expect("one bias per layer");
            Linear {
                weight: Param::from_tensor(Tensor::from_data(w.convert::<f32>(), device)),
                bias: Some(Param::from_tensor(Tensor::from_data(b.convert::<f32>(), device))),
            }
        };
        let net = Net {
            // The order of `linears()`.
            input: next(),
            blocks: (0..self.net.blocks.len()).map(|_| Block { fc1: next(), time: next(), fc2: next() }).collect(),
            output: next(),
            gain: next(),
        };
        Ok(Model::from_net(self.config.clone(), net))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_zero_output_and_blind_ignores_time() {
        let device = Device::flex();
        let mut cfg = ModelConfig::new(Parameterization::Fm, true, 8);
        cfg.width = 32;
        cfg.depth = 2;
        let m = Model::new(cfg.clone(), 1, &device).unwrap();
        let u = Tensor::<2>::ones([5, 8], &device);
        let out = m.eval(u.clone(), 0.3);
        assert_eq!(out.dims(), [5, 8]);
        // Zero-initialised output layer: the untrained field is exactly zero.
        assert!(out.into_data().try_to_vec::<f32>().unwrap().iter().all(|v| *v == 0.0));

        // Give the output layer weights; then a blind model is independent of t, a conditional one is not.
        let mut rng = Rng::new(9);
        for (blind, should_differ) in [(true, false), (false, true)] {
            cfg.blind = blind;
            let mut m = Model::new(cfg.clone(), 1, &device).unwrap();
            m.net.output = linear(&mut rng, 32, 8, false, &device);
            m.net.gain = linear(&mut rng, 32, 1, false, &device);
            let a = m.eval(u.clone(), 0.1).into_data().try_to_vec::<f32>().unwrap();
            let b = m.eval(u.clone(), 0.9).into_data().try_to_vec::<f32>().unwrap();
            assert_eq!(a != b, should_differ, "blind={blind}");
        }
    }

    #[test]
    fn async_copy_keeps_every_weight() {
        let device = Device::flex();
        let cfg = ModelConfig { width: 16, depth: 2, ..ModelConfig::new(Parameterization::Ddpm, false, 4) };
        let m = Model::new(cfg, 5, &device).unwrap();
        let c = pollster::block_on(m.to_device_async(&device)).unwrap();
        let v = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
        let (a, b) = (m.net.linears(), c.net.linears());
        assert_eq!(a.len(), 1 + 3 * 2 + 2);
        for (x, y) in a.iter().zip(b) {
            assert_eq!(v(x.weight.val().flatten(0, 1)), v(y.weight.val().flatten(0, 1)));
            assert_eq!(v(x.bias.as_ref().unwrap().val()), v(y.bias.as_ref().unwrap().val()));
        }
        assert_eq!(c.config, m.config);
    }

    #[test]
    fn flex_silu_has_burns_values_and_gradients() {
        let device = Device::flex().autodiff();
        let v: Vec<f32> = (0..2 * 67).map(|i| (i as f32 - 60.0) * 0.21).collect();
        let x = || Tensor::<2>::from_data(TensorData::new(v.clone(), [2, 67]), &device).require_grad();
        let w = Tensor::<2>::from_data(TensorData::new((0..134).map(|i| (i % 7) as f32 - 3.0).collect::<Vec<f32>>(), [2, 67]), &device);
        let run = |f: &dyn Fn(Tensor<2>) -> Tensor<2>| {
            let x = x();
            let y = f(x.clone());
            let grads = (y.clone() * w.clone()).sum().backward();
            let g = x.grad(&grads).expect("x has a gradient");
            (y.into_data().try_to_vec::<f32>().unwrap(), g.into_data().try_to_vec::<f32>().unwrap())
        };
        let (ours, burn) = (run(&silu), run(&activation::silu));
        for i in 0..v.len() {
            assert!((ours.0[i] - burn.0[i]).abs() <= 1e-6 * (1.0 + burn.0[i].abs()), "value at {}", v[i]);
            assert!((ours.1[i] - burn.1[i]).abs() <= 1e-5 * (1.0 + burn.1[i].abs()), "gradient at {}: {} vs {}", v[i], ours.1[i], burn.1[i]);
        }
        // Without autodiff: the value alone.
        let plain = silu(Tensor::<2>::from_data(TensorData::new(v.clone(), [2, 67]), &Device::flex())).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(plain, ours.0);
    }

    #[test]
    fn same_seed_same_weights() {
        let device = Device::flex();
        let cfg = ModelConfig { width: 16, depth: 1, ..ModelConfig::new(Parameterization::Ddpm, false, 4) };
        let w = |s| Net::init(&cfg, s, &device).input.weight.val().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(w(3), w(3));
        assert_ne!(w(3), w(4));
    }

    #[test]
    fn config_validation() {
        let ok = ModelConfig::new(Parameterization::Fm, true, 8);
        assert!(ok.validate().is_ok());
        assert!(ModelConfig { dim: 0, ..ok.clone() }.validate().is_err());
        assert!(ModelConfig { dim: 5000, ..ok.clone() }.validate().is_err());
        assert!(ModelConfig { t_min: Some(0.5), t_max: Some(0.2), ..ok.clone() }.validate().is_err());
        assert!(ModelConfig { t_max: Some(2.0), ..ok.clone() }.validate().is_err());
        assert_eq!(ok.resolved().t_min, Some(1e-3));
    }
}
