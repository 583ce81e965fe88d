//! The SGD-with-momentum update of parameters in place: on the CPU two passes per parameter
//! (velocity, weight; large parameters in parallel chunks), on CUDA one launch per chunk of 64
//! parameters, instead of seven candle operations and their buffers per parameter and step
//! (hundreds of parameters in a teacher). The same roundings as the composition, in the same
//! order, so the weights are bit for bit those of the composed update.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor, Var};
use rayon::prelude::*;

use crate::dispatch::uses_own_kernels;
use crate::elem::{contiguous_range, Real};
use crate::generic_ops::OpFamily;

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

/// One parameter's part of [`sgd_momentum_update_all`].
pub struct SgdParam<'a> {
    /// The weight, updated in place.
    pub weight: &'a Var,
    /// Its velocity: `None` before the first update; replaced or updated in place.
    pub velocity: &'a mut Option<Tensor>,
    /// Its gradient.
    pub grad: &'a Tensor,
    /// The update's settings.
    pub settings: SgdSettings,
}

/// Updates `weight` with its gradient `grad` and returns the new velocity. `velocity` is the
/// previous one (`None` at the first update, where the velocity is `g'`). The update of one
/// parameter by [`sgd_momentum_update_all`]; the returned tensor is the velocity buffer that
/// later updates write in place.
pub fn sgd_momentum_update(
    weight: &Var,
    velocity: Option<&Tensor>,
    grad: &Tensor,
    settings: SgdSettings,
) -> Result<Tensor> {
    let mut v = velocity.cloned();
    sgd_momentum_update_all(&mut [SgdParam {
        weight,
        velocity: &mut v,
        grad,
        settings,
    }])?;
    v.ok_or_else(|| candle_core::Error::Msg("sgd: the update set no velocity".into()))
}

/// Updates every parameter of `params` (any sizes, groups and settings). Once a parameter has a
/// velocity, its velocity and weight are updated in place: on the CPU by two fused passes per
/// parameter, on CUDA by one kernel launch per chunk of up to 64 parameters of a type (instead
/// of two launches per parameter: hundreds per step in a teacher). A first update, or storage
/// that is not contiguous, goes through candle operations with the same roundings.
pub fn sgd_momentum_update_all(params: &mut [SgdParam<'_>]) -> Result<()> {
    #[cfg(feature = "cuda")]
    let mut on_gpu = Vec::new();
    for p in params.iter_mut() {
        let w = p.weight.as_tensor();
        let in_place = p.velocity.as_ref().filter(|v| {
            uses_own_kernels(OpFamily::Sgd, w)
                && w.is_contiguous()
                && v.is_contiguous()
                && v.dtype() == w.dtype()
        });
        let Some(v) = in_place else {
            let new_v = composed_update(p.weight, p.velocity.as_ref(), p.grad, p.settings)?;
            *p.velocity = Some(new_v);
            continue;
        };
        let g = p.grad.contiguous()?;
        #[cfg(feature = "cuda")]
        if w.device().is_cuda() {
            on_gpu.push(cuda::Update {
                w: w.clone(),
                v: v.clone(),
                g,
                settings: p.settings,
            });
            continue;
        }
        v.inplace_op3(&g, w, &VelocityUpdate(p.settings))?;
        w.inplace_op2(v, &WeightUpdate(p.settings))?;
    }
    #[cfg(feature = "cuda")]
    cuda::update_in_chunks(on_gpu)?;
    Ok(())
}

/// The update from candle operations; returns the new velocity.
fn composed_update(
    weight: &Var,
    velocity: Option<&Tensor>,
    grad: &Tensor,
    settings: SgdSettings,
) -> Result<Tensor> {
    let w = weight.as_tensor();
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
            contiguous_range(self.name(), l1)?,
            contiguous_range(self.name(), l2)?,
            contiguous_range(self.name(), l3)?,
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
        let (r1, r2) = (
            contiguous_range(self.name(), l1)?,
            contiguous_range(self.name(), l2)?,
        );
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
}

/// Values per work item of the CPU passes; a parameter of at most this many values is updated on
/// the calling thread (a parallel loop costs more than it saves there). Each value's update is
/// independent of the others, so the split changes no bit.
const CPU_CHUNK: usize = 1 << 14;

/// Runs `pass(start, values)` over `out` in chunks of [`CPU_CHUNK`] values, in parallel (on the
/// calling thread when `out` is one chunk); `start` is the chunk's first index in `out`.
fn in_chunks<T: Send>(out: &mut [T], pass: impl Fn(usize, &mut [T]) + Send + Sync) {
    if out.len() <= CPU_CHUNK {
        pass(0, out);
    } else {
        out.par_chunks_mut(CPU_CHUNK)
            .enumerate()
            .for_each(|(i, chunk)| pass(i * CPU_CHUNK, chunk));
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
    in_chunks(v, |start, v| {
        for ((vi, &gi), &wi) in v.iter_mut().zip(&g[start..]).zip(&w[start..]) {
            *vi = velocity_value(*vi, gi, wi, s);
        }
    });
    Ok(())
}

fn weight_cpu<T: Real>(w: &mut [T], v: &[T], s: SgdSettings) -> Result<()> {
    if w.len() != v.len() {
        candle_core::bail!("sgd-weight: {} weights, {} velocities", w.len(), v.len());
    }
    in_chunks(w, |start, w| {
        for (wi, &vi) in w.iter_mut().zip(&v[start..]) {
            *wi = weight_value(*wi, vi, s);
        }
    });
    Ok(())
}

/// The CUDA kernel (`scfnet-kernels`' `sgd.cu`): the parameters in chunks of up to
/// [`cuda::CHUNK`], one launch each.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::cuda_backend::cudarc::driver::{DevicePtr, DeviceRepr};
    use candle_core::{CudaDevice, Result};
    use candle_core::{DType, Storage, Tensor};
    use scfnet_kernels::launch;
    use scfnet_kernels::ptx::SGD;

    use super::SgdSettings;
    use crate::elem::contiguous_range;
    use crate::gpu::{kernel, GpuFloat};

    /// Parameters per launch (`SGD_CHUNK` in `sgd.cu`).
    pub(super) const CHUNK: usize = 64;

    /// One parameter's update: contiguous weight, velocity and gradient of one type.
    pub(super) struct Update {
        pub(super) w: Tensor,
        pub(super) v: Tensor,
        pub(super) g: Tensor,
        pub(super) settings: SgdSettings,
    }

    /// The kernel's argument, `SgdChunk` in `sgd.cu` (the same layout: 8-byte fields only).
    #[repr(C)]
    struct SgdChunk {
        w: [u64; CHUNK],
        v: [u64; CHUNK],
        g: [u64; CHUNK],
        n: [u64; CHUNK],
        momentum: [f64; CHUNK],
        decay: [f64; CHUNK],
        step: [f64; CHUNK],
    }

    // SAFETY: plain old data, laid out as the kernel's struct.
    unsafe impl DeviceRepr for SgdChunk {}

    /// Runs `updates`: grouped by element type, sorted by size (so that a launch's grid fits
    /// its parameters), in chunks of [`CHUNK`].
    pub(super) fn update_in_chunks(mut updates: Vec<Update>) -> Result<()> {
        updates.sort_by_key(|u| (u.w.dtype() == DType::F64, u.w.elem_count()));
        let mut rest = updates.as_slice();
        while let Some(first) = rest.first() {
            let dtype = first.w.dtype();
            let same = rest
                .iter()
                .take(CHUNK)
                .take_while(|u| u.w.dtype() == dtype)
                .count();
            let (chunk, tail) = rest.split_at(same);
            match dtype {
                DType::F32 => launch_chunk::<f32>(chunk)?,
                DType::F64 => launch_chunk::<f64>(chunk)?,
                other => candle_core::bail!("sgd (cuda): unsupported dtype {other:?}"),
            }
            rest = tail;
        }
        Ok(())
    }

    /// The address of a contiguous `t`'s first value on `dev`, and its length.
    fn address<T: GpuFloat>(t: &Tensor, dev: &CudaDevice) -> Result<(u64, usize)> {
        let (storage, layout) = t.storage_and_layout();
        let Storage::Cuda(cs) = &*storage else {
            candle_core::bail!("sgd (cuda): an operand is not on the GPU");
        };
        let (start, end) = contiguous_range("sgd (cuda)", layout)?;
        let stream = dev.cuda_stream();
        let values = cs.as_cuda_slice::<T>()?.slice(start..end);
        let (ptr, _sync) = values.device_ptr(&stream);
        Ok((ptr, end - start))
    }

    /// One launch for up to [`CHUNK`] updates of type `T`.
    fn launch_chunk<T: GpuFloat>(chunk: &[Update]) -> Result<()> {
        let Some(first) = chunk.first() else {
            return Ok(());
        };
        let dev = match first.w.device() {
            candle_core::Device::Cuda(dev) => dev.clone(),
            _ => candle_core::bail!("sgd (cuda): a weight is not on the GPU"),
        };
        let mut arg = SgdChunk {
            w: [0; CHUNK],
            v: [0; CHUNK],
            g: [0; CHUNK],
            n: [0; CHUNK],
            momentum: [0.0; CHUNK],
            decay: [0.0; CHUNK],
            step: [0.0; CHUNK],
        };
        let mut longest = 0;
        for (i, u) in chunk.iter().enumerate() {
            // The kernel writes the weight and the velocity through these addresses: the
            // storages are device memory that no host code touches meanwhile, and the launch
            // is ordered on the stream after the gradients' kernels.
            let (w, n) = address::<T>(&u.w, &dev)?;
            let (v, nv) = address::<T>(&u.v, &dev)?;
            let (g, ng) = address::<T>(&u.g, &dev)?;
            if nv != n || ng != n {
                candle_core::bail!(
                    "sgd (cuda): {n} weights, {nv} velocities, {ng} gradients in one parameter"
                );
            }
            (arg.w[i], arg.v[i], arg.g[i], arg.n[i]) = (w, v, g, n as u64);
            arg.momentum[i] = u.settings.momentum;
            arg.decay[i] = u.settings.weight_decay;
            arg.step[i] = u.settings.step;
            longest = longest.max(n);
        }
        let config = candle_core::cuda_backend::cudarc::driver::LaunchConfig {
            grid_dim: (
                longest.div_ceil(256).clamp(1, 1024) as u32,
                chunk.len() as u32,
                1,
            ),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        launch!(dev, SGD, kernel::<T>("sgd_chunk"), config: config, args: [&arg]);
        Ok(())
    }
}
