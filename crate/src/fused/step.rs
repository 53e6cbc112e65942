//! The toy's whole training step in three kernels: the forward and backward pass of every row
//! ([`rows_kernel`]), the weight gradients summed over the batch ([`grads_kernel`]), and the
//! clipped Adam (or AdamW) update of every parameter with the loss ([`update_kernel`]). burn's
//! autodiff and optimizer take some 280 dispatches for the same step (772 before the fused
//! optimizer); these take 3, the batch uploaded in one write.
//!
//! The weights, their gradients and both moments live in flat buffers in the order of
//! [`super::mlp::Packed`] (each layer's weight, then its bias, in the order of
//! [`crate::model::Net::linears`]); the trainer unpacks them into a [`crate::model::Net`] and named
//! optimizer state only when it saves or samples. Each row's activations and gradients go to a
//! scratch record in device memory ([`Record`]), which the gradient kernel then sums over the
//! batch.
//!
//! The arithmetic is the network's ([`crate::model::Net::forward`]), the loss's (mean squared
//! error) and burn's Adam with per-parameter norm clipping ([`super::adam`]); only summation
//! orders differ, and the tests hold the weights to burn's after many steps.

use super::adam::{adam_element, clip_of, AdamStep};
use super::replay::{NotRecorded, StepGraph};
use super::{cube_sum, owned, THREADS};
use crate::data::Projection;
use crate::model::{Net, TIME_FEATURES};
use crate::optimizer::NamedOptimizer;
use crate::params::{from_flat, weight_reads};
use burn::tensor::TensorData;
use std::collections::BTreeMap;
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

/// Rows one cube of the row kernel takes.
const ROWS: usize = 4;
/// Numbers per parameter tensor in the layout table: its offset in the flat buffers, its rows
/// `K` (0 for a bias), its columns `N`, and where its layer's input and output gradient sit in a
/// row's record.
const ENTRY: usize = 5;

/// Where each of a row's vectors sits in its scratch record, for a net of `dim`, `width`, `depth`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record {
    pub dim: usize,
    pub width: usize,
    pub depth: usize,
}

impl Record {
    /// `u` (D), then the time features (32).
    pub fn u(&self) -> usize {
        0
    }
    pub fn emb(&self) -> usize {
        self.dim
    }
    /// Block `l`'s input `h_l` (pre-activation), `a_l = silu(h_l)`, `z_l` and `s_l = silu(z_l)`.
    pub fn h(&self, l: usize) -> usize {
        self.dim + TIME_FEATURES + 4 * l * self.width
    }
    pub fn a(&self, l: usize) -> usize {
        self.h(l) + self.width
    }
    pub fn z(&self, l: usize) -> usize {
        self.h(l) + 2 * self.width
    }
    pub fn s(&self, l: usize) -> usize {
        self.h(l) + 3 * self.width
    }
    /// The last block's output (`h(depth)`) and its activation, the heads' input.
    pub fn zf(&self) -> usize {
        self.h(self.depth) + self.width
    }
    pub fn dgain(&self) -> usize {
        self.zf() + self.width
    }
    pub fn dout(&self) -> usize {
        self.dgain() + 1
    }
    /// The loss's gradient with respect to `h_l` (`l = depth`: the last block's output).
    pub fn dh(&self, l: usize) -> usize {
        self.dout() + self.dim + l * self.width
    }
    /// ... and with respect to `z_l`.
    pub fn dz(&self, l: usize) -> usize {
        self.dh(self.depth + 1) + l * self.width
    }
    /// A record's length.
    pub fn len(&self) -> usize {
        self.dz(self.depth)
    }

    /// The layout table ([`ENTRY`] numbers per parameter tensor, in the packed order) and the
    /// number of parameters.
    pub fn table(&self) -> (Vec<u32>, usize) {
        let (d, w) = (self.dim, self.width);
        // (K, N, the layer's input, its output's gradient), one per layer.
        let mut layers = vec![(d, w, self.u(), self.dh(0))];
        for l in 0..self.depth {
            layers.push((w, w, self.a(l), self.dz(l)));
            layers.push((TIME_FEATURES, w, self.emb(), self.dz(l)));
            layers.push((w, w, self.s(l), self.dh(l + 1)));
        }
        layers.push((w, d, self.zf(), self.dout()));
        layers.push((w, 1, self.zf(), self.dgain()));
        let mut table = vec![];
        let mut off = 0;
        for (k, n, x, g) in layers {
            table.extend([off, k, n, x, g].map(|v| v as u32));
            off += k * n;
            table.extend([off, 0, n, x, g].map(|v| v as u32));
            off += n;
        }
        (table, off)
    }
}

/// One training step's shape: the record, the batch's rows, and the optimizer's two switches
/// (its numbers ride in the batch, see [`SCALARS`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepArgs {
    pub record: Record,
    /// Batch rows.
    pub batch: usize,
    /// Per-parameter norm clipping on.
    pub clipping: bool,
    /// Adam's first step: there are no moments to read yet.
    pub first: bool,
}

/// Floats after the batch's rows: the optimizer's numbers for this step (`beta_1`, `beta_2`, the
/// learning rate, the bias correction, epsilon, the decay and the clip, [`scalars`]). They travel
/// with the batch rather than as kernel arguments, so a recorded step ([`super::replay`]) reads
/// each step's learning rate and corrections from the buffer it rewrites anyway.
pub const SCALARS: usize = 7;

/// An Adam step's numbers as the batch's tail carries them.
pub fn scalars(s: &AdamStep) -> [f32; SCALARS] {
    [s.beta_1, s.beta_2, s.lr, s.factor, s.epsilon, s.decay, s.clip]
}

/// A batch row's length at `dim`: the point in the plane, the noise, four coefficients and the
/// time features.
pub fn row_len(dim: usize) -> usize {
    2 + dim + 4 + TIME_FEATURES
}

/// The fused step as a burn backend extension, on cubecl devices. `batch` (1-D) holds each row's
/// clean point in the plane (2), noise (D), the four coefficients of `u = c0 x + c1 eps` and
/// `target = c2 x + c3 eps`, and the time features (32), then the optimizer's [`SCALARS`];
/// `projection` is the lift `[2, D]`; `table` the layout ([`Record::table`], as f32). The weights
/// and moments are updated in place; returns them and the loss with each row cube's share after
/// it ([`loss_of`] takes the loss).
#[backend_extension(Cube)]
pub trait FusedStep: Backend {
    #[allow(clippy::too_many_arguments)]
    fn train_step(batch: FloatTensor<Self>, projection: FloatTensor<Self>, table: FloatTensor<Self>, weights: FloatTensor<Self>, m1: FloatTensor<Self>, m2: FloatTensor<Self>, args: StepArgs) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// The loss (`[1]`) out of a step's losses buffer (the loss, then each row cube's share).
pub fn loss_of(losses: Burn<1>) -> Burn<1> {
    losses.slice([0..1])
}

/// One step: the updated weights and moments, and the loss.
#[allow(clippy::type_complexity)]
pub fn step(batch: Burn<1>, projection: Burn<2>, table: Burn<1>, weights: Burn<1>, m1: Burn<1>, m2: Burn<1>, args: StepArgs) -> (Burn<1>, Burn<1>, Burn<1>, Burn<1>) {
    let (w, a, b, losses) = <burn::backend::Dispatch as FusedStep>::train_step(batch.into_dispatch(), projection.into_dispatch(), table.into_dispatch(), weights.into_dispatch(), m1.into_dispatch(), m2.into_dispatch(), args);
    (Burn::from_dispatch(w), Burn::from_dispatch(a), Burn::from_dispatch(b), loss_of(Burn::from_dispatch(losses)))
}

/// Every buffer a step reads or writes. [`FusedStep::train_step`] makes the working ones for each
/// step; a recorded step ([`super::replay::StepGraph`]) makes them once and keeps them, since a
/// replay runs on the buffers it was recorded with.
pub(super) struct StepBuffers {
    pub batch: CubeTensor,
    pub projection: CubeTensor,
    pub table: CubeTensor,
    pub weights: CubeTensor,
    pub m1: CubeTensor,
    pub m2: CubeTensor,
    /// Each row's record; the loss, then each row cube's share of it (one buffer, as WebGPU's
    /// eight storage buffers a kernel are all the update kernel has); the summed gradients.
    pub scratch: CubeTensor,
    pub losses: CubeTensor,
    pub grads: CubeTensor,
}

impl StepBuffers {
    /// The step's inputs (contiguous; the weights and moments held by nobody else) with fresh
    /// working buffers for `b` rows.
    pub fn new(batch: CubeTensor, projection: CubeTensor, table: CubeTensor, weights: CubeTensor, m1: CubeTensor, m2: CubeTensor, rec: Record, b: usize) -> StepBuffers {
        let (client, device) = (weights.client.clone(), weights.device.clone());
        let empty = |n: usize| empty_device_contiguous_dtype(client.clone(), device.clone(), [n].into(), DType::F32);
        let np = weights.shape().num_elements();
        StepBuffers {
            batch: into_contiguous(batch),
            projection: into_contiguous(projection),
            table: into_contiguous(table),
            weights: owned(weights),
            m1: owned(m1),
            m2: owned(m2),
            scratch: empty(b * rec.len()),
            losses: empty(1 + b.div_ceil(ROWS)),
            grads: empty(np),
        }
    }

    /// The step's three kernels, issued on these buffers.
    pub fn launch(&self, args: StepArgs) {
        let client = &self.weights.client;
        let (rec, b) = (args.record, args.batch);
        let np = self.weights.shape().num_elements();
        let tensors = self.table.shape().num_elements() / ENTRY;
        let row_cubes = b.div_ceil(ROWS);
        let arg = |t: &CubeTensor| t.clone().into_tensor_arg();
        rows_kernel::launch(client, CubeCount::Static(row_cubes as u32, 1, 1), CubeDim::new_1d(THREADS), arg(&self.batch), arg(&self.projection), arg(&self.weights), arg(&self.scratch), arg(&self.losses), b, rec.dim, rec.width, rec.depth, rec.len());
        grads_kernel::launch(client, CubeCount::Static(np.div_ceil(THREADS as usize) as u32, 1, 1), CubeDim::new_1d(THREADS), arg(&self.table), arg(&self.scratch), arg(&self.grads), b, rec.len(), np, tensors);
        update_kernel::launch(
            client,
            CubeCount::Static(tensors as u32, 1, 1),
            CubeDim::new_1d(THREADS),
            arg(&self.table),
            arg(&self.batch),
            arg(&self.weights),
            arg(&self.grads),
            arg(&self.m1),
            arg(&self.m2),
            arg(&self.losses),
            row_cubes,
            b * row_len(rec.dim),
            (b * rec.dim) as f32,
            args.clipping,
            args.first,
        );
    }
}

impl FusedStep for CubeBackend {
    fn train_step(batch: CubeTensor, projection: CubeTensor, table: CubeTensor, weights: CubeTensor, m1: CubeTensor, m2: CubeTensor, args: StepArgs) -> (CubeTensor, CubeTensor, CubeTensor, CubeTensor) {
        let bufs = StepBuffers::new(batch, projection, table, weights, m1, m2, args.record, args.batch);
        bufs.launch(args);
        (bufs.weights, bufs.m1, bufs.m2, bufs.losses)
    }
}

#[cube]
fn sigmoid(x: f32) -> f32 {
    1.0f32 / (1.0f32 + f32::exp(-x))
}

/// `y = x W + b` for this cube's rows: `x` at `x_off` of each record (`k` values), `W` `[k, n]` at
/// `w` in the flat weights and `b` right after it; `y` to `y_off`, added to what is there when
/// `accumulate`. Threads take the (row, unit) pairs in turn.
#[cube]
#[allow(clippy::too_many_arguments)]
fn linear_rows(scratch: &mut Tensor<f32>, weights: &Tensor<f32>, base: usize, rows: usize, stride: usize, x_off: usize, k: usize, w: usize, n: usize, y_off: usize, #[comptime] accumulate: bool) {
    let mut idx = UNIT_POS_X as usize;
    while idx < rows * n {
        let r = idx / n;
        let j = idx % n;
        let row = base + r * stride;
        let mut acc = 0.0f32;
        let mut i = 0usize;
        while i < k {
            acc += scratch[row + x_off + i] * weights[w + i * n + j];
            i += 1;
        }
        let y = acc + weights[w + k * n + j];
        if accumulate {
            let before = scratch[row + y_off + j];
            scratch[row + y_off + j] = before + y;
        } else {
            scratch[row + y_off + j] = y;
        }
        idx += CUBE_DIM_X as usize;
    }
}

/// `dx = dy W^T` for this cube's rows (`W` `[k, n]` at `w`): `dy` at `dy_off` (`n` values), `dx`
/// (`k` values) to `dx_off`, times `silu'(p)` of the pre-activation at `p_off`, plus what is at
/// `add_off` when `add`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn back_rows(scratch: &mut Tensor<f32>, weights: &Tensor<f32>, base: usize, rows: usize, stride: usize, dy_off: usize, k: usize, w: usize, n: usize, p_off: usize, dx_off: usize, add_off: usize, #[comptime] add: bool) {
    let mut idx = UNIT_POS_X as usize;
    while idx < rows * k {
        let r = idx / k;
        let i = idx % k;
        let row = base + r * stride;
        let mut acc = 0.0f32;
        let mut j = 0usize;
        while j < n {
            acc += scratch[row + dy_off + j] * weights[w + i * n + j];
            j += 1;
        }
        let p = scratch[row + p_off + i];
        let sg = sigmoid(p);
        let mut dx = acc * (sg * (1.0f32 + p * (1.0f32 - sg)));
        if add {
            dx += scratch[row + add_off + i];
        }
        scratch[row + dx_off + i] = dx;
        idx += CUBE_DIM_X as usize;
    }
}

/// `silu` of `n` values at `from` into `to`, for this cube's rows.
#[cube]
fn silu_rows(scratch: &mut Tensor<f32>, base: usize, rows: usize, stride: usize, from: usize, to: usize, n: usize) {
    let mut idx = UNIT_POS_X as usize;
    while idx < rows * n {
        let row = base + (idx / n) * stride;
        let x = scratch[row + from + idx % n];
        scratch[row + to + idx % n] = x * sigmoid(x);
        idx += CUBE_DIM_X as usize;
    }
}

/// Forward and backward for `ROWS` rows per cube; each cube's share of the summed squared error
/// to `losses`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn rows_kernel(batch: &Tensor<f32>, projection: &Tensor<f32>, weights: &Tensor<f32>, scratch: &mut Tensor<f32>, losses: &mut Tensor<f32>, b: usize, dim: usize, width: usize, depth: usize, stride: usize) {
    let row0 = CUBE_POS_X as usize * ROWS;
    let mut rows = b - row0;
    if rows > ROWS {
        rows = ROWS;
    }
    let base = row0 * stride;
    let tf = TIME_FEATURES;
    let bw = 2 + dim + 4 + tf; // a batch row
    let u_off = 0usize;
    let emb_off = dim;
    let h0 = dim + tf;
    // The record's regions, as `Record` lays them out.
    let zf = h0 + 4 * depth * width + width;
    let dgain = zf + width;
    let dout = dgain + 1;
    let dh0 = dout + dim;
    let dz0 = dh0 + (depth + 1) * width;

    // u = c0 (x2 P) + c1 eps, and the time features, into the record.
    let mut idx = UNIT_POS_X as usize;
    while idx < rows * dim {
        let r = idx / dim;
        let j = idx % dim;
        let src = (row0 + r) * bw;
        let x = batch[src] * projection[j] + batch[src + 1] * projection[dim + j];
        scratch[base + r * stride + u_off + j] = x * batch[src + 2 + dim] + batch[src + 2 + j] * batch[src + 3 + dim];
        idx += CUBE_DIM_X as usize;
    }
    idx = UNIT_POS_X as usize;
    while idx < rows * tf {
        let r = idx / tf;
        scratch[base + r * stride + emb_off + idx % tf] = batch[(row0 + r) * bw + 6 + dim + idx % tf];
        idx += CUBE_DIM_X as usize;
    }
    sync_storage();

    // Forward: h_0 = u W_in + b_in; each block; the heads' input.
    linear_rows(scratch, weights, base, rows, stride, u_off, dim, 0, width, h0, false);
    sync_storage();
    let mut w = dim * width + width;
    let mut l = 0usize;
    while l < depth {
        let h = h0 + 4 * l * width;
        silu_rows(scratch, base, rows, stride, h, h + width, width);
        sync_storage();
        // z = a W1 + b1 + (emb Wt + bt)
        linear_rows(scratch, weights, base, rows, stride, emb_off, tf, w + width * width + width, width, h + 2 * width, false);
        sync_storage();
        linear_rows(scratch, weights, base, rows, stride, h + width, width, w, width, h + 2 * width, true);
        sync_storage();
        silu_rows(scratch, base, rows, stride, h + 2 * width, h + 3 * width, width);
        // h_{l+1} = h_l + (s W2 + b2): copied, then accumulated.
        let mut i = UNIT_POS_X as usize;
        while i < rows * width {
            let row = base + (i / width) * stride;
            scratch[row + h + 4 * width + i % width] = scratch[row + h + i % width];
            i += CUBE_DIM_X as usize;
        }
        sync_storage();
        let w2 = w + width * width + width + tf * width + width;
        linear_rows(scratch, weights, base, rows, stride, h + 3 * width, width, w2, width, h + 4 * width, true);
        sync_storage();
        w = w2 + width * width + width;
        l += 1;
    }
    silu_rows(scratch, base, rows, stride, zf - width, zf, width);
    sync_storage();

    // The heads: f = zf Wo + bo + (zf Wg + bg) u; the loss's gradient 2 (f - target) / (B D).
    let wo = w;
    let wg = wo + width * dim + dim;
    let scale = 2.0f32 / f32::cast_from(b * dim);
    let mut sq = 0.0f32;
    idx = UNIT_POS_X as usize;
    while idx < rows * dim {
        let r = idx / dim;
        let j = idx % dim;
        let row = base + r * stride;
        let mut o = 0.0f32;
        let mut g = 0.0f32;
        let mut i = 0usize;
        while i < width {
            let z = scratch[row + zf + i];
            o += z * weights[wo + i * dim + j];
            g += z * weights[wg + i];
            i += 1;
        }
        let src = (row0 + r) * bw;
        let x = batch[src] * projection[j] + batch[src + 1] * projection[dim + j];
        let target = x * batch[src + 4 + dim] + batch[src + 2 + j] * batch[src + 5 + dim];
        let f = (o + weights[wo + width * dim + j]) + (g + weights[wg + width]) * scratch[row + u_off + j];
        let e = f - target;
        sq += e * e;
        scratch[row + dout + j] = e * scale;
        idx += CUBE_DIM_X as usize;
    }
    let total = cube_sum(sq);
    if UNIT_POS_X == 0 {
        losses[1 + CUBE_POS_X as usize] = total;
    }
    sync_storage();
    // dgain = dout . u, per row.
    idx = UNIT_POS_X as usize;
    while idx < rows {
        let row = base + idx * stride;
        let mut acc = 0.0f32;
        let mut j = 0usize;
        while j < dim {
            acc += scratch[row + dout + j] * scratch[row + u_off + j];
            j += 1;
        }
        scratch[row + dgain] = acc;
        idx += CUBE_DIM_X as usize;
    }
    sync_storage();
    // d(zf) = dout Wo^T + dgain Wg^T, then through silu into dh_depth.
    idx = UNIT_POS_X as usize;
    while idx < rows * width {
        let r = idx / width;
        let i = idx % width;
        let row = base + r * stride;
        let mut acc = 0.0f32;
        let mut j = 0usize;
        while j < dim {
            acc += scratch[row + dout + j] * weights[wo + i * dim + j];
            j += 1;
        }
        acc += scratch[row + dgain] * weights[wg + i];
        let p = scratch[row + zf - width + i];
        let sg = sigmoid(p);
        scratch[row + dh0 + depth * width + i] = acc * (sg * (1.0f32 + p * (1.0f32 - sg)));
        idx += CUBE_DIM_X as usize;
    }
    sync_storage();
    // Back through the blocks: dz_l = (dh_{l+1} W2^T) silu'(z_l); dh_l = dh_{l+1} + (dz_l W1^T) silu'(h_l).
    let mut l = depth;
    while l > 0 {
        l -= 1;
        w -= width * width + width;
        let w2 = w;
        let w1 = w2 - tf * width - width - width * width - width;
        let h = h0 + 4 * l * width;
        back_rows(scratch, weights, base, rows, stride, dh0 + (l + 1) * width, width, w2, width, h + 2 * width, dz0 + l * width, 0, false);
        sync_storage();
        back_rows(scratch, weights, base, rows, stride, dz0 + l * width, width, w1, width, h, dh0 + l * width, dh0 + (l + 1) * width, true);
        sync_storage();
        w = w1;
    }
}

/// Each parameter's gradient, summed over the batch: `x_b[k] dy_b[n]` for a weight, `dy_b[n]`
/// for a bias.
#[cube(launch)]
fn grads_kernel(table: &Tensor<f32>, scratch: &Tensor<f32>, grads: &mut Tensor<f32>, b: usize, stride: usize, np: usize, tensors: usize) {
    let p = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    if p < np {
        // The tensor that holds parameter p.
        let mut t = 0usize;
        while t + 1 < tensors && usize::cast_from(table[(t + 1) * ENTRY]) <= p {
            t += 1;
        }
        let e = t * ENTRY;
        let off = usize::cast_from(table[e]);
        let k = usize::cast_from(table[e + 1]);
        let n = usize::cast_from(table[e + 2]);
        let x_off = usize::cast_from(table[e + 3]);
        let g_off = usize::cast_from(table[e + 4]);
        let q = p - off;
        let mut acc = 0.0f32;
        let mut r = 0usize;
        if k == 0 {
            while r < b {
                acc += scratch[r * stride + g_off + q];
                r += 1;
            }
        } else {
            let i = q / n;
            let j = q % n;
            while r < b {
                acc += scratch[r * stride + x_off + i] * scratch[r * stride + g_off + j];
                r += 1;
            }
        }
        grads[p] = acc;
    }
}

/// One cube per parameter tensor: its gradient's norm, the clip, and the Adam step; cube 0 also
/// sums the loss. The optimizer's numbers are read from the batch's tail, at `at`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn update_kernel(
    table: &Tensor<f32>,
    batch: &Tensor<f32>,
    weights: &mut Tensor<f32>,
    grads: &Tensor<f32>,
    m1: &mut Tensor<f32>,
    m2: &mut Tensor<f32>,
    losses: &mut Tensor<f32>,
    parts: usize,
    at: usize,
    count: f32,
    #[comptime] clipping: bool,
    #[comptime] first: bool,
) {
    // The optimizer's numbers, from the batch's tail (`SCALARS`).
    let beta_1 = batch[at];
    let beta_2 = batch[at + 1];
    let lr = batch[at + 2];
    let factor = batch[at + 3];
    let epsilon = batch[at + 4];
    let decay = batch[at + 5];
    let clip = batch[at + 6];
    let e = CUBE_POS_X as usize * ENTRY;
    let start = usize::cast_from(table[e]);
    let k = usize::cast_from(table[e + 1]);
    let n = usize::cast_from(table[e + 2]);
    let mut len = n;
    if k > 0 {
        len = k * n;
    }
    let end = start + len;
    let mut coef = f32::new(1.0);
    if clipping {
        let mut acc = 0.0f32;
        let mut i = start + UNIT_POS_X as usize;
        while i < end {
            let g = grads[i];
            acc += g * g;
            i += CUBE_DIM_X as usize;
        }
        coef = clip_of(cube_sum(acc), clip);
    }
    let mut i = start + UNIT_POS_X as usize;
    while i < end {
        adam_element(weights, grads, m1, m2, i, coef, beta_1, beta_2, lr, factor, epsilon, decay, first);
        i += CUBE_DIM_X as usize;
    }
    if CUBE_POS_X == 0 && UNIT_POS_X == 0 {
        let mut total = 0.0f32;
        let mut c = 0usize;
        while c < parts {
            total += losses[1 + c];
            c += 1;
        }
        losses[0] = total / count;
    }
}

/// A toy run trained by the fused step: its weights and Adam's moments as flat device buffers,
/// with what the kernels need beside them. The trainer ([`crate::train::Trainer`]) keeps one on
/// cubecl devices for nets the kernels take, and unpacks it into a net and named optimizer state
/// when it samples or saves. From the second step on the step is recorded once and replayed
/// ([`super::replay`]); the run then hands out copies of its buffers, never views, since each
/// replay updates them where they lie.
pub struct FusedRun {
    /// The weights and both moments; taken out for the length of a step, so that the kernels own
    /// them and update them in place, and held by the recorded step while there is one.
    bufs: Option<[Burn<1>; 3]>,
    /// The recorded step, holding the buffers.
    graph: Option<StepGraph>,
    /// Whether later steps are recorded and replayed (off after a recording fails).
    replay: bool,
    /// Adam's step count (0 before the first step: no moments yet).
    time: usize,
    /// The weights at the last finite loss read, with their step (a handle: the next step then
    /// writes a copy; a copy while a recorded step replays).
    good: Option<(usize, Burn<1>)>,
    table: Burn<1>,
    /// The lift `P^T`, `[2, D]`.
    projection: Burn<2>,
    record: Record,
    /// Every parameter's name and shape, in the packed order.
    params: Vec<(String, Vec<usize>)>,
}

impl FusedRun {
    /// The run of `net` (its inner tensors) with `optim`'s moments, on `net`'s device, for data
    /// lifted by `projection`; `None` where the kernels do not apply (not a cubecl device, or
    /// wider than [`super::mlp::MAX_WIDTH`]).
    pub fn new(net: &Net, optim: &NamedOptimizer, projection: &Projection) -> Option<FusedRun> {
        let device = net.input.weight.val().device().inner();
        let [dim, width] = net.input.weight.val().dims();
        if !super::runs_on(&device) || width > super::mlp::MAX_WIDTH {
            return None;
        }
        let record = Record { dim, width, depth: net.blocks.len() };
        let reads = weight_reads(net, "");
        let params: Vec<(String, Vec<usize>)> = reads.0.iter().map(|(n, _, s)| (n.clone(), s.clone())).collect();
        let weights = Burn::cat(reads.0.into_iter().map(|(_, t, _)| t.inner()).collect(), 0);
        let (moments, scalars) = optim.pending();
        let by_name: BTreeMap<String, Burn<1>> = moments.0.into_iter().map(|(n, t, _)| (n, t.inner())).collect();
        let time = params.first().and_then(|(n, _)| scalars.get(&format!("{n}/momentum.time"))).and_then(|s| usize::try_from(*s).ok()).unwrap_or(0);
        let moment = |field: &str| -> Burn<1> {
            if time == 0 {
                return Burn::zeros([weights.dims()[0]], &device);
            }
            Burn::cat(params.iter().map(|(n, _)| by_name[&format!("{n}/momentum.{field}")].clone()).collect(), 0)
        };
        let (m1, m2) = (moment("moment_1"), moment("moment_2"));
        let (table, np) = record.table();
        debug_assert_eq!(np, weights.dims()[0]);
        let table = Burn::from_data(TensorData::new(table.into_iter().map(|v| v as f32).collect::<Vec<f32>>(), [params.len() * ENTRY]), &device);
        // P is D x 2, row-major: its transpose made on the host, contiguous.
        let pt: Vec<f32> = (0..2).flat_map(|c| (0..dim).map(move |j| (j, c))).map(|(j, c)| projection.matrix[2 * j + c]).collect();
        let projection = Burn::from_data(TensorData::new(pt, [2, dim]), &device);
        Some(FusedRun { bufs: Some([weights, m1, m2]), graph: None, replay: true, time, good: None, table, projection, record, params })
    }

    /// Whether later steps are recorded and replayed (on by default; off, every step goes through
    /// the launch path, as the tests' reference run does).
    pub fn set_replay(&mut self, on: bool) {
        self.replay = on;
        if !on {
            self.unrecord();
        }
    }

    /// Whether the last step was a replay of a recorded one.
    pub fn replaying(&self) -> bool {
        self.graph.is_some()
    }

    /// Drops the recorded step (its buffers become the run's plain ones again).
    fn unrecord(&mut self) {
        if let Some(g) = self.graph.take() {
            self.bufs = Some(g.release().0);
        }
    }

    /// The plain buffers (the weights and both moments), between steps without a recording.
    fn plain(&self) -> &[Burn<1>; 3] {
        self.bufs.as_ref().expect("the run's buffers are back between steps")
    }

    /// The weights now: a view between plain steps (the next step copies before it writes), a
    /// copy while a recorded step replays.
    fn weights_now(&self) -> Burn<1> {
        match &self.graph {
            Some(g) => g.weights_copy(),
            None => self.plain()[0].clone(),
        }
    }

    /// Both moments now, likewise.
    fn moments_now(&self) -> [Burn<1>; 2] {
        match &self.graph {
            Some(g) => g.moments_copy(),
            None => [self.plain()[1].clone(), self.plain()[2].clone()],
        }
    }

    /// One step on a batch of `b` rows (see [`FusedStep::train_step`] for a row's layout), with
    /// the optimizer's numbers for a step count (`NamedOptimizer::fused_step`): the loss, still on
    /// the device.
    pub fn step(&mut self, mut batch: Vec<f32>, b: usize, adam: impl FnOnce(usize) -> AdamStep) -> Burn<1> {
        let adam = adam(self.time + 1);
        batch.extend(scalars(&adam));
        let args = StepArgs { record: self.record, batch: b, clipping: adam.clip > 0.0, first: adam.first };
        self.time += 1;
        if let Some(g) = &mut self.graph {
            if g.fits(args) && g.exclusive() {
                match g.replay(batch) {
                    Ok(loss) => return loss,
                    Err(e) => {
                        // The batch is on the device already: the step goes through the launch
                        // path on it.
                        log::warn!("replaying the recorded training step failed ({e}); the steps go through the launch path from here");
                        self.replay = false;
                        let (bufs, batch) = self.graph.take().expect("a recorded step").release();
                        self.bufs = Some(bufs);
                        return self.launched(batch, args);
                    }
                }
            }
            self.unrecord();
        }
        if self.replay && !args.first {
            let [weights, m1, m2] = self.bufs.take().expect("the run's buffers are back between steps");
            match StepGraph::record(batch, self.projection.clone(), self.table.clone(), weights, m1, m2, args) {
                Ok((graph, loss)) => {
                    self.graph = Some(graph);
                    return loss;
                }
                Err(NotRecorded { bufs, loss, reason }) => {
                    log::warn!("recording the training step failed ({reason}); the steps go through the launch path");
                    self.replay = false;
                    self.bufs = Some(bufs);
                    return loss;
                }
            }
        }
        let n = batch.len();
        let batch = Burn::<1>::from_data(TensorData::new(batch, [n]), &self.projection.device());
        self.launched(batch, args)
    }

    /// One step through the launch path, on a batch already on the device.
    fn launched(&mut self, batch: Burn<1>, args: StepArgs) -> Burn<1> {
        let [weights, m1, m2] = self.bufs.take().expect("the run's buffers are back between steps");
        let (weights, m1, m2, loss) = step(batch, self.projection.clone(), self.table.clone(), weights, m1, m2, args);
        self.bufs = Some([weights, m1, m2]);
        loss
    }

    /// Marks the weights now as those of a finite loss read at `step`.
    pub fn mark_good(&mut self, step: usize) {
        self.good = Some((step, self.weights_now()));
    }

    /// The marked weights, with their step.
    pub fn good(&self) -> Option<(usize, Burn<1>)> {
        self.good.clone()
    }

    /// Puts the marked weights back (the moments stay); their step.
    pub fn restore_good(&mut self) -> Option<usize> {
        let (k, w) = self.good.clone()?;
        self.unrecord();
        if let Some(b) = &mut self.bufs {
            b[0] = w;
        }
        Some(k)
    }

    /// `template` (a net of the same shape) with the run's weights (or `flat`), on the plain
    /// device.
    pub fn net(&self, template: Net, flat: Option<&Burn<1>>) -> Net {
        match flat {
            Some(flat) => from_flat(template, flat),
            None => from_flat(template, &self.weights_now()),
        }
    }

    /// `optim` with the run's moments put in, by parameter name.
    pub fn optimizer(&self, optim: &NamedOptimizer) -> NamedOptimizer {
        let mut o = optim.clone();
        if self.time == 0 {
            return o;
        }
        let [m1, m2] = &self.moments_now();
        let mut off = 0;
        for (name, shape) in &self.params {
            let n: usize = shape.iter().product();
            let part = |t: &Burn<1>| t.clone().slice([off..off + n]);
            match shape.len() {
                1 => o.put_moments::<1>(name, self.time, part(m1), part(m2)),
                _ => o.put_moments::<2>(name, self.time, part(m1).reshape([shape[0], shape[1]]), part(m2).reshape([shape[0], shape[1]])),
            }
            off += n;
        }
        o
    }
}
