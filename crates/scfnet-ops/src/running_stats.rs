//! BatchNorm's running statistics updated in place from a batch's: one kernel per statistic
//! (CPU and CUDA) instead of two scales, an addition and a copy into the variable (four
//! launches per statistic and BatchNorm on a GPU, about 500 tiny ones per R50 training step).

use candle_core::{CpuStorage, InplaceOp2, Layout, Result, Tensor, Var};

use crate::dispatch::uses_own_kernels;
use crate::elem::{contiguous_range, Real};
use crate::generic_ops::OpFamily;

/// `running ← (running·keep + 0) + (batch·weight + 0)`, rounded as candle's composition
/// (`running * keep + batch * weight`, each product an `affine`) rounds it, so the statistics
/// are bit for bit those of the composition. `batch` `(C)`: the batch's statistic, same dtype.
pub(crate) fn update_running(running: &Var, batch: &Tensor, keep: f64, weight: f64) -> Result<()> {
    let r = running.as_tensor();
    if uses_own_kernels(OpFamily::BatchNorm, r)
        && r.is_contiguous()
        && batch.is_contiguous()
        && r.dtype() == batch.dtype()
        && r.shape() == batch.shape()
    {
        return r.inplace_op2(batch, &RunningUpdate { keep, weight });
    }
    running.set(&((r * keep)? + (batch * weight)?)?)
}

/// The update's two factors.
struct RunningUpdate {
    keep: f64,
    weight: f64,
}

fn update_value<T: Real>(r: T, b: T, keep: T, weight: T) -> T {
    (r * keep + T::ZERO) + (b * weight + T::ZERO)
}

fn update_cpu<T: Real>(r: &mut [T], b: &[T], u: &RunningUpdate) -> Result<()> {
    if r.len() != b.len() {
        candle_core::bail!(
            "bn-running-update: {} running values, {} batch values",
            r.len(),
            b.len()
        );
    }
    let (keep, weight) = (T::from_f64(u.keep), T::from_f64(u.weight));
    for (ri, &bi) in r.iter_mut().zip(b) {
        *ri = update_value(*ri, bi, keep, weight);
    }
    Ok(())
}

impl InplaceOp2 for RunningUpdate {
    fn name(&self) -> &'static str {
        "bn-running-update"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (r1, r2) = (
            contiguous_range(self.name(), l1)?,
            contiguous_range(self.name(), l2)?,
        );
        match (s1, s2) {
            (CpuStorage::F32(r), CpuStorage::F32(b)) => {
                update_cpu(&mut r[r1.0..r1.1], &b[r2.0..r2.1], self)
            }
            (CpuStorage::F64(r), CpuStorage::F64(b)) => {
                update_cpu(&mut r[r1.0..r1.1], &b[r2.0..r2.1], self)
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
        use candle_core::backend::BackendStorage;
        match s1.dtype() {
            candle_core::DType::F32 => cuda::update::<f32>((s1, l1), (s2, l2), self),
            candle_core::DType::F64 => cuda::update::<f64>((s1, l1), (s2, l2), self),
            other => candle_core::bail!("{} (cuda): unsupported dtype {other:?}", self.name()),
        }
    }
}

/// The CUDA kernel (`batch_norm.cu`'s `bn_running_update`): one thread per channel.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::{CudaStorage, Layout, Result};
    use scfnet_kernels::launch;
    use scfnet_kernels::ptx::BATCH_NORM;

    use super::RunningUpdate;
    use crate::elem::contiguous_range;
    use crate::gpu::{kernel, per_element, view, GpuFloat};

    pub(super) fn update<T: GpuFloat>(
        (rs, rl): (&mut CudaStorage, &Layout),
        (bs, bl): (&CudaStorage, &Layout),
        u: &RunningUpdate,
    ) -> Result<()> {
        let dev = rs.device().clone();
        let (start, end) = contiguous_range("bn-running-update (cuda)", rl)?;
        let n = end - start;
        let b = view::<T>("bn-running-update", bs, bl)?;
        if b.len() != n {
            candle_core::bail!("bn-running-update (cuda): operands of different lengths");
        }
        let mut r = rs.as_cuda_slice_mut::<T>()?.slice_mut(start..end);
        launch!(dev, BATCH_NORM, kernel::<T>("bn_running_update"), config: per_element(n),
            args: [&mut r, &b, &n, &u.keep, &u.weight]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn the_kernel_is_bit_for_bit_the_composition() {
        for dtype in [DType::F32, DType::F64] {
            let start = Tensor::rand(-3f64, 3.0, 37, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let stats = Tensor::rand(0f64, 5.0, (2, 37), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let (a, b) = (
                Var::from_tensor(&start).unwrap(),
                Var::from_tensor(&start).unwrap(),
            );
            // Row 1 of the statistics: a view at an offset, as the BatchNorm passes it.
            let batch = stats.get(1).unwrap();
            update_running(&a, &batch, 0.9, 0.1 * 640.0 / 639.0).unwrap();
            {
                let _guard = crate::force_generic_path();
                update_running(&b, &batch, 0.9, 0.1 * 640.0 / 639.0).unwrap();
            }
            let (x, y) = (
                a.as_tensor()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap(),
                b.as_tensor()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap(),
            );
            assert_eq!(x, y, "{dtype:?}");
            assert_ne!(
                x,
                start
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
            );
        }
    }
}
