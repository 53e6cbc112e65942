//! geonoise: the toy experiment, closed-form fields and samplers of *The Geometry of Noise: Why
//! Diffusion Models Don't Need Noise Conditioning* (Delbracio, Sahraee-Ardakan, Milanfar, 2026).
//!
//! The modules follow the paper: the forward process ([`schedule`]), what a network regresses
//! ([`target`]), the concentric-circles data lifted to R^D ([`data`]), the residual MLP
//! ([`model`]), its training ([`train`]), the unified sampler ([`sample`]), the closed-form fields
//! ([`oracle`]), sample quality ([`metrics`]), weights on disk ([`checkpoint`]) and a run's whole
//! state on disk, to resume it exactly ([`resume`]), and the 95 % intervals put on every compared
//! number ([`interval`]). The image experiment of Sec. 7.1 has a room
//! of its own ([`image`]): IDX data, a U-Net, its training and
//! the image metrics. Work done in one pass where burn's ops take many has two: [`fused`]
//! (GPU kernels) and [`host`] (the CPU).

pub mod checkpoint;
pub mod data;
pub mod dataset;
#[cfg(feature = "webgpu")]
pub mod fused;
pub mod host;
pub mod image;
pub mod interval;
pub mod metrics;
pub mod model;
pub mod optimizer;
pub mod oracle;
pub mod params;
pub mod pretrained;
pub mod resume;
pub mod rng;
pub mod sample;
pub mod schedule;
pub mod target;
pub mod train;
pub mod wasm;
