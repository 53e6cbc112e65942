//! The image U-Net's `SiLU(GroupNorm(x + t))` in one kernel: one cube per (image, group) sums the
//! group's mean and variance in shared memory, then writes every value normalised, scaled,
//! shifted and through SiLU. burn's ops take about a dozen dispatches for the same (two
//! reductions, the centring, the square, the root, the division, the affine, the activation, and
//! copies where the input is strided); the `t` is the ResBlock's time term (`[N, C]`), added on
//! the way in. The input is read through its strides and the output written channels-last, the
//! layout of burn's convolutions on either side, so neither needs a copy.
//!
//! Inference only (no autodiff): the samplers use it. The tests hold it to burn's `GroupNorm` and
//! SiLU.

use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::{backend_extension, Backend, TensorMetadata};
use burn::tensor::DType;
use burn_cubecl::cubecl;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::ops::permute_nhwc_to_nchw;
use cubecl::prelude::*;
use super::{cube_sum, THREADS};

/// burn's tensor (cubecl's `Tensor` is the kernels').
type Burn<const D: usize> = burn::tensor::Tensor<D>;


/// `silu(group_norm(x + t) * gamma + beta)` for `x` `[N, C, H, W]`, `t` `[N, C]` (or `None`),
/// `gamma` and `beta` `[C]`, in `groups` groups with `epsilon` as burn's `GroupNorm` has them; on a
/// cubecl device without autodiff.
pub fn group_norm_silu(x: Burn<4>, t: Option<Burn<2>>, gamma: Burn<1>, beta: Burn<1>, groups: usize, epsilon: f64) -> Burn<4> {
    let c = x.dims()[1];
    // Without a time term, any tensor stands in for it (it is not read).
    let (t, with_t) = match t {
        Some(t) => (t, true),
        None => (gamma.clone().reshape([1, c]), false),
    };
    Burn::from_dispatch(<burn::backend::Dispatch as FusedNorm>::group_norm_silu(x.into_dispatch(), t.into_dispatch(), gamma.into_dispatch(), beta.into_dispatch(), NormArgs { groups, epsilon, with_t }))
}

/// The norm's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormArgs {
    pub groups: usize,
    pub epsilon: f64,
    /// Whether `t` is added (else it is not read).
    pub with_t: bool,
}

/// The fused norm as a burn backend extension, on cubecl devices.
#[backend_extension(Cube)]
pub trait FusedNorm: Backend {
    fn group_norm_silu(x: FloatTensor<Self>, t: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, args: NormArgs) -> FloatTensor<Self>;
}

impl FusedNorm for CubeBackend {
    fn group_norm_silu(x: CubeTensor, t: CubeTensor, gamma: CubeTensor, beta: CubeTensor, args: NormArgs) -> CubeTensor {
        assert_eq!(x.dtype, DType::F32, "the fused norm takes f32 inputs");
        let shape = x.shape();
        let (n, c) = (shape[0], shape[1]);
        // Written channels-last ([N, H, W, C]) and returned as an NCHW view of it: the layout burn's
        // convolutions work in, so the convolution that reads it copies nothing.
        let (h, w) = (shape[2], shape[3]);
        let out = empty_device_contiguous_dtype(x.client.clone(), x.device.clone(), [n, h, w, c].into(), DType::F32);
        if shape.num_elements() == 0 {
            return permute_nhwc_to_nchw(out);
        }
        let (t, gamma, beta) = (into_contiguous(t), into_contiguous(gamma), into_contiguous(beta));
        norm_kernel::launch(
            &x.client,
            CubeCount::Static((n * args.groups) as u32, 1, 1),
            CubeDim::new_1d(THREADS),
            x.clone().into_tensor_arg(),
            t.into_tensor_arg(),
            gamma.into_tensor_arg(),
            beta.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            c,
            args.groups,
            args.epsilon as f32,
            args.with_t,
        );
        permute_nhwc_to_nchw(out)
    }
}

/// One cube per (image, group): `len = (C / groups) H W` values, read through `x`'s strides.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn norm_kernel(x: &Tensor<f32>, t: &Tensor<f32>, gamma: &Tensor<f32>, beta: &Tensor<f32>, out: &mut Tensor<f32>, c: usize, groups: usize, epsilon: f32, #[comptime] with_t: bool) {
    let image = CUBE_POS_X as usize / groups;
    let group = CUBE_POS_X as usize % groups;
    let per = c / groups;
    let hw = x.shape(2) * x.shape(3);
    let len = per * hw;
    let c0 = group * per;
    // The group's values, as burn reads them: x + t (t broadcast over the pixels).
    let mut sum = 0.0f32;
    let mut i = UNIT_POS_X as usize;
    while i < len {
        sum += value_at(x, t, c, image, c0 + i / hw, i % hw, with_t);
        i += CUBE_DIM_X as usize;
    }
    let mean = cube_sum(sum) / f32::cast_from(len);
    let mut sq = 0.0f32;
    i = UNIT_POS_X as usize;
    while i < len {
        let d = value_at(x, t, c, image, c0 + i / hw, i % hw, with_t) - mean;
        sq += d * d;
        i += CUBE_DIM_X as usize;
    }
    let std = f32::sqrt(cube_sum(sq) / f32::cast_from(len) + epsilon);
    i = UNIT_POS_X as usize;
    while i < len {
        let ch = c0 + i / hw;
        let p = i % hw;
        let y = ((value_at(x, t, c, image, ch, p, with_t) - mean) / std) * gamma[ch] + beta[ch];
        out[(image * hw + p) * c + ch] = y / (1.0f32 + f32::exp(-y));
        i += CUBE_DIM_X as usize;
    }
}

/// `x[image, ch, p]` (pixel `p` of the plane, read through `x`'s strides) plus `t[image, ch]`.
#[cube]
fn value_at(x: &Tensor<f32>, t: &Tensor<f32>, c: usize, image: usize, ch: usize, p: usize, #[comptime] with_t: bool) -> f32 {
    let w = x.shape(3);
    let v = x[image * x.stride(0) + ch * x.stride(1) + (p / w) * x.stride(2) + (p % w) * x.stride(3)];
    if with_t {
        v + t[image * c + ch]
    } else {
        v
    }
}
