//! The image network: a small U-Net in the shape most diffusion experiments copy (lucidrains'
//! `Unet`), written in burn.
//!
//! ```text
//! x [N,1,S,S] -> space-to-depth by the patch size p -> [N,p^2,S/p,S/p] -> conv3x3 -> C
//!   down, level i:  ResBlock(-> C m_i), keep a skip, conv3x3 stride 2 (not at the last level)
//!   middle:         ResBlock
//!   up, level i:    concat the skip, ResBlock(-> C m_i), nearest 2x + conv3x3 (not at level 0)
//! -> GroupNorm -> SiLU -> conv3x3 -> p^2 channels (zero-initialised: the untrained field is 0)
//! -> depth-to-space -> [N,1,S,S]
//! ```
//!
//! The patch size (2 by default) is the cheapest lever on speed: the network's first level runs
//! at 14 x 14 instead of 28 x 28, which made training about four times faster on the 2-core
//! CPUs these models are trained on, while every output pixel still has its own weights.
//!
//! `ResBlock`: `h = conv(SiLU(GN(x))) + time(emb)`, `out = conv(SiLU(GN(h))) + skip(x)` (a 1x1
//! conv where the channel count changes). The noise level enters every block through the
//! sinusoidal embedding of the toy (`model::time_rows`) and a shared two-layer MLP; a **blind**
//! model is the same network with that embedding zeroed, exactly the toy's protocol (every
//! block's time layer then adds only its bias).
//!
//! Weights are drawn from the host generator, so a seed gives the same network on every backend.

use super::store::Stored;
use crate::model::{silu, time_rows, TIME_FEATURES};
use crate::rng::Rng;
use crate::sample::Field;
use crate::target::Parameterization;
use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, GroupNormConfig, Linear, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Everything that defines an image model. Saved in every checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(not(target_family = "wasm"), derive(clap::Args))]
pub struct UNetConfig {
    /// Parameterization: fm, ddpm, edm or eqm.
    #[cfg_attr(not(target_family = "wasm"), arg(long = "model", default_value = "fm"))]
    pub model: Parameterization,
    /// Blind (autonomous): the network never sees the noise level.
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub blind: bool,
    /// Channels at the first level.
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 32))]
    pub channels: usize,
    /// Channel multiplier of each level, comma separated; each level after the first halves the
    /// resolution.
    #[cfg_attr(not(target_family = "wasm"), arg(long, value_delimiter = ',', default_value = "1,2"))]
    pub mults: Vec<usize>,
    /// Image side in pixels (square, one channel).
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 28))]
    pub side: usize,
    /// Pixels per side of the patches the first layer sees (space-to-depth).
    #[cfg_attr(not(target_family = "wasm"), arg(long, default_value_t = 2))]
    pub patch: usize,
    /// Lowest noise level (default: the parameterization's).
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub t_min: Option<f64>,
    /// Highest noise level (default: the parameterization's).
    #[cfg_attr(not(target_family = "wasm"), arg(long))]
    pub t_max: Option<f64>,
}

impl UNetConfig {
    pub fn new(model: Parameterization, blind: bool) -> Self {
        UNetConfig { model, blind, channels: 32, mults: vec![1, 2], side: 28, patch: 2, t_min: None, t_max: None }
    }

    pub fn range(&self) -> (f64, f64) {
        let (lo, hi) = self.model.default_range();
        (self.t_min.unwrap_or(lo), self.t_max.unwrap_or(hi))
    }

    /// The same config with the time range written out, as it is saved.
    pub fn resolved(&self) -> Self {
        let (lo, hi) = self.range();
        UNetConfig { t_min: Some(lo), t_max: Some(hi), ..self.clone() }
    }

    /// Pixels per image, the sampler's D.
    pub fn dim(&self) -> usize {
        self.side * self.side
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=512).contains(&self.channels) {
            return Err(format!("channels {} is out of range 1..=512", self.channels));
        }
        if self.mults.is_empty() || self.mults.len() > 5 || self.mults.iter().any(|m| !(1..=8).contains(m)) {
            return Err(format!("channel multipliers {:?}: give 1 to 5 levels, each 1..=8", self.mults));
        }
        if !(1..=8).contains(&self.patch) {
            return Err(format!("patch size {} is out of range 1..=8", self.patch));
        }
        let down = self.patch << (self.mults.len() - 1);
        if self.side == 0 || self.side > 256 || self.side % down != 0 {
            return Err(format!(
                "image side {} must be at most 256 and divisible by {down} (patches of {} and {} levels that halve it {} times)",
                self.side,
                self.patch,
                self.mults.len(),
                self.mults.len() - 1
            ));
        }
        let (lo, hi) = self.range();
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo < hi) {
            return Err(format!("noise range [{lo}, {hi}] is invalid: need 0 < t_min < t_max"));
        }
        if !self.model.sigma_range() && hi > 1.0 {
            return Err(format!("t_max = {hi} is above 1, the end of the {} path", self.model));
        }
        Ok(())
    }

    /// The network's parameters, counted from the config alone (nothing is allocated): what
    /// `UNet::init(self, ..).num_params()` gives.
    pub fn param_count(&self) -> usize {
        let conv = |i: usize, o: usize, k: usize| o * i * k * k + o;
        let tw = self.time_width();
        let block = |i: usize, o: usize| 2 * i + conv(i, o, 3) + tw * o + o + 2 * o + conv(o, o, 3) + if i != o { conv(i, o, 1) } else { 0 };
        let (levels, pp, c0) = (self.mults.len(), self.patch * self.patch, self.level(0));
        let mut n = TIME_FEATURES * tw + tw + tw * tw + tw + conv(pp, c0, 3);
        let mut c = c0;
        for i in 0..levels {
            let ci = self.level(i);
            n += block(c, ci) + if i + 1 < levels { conv(ci, ci, 3) } else { 0 };
            c = ci;
        }
        n += block(c, c);
        for i in (0..levels).rev() {
            let ci = self.level(i);
            n += block(c + ci, ci) + if i > 0 { conv(ci, ci, 3) } else { 0 };
            c = ci;
        }
        n + 2 * c0 + conv(c0, pp, 3)
    }

    /// Floats a training step keeps per image for the backward pass, roughly: every residual
    /// block holds about `3 c_in + 7 c_out` values a pixel (its input, norms, activations,
    /// convolutions, skip), at its level's resolution, and the gradients as many again.
    pub fn activations_per_image(&self) -> usize {
        let levels = self.mults.len();
        let res = |i: usize| (self.side / self.patch >> i).pow(2);
        let mut n = 0;
        let mut c = self.level(0);
        for i in 0..levels {
            let ci = self.level(i);
            n += res(i) * (3 * c + 7 * ci + ci);
            c = ci;
        }
        n += res(levels - 1) * 10 * c;
        for i in (0..levels).rev() {
            let ci = self.level(i);
            n += res(i) * (3 * (c + ci) + 7 * ci + 4 * ci);
            c = ci;
        }
        2 * n
    }

    /// Channels of the shared time MLP.
    fn time_width(&self) -> usize {
        4 * self.channels
    }

    /// Channels of level `i`.
    fn level(&self, i: usize) -> usize {
        self.channels * self.mults[i]
    }

    /// A short label, e.g. `fm-blind`.
    pub fn label(&self) -> String {
        format!("{}-{}", self.model, if self.blind { "blind" } else { "cond" })
    }
}

/// Groups of a GroupNorm over `c` channels: 8 where they divide, else the largest divisor below.
fn groups(c: usize) -> usize {
    (1..=8.min(c)).rev().find(|g| c % g == 0).unwrap_or(1)
}

/// A `k x k` convolution with PyTorch's default initialisation (`U(-1/sqrt(fan_in), ..)`) from
/// the host generator, or all zeros.
pub(crate) fn conv(rng: &mut Rng, c_in: usize, c_out: usize, k: usize, stride: usize, zero: bool, device: &Device) -> Conv2d {
    let bound = 1.0 / ((c_in * k * k) as f64).sqrt();
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| if zero { 0.0 } else { ((2.0 * rng.uniform() - 1.0) * bound) as f32 }).collect() };
    let w = draw(c_out * c_in * k * k);
    let b = draw(c_out);
    let p = k / 2;
    Conv2d {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [c_out, c_in, k, k]), device)),
        bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(b, [c_out]), device))),
        stride: [stride, stride],
        kernel_size: [k, k],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingConfig2d::Explicit(p, p, p, p),
    }
}

fn norm(c: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new(groups(c), c).init(device)
}

/// SiLU on a 4-D tensor through the toy's fast path (`model::silu`, host-evaluated on Flex).
pub(crate) fn silu4(x: Tensor<4>) -> Tensor<4> {
    let dims = x.dims();
    silu(x.reshape([dims[0], dims[1] * dims[2] * dims[3]])).reshape(dims)
}

/// `layer(x)`: one small kernel on a cubecl device without autodiff (the samplers' time path,
/// `fused::linear`), burn's `Linear` elsewhere.
fn linear(layer: &Linear, x: Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "webgpu")]
    return crate::fused::linear::forward(layer, x);
    #[cfg(not(feature = "webgpu"))]
    layer.forward(x)
}

/// `SiLU(norm(x + t))`, `t` `[N, C]` broadcast over the pixels: one fused kernel on a cubecl device
/// without autodiff (the samplers, `fused::norm`), burn's ops elsewhere.
fn norm_silu(norm: &GroupNorm, x: Tensor<4>, t: Option<Tensor<2>>) -> Tensor<4> {
    #[cfg(feature = "webgpu")]
    if crate::fused::runs_on(&x.device()) && !x.device().is_autodiff() {
        if let (Some(gamma), Some(beta)) = (&norm.gamma, &norm.beta) {
            return crate::fused::norm::group_norm_silu(x, t, gamma.val(), beta.val(), norm.num_groups, norm.epsilon);
        }
    }
    let x = match t {
        Some(t) => {
            let [n, c] = t.dims();
            x + t.reshape([n, c, 1, 1])
        }
        None => x,
    };
    silu4(norm.forward(x))
}

/// `[N,1,S,S] -> [N,p^2,S/p,S/p]`: each p x p patch becomes the channels of one position.
fn space_to_depth(x: Tensor<4>, p: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h / p, p, w / p, p]).permute([0, 1, 3, 5, 2, 4]).reshape([n, c * p * p, h / p, w / p])
}

/// The inverse of `space_to_depth`.
fn depth_to_space(x: Tensor<4>, p: usize) -> Tensor<4> {
    let [n, cpp, h, w] = x.dims();
    let c = cpp / (p * p);
    x.reshape([n, c, p, p, h, w]).permute([0, 1, 4, 2, 5, 3]).reshape([n, c, h * p, w * p])
}

/// Nearest-neighbour 2x upsampling: `[N,C,H,W] -> [N,C,2H,2W]`.
fn upsample2(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1]).repeat_dim(3, 2).repeat_dim(5, 2).reshape([n, c, 2 * h, 2 * w])
}

#[derive(Module, Debug)]
pub struct ResBlock {
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    pub time: Linear,
    pub norm2: GroupNorm,
    pub conv2: Conv2d,
    pub skip: Option<Conv2d>,
}

impl ResBlock {
    fn init(rng: &mut Rng, c_in: usize, c_out: usize, t_width: usize, device: &Device) -> ResBlock {
        ResBlock {
            norm1: norm(c_in, device),
            conv1: conv(rng, c_in, c_out, 3, 1, false, device),
            time: crate::model::linear(rng, t_width, c_out, false, device),
            norm2: norm(c_out, device),
            conv2: conv(rng, c_out, c_out, 3, 1, false, device),
            skip: (c_in != c_out).then(|| conv(rng, c_in, c_out, 1, 1, false, device)),
        }
    }

    /// `x`: [N, c_in, H, W]; `emb`: [N, T] (the time MLP's output).
    fn forward(&self, x: Tensor<4>, emb: Tensor<2>) -> Tensor<4> {
        let h = self.conv1.forward(norm_silu(&self.norm1, x.clone(), None));
        // h + time(emb), normalised.
        let h = self.conv2.forward(norm_silu(&self.norm2, h, Some(linear(&self.time, emb))));
        let skip = match &self.skip {
            Some(s) => s.forward(x),
            None => x,
        };
        h + skip
    }
}

#[derive(Module, Debug)]
pub struct Down {
    pub block: ResBlock,
    /// Stride-2 convolution to the next level (none at the last level).
    pub down: Option<Conv2d>,
}

#[derive(Module, Debug)]
pub struct Up {
    pub block: ResBlock,
    /// Convolution after the 2x upsampling to the level above (none at level 0).
    pub up: Option<Conv2d>,
}

#[derive(Module, Debug)]
pub struct UNet {
    pub time1: Linear,
    pub time2: Linear,
    pub input: Conv2d,
    pub down: Vec<Down>,
    pub mid: ResBlock,
    /// From the deepest level up to level 0.
    pub up: Vec<Up>,
    pub out_norm: GroupNorm,
    pub output: Conv2d,
    #[module(skip)]
    pub patch: usize,
}

impl UNet {
    pub fn init(config: &UNetConfig, seed: u64, device: &Device) -> UNet {
        let mut rng = Rng::derive(seed, "unet init");
        let levels = config.mults.len();
        let tw = config.time_width();
        let time1 = crate::model::linear(&mut rng, TIME_FEATURES, tw, false, device);
        let time2 = crate::model::linear(&mut rng, tw, tw, false, device);
        let c0 = config.level(0);
        let pp = config.patch * config.patch;
        let input = conv(&mut rng, pp, c0, 3, 1, false, device);
        let mut down = vec![];
        let mut c = c0;
        for i in 0..levels {
            let ci = config.level(i);
            let block = ResBlock::init(&mut rng, c, ci, tw, device);
            let d = (i + 1 < levels).then(|| conv(&mut rng, ci, ci, 3, 2, false, device));
            down.push(Down { block, down: d });
            c = ci;
        }
        let mid = ResBlock::init(&mut rng, c, c, tw, device);
        let mut up = vec![];
        for i in (0..levels).rev() {
            let ci = config.level(i);
            let block = ResBlock::init(&mut rng, c + ci, ci, tw, device);
            // After level i's block, go up to level i - 1's resolution with its channel count.
            let u = (i > 0).then(|| conv(&mut rng, ci, ci, 3, 1, false, device));
            up.push(Up { block, up: u });
            c = ci;
        }
        let out_norm = norm(c0, device);
        let output = conv(&mut rng, c0, pp, 3, 1, true, device);
        UNet { time1, time2, input, down, mid, up, out_norm, output, patch: config.patch }
    }

    /// `x`: [N, 1, S, S]; `emb`: [N, TIME_FEATURES] (zeros for a blind model).
    pub fn forward(&self, x: Tensor<4>, emb: Tensor<2>) -> Tensor<4> {
        let emb = silu(linear(&self.time2, silu(linear(&self.time1, emb))));
        let mut h = self.input.forward(space_to_depth(x, self.patch));
        let mut skips = Vec::with_capacity(self.down.len());
        for level in &self.down {
            h = level.block.forward(h, emb.clone());
            skips.push(h.clone());
            if let Some(d) = &level.down {
                h = d.forward(h);
            }
        }
        h = self.mid.forward(h, emb.clone());
        for level in &self.up {
            let skip = skips.pop().expect("one skip per level");
            h = level.block.forward(Tensor::cat(vec![h, skip], 1), emb.clone());
            if let Some(u) = &level.up {
                h = u.forward(upsample2(h));
            }
        }
        depth_to_space(self.output.forward(norm_silu(&self.out_norm, h, None)), self.patch)
    }
}

impl Stored for UNet {
    type Config = UNetConfig;
    const FORMAT: &'static str = "geonoise-unet";
    fn build(config: &UNetConfig, device: &Device) -> Result<UNet, String> {
        config.validate()?;
        Ok(UNet::init(config, 0, device))
    }
}

/// A U-Net with the config that defines it: the learned field `f_theta(u [, t])` on images.
#[derive(Debug, Clone)]
pub struct ImageModel {
    pub config: UNetConfig,
    pub net: UNet,
}

impl ImageModel {
    pub fn new(config: UNetConfig, seed: u64, device: &Device) -> Result<ImageModel, String> {
        config.validate()?;
        let net = UNet::init(&config, seed, device);
        Ok(ImageModel { config: config.resolved(), net })
    }

    pub fn num_params(&self) -> usize {
        self.net.num_params()
    }
}

impl Field for ImageModel {
    /// `u`: [M, S*S] rows of pixels.
    fn eval(&self, u: Tensor<2>, t: f64) -> Tensor<2> {
        let [m, d] = u.dims();
        let s = self.config.side;
        let emb = time_rows(self.config.model, self.config.blind, &[t], &u.device()).repeat_dim(0, m);
        self.net.forward(u.reshape([m, 1, s, s]), emb).reshape([m, d])
    }
    fn parameterization(&self) -> Parameterization {
        self.config.model
    }
    fn range(&self) -> (f64, f64) {
        self.config.range()
    }
    fn dim(&self) -> usize {
        self.config.dim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::read_f32;

    fn small(blind: bool) -> UNetConfig {
        UNetConfig { channels: 8, mults: vec![1, 2], side: 8, patch: 2, ..UNetConfig::new(Parameterization::Fm, blind) }
    }

    #[test]
    fn the_parameter_count_is_the_networks() {
        let device = Device::flex();
        for (channels, mults, patch) in [(8, vec![1, 2], 2), (16, vec![1, 2], 2), (6, vec![1, 2, 2], 1), (12, vec![1], 4)] {
            let c = UNetConfig { channels, mults: mults.clone(), side: 8, patch, ..UNetConfig::new(Parameterization::Fm, true) };
            assert_eq!(c.param_count(), UNet::init(&c, 0, &device).num_params(), "{channels} {mults:?} {patch}");
        }
    }

    #[test]
    fn shapes_zero_output_and_blind_ignores_time() {
        let device = Device::flex();
        let m = ImageModel::new(small(true), 1, &device).unwrap();
        let u = Tensor::<2>::from_data(TensorData::new(Rng::new(1).normals_f32(3 * 64), [3, 64]), &device);
        let out = read_f32(m.eval(u.clone(), 0.3));
        assert_eq!(out.len(), 3 * 64);
        assert!(out.iter().all(|v| *v == 0.0), "the output layer starts at zero");

        for (blind, should_differ) in [(true, false), (false, true)] {
            let mut m = ImageModel::new(small(blind), 1, &device).unwrap();
            m.net.output = conv(&mut Rng::new(5), 8, 4, 3, 1, false, &device);
            let a = read_f32(m.eval(u.clone(), 0.1));
            let b = read_f32(m.eval(u.clone(), 0.9));
            assert_eq!(a != b, should_differ, "blind = {blind}");
            assert!(a.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn upsampling_repeats_each_pixel() {
        let x = Tensor::<4>::from_data(TensorData::new(vec![1f32, 2., 3., 4.], [1, 1, 2, 2]), &Device::flex());
        let y = upsample2(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(y, vec![1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.]);
    }

    #[test]
    fn patches_go_to_channels_and_back() {
        let v: Vec<f32> = (0..2 * 16).map(|i| i as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(v.clone(), [2, 1, 4, 4]), &Device::flex());
        let y = space_to_depth(x.clone(), 2);
        assert_eq!(y.dims(), [2, 4, 2, 2]);
        // Channel 1 is the top-right pixel of each 2 x 2 patch: columns 1 and 3 of rows 0 and 2.
        let c1 = read_f32(y.clone().slice([0..1, 1..2, 0..2, 0..2]).reshape([1, 4]));
        assert_eq!(c1, vec![1., 3., 9., 11.]);
        assert_eq!(read_f32(depth_to_space(y, 2).reshape([2, 16])), v);
    }

    #[test]
    fn config_validation_names_the_problem() {
        let ok = UNetConfig::new(Parameterization::Ddpm, false);
        assert!(ok.validate().is_ok());
        let e = UNetConfig { mults: vec![1, 2, 2], ..ok.clone() }.validate().unwrap_err();
        assert!(e.contains("divisible by 8"), "{e}");
        assert!(UNetConfig { mults: vec![1, 2, 2], patch: 1, ..ok.clone() }.validate().is_ok());
        assert!(UNetConfig { channels: 0, ..ok.clone() }.validate().is_err());
        assert!(UNetConfig { mults: vec![], ..ok.clone() }.validate().is_err());
        assert!(UNetConfig { t_max: Some(3.0), ..ok }.validate().is_err());
    }

    #[test]
    fn same_seed_same_weights() {
        let device = Device::flex();
        let w = |s| read_f32(UNet::init(&small(false), s, &device).input.weight.val().reshape([8, 36]));
        assert_eq!(w(3), w(3));
        assert_ne!(w(3), w(4));
    }
}
