//! The toy's residual MLP ([`crate::model::Net`]) evaluated in one kernel: every layer of
//! `f(u) = output(z) + gain(z) u` for a tile of rows per cube, the hidden activations in the cube's
//! shared memory and the weights read from one packed buffer. burn's ops take some 60 dispatches
//! for the same forward pass (a matmul and a bias add per layer, the activations, the residual
//! adds, the time layer's rows); a sampling frame then costs the kernel and the solver's few
//! element-wise ops.
//!
//! Inference only (no autodiff): the samplers use it. Widths up to [`MAX_WIDTH`]; other nets take
//! burn's path ([`Packed::of`] returns `None`). The tests hold it to burn's forward pass.

use crate::model::{Net, TIME_FEATURES};
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

/// Threads per cube; also the widest hidden layer the kernel takes (one thread per unit).
pub const MAX_WIDTH: usize = 256;
/// Hidden values a cube holds per buffer (rows x width): two such buffers of f32 are 8 kB of
/// shared memory, half of WebGPU's guaranteed 16 kB.
const TILE: usize = 1024;

/// A net's weights packed in the kernel's order, on the net's device.
#[derive(Clone, Debug)]
pub struct Packed {
    weights: Burn<1>,
    shape: MlpShape,
}

/// The packed layout's order: `input`, then each block's `fc1`, `time`, `fc2`, then `output` and
/// `gain`; each layer's weight (`[d_in, d_out]`, row-major) and then its bias.
impl Packed {
    /// `net` packed for the kernel, or `None` where the kernel does not apply (not a cubecl
    /// device, or a width over [`MAX_WIDTH`]).
    pub fn of(net: &Net) -> Option<Packed> {
        let weight = net.input.weight.val();
        if !super::runs_on(&weight.device()) || weight.device().is_autodiff() {
            return None;
        }
        let [dim, width] = weight.dims();
        if width > MAX_WIDTH {
            return None;
        }
        let parts: Vec<Burn<1>> = net
            .linears()
            .into_iter()
            .flat_map(|l| {
                let w = l.weight.val().inner();
                let n = w.shape().num_elements();
                [w.reshape([n]), l.bias.as_ref().expect("every layer has a bias").val().inner()]
            })
            .collect();
        Some(Packed { weights: Burn::cat(parts, 0), shape: MlpShape { dim, width, depth: net.blocks.len() } })
    }

    /// `f(u)` for the rows of `u` ([M, D]) at the time features `emb` ([1, TIME_FEATURES]; zeros
    /// for a blind net).
    pub fn forward(&self, u: Burn<2>, emb: Burn<2>) -> Burn<2> {
        Burn::from_dispatch(<burn::backend::Dispatch as FusedMlp>::mlp_forward(u.into_dispatch(), emb.into_dispatch(), self.weights.clone().into_dispatch(), self.shape))
    }
}

/// The net's sizes, as the kernel takes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MlpShape {
    pub dim: usize,
    pub width: usize,
    pub depth: usize,
}

/// The fused forward pass as a burn backend extension, on cubecl devices.
#[backend_extension(Cube)]
pub trait FusedMlp: Backend {
    fn mlp_forward(u: FloatTensor<Self>, emb: FloatTensor<Self>, weights: FloatTensor<Self>, shape: MlpShape) -> FloatTensor<Self>;
}

impl FusedMlp for CubeBackend {
    fn mlp_forward(u: CubeTensor, emb: CubeTensor, weights: CubeTensor, shape: MlpShape) -> CubeTensor {
        assert_eq!(u.dtype, DType::F32, "the fused MLP takes f32 inputs");
        let (u, emb, weights) = (into_contiguous(u), into_contiguous(emb), into_contiguous(weights));
        let m = u.shape()[0];
        let out = empty_device_contiguous_dtype(u.client.clone(), u.device.clone(), u.shape(), DType::F32);
        if m == 0 {
            return out;
        }
        let rows = (TILE / shape.width.next_power_of_two()).clamp(1, 32);
        let cubes = m.div_ceil(rows);
        mlp_kernel::launch(
            &u.client,
            CubeCount::Static(cubes as u32, 1, 1),
            CubeDim::new_1d(MAX_WIDTH as u32),
            u.clone().into_tensor_arg(),
            emb.into_tensor_arg(),
            weights.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            m,
            shape.dim,
            shape.width,
            shape.depth,
            rows,
        );
        out
    }
}

#[cube]
fn silu(x: f32) -> f32 {
    x / (1.0f32 + f32::exp(-x))
}

/// Unit `j` of `rows` rows of `x` (shared, row stride `stride`) times the `[k_in, n]` weight at
/// offset `w0`: into `acc`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn matvec(x: &Shared<[f32]>, weights: &Tensor<f32>, w0: usize, k_in: usize, n: usize, j: usize, stride: usize, acc: &mut Array<f32>, #[comptime] rows: usize) {
    #[unroll]
    for r in 0..rows {
        acc[r] = 0.0f32;
    }
    let mut k = 0usize;
    while k < k_in {
        let w = weights[w0 + k * n + j];
        #[unroll]
        for r in 0..rows {
            acc[r] += x[r * stride + k] * w;
        }
        k += 1;
    }
}

/// One cube: rows `row0 .. row0 + rows` of `u`, thread `j` the hidden unit `j` (and output
/// columns `j`, `j + 256`, ...). Every `sync_cube` is reached by every thread.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn mlp_kernel(u: &Tensor<f32>, emb: &Tensor<f32>, weights: &Tensor<f32>, out: &mut Tensor<f32>, m: usize, dim: usize, width: usize, depth: usize, #[comptime] rows: usize) {
    let mut h = Shared::<[f32]>::new_slice(TILE);
    let mut a = Shared::<[f32]>::new_slice(TILE);
    let mut acc = Array::<f32>::new(rows);
    let j = UNIT_POS_X as usize;
    let row0 = CUBE_POS_X as usize * rows;
    let active = j < width;

    // h = u W_in + b_in (u read from global memory; rows past the end read as zero).
    if active {
        #[unroll]
        for r in 0..rows {
            acc[r] = 0.0f32;
        }
        let mut k = 0usize;
        while k < dim {
            let w = weights[k * width + j];
            #[unroll]
            for r in 0..rows {
                let row = row0 + r;
                if row < m {
                    acc[r] += u[row * dim + k] * w;
                }
            }
            k += 1;
        }
        let b = weights[dim * width + j];
        #[unroll]
        for r in 0..rows {
            h[r * width + j] = acc[r] + b;
        }
    }
    let mut off = dim * width + width;
    sync_cube();

    // Each block: h <- h + fc2(silu(fc1(silu(h)) + time(emb))).
    let mut l = 0usize;
    while l < depth {
        let w1 = off;
        let b1 = w1 + width * width;
        let wt = b1 + width;
        let bt = wt + TIME_FEATURES * width;
        let w2 = bt + width;
        let b2 = w2 + width * width;
        if active {
            #[unroll]
            for r in 0..rows {
                a[r * width + j] = silu(h[r * width + j]);
            }
        }
        sync_cube();
        let mut time = 0.0f32;
        if active {
            matvec(&a, weights, w1, width, width, j, width, &mut acc, rows);
            let mut k = 0usize;
            while k < TIME_FEATURES {
                time += emb[k] * weights[wt + k * width + j];
                k += 1;
            }
            time += weights[bt + j];
        }
        // Every thread has read `a` before it is overwritten.
        sync_cube();
        if active {
            let b = weights[b1 + j];
            #[unroll]
            for r in 0..rows {
                a[r * width + j] = silu(acc[r] + b + time);
            }
        }
        sync_cube();
        if active {
            matvec(&a, weights, w2, width, width, j, width, &mut acc, rows);
            let b = weights[b2 + j];
            #[unroll]
            for r in 0..rows {
                let v = h[r * width + j] + (acc[r] + b);
                h[r * width + j] = v;
            }
        }
        sync_cube();
        off = b2 + width;
        l += 1;
    }

    // z = silu(h); f(u) = output(z) + gain(z) u.
    if active {
        #[unroll]
        for r in 0..rows {
            a[r * width + j] = silu(h[r * width + j]);
        }
    }
    sync_cube();
    let wo = off;
    let bo = wo + width * dim;
    let wg = bo + dim;
    let bg = wg + width;
    let mut gain = Array::<f32>::new(rows);
    #[unroll]
    for r in 0..rows {
        gain[r] = 0.0f32;
    }
    let mut k = 0usize;
    while k < width {
        let w = weights[wg + k];
        #[unroll]
        for r in 0..rows {
            gain[r] += a[r * width + k] * w;
        }
        k += 1;
    }
    let bias = weights[bg];
    let mut c = j;
    while c < dim {
        matvec(&a, weights, wo, width, dim, c, width, &mut acc, rows);
        let b = weights[bo + c];
        #[unroll]
        for r in 0..rows {
            let row = row0 + r;
            if row < m {
                out[row * dim + c] = (acc[r] + b) + (gain[r] + bias) * u[row * dim + c];
            }
        }
        c += CUBE_DIM_X as usize;
    }
}
