//! The paper's image experiment (Sec. 7.1): Flow Matching and DDPM, conditional and blind, on
//! real images (Fashion-MNIST, MNIST) with one U-Net.
//!
//! The pieces are the toy's, made for images: the data set's files ([`idx`]), the network
//! ([`unet`]), its training with a moving average of the weights ([`train`]), files on disk
//! ([`store`]), the scores of generated images ([`classifier`], [`metrics`]) and of the clean
//! estimates level by level ([`denoise`]). Sampling is the toy's own unified sampler (`sample::Sampler::unprojected`), with the U-Net as its field: a
//! blind model plugs `f_theta(u)` into the same time-dependent coefficients.
//!
//! Pixels are on `[-1, 1]` (`p / 127.5 - 1`) everywhere: training, sampling and metrics.

pub mod classifier;
pub mod denoise;
pub mod idx;
pub mod metrics;
pub mod store;
pub mod train;
pub mod unet;
