//! The tail of an inference convolution whose BatchNorm was folded into its weights: per-channel
//! bias and activation in one in-place pass over the fresh output, instead of a broadcast add and
//! an activation that each read and write (and allocate) the whole map.

use candle_core::{CpuStorage, InplaceOp1, Layout, Result, Tensor};
use rayon::prelude::*;

use crate::activation::Activation;
use crate::dispatch::uses_cpu_kernels;
use crate::elem::Real;
use crate::simd;

/// Per-channel bias (f64, converted once per plane) and activation, in place.
struct BiasActivation<'a> {
    bias: &'a [f64],
    act: Activation,
}

fn bias_activate<T: Real>(y: &mut [T], bias: &[f64], hw: usize, act: Activation) {
    let c = bias.len();
    // Planes of at least ~16K values per task: small maps stay on one thread.
    let per_task = (16_384 / hw.max(1)).max(1);
    let wide = simd::wide();
    y.par_chunks_mut(hw * per_task)
        .enumerate()
        .for_each(|(t, planes)| {
            for (j, plane) in planes.chunks_mut(hw).enumerate() {
                let b = T::from_f64(bias[(t * per_task + j) % c]);
                #[cfg(target_arch = "x86_64")]
                if wide {
                    // SAFETY: `simd::wide` checked that the CPU has AVX2 and FMA.
                    unsafe { apply_plane_wide(plane, b, act) };
                    continue;
                }
                let _ = wide;
                apply_plane(plane, b, act);
            }
        });
}

/// [`apply_plane`] compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn apply_plane_wide<T: Real>(plane: &mut [T], b: T, act: Activation) {
    apply_plane(plane, b, act)
}

/// `act(v + b)` for every value of one plane, one branch-free loop per activation (so that each
/// vectorises); hard-swish as `x · clip(x + 3, 0, 6) / 6`.
#[inline(always)]
pub(crate) fn apply_plane<T: Real>(plane: &mut [T], b: T, act: Activation) {
    let (zero, three, six) = (T::ZERO, T::from_f64(3.0), T::from_f64(6.0));
    match act {
        Activation::None => plane.iter_mut().for_each(|v| *v += b),
        Activation::Relu => plane.iter_mut().for_each(|v| *v = (*v + b).max(zero)),
        Activation::HardSwish => plane.iter_mut().for_each(|v| {
            let x = *v + b;
            *v = x * (x + three).max(zero).min(six) / six;
        }),
    }
}

impl InplaceOp1 for BiasActivation<'_> {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let (c, hw) = match layout.shape().dims() {
            &[_, c, h, w] => (c, h * w),
            other => candle_core::bail!("bias-activation: expected (B, C, H, W), got {other:?}"),
        };
        if c != self.bias.len() {
            candle_core::bail!(
                "bias-activation: {} bias values for {c} channels",
                self.bias.len()
            );
        }
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("bias-activation: the output must be contiguous");
        };
        match storage {
            CpuStorage::F32(v) => bias_activate(&mut v[start..end], self.bias, hw, self.act),
            CpuStorage::F64(v) => bias_activate(&mut v[start..end], self.bias, hw, self.act),
            other => candle_core::bail!(
                "bias-activation: unsupported dtype {:?} (use f32 or f64)",
                candle_core::backend::BackendStorage::dtype(other)
            ),
        }
        Ok(())
    }
}

/// `act(y + bias)` for a convolution output `y` `(B, C, H, W)` and a per-channel `bias` `(C)`
/// (`bias_values` holds the same numbers, read once at load): in place on the CPU, as a broadcast
/// add and [`Activation::apply`] elsewhere. Inference only (no backward).
///
/// On the CPU `y` is overwritten: pass a tensor nobody else holds, such as the fresh output of a
/// convolution. The result is `y` itself there.
pub fn add_bias_activate(
    y: Tensor,
    bias: &Tensor,
    bias_values: &[f64],
    act: Activation,
) -> Result<Tensor> {
    if !uses_cpu_kernels(&y) || !y.is_contiguous() {
        let c = bias.elem_count();
        let y = y.broadcast_add(&bias.reshape((1, c, 1, 1))?.to_dtype(y.dtype())?)?;
        return act.apply(&y);
    }
    y.inplace_op1(&BiasActivation {
        bias: bias_values,
        act,
    })?;
    Ok(y)
}
