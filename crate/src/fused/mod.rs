//! Fused GPU kernels: work that burn's general ops spread over many small dispatches, done in one
//! kernel each on the cubecl backend (wgpu natively, WebGPU in the browser). Each is a burn
//! backend extension ([`burn::backend::backend_extension`]) written in CubeCL, so it runs on
//! burn's own tensors and buffers; the CPU (Flex) keeps burn's ops, and the tests hold the two
//! paths together.
//!
//! - [`adam`]: the optimizer step. burn's Adam with per-parameter norm clipping takes some 25
//!   dispatches per parameter (the norm, the clip, both moments, the bias corrections, the
//!   update); here it is one (two for a parameter over [`adam::ONE_CUBE`] values).
//! - [`mlp`]: the toy's residual MLP forward pass (the samplers' network evaluation) in one
//!   kernel, where burn's ops take some 60 dispatches.
//! - [`step`]: the toy's whole training step (forward, backward, gradients, clipped Adam) in
//!   three kernels, where burn's autodiff and Adam take 772 (280 with the fused Adam).

pub mod adam;
pub mod mlp;
pub mod step;

use burn::tensor::Device;

/// Whether `device` runs the fused kernels: a cubecl device (wgpu, WebGPU).
pub fn runs_on(device: &Device) -> bool {
    matches!(device.clone().inner().as_dispatch(), burn::backend::DispatchDevice::Cube(_))
}
