//! The sampler's view of its positions in the plane, `xy = u P` (`[n, D]` times `[D, 2]`), in one
//! small kernel: a thread a row, the row's two sums. burn's matmul takes two dispatches for it
//! through cubek's general launch path (its strategy, layouts and arguments chosen at every call),
//! which in a profile of the page's wasm on Dawn's null backend was 0.47 ms of a sampling frame's
//! 1.07 ms of host time, more than the network's kernel.

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

/// The projection as a burn backend extension, on cubecl devices.
#[backend_extension(Cube)]
pub trait FusedProject: Backend {
    /// `u P` for `u` `[n, D]` and `p` `[D, 2]`.
    fn project_xy(u: FloatTensor<Self>, p: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `u p` (`[n, D]` times `[D, 2]`): the kernel on a cubecl device without autodiff, burn's matmul
/// elsewhere.
pub fn xy(u: Burn<2>, p: Burn<2>) -> Burn<2> {
    let device = u.device();
    if !super::runs_on(&device) || device.is_autodiff() || p.dims()[1] != 2 {
        return u.matmul(p);
    }
    Burn::from_dispatch(<burn::backend::Dispatch as FusedProject>::project_xy(u.into_dispatch(), p.into_dispatch()))
}

impl FusedProject for CubeBackend {
    fn project_xy(u: CubeTensor, p: CubeTensor) -> CubeTensor {
        assert_eq!(u.dtype, DType::F32, "the projection takes f32 positions");
        let (u, p) = (into_contiguous(u), into_contiguous(p));
        let (n, d) = (u.shape()[0], u.shape()[1]);
        let out = empty_device_contiguous_dtype(u.client.clone(), u.device.clone(), [n, 2].into(), DType::F32);
        if n == 0 {
            return out;
        }
        let client = u.client.clone();
        project_kernel::launch(&client, CubeCount::Static(n.div_ceil(THREADS as usize) as u32, 1, 1), CubeDim::new_1d(THREADS), u.into_tensor_arg(), p.into_tensor_arg(), out.clone().into_tensor_arg(), n, d);
        out
    }
}

/// Thread `r`: row `r`'s two coordinates.
#[cube(launch)]
fn project_kernel(u: &Tensor<f32>, p: &Tensor<f32>, out: &mut Tensor<f32>, n: usize, d: usize) {
    let r = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    if r < n {
        let mut x = 0.0f32;
        let mut y = 0.0f32;
        let mut j = 0usize;
        while j < d {
            let v = u[r * d + j];
            x += v * p[2 * j];
            y += v * p[2 * j + 1];
            j += 1;
        }
        out[2 * r] = x;
        out[2 * r + 1] = y;
    }
}
