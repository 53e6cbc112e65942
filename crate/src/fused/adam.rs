//! Adam and AdamW with per-parameter gradient-norm clipping, one kernel per parameter.
//!
//! The arithmetic is burn's (`burn::optim::Adam`, `AdamW`, `GradientClipping::Norm`), in the same
//! order per element:
//!
//! ```text
//! g  <- g * min(clip / (|g| + min_positive), 1)          (when clipping)
//! m1 <- b1 m1 + (1 - b1) g        m2 <- b2 m2 + (1 - b2) g^2      (m = 0 on the first step)
//! p  <- p * decay - lr * (m1 * c) / (sqrt(m2) + eps * sqrt(1 - b2^t)),  c = sqrt(1 - b2^t) / (1 - b1^t)
//! ```
//!
//! with `decay = 1 - lr * weight_decay` for AdamW and 1 for Adam. Only the norm's summation order
//! differs from burn's reduction, so the two agree to float rounding, not to the bit (the tests
//! hold them within 1e-5 relative after 100 steps). The parameter and both moments are updated in
//! place when their buffers are not shared (else they are copied first), so a step allocates
//! nothing but the first step's moments.

use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::backend::{backend_extension, Backend, TensorMetadata};
use burn::tensor::DType;
use burn_cubecl::cubecl;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use cubecl::prelude::*;
use super::{cube_sum, owned, THREADS};

/// burn's tensor (cubecl's `Tensor` is the kernels').
type Param<const D: usize> = burn::tensor::Tensor<D>;

/// A parameter of up to this many values is stepped by one cube in one dispatch, the norm summed
/// in its shared memory; a larger one first sums partial norms over [`MAX_CUBES`] cubes.
pub const ONE_CUBE: usize = 1 << 16;
/// Cubes for a large parameter (both dispatches).
const MAX_CUBES: usize = 64;

/// The step's host-side numbers, the same for every parameter of a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub beta_1: f32,
    pub beta_2: f32,
    pub lr: f32,
    /// `sqrt(1 - b2^t) / (1 - b1^t)`.
    pub factor: f32,
    /// `eps * sqrt(1 - b2^t)`.
    pub epsilon: f32,
    /// `1 - lr * weight_decay` (1 for Adam).
    pub decay: f32,
    /// The gradient-norm bound; 0 = no clipping.
    pub clip: f32,
    /// The first step: there are no moments to read yet.
    pub first: bool,
}

impl AdamStep {
    /// burn's defaults (`beta_1 = 0.9`, `beta_2 = 0.999`) at step `time` (1-based) with learning
    /// rate `lr`, `epsilon`, AdamW's `weight_decay` (0 for Adam) and gradient clip `clip`.
    pub fn new(time: usize, lr: f64, epsilon: f32, weight_decay: f32, clip: f32) -> AdamStep {
        let (beta_1, beta_2) = (0.9f32, 0.999f32);
        let t = time as i32;
        let bc2 = (1.0 - beta_2.powi(t)).sqrt();
        let factor = bc2 / (1.0 - beta_1.powi(t));
        // AdamW's decay rate is computed in f64 and applied as an f32 scalar, as burn does.
        let decay = (1.0 - lr * weight_decay as f64) as f32;
        AdamStep { beta_1, beta_2, lr: lr as f32, factor, epsilon: epsilon * bc2, decay, clip, first: time == 1 }
    }
}

/// The fused step as a burn backend extension: on cubecl devices only (the CPU keeps burn's Adam).
#[backend_extension(Cube)]
pub trait FusedAdam: Backend {
    /// One step of one parameter: the new parameter and moments. `m1` and `m2` are ignored on
    /// the first step (pass the gradient).
    fn adam_step(param: FloatTensor<Self>, grad: FloatTensor<Self>, m1: FloatTensor<Self>, m2: FloatTensor<Self>, step: AdamStep) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// One step of one parameter (`param`, `grad` and the moments of the same shape, not autodiff
/// tensors) on a cubecl device: the new parameter and moments.
pub fn step<const D: usize>(param: Param<D>, grad: Param<D>, moments: Option<(Param<D>, Param<D>)>, s: AdamStep) -> (Param<D>, Param<D>, Param<D>) {
    let (m1, m2) = moments.unwrap_or_else(|| (grad.clone(), grad.clone()));
    let (p, m1, m2) = <burn::backend::Dispatch as FusedAdam>::adam_step(param.into_dispatch(), grad.into_dispatch(), m1.into_dispatch(), m2.into_dispatch(), s);
    (Param::from_dispatch(p), Param::from_dispatch(m1), Param::from_dispatch(m2))
}

impl FusedAdam for CubeBackend {
    fn adam_step(param: CubeTensor, grad: CubeTensor, m1: CubeTensor, m2: CubeTensor, s: AdamStep) -> (CubeTensor, CubeTensor, CubeTensor) {
        assert_eq!(param.dtype, DType::F32, "the fused Adam step takes f32 parameters");
        let shape = param.shape();
        let n = shape.num_elements();
        let (client, device) = (param.client.clone(), param.device.clone());
        let param = owned(param);
        let grad = into_contiguous(grad);
        let (m1, m2) = if s.first {
            let empty = || empty_device_contiguous_dtype(client.clone(), device.clone(), shape.clone(), DType::F32);
            (empty(), empty())
        } else {
            (owned(m1), owned(m2))
        };
        let clip = s.clip > 0.0;
        let cubes = if n <= ONE_CUBE { 1 } else { n.div_ceil(ONE_CUBE).clamp(2, MAX_CUBES) };
        // With several cubes, each one's share of the squared norm first.
        // (An unread buffer of its own when unused: a binding never aliases another.)
        let partials = empty_device_contiguous_dtype(client.clone(), device.clone(), [cubes].into(), DType::F32);
        if clip && cubes > 1 {
            sum_squares_kernel::launch(&client, CubeCount::Static(cubes as u32, 1, 1), CubeDim::new_1d(THREADS), grad.clone().into_tensor_arg(), partials.clone().into_tensor_arg(), n, cubes);
        }
        adam_kernel::launch(
            &client,
            CubeCount::Static(cubes as u32, 1, 1),
            CubeDim::new_1d(THREADS),
            param.clone().into_tensor_arg(),
            grad.into_tensor_arg(),
            m1.clone().into_tensor_arg(),
            m2.clone().into_tensor_arg(),
            partials.into_tensor_arg(),
            n,
            cubes,
            s.beta_1,
            s.beta_2,
            s.lr,
            s.factor,
            s.epsilon,
            s.decay,
            s.clip,
            clip,
            cubes == 1,
            s.first,
        );
        (param, m1, m2)
    }
}

/// Each cube's share of `sum(g^2)`, strided over the cubes' threads as the update is.
#[cube(launch)]
fn sum_squares_kernel(grad: &Tensor<f32>, partials: &mut Tensor<f32>, n: usize, cubes: usize) {
    let mut acc = 0.0f32;
    let mut i = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    let stride = cubes * CUBE_DIM_X as usize;
    while i < n {
        let g = grad[i];
        acc += g * g;
        i += stride;
    }
    let total = cube_sum(acc);
    if UNIT_POS_X == 0 {
        partials[CUBE_POS_X as usize] = total;
    }
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn adam_kernel(
    param: &mut Tensor<f32>,
    grad: &Tensor<f32>,
    m1: &mut Tensor<f32>,
    m2: &mut Tensor<f32>,
    partials: &Tensor<f32>,
    n: usize,
    cubes: usize,
    beta_1: f32,
    beta_2: f32,
    lr: f32,
    factor: f32,
    epsilon: f32,
    decay: f32,
    clip: f32,
    #[comptime] clipping: bool,
    #[comptime] one_cube: bool,
    #[comptime] first: bool,
) {
    let start = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    let stride = cubes * CUBE_DIM_X as usize;
    let coef = if clipping { clip_coef(grad, partials, n, cubes, clip, one_cube) } else { f32::new(1.0) };
    let mut i = start;
    while i < n {
        adam_element(param, grad, m1, m2, i, coef, beta_1, beta_2, lr, factor, epsilon, decay, first);
        i += stride;
    }
}

/// burn's clip coefficient, `min(clip / (|g| + f32's smallest normal), 1)`: the norm summed by
/// this cube alone, or from the partial sums of `sum_squares_kernel`.
#[cube]
fn clip_coef(grad: &Tensor<f32>, partials: &Tensor<f32>, n: usize, cubes: usize, clip: f32, #[comptime] one_cube: bool) -> f32 {
    let sum = if one_cube {
        let mut acc = 0.0f32;
        let mut i = UNIT_POS_X as usize;
        while i < n {
            let g = grad[i];
            acc += g * g;
            i += CUBE_DIM_X as usize;
        }
        cube_sum(acc)
    } else {
        let mut acc = 0.0f32;
        let mut k = 0usize;
        while k < cubes {
            acc += partials[k];
            k += 1;
        }
        acc
    };
    clip_of(sum, clip)
}

/// burn's clip coefficient from the squared norm `sum`: `min(clip / (sqrt(sum) + f32's smallest
/// normal), 1)`.
#[cube]
pub(crate) fn clip_of(sum: f32, clip: f32) -> f32 {
    f32::min(clip / (sum.sqrt() + 1.1754944e-38f32), 1.0f32)
}

/// One parameter value's step, its gradient scaled by the clip's `coef` (burn's order of
/// operations, see the module's header).
#[cube]
#[allow(clippy::too_many_arguments)]
pub(crate) fn adam_element(
    param: &mut Tensor<f32>,
    grad: &Tensor<f32>,
    m1: &mut Tensor<f32>,
    m2: &mut Tensor<f32>,
    i: usize,
    coef: f32,
    beta_1: f32,
    beta_2: f32,
    lr: f32,
    factor: f32,
    epsilon: f32,
    decay: f32,
    #[comptime] first: bool,
) {
    let g = grad[i] * coef;
    let a = if first { (1.0f32 - beta_1) * g } else { m1[i] * beta_1 + (1.0f32 - beta_1) * g };
    let b = if first { (1.0f32 - beta_2) * (g * g) } else { m2[i] * beta_2 + (1.0f32 - beta_2) * (g * g) };
    m1[i] = a;
    m2[i] = b;
    let delta = (a * factor) / (b.sqrt() + epsilon);
    let p = param[i];
    param[i] = p * decay - delta * lr;
}
