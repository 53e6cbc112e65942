//! A small classifier trained on the same data set, whose penultimate features score samples
//! (the Fréchet distance of `metrics`) and whose confidence says whether a sample looks like any
//! class at all. It plays the part Inception plays for FID, at this data set's scale: its
//! numbers rank models on the same data and are not comparable to published FIDs.
//!
//! `x [N,1,S,S] -> conv3x3 C -> conv3x3/2 2C -> conv3x3/2 2C -> flatten -> F features -> 10 logits`,
//! SiLU after every layer but the last.

use super::idx::{DataName, Split};
use super::store::Stored;
use super::unet::{conv, silu4};
use crate::model::{linear, silu};
use crate::rng::Rng;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::Linear;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

pub const CLASSES: usize = 10;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    pub data: DataName,
    /// Channels of the first convolution.
    pub channels: usize,
    /// Width of the feature layer the Fréchet distance is computed in.
    pub features: usize,
    pub side: usize,
}

impl ClassifierConfig {
    pub fn new(data: DataName) -> Self {
        ClassifierConfig { data, channels: 16, features: 64, side: 28 }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=256).contains(&self.channels) || !(2..=1024).contains(&self.features) || self.side == 0 || self.side % 4 != 0 || self.side > 256 {
            return Err(format!("classifier config {self:?} is out of range (side divisible by 4)"));
        }
        Ok(())
    }
}

#[derive(Module, Debug)]
pub struct Classifier {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub conv3: Conv2d,
    pub fc: Linear,
    pub head: Linear,
}

impl Stored for Classifier {
    type Config = ClassifierConfig;
    const FORMAT: &'static str = "geonoise-classifier";
    fn build(config: &ClassifierConfig, device: &Device) -> Result<Classifier, String> {
        config.validate()?;
        Ok(Classifier::init(config, 0, device))
    }
}

impl Classifier {
    pub fn init(config: &ClassifierConfig, seed: u64, device: &Device) -> Classifier {
        let mut rng = Rng::derive(seed, "classifier init");
        let c = config.channels;
        let flat = 2 * c * (config.side / 4) * (config.side / 4);
        Classifier {
            conv1: conv(&mut rng, 1, c, 3, 1, false, device),
            conv2: conv(&mut rng, c, 2 * c, 3, 2, false, device),
            conv3: conv(&mut rng, 2 * c, 2 * c, 3, 2, false, device),
            fc: linear(&mut rng, flat, config.features, false, device),
            head: linear(&mut rng, config.features, CLASSES, false, device),
        }
    }

    /// The feature layer, [N, F].
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let h = silu4(self.conv1.forward(x));
        let h = silu4(self.conv2.forward(h));
        let h = silu4(self.conv3.forward(h));
        let [n, c, a, b] = h.dims();
        silu(self.fc.forward(h.reshape([n, c * a * b])))
    }

    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.features(x))
    }
}

/// Rows of pixels (on the models' scale) as a batch of images.
fn batch(rows: &[f32], side: usize, device: &Device) -> Tensor<4> {
    let n = rows.len() / (side * side);
    Tensor::from_data(TensorData::new(rows.to_vec(), [n, 1, side, side]), device)
}

/// Features and class probabilities of `rows` (rows of `side * side` on the models' scale),
/// computed in chunks: `(features [N * F], probabilities [N * 10])`.
pub fn embed(net: &Classifier, side: usize, rows: &[f32], device: &Device) -> (Vec<f32>, Vec<f32>) {
    let d = side * side;
    let (mut feats, mut probs) = (vec![], vec![]);
    for chunk in rows.chunks(500 * d) {
        let f = net.features(batch(chunk, side, device));
        let p = softmax(net.head.forward(f.clone()), 1);
        feats.extend(crate::sample::read_f32(f));
        probs.extend(crate::sample::read_f32(p));
    }
    (feats, probs)
}

/// Share of `split`'s images whose most probable class is their label.
pub fn accuracy(net: &Classifier, split: &Split, device: &Device) -> f64 {
    let side = split.images.rows;
    let (_, probs) = embed(net, side, &split.images.unit_rows(split.images.n), device);
    let right = probs.chunks(CLASSES).zip(&split.labels).filter(|(p, &l)| argmax(p) == l as usize).count();
    right as f64 / split.labels.len().max(1) as f64
}

pub fn argmax(p: &[f32]) -> usize {
    p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0)
}

/// Trains a classifier on `train` with Adam (cross-entropy, batch `batch`, cosine learning
/// rate from `lr`); `progress(step, loss)` is called every 100 steps.
pub fn train(config: &ClassifierConfig, train: &Split, steps: usize, batch_size: usize, lr: f64, seed: u64, device: &Device, mut progress: impl FnMut(usize, f32)) -> Result<Classifier, String> {
    config.validate()?;
    let side = config.side;
    if (train.images.rows, train.images.cols) != (side, side) {
        return Err(format!("the images are {} x {}, the classifier is for {side} x {side}", train.images.rows, train.images.cols));
    }
    let ad = device.clone().autodiff();
    let mut net = Classifier::init(config, seed, &ad);
    let mut optim = AdamConfig::new().init();
    let mut rng = Rng::derive(seed, "classifier batches");
    let d = side * side;
    for k in 0..steps {
        let mut x = Vec::with_capacity(batch_size * d);
        let mut onehot = vec![0f32; batch_size * CLASSES];
        for j in 0..batch_size {
            let i = rng.below(train.images.n);
            x.extend(train.images.unit(i));
            onehot[j * CLASSES + train.labels[i] as usize] = 1.0;
        }
        let y = Tensor::<2>::from_data(TensorData::new(onehot, [batch_size, CLASSES]), &ad);
        let logp = log_softmax(net.logits(self::batch(&x, side, &ad)), 1);
        let loss = (logp * y).sum_dim(1).mean().neg();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(crate::train::cosine_lr(lr, k, steps), net, grads);
        if (k + 1) % 100 == 0 || k + 1 == steps {
            let v = loss.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?[0];
            if !v.is_finite() {
                return Err(format!("the classifier's loss became {v} at step {}", k + 1));
            }
            progress(k + 1, v);
        }
    }
    Ok(net.valid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::idx::Images;

    #[test]
    fn learns_to_tell_two_kinds_of_image_apart() {
        // Class 0: a bright left half; class 1: a bright right half; noise on both.
        let (n, side) = (200, 8);
        let mut rng = Rng::new(1);
        let mut pixels = vec![0u8; n * side * side];
        let mut labels = vec![];
        for i in 0..n {
            let l = (i % 2) as u8;
            for r in 0..side {
                for c in 0..side {
                    let bright = (c < side / 2) == (l == 0);
                    pixels[i * side * side + r * side + c] = (if bright { 200 } else { 0 }) + rng.below(50) as u8;
                }
            }
            labels.push(l);
        }
        let split = Split { images: Images { n, rows: side, cols: side, pixels }, labels };
        let cfg = ClassifierConfig { channels: 4, features: 8, side, data: DataName::Mnist };
        let device = Device::flex();
        let net = train(&cfg, &split, 100, 32, 3e-3, 0, &device, |_, _| {}).unwrap();
        assert!(accuracy(&net, &split, &device) > 0.95);
        let (f, p) = embed(&net, side, &split.images.unit_rows(3), &device);
        assert_eq!((f.len(), p.len()), (3 * 8, 3 * CLASSES));
        assert!(p.chunks(CLASSES).all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-4));
    }
}
