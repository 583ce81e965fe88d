//! The SGD-with-momentum update of one parameter in place: two passes (velocity, weight)
//! instead of seven candle operations and their buffers per parameter and step (hundreds of
//! parameters in a teacher). The same roundings as the composition, in the same order, so the
//! weights are bit for bit those of the composed update.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor, Var};

use crate::dispatch::uses_own_kernels;
use crate::elem::Real;

/// The settings of one update: `g' = g + λ·w` (skipped when `λ = 0`), `v ← μ·v + g'`,
/// `w ← w − s·v`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdSettings {
    /// Momentum `μ`.
    pub momentum: f64,
    /// Coupled L2 weight decay `λ`.
    pub weight_decay: f64,
    /// Step size `s` (learning rate × the group's multiplier).
    pub step: f64,
}

/// Updates `weight` with its gradient `grad` and returns the new velocity. `velocity` is the
/// previous one (`None` at the first update, where the velocity is `g'`). On the CPU and CUDA,
/// once a velocity exists, both are updated in place by two fused kernels (the returned tensor
/// is `velocity` itself); otherwise the same arithmetic from candle operations.
pub fn sgd_momentum_update(
    weight: &Var,
    velocity: Option<&Tensor>,
    grad: &Tensor,
    settings: SgdSettings,
) -> Result<Tensor> {
    let w = weight.as_tensor();
    if let Some(v) = velocity {
        if uses_own_kernels(w) && w.is_contiguous() && v.is_contiguous() {
            let g = grad.contiguous()?;
            v.inplace_op3(&g, w, &VelocityUpdate(settings))?;
            w.inplace_op2(v, &WeightUpdate(settings))?;
            return Ok(v.clone());
        }
    }
    let g = if settings.weight_decay != 0.0 {
        (grad + (w * settings.weight_decay)?)?
    } else {
        grad.clone()
    };
    let new_v = match velocity {
        Some(old) => ((old * settings.momentum)? + g)?,
        // The first velocity gets a buffer of its own: later updates write it in place, and a
        // gradient may share its storage with other gradients (candle stores a tensor's first
        // gradient contribution as it is, e.g. the same tensor for both operands of an addition).
        None if settings.weight_decay == 0.0 => g.force_contiguous()?,
        None => g,
    };
    weight.set(&(w - (&new_v * settings.step)?)?)?;
    Ok(new_v.detach())
}

/// `v ← (v·μ + 0) + (g + (w·λ + 0))`: candle's `affine` (`x·a + b`) and additions, as the
/// composition computes them.
fn velocity_value<T: Real>(v: T, g: T, w: T, s: SgdSettings) -> T {
    let g = if s.weight_decay != 0.0 {
        g + (w * T::from_f64(s.weight_decay) + T::ZERO)
    } else {
        g
    };
    (v * T::from_f64(s.momentum) + T::ZERO) + g
}

/// `w ← w − (v·s + 0)`.
fn weight_value<T: Real>(w: T, v: T, s: SgdSettings) -> T {
    w - (v * T::from_f64(s.step) + T::ZERO)
}

/// The contiguous range of `layout`, or an error naming `op`.
fn range(op: &str, layout: &Layout) -> Result<(usize, usize)> {
    layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: operands must be contiguous")))
}

struct VelocityUpdate(SgdSettings);
struct WeightUpdate(SgdSettings);

impl InplaceOp3 for VelocityUpdate {
    fn name(&self) -> &'static str {
        "sgd-velocity"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let (r1, r2, r3) = (
            range(self.name(), l1)?,
            range(self.name(), l2)?,
            range(self.name(), l3)?,
        );
        match (s1, s2, s3) {
            (CpuStorage::F32(v), CpuStorage::F32(g), CpuStorage::F32(w)) => {
                velocity_cpu(&mut v[r1.0..r1.1], &g[r2.0..r2.1], &w[r3.0..r3.1], self.0)
            }
            (CpuStorage::F64(v), CpuStorage::F64(g), CpuStorage::F64(w)) => {
                velocity_cpu(&mut v[r1.0..r1.1], &g[r2.0..r2.1], &w[r3.0..r3.1], self.0)
            }
            _ => candle_core::bail!("{}: operands must all be f32 or all f64", self.name()),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<()> {
        cuda::velocity((s1, l1), (s2, l2), (s3, l3), self.0)
    }
}

impl InplaceOp2 for WeightUpdate {
    fn name(&self) -> &'static str {
        "sgd-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (r1, r2) = (range(self.name(), l1)?, range(self.name(), l2)?);
        match (s1, s2) {
            (CpuStorage::F32(w), CpuStorage::F32(v)) => {
                weight_cpu(&mut w[r1.0..r1.1], &v[r2.0..r2.1], self.0)
            }
            (CpuStorage::F64(w), CpuStorage::F64(v)) => {
                weight_cpu(&mut w[r1.0..r1.1], &v[r2.0..r2.1], self.0)
            }
            _ => candle_core::bail!("{}: operands must both be f32 or both f64", self.name()),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<()> {
        cuda::weight((s1, l1), (s2, l2), self.0)
    }
}

fn velocity_cpu<T: Real>(v: &mut [T], g: &[T], w: &[T], s: SgdSettings) -> Result<()> {
    if v.len() != g.len() || v.len() != w.len() {
        candle_core::bail!(
            "sgd-velocity: {} velocities, {} gradients, {} weights",
            v.len(),
            g.len(),
            w.len()
        );
    }
    for ((vi, &gi), &wi) in v.iter_mut().zip(g).zip(w) {
        *vi = velocity_value(*vi, gi, wi, s);
    }
    Ok(())
}

fn weight_cpu<T: Real>(w: &mut [T], v: &[T], s: SgdSettings) -> Result<()> {
    if w.len() != v.len() {
        candle_core::bail!("sgd-weight: {} weights, {} velocities", w.len(), v.len());
    }
    for (wi, &vi) in w.iter_mut().zip(v) {
        *wi = weight_value(*wi, vi, s);
    }
    Ok(())
}

/// The CUDA kernels (`scfnet-kernels`' `sgd.cu`): one thread per value.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::{CudaStorage, DType, Layout, Result};
    use scfnet_kernels::launch;
    use scfnet_kernels::ptx::SGD;

    use super::{range, SgdSettings};
    use crate::gpu::{kernel, per_element, view, GpuFloat};

    pub(super) fn velocity(
        (vs, vl): (&mut CudaStorage, &Layout),
        g: (&CudaStorage, &Layout),
        w: (&CudaStorage, &Layout),
        s: SgdSettings,
    ) -> Result<()> {
        match vs.dtype() {
            DType::F32 => velocity_typed::<f32>((vs, vl), g, w, s),
            DType::F64 => velocity_typed::<f64>((vs, vl), g, w, s),
            other => candle_core::bail!("sgd-velocity (cuda): unsupported dtype {other:?}"),
        }
    }

    fn velocity_typed<T: GpuFloat>(
        (vs, vl): (&mut CudaStorage, &Layout),
        (gs, gl): (&CudaStorage, &Layout),
        (ws, wl): (&CudaStorage, &Layout),
        s: SgdSettings,
    ) -> Result<()> {
        let dev = vs.device().clone();
        let (start, end) = range("sgd-velocity", vl)?;
        let n = end - start;
        let (g, w) = (view::<T>("sgd", gs, gl)?, view::<T>("sgd", ws, wl)?);
        if g.len() != n || w.len() != n {
            candle_core::bail!("sgd-velocity (cuda): operands of different lengths");
        }
        let decay = usize::from(s.weight_decay != 0.0);
        let mut v = vs.as_cuda_slice_mut::<T>()?.slice_mut(start..end);
        launch!(dev, SGD, kernel::<T>("sgd_velocity"), config: per_element(n),
            args: [&mut v, &g, &w, &n, &s.momentum, &s.weight_decay, &decay]);
        Ok(())
    }

    pub(super) fn weight(
        (ws, wl): (&mut CudaStorage, &Layout),
        v: (&CudaStorage, &Layout),
        s: SgdSettings,
    ) -> Result<()> {
        match ws.dtype() {
            DType::F32 => weight_typed::<f32>((ws, wl), v, s),
            DType::F64 => weight_typed::<f64>((ws, wl), v, s),
            other => candle_core::bail!("sgd-weight (cuda): unsupported dtype {other:?}"),
        }
    }

    fn weight_typed<T: GpuFloat>(
        (ws, wl): (&mut CudaStorage, &Layout),
        (vs, vl): (&CudaStorage, &Layout),
        s: SgdSettings,
    ) -> Result<()> {
        let dev = ws.device().clone();
        let (start, end) = range("sgd-weight", wl)?;
        let n = end - start;
        let v = view::<T>("sgd", vs, vl)?;
        if v.len() != n {
            candle_core::bail!("sgd-weight (cuda): operands of different lengths");
        }
        let mut w = ws.as_cuda_slice_mut::<T>()?.slice_mut(start..end);
        launch!(dev, SGD, kernel::<T>("sgd_weight"), config: per_element(n),
            args: [&mut w, &v, &n, &s.step]);
        Ok(())
    }
}
