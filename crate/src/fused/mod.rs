//! Fused GPU kernels: work that burn's general ops spread over many small dispatches, done in one
//! kernel each on the cubecl backend (wgpu natively, WebGPU in the browser). Each is a burn
//! backend extension ([`burn::backend::backend_extension`]) written in CubeCL, so it runs on
//! burn's own tensors and buffers; the CPU (Flex) keeps burn's ops, and the tests hold the two
//! paths together.
//!
//! - [`adam`]: the optimizer step. burn's Adam with per-parameter norm clipping takes some 25
//!   dispatches per parameter (the norm, the clip, both moments, the bias corrections, the
//!   update); here it is one (two for a parameter over [`adam::ONE_CUBE`] values).
//! - [`linear`]: a linear layer on a few rows (the U-Net's time path) in one small kernel, where
//!   burn takes a matmul through a costly launch path and a bias add.
//! - [`mlp`]: the toy's residual MLP forward pass (the samplers' network evaluation) in one
//!   kernel, where burn's ops take some 60 dispatches.
//! - [`norm`]: the image U-Net's `SiLU(GroupNorm(x + t))` in one kernel (its samplers), where
//!   burn's ops take about a dozen dispatches.
//! - [`project`]: the samplers' view of their positions in the plane (`u P`) in one small kernel,
//!   where burn's matmul takes two dispatches through a costly launch path.
//! - [`step`]: the toy's whole training step (forward, backward, gradients, clipped Adam) in
//!   three kernels, where burn's autodiff and Adam take 772 (280 with the fused Adam).
//! - [`replay`]: that step recorded once (cubecl's graph capture) and replayed, so a step after
//!   the first skips the launch path.

pub mod adam;
pub mod linear;
pub mod mlp;
pub mod norm;
pub mod project;
pub mod replay;
pub mod step;

use burn::tensor::Device;
use burn_cubecl::cubecl;
use cubecl::prelude::*;

/// `t` contiguous and held by nobody else, for a kernel to update in place: a buffer someone else
/// holds (a kept copy of the weights, a view handed out for sampling) is copied first.
pub(crate) fn owned(t: burn::backend::wgpu::CubeTensor) -> burn::backend::wgpu::CubeTensor {
    let t = burn_cubecl::kernel::into_contiguous(t);
    if t.can_mut() {
        t
    } else {
        copied(t)
    }
}

/// `t` copied into a buffer of its own (one dispatch; `t` must be held elsewhere too, or the
/// product is written in place).
pub(crate) fn copied(t: burn::backend::wgpu::CubeTensor) -> burn::backend::wgpu::CubeTensor {
    use burn::backend::ops::FloatTensorOps;
    burn::backend::wgpu::CubeBackend::float_mul_scalar(t, 1.0f32.into())
}

/// Threads per cube in every fused kernel.
pub(crate) const THREADS: u32 = 256;

/// Whether `device` runs the fused kernels: a cubecl device (wgpu, WebGPU).
pub fn runs_on(device: &Device) -> bool {
    matches!(device.clone().inner().as_dispatch(), burn::backend::DispatchDevice::Cube(_))
}

/// `value` summed over the cube's threads (a tree in shared memory); every thread gets the total.
/// Every thread of the cube must call it.
#[cube]
pub(crate) fn cube_sum(value: f32) -> f32 {
    let mut shared = Shared::<[f32]>::new_slice(THREADS as usize);
    let me = UNIT_POS_X as usize;
    shared[me] = value;
    sync_cube();
    #[unroll]
    for level in 0..comptime!(THREADS.trailing_zeros()) {
        let stride = comptime!((THREADS >> (level + 1)) as usize);
        if me < stride {
            let sum = shared[me] + shared[me + stride];
            shared[me] = sum;
        }
        sync_cube();
    }
    let total = shared[0usize];
    sync_cube();
    total
}
