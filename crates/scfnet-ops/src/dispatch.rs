//! Which implementation an op takes: the fused CPU kernels, or compositions of candle
//! primitives that run on any device.
//!
//! On the CPU the custom kernels of this crate are used (they are several times faster than
//! the compositions); on CUDA the native kernels of `scfnet-kernels` ([`uses_cuda_kernels`]).
//! On any other device the ops are built from candle primitives that have kernels there and
//! correct backward passes: matrix products, strided views, element-wise maxima and selections.
//! [`force_generic_path`] makes every device take the composed path, so that it can be compared
//! with the CPU kernels on a machine without a GPU; [`crate::set_generic_ops`] does so for some
//! families of ops in the whole process.

use std::cell::Cell;

use candle_core::Tensor;

use crate::generic_ops::{is_generic, OpFamily};

thread_local! {
    static FORCE_GENERIC: Cell<bool> = const { Cell::new(false) };
}

/// Whether an op on `t` runs this crate's CPU kernels (CPU tensor, generic path not forced on
/// this thread).
pub fn uses_cpu_kernels(t: &Tensor) -> bool {
    t.device().is_cpu() && !FORCE_GENERIC.with(Cell::get)
}

/// Whether an op of `family` on `t` runs this crate's own CUDA kernels (from `scfnet-kernels`):
/// a CUDA tensor in a build with the `cuda` feature, generic path not forced on this thread nor
/// for the family ([`crate::set_generic_ops`]).
pub fn uses_cuda_kernels(family: OpFamily, t: &Tensor) -> bool {
    cfg!(feature = "cuda")
        && t.device().is_cuda()
        && !FORCE_GENERIC.with(Cell::get)
        && !is_generic(family)
}

/// Whether an op of `family` on `t` runs this crate's CPU kernels: [`uses_cpu_kernels`], and
/// the family not turned to the composed path ([`crate::set_generic_ops`]).
pub(crate) fn uses_cpu_kernels_of(family: OpFamily, t: &Tensor) -> bool {
    uses_cpu_kernels(t) && !is_generic(family)
}

/// Whether an op of `family` on `t` runs a kernel of this crate (the CPU's or CUDA's) rather
/// than the composition of candle primitives.
pub(crate) fn uses_own_kernels(family: OpFamily, t: &Tensor) -> bool {
    uses_cpu_kernels_of(family, t) || uses_cuda_kernels(family, t)
}

/// While alive, every op of this crate called from this thread takes the device-generic path,
/// on the CPU too. Dropping it restores the previous setting (guards nest).
#[must_use = "the generic path is forced only while the guard is alive"]
#[derive(Debug)]
pub struct GenericPathGuard {
    previous: bool,
}

/// Forces the device-generic implementations on this thread until the guard is dropped: the
/// way to check, on a CPU-only machine, exactly what runs on a GPU.
pub fn force_generic_path() -> GenericPathGuard {
    let previous = FORCE_GENERIC.with(|f| f.replace(true));
    GenericPathGuard { previous }
}

impl Drop for GenericPathGuard {
    fn drop(&mut self) {
        FORCE_GENERIC.with(|f| f.set(self.previous));
    }
}

/// Readies `device` for this crate's ops; call it once after opening a device, before
/// allocating on it. On CUDA (with the `cuda` feature) freed memory then stays in the GPU's
/// stream-ordered pool instead of going back to the driver at every synchronisation, so a
/// training loop reuses its buffers step after step, and new buffers come without cudarc's
/// per-buffer events (two created and destroyed per buffer; see
/// `scfnet_kernels::set_event_tracking`). Nothing to do on the CPU.
pub fn prepare_device(device: &candle_core::Device) -> candle_core::Result<()> {
    #[cfg(feature = "cuda")]
    if let candle_core::Device::Cuda(dev) = device {
        scfnet_kernels::keep_freed_memory(dev)?;
        scfnet_kernels::set_event_tracking(dev, false);
    }
    let _ = device;
    Ok(())
}

/// The most bytes of device memory a CUDA `device`'s buffers took at once since the last call
/// (or since the device was opened), then counting again from now: `Ok(None)` on other devices
/// or without the `cuda` feature. What it counts and leaves out:
/// `scfnet_kernels::take_peak_pool_bytes`. A host query, no synchronisation.
pub fn take_peak_device_memory(device: &candle_core::Device) -> candle_core::Result<Option<u64>> {
    #[cfg(feature = "cuda")]
    if let candle_core::Device::Cuda(dev) = device {
        return scfnet_kernels::take_peak_pool_bytes(dev).map(Some);
    }
    let _ = device;
    Ok(None)
}

/// Turns cudarc's per-buffer event tracking on or off for a CUDA `device` (off after
/// [`prepare_device`]; on is cudarc's default, kept as the reference of an A/B timing). Affects
/// buffers allocated afterwards. Nothing to do on other devices or without the `cuda` feature.
pub fn set_cuda_event_tracking(device: &candle_core::Device, on: bool) {
    #[cfg(feature = "cuda")]
    if let candle_core::Device::Cuda(dev) = device {
        scfnet_kernels::set_event_tracking(dev, on);
    }
    let _ = (device, on);
}
