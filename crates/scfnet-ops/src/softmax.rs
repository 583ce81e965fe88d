//! Softmax over the last axis with a backward pass: one fused kernel each way (CPU and CUDA).
//! candle-nn's fused `softmax_last_dim` has no backward, and its differentiable composition
//! records five nodes (max, subtract, exp, sum, divide) per call, on attention maps of
//! `(B·windows, heads, N, N)`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};

use crate::dispatch::uses_own_kernels;
use crate::elem::{map_float, map_float2, Real};
use crate::generic_ops::OpFamily;
use crate::par_vec::par_filled;

/// Rows of a chunk in the CPU kernels (one rayon task each).
const ROWS_PER_CHUNK: usize = 64;

/// Softmax of `x` `(…, N)` over its last axis, `exp(x − max) / Σ exp(x − max)` row by row,
/// differentiable. On the CPU and CUDA one fused kernel each way (the exponentials in the
/// input's precision, the sums in `f64`); elsewhere (or under [`crate::force_generic_path`])
/// candle-nn's composition.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if !uses_own_kernels(OpFamily::Softmax, x) {
        return candle_nn::ops::softmax(x, D::Minus1);
    }
    x.contiguous()?.apply_op1(Softmax)
}

/// One row's softmax into `y`.
fn softmax_row<T: Real + Into<f64>>(x: &[T], y: &mut [T]) {
    let max = x.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0f64;
    for (d, &v) in y.iter_mut().zip(x) {
        *d = (v - max).exp();
        sum += (*d).into();
    }
    for d in y.iter_mut() {
        *d = T::from_f64((*d).into() / sum);
    }
}

fn forward<T: Real + Into<f64>>(x: &[T], n: usize) -> Vec<T> {
    let chunk = n * ROWS_PER_CHUNK;
    par_filled(x.len(), chunk, |i, dst| {
        let src = &x[i * chunk..][..dst.len()];
        for (yr, xr) in dst.chunks_mut(n).zip(src.chunks(n)) {
            softmax_row(xr, yr);
        }
    })
}

/// `dx = y·(g − Σ g·y)` row by row, from the output `y` and its gradient `g`.
fn backward<T: Real + Into<f64>>(y: &[T], g: &[T], n: usize) -> Vec<T> {
    let chunk = n * ROWS_PER_CHUNK;
    par_filled(y.len(), chunk, |i, dst| {
        let (ys, gs) = (&y[i * chunk..][..dst.len()], &g[i * chunk..][..dst.len()]);
        for ((dr, yr), gr) in dst.chunks_mut(n).zip(ys.chunks(n)).zip(gs.chunks(n)) {
            let dot: f64 = yr.iter().zip(gr).map(|(&a, &b)| a.into() * b.into()).sum();
            for ((d, &yv), &gv) in dr.iter_mut().zip(yr).zip(gr) {
                *d = T::from_f64(yv.into() * (gv.into() - dot));
            }
        }
    })
}

/// The length of the last axis of `layout`, refusing an empty one.
fn row_length(op: &str, layout: &Layout) -> Result<usize> {
    match layout.shape().dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => candle_core::bail!("{op}: needs a last axis of at least one value"),
    }
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = row_length(self.name(), l)?;
        let out = map_float!(self.name(), s, l, |x| forward(x, n));
        Ok((out, l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let n = row_length(self.name(), l)?;
        let out = cuda::forward(s, l, n)?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &SoftmaxBackward,
        )?))
    }
}

/// `dx` of [`Softmax`] from its output and the output's gradient.
struct SoftmaxBackward;

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = row_length(self.name(), l1)?;
        let out = map_float2!(self.name(), s1, l1, s2, l2, |y, g| backward(y, g, n));
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
        let n = row_length(self.name(), l1)?;
        let out = cuda::backward((s1, l1), (s2, l2), n)?;
        Ok((out, l1.shape().clone()))
    }
}

/// The CUDA kernels (`scfnet-kernels`' `softmax.cu`): one warp per row, sums in `f64`.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::{CudaStorage, Layout, Result};
    use scfnet_kernels::ptx::SOFTMAX;
    use scfnet_kernels::{launch, rows_per_warp};

    use crate::gpu::{by_float, kernel, output, row_length_u32, view, wrap, GpuFloat};

    const OP: &str = "softmax";

    pub(super) fn forward(s: &CudaStorage, l: &Layout, n: usize) -> Result<CudaStorage> {
        by_float!(OP, s, forward_typed(s, l, n))
    }

    fn forward_typed<T: GpuFloat>(s: &CudaStorage, l: &Layout, n: usize) -> Result<CudaStorage> {
        let dev = s.device();
        let x = view::<T>(OP, s, l)?;
        let total = l.shape().elem_count();
        let rows = total / n;
        let n32 = row_length_u32(OP, n)?;
        let mut y = output::<T>(dev, total)?;
        launch!(dev, SOFTMAX, kernel::<T>("softmax_fwd"), config: rows_per_warp(rows),
            args: [&x, &mut y, &rows, &n32]);
        Ok(wrap(s, y))
    }

    pub(super) fn backward(
        y: (&CudaStorage, &Layout),
        g: (&CudaStorage, &Layout),
        n: usize,
    ) -> Result<CudaStorage> {
        by_float!("softmax grad", y.0, backward_typed(y, g, n))
    }

    fn backward_typed<T: GpuFloat>(
        (ys, yl): (&CudaStorage, &Layout),
        (gs, gl): (&CudaStorage, &Layout),
        n: usize,
    ) -> Result<CudaStorage> {
        let dev = ys.device();
        let (y, g) = (view::<T>(OP, ys, yl)?, view::<T>(OP, gs, gl)?);
        let total = yl.shape().elem_count();
        let rows = total / n;
        let n32 = row_length_u32(OP, n)?;
        let mut dx = output::<T>(dev, total)?;
        launch!(dev, SOFTMAX, kernel::<T>("softmax_grad"), config: rows_per_warp(rows),
            args: [&y, &g, &mut dx, &rows, &n32]);
        Ok(wrap(ys, dx))
    }
}
