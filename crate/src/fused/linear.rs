//! A linear layer on a few rows, `x W + b`, in one small kernel: a thread an output value. The
//! image U-Net's time path is such layers (the embedding's two, one a ResBlock) on a row an image;
//! through burn each is a matmul behind cubek's general launch path (its strategy, layouts and
//! arguments chosen at every call) and a bias add, which in a profile of the page's wasm on Dawn's
//! null backend was about half of a U-Net sampling step's host time.
//!
//! Inference only (no autodiff): the U-Net's samplers use it. The tests hold it to burn's
//! `Linear`.

use super::THREADS;
use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::{backend_extension, Backend, TensorMetadata};
use burn::tensor::DType;
use burn_cubecl::cubecl;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use cubecl::prelude::*;

/// burn's tensor (cubecl's `Tensor` is the kernels').
type Burn<const D: usize> = burn::tensor::Tensor<D>;

/// The layer as a burn backend extension, on cubecl devices.
#[backend_extension(Cube)]
pub trait FusedLinear: Backend {
    /// `x W + b` for `x` `[M, K]`, `w` `[K, N]`, `b` `[N]`.
    fn small_linear(x: FloatTensor<Self>, w: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `layer(x)` for `x` `[M, K]`: the kernel on a cubecl device without autodiff (for a layer with a
/// bias), burn's `Linear` elsewhere.
pub fn forward(layer: &burn::nn::Linear, x: Burn<2>) -> Burn<2> {
    let device = x.device();
    match &layer.bias {
        Some(b) if super::runs_on(&device) && !device.is_autodiff() => Burn::from_dispatch(<burn::backend::Dispatch as FusedLinear>::small_linear(x.into_dispatch(), layer.weight.val().into_dispatch(), b.val().into_dispatch())),
        _ => layer.forward(x),
    }
}

impl FusedLinear for CubeBackend {
    fn small_linear(x: CubeTensor, w: CubeTensor, b: CubeTensor) -> CubeTensor {
        assert_eq!(x.dtype, DType::F32, "the small linear kernel takes f32 inputs");
        let (x, w, b) = (into_contiguous(x), into_contiguous(w), into_contiguous(b));
        let (m, k, n) = (x.shape()[0], x.shape()[1], w.shape()[1]);
        let out = empty_device_contiguous_dtype(x.client.clone(), x.device.clone(), [m, n].into(), DType::F32);
        if m * n == 0 {
            return out;
        }
        let client = x.client.clone();
        linear_kernel::launch(&client, CubeCount::Static((m * n).div_ceil(THREADS as usize) as u32, 1, 1), CubeDim::new_1d(THREADS), x.into_tensor_arg(), w.into_tensor_arg(), b.into_tensor_arg(), out.clone().into_tensor_arg(), m, k, n);
        out
    }
}

/// Thread `i`: output row `i / n`, column `i % n`.
#[cube(launch)]
fn linear_kernel(x: &Tensor<f32>, w: &Tensor<f32>, b: &Tensor<f32>, out: &mut Tensor<f32>, m: usize, k: usize, n: usize) {
    let i = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    if i < m * n {
        let (r, j) = (i / n, i % n);
        let mut acc = 0.0f32;
        let mut q = 0usize;
        while q < k {
            acc += x[r * k + q] * w[q * n + j];
            q += 1;
        }
        out[i] = acc + b[j];
    }
}
