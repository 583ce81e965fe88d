//! The exact GELU `x·Φ(x) = x·½·(1 + erf(x/√2))` (Swin's MLP) with a backward pass: one kernel
//! each way (CPU and CUDA), in `f64` for both element types. candle's `gelu_erf` records one node
//! whose backward is eight element-wise passes, with `1/√(2π)` rounded to 0.398942.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use crate::dispatch::uses_own_kernels;
use crate::elem::{map_float, map_float2, Real};
use crate::generic_ops::OpFamily;
use crate::par_vec::par_filled;

/// Elements of a chunk in the CPU kernels (one rayon task each).
const CHUNK: usize = 1 << 14;

/// `1/√(2π)`.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// The exact GELU of `x`, any shape, differentiable: `x·½·(1 + erf(x/√2))`, derivative
/// `Φ(x) + x·φ(x)`. On the CPU and CUDA one fused kernel each way; elsewhere (or under
/// [`crate::force_generic_path`]) the same function from candle's `erf`, whose backward is exact.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if !uses_own_kernels(OpFamily::Gelu, x) {
        return (x * 0.5)? * ((x * std::f64::consts::FRAC_1_SQRT_2)?.erf()? + 1.0)?;
    }
    x.contiguous()?.apply_op1(Gelu)
}

fn value(x: f64) -> f64 {
    0.5 * x * (1.0 + candle_core::cpu::erf::erf_f64(x * std::f64::consts::FRAC_1_SQRT_2))
}

fn derivative(x: f64) -> f64 {
    0.5 * (1.0 + candle_core::cpu::erf::erf_f64(x * std::f64::consts::FRAC_1_SQRT_2))
        + x * ((-0.5 * x * x).exp() * INV_SQRT_2PI)
}

fn forward<T: Real + Into<f64>>(x: &[T]) -> Vec<T> {
    par_filled(x.len(), CHUNK, |i, d| {
        let s = &x[i * CHUNK..][..d.len()];
        for (o, &v) in d.iter_mut().zip(s) {
            *o = T::from_f64(value(v.into()));
        }
    })
}

fn backward<T: Real + Into<f64>>(x: &[T], g: &[T]) -> Vec<T> {
    par_filled(x.len(), CHUNK, |i, d| {
        let (xs, gs) = (&x[i * CHUNK..][..d.len()], &g[i * CHUNK..][..d.len()]);
        for ((o, &v), &gv) in d.iter_mut().zip(xs).zip(gs) {
            *o = T::from_f64(gv.into() * derivative(v.into()));
        }
    })
}

struct Gelu;
struct GeluGrad;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = map_float!(self.name(), s, l, |x| forward(x));
        Ok((out, l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::gpu::by_float;
        let out = by_float!(self.name(), s, cuda::forward(s, l))?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.apply_op2_no_bwd(&grad_res.contiguous()?, &GeluGrad)?,
        ))
    }
}

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = map_float2!(self.name(), s1, l1, s2, l2, |x, g| backward(x, g));
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::gpu::by_float;
        let out = by_float!(self.name(), s1, cuda::backward((s1, l1), (s2, l2)))?;
        Ok((out, l1.shape().clone()))
    }
}

/// The CUDA kernels (`scfnet-kernels`' `gelu.cu`): one thread per element.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::{CudaStorage, Layout, Result};
    use scfnet_kernels::launch;
    use scfnet_kernels::ptx::GELU;

    use crate::gpu::{kernel, output, per_element, view, wrap, GpuFloat};

    pub(super) fn forward<T: GpuFloat>(s: &CudaStorage, l: &Layout) -> Result<CudaStorage> {
        let dev = s.device();
        let x = view::<T>("gelu", s, l)?;
        let n = l.shape().elem_count();
        let mut y = output::<T>(dev, n)?;
        launch!(dev, GELU, kernel::<T>("gelu_fwd"), config: per_element(n), args: [&x, &mut y, &n]);
        Ok(wrap(s, y))
    }

    pub(super) fn backward<T: GpuFloat>(
        (xs, xl): (&CudaStorage, &Layout),
        (gs, gl): (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        let dev = xs.device();
        let (x, g) = (view::<T>("gelu", xs, xl)?, view::<T>("gelu", gs, gl)?);
        let n = xl.shape().elem_count();
        let mut dx = output::<T>(dev, n)?;
        launch!(dev, GELU, kernel::<T>("gelu_grad"), config: per_element(n),
            args: [&x, &g, &mut dx, &n]);
        Ok(wrap(xs, dx))
    }
}
