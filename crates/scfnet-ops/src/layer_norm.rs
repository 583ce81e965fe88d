//! LayerNorm over the last axis with a backward pass: one fused kernel each way (CPU and CUDA),
//! where the composition of candle primitives records a dozen nodes per call (Swin-B calls it
//! 50 times a forward). Statistics and products in `f64`, biased variance, as PyTorch's
//! `nn.LayerNorm` and Paddle's `nn.LayerNorm`.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use crate::dispatch::uses_own_kernels;
use crate::elem::{map_float3, Real};
use crate::generic_ops::OpFamily;
use crate::par_vec::par_filled;

/// Rows of a chunk in the CPU kernels: fixed, so that the weight gradient's partial sums (one
/// per chunk, added in chunk order) do not depend on the number of threads.
const ROWS_PER_CHUNK: usize = 64;

/// LayerNorm of `x` `(…, C)` over its last axis: `(x − μ) / √(σ² + ε) · weight + bias`, with
/// `μ` and the biased `σ²` of each row of `C` values; `weight` and `bias` `(C)`. Differentiable
/// in all three. On the CPU and CUDA one fused kernel each way; elsewhere (or under
/// [`crate::force_generic_path`]) the same arithmetic from candle primitives.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let c = x.dim(D::Minus1)?;
    if weight.dims() != [c] || bias.is_some_and(|b| b.dims() != [c]) {
        candle_core::bail!(
            "layer-norm: weight {:?} and bias {:?} must be ({c}) for an input {:?}",
            weight.dims(),
            bias.map(Tensor::dims),
            x.dims()
        );
    }
    if !uses_own_kernels(OpFamily::LayerNorm, x) {
        return composed(x, weight, bias, eps);
    }
    let zeros;
    let bias = match bias {
        Some(b) => b,
        None => {
            zeros = weight.zeros_like()?;
            &zeros
        }
    };
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LayerNormOp { eps },
    )
}

/// The same computation from candle operations (every device, with their backward passes).
fn composed(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let y = centred
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .broadcast_mul(weight)?;
    match bias {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// The mean and `1 / √(σ² + ε)` of one row (two passes, in `f64`).
fn row_statistics<T: Real + Into<f64>>(row: &[T], eps: f64) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v.into()).sum::<f64>() / n;
    let var = row
        .iter()
        .map(|&v| {
            let d = v.into() - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `y = (x − μ)·r·γ + β` row by row (`r = 1/√(σ² + ε)`).
fn forward<T: Real + Into<f64>>(x: &[T], weight: &[T], bias: &[T], eps: f64) -> Vec<T> {
    let c = weight.len();
    let chunk = c * ROWS_PER_CHUNK;
    par_filled(x.len(), chunk, |i, dst| {
        let src = &x[i * chunk..][..dst.len()];
        for (yr, xr) in dst.chunks_mut(c).zip(src.chunks(c)) {
            let (mean, r) = row_statistics(xr, eps);
            for (j, (d, &v)) in yr.iter_mut().zip(xr).enumerate() {
                *d = T::from_f64((v.into() - mean) * r * weight[j].into() + bias[j].into());
            }
        }
    })
}

/// The gradients of [`forward`] for the output gradient `dy`, packed: `dx` (as many values as
/// `x`), then `dγ = Σ dy·x̂` and `dβ = Σ dy` (C each, summed over the rows), with
/// `x̂ = (x − μ)·r` and `dx = r·(g − mean(g) − x̂·mean(g·x̂))` for `g = dy·γ`.
fn backward<T: Real + Into<f64>>(x: &[T], dy: &[T], weight: &[T], eps: f64) -> Vec<T> {
    let c = weight.len();
    let mut out = vec![T::ZERO; x.len() + 2 * c];
    let (dx, daffine) = out.split_at_mut(x.len());
    let partials: Vec<Vec<f64>> = dx
        .par_chunks_mut(c * ROWS_PER_CHUNK)
        .zip(x.par_chunks(c * ROWS_PER_CHUNK))
        .zip(dy.par_chunks(c * ROWS_PER_CHUNK))
        .map(|((dst, xs), gs)| {
            let mut part = vec![0.0f64; 2 * c];
            for ((dxr, xr), gr) in dst.chunks_mut(c).zip(xs.chunks(c)).zip(gs.chunks(c)) {
                let (mean, r) = row_statistics(xr, eps);
                let (mut sum_g, mut sum_gx) = (0.0f64, 0.0f64);
                for j in 0..c {
                    let xhat = (xr[j].into() - mean) * r;
                    let g = gr[j].into();
                    let gw = g * weight[j].into();
                    sum_g += gw;
                    sum_gx += gw * xhat;
                    part[j] += g * xhat;
                    part[c + j] += g;
                }
                let (a, b) = (sum_g / c as f64, sum_gx / c as f64);
                for j in 0..c {
                    let xhat = (xr[j].into() - mean) * r;
                    let gw = gr[j].into() * weight[j].into();
                    dxr[j] = T::from_f64(r * (gw - a - xhat * b));
                }
            }
            part
        })
        .collect();
    for (j, d) in daffine.iter_mut().enumerate() {
        *d = T::from_f64(partials.iter().map(|p| p[j]).sum());
    }
    out
}

/// `layer_norm(x, γ, β)` over the last axis of a contiguous `x`.
struct LayerNormOp {
    eps: f64,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = map_float3!(self.name(), s1, l1, s2, l2, s3, l3, |x, w, b| {
            forward(x, w, b, self.eps)
        });
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let out = cuda::forward((s1, l1), (s2, l2), (s3, l3), self.eps)?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let packed = x.apply_op3_no_bwd(
            &dy.contiguous()?,
            weight,
            &LayerNormBackward { eps: self.eps },
        )?;
        let (n, c) = (x.elem_count(), weight.elem_count());
        let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
        let dweight = packed.narrow(0, n, c)?;
        let dbias = packed.narrow(0, n + c, c)?;
        Ok((Some(dx), Some(dweight), Some(dbias)))
    }
}

/// The packed gradients of [`LayerNormOp`] from `(x, dy, γ)`: `dx`, then `dγ` and `dβ`.
struct LayerNormBackward {
    eps: f64,
}

impl CustomOp3 for LayerNormBackward {
    fn name(&self) -> &'static str {
        "layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let c = l3.shape().elem_count();
        let out = map_float3!(self.name(), s1, l1, s2, l2, s3, l3, |x, dy, w| {
            backward(x, dy, w, self.eps)
        });
        Ok((out, Shape::from(l1.shape().elem_count() + 2 * c)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let c = l3.shape().elem_count();
        let out = cuda::backward((s1, l1), (s2, l2), (s3, l3), self.eps)?;
        Ok((out, Shape::from(l1.shape().elem_count() + 2 * c)))
    }
}

/// The CUDA kernels (`scfnet-kernels`' `layer_norm.cu`): one warp per row, sums in `f64`; the
/// weight gradient's column sums in slices of rows, added in slice order.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::{CudaStorage, Layout, Result};
    use scfnet_kernels::ptx::LAYER_NORM;
    use scfnet_kernels::{blocks, launch, row_slices, rows_per_warp};

    use crate::gpu::{by_float, kernel, output, per_element, row_length_u32, view, wrap, GpuFloat};

    const OP: &str = "layer-norm";

    /// `y = (x − μ)·r·γ + β`.
    pub(super) fn forward(
        x: (&CudaStorage, &Layout),
        w: (&CudaStorage, &Layout),
        b: (&CudaStorage, &Layout),
        eps: f64,
    ) -> Result<CudaStorage> {
        by_float!(OP, x.0, forward_typed(x, w, b, eps))
    }

    fn forward_typed<T: GpuFloat>(
        (xs, xl): (&CudaStorage, &Layout),
        (ws, wl): (&CudaStorage, &Layout),
        (bs, bl): (&CudaStorage, &Layout),
        eps: f64,
    ) -> Result<CudaStorage> {
        let dev = xs.device();
        let (x, w, b) = (
            view::<T>(OP, xs, xl)?,
            view::<T>(OP, ws, wl)?,
            view::<T>(OP, bs, bl)?,
        );
        let (n, c) = (xl.shape().elem_count(), wl.shape().elem_count());
        let rows = n / c.max(1);
        let c32 = row_length_u32(OP, c)?;
        let mut y = output::<T>(dev, n)?;
        launch!(dev, LAYER_NORM, kernel::<T>("ln_fwd"), config: rows_per_warp(rows),
            args: [&x, &w, &b, &mut y, &rows, &c32, &eps]);
        Ok(wrap(xs, y))
    }

    /// `dx`, `dγ`, `dβ` packed.
    pub(super) fn backward(
        x: (&CudaStorage, &Layout),
        dy: (&CudaStorage, &Layout),
        w: (&CudaStorage, &Layout),
        eps: f64,
    ) -> Result<CudaStorage> {
        by_float!("layer-norm grad", x.0, backward_typed(x, dy, w, eps))
    }

    fn backward_typed<T: GpuFloat>(
        (xs, xl): (&CudaStorage, &Layout),
        (ds, dl): (&CudaStorage, &Layout),
        (ws, wl): (&CudaStorage, &Layout),
        eps: f64,
    ) -> Result<CudaStorage> {
        let dev = xs.device();
        let (x, dy, w) = (
            view::<T>(OP, xs, xl)?,
            view::<T>(OP, ds, dl)?,
            view::<T>(OP, ws, wl)?,
        );
        let (n, c) = (xl.shape().elem_count(), wl.shape().elem_count());
        let rows = n / c.max(1);
        let c32 = row_length_u32(OP, c)?;
        let mut stats = output::<f64>(dev, 2 * rows)?;
        launch!(dev, LAYER_NORM, kernel::<T>("ln_stats"), config: rows_per_warp(rows),
            args: [&x, &mut stats, &rows, &c32, &eps]);
        let mut out = output::<T>(dev, n + 2 * c)?;
        launch!(dev, LAYER_NORM, kernel::<T>("ln_grad_input"), config: rows_per_warp(rows),
            args: [&x, &dy, &w, &stats, &mut out, &rows, &c32]);
        let slices = row_slices(rows);
        let mut part = output::<f64>(dev, 2 * c * slices)?;
        launch!(dev, LAYER_NORM, kernel::<T>("ln_grad_affine_partials"),
            config: blocks((c.div_ceil(128), slices), 128),
            args: [&x, &dy, &stats, &mut part, &rows, &c32, &slices]);
        launch!(dev, LAYER_NORM, kernel::<T>("ln_grad_affine_finish"),
            config: per_element(2 * c), args: [&part, &mut out, &n, &c, &slices]);
        Ok(wrap(xs, out))
    }
}
