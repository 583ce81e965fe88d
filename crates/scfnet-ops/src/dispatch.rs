//! Which implementation an op takes: the fused CPU kernels, or compositions of candle
//! primitives that run on any device.
//!
//! On the CPU the custom kernels of this crate are used (they are several times faster than
//! the compositions). On every other device the ops are built from candle primitives that have
//! kernels there and correct backward passes: matrix products, strided views, element-wise
//! maxima and selections; on CUDA the max-pool has its own kernel ([`uses_cuda_kernels`]).
//! [`force_generic_path`] makes every device take the composed path, so that it can be compared
//! with the CPU kernels on a machine without a GPU.

use std::cell::Cell;

use candle_core::Tensor;

thread_local! {
    static FORCE_GENERIC: Cell<bool> = const { Cell::new(false) };
}

/// Whether an op on `t` runs this crate's CPU kernels (CPU tensor, generic path not forced on
/// this thread).
pub fn uses_cpu_kernels(t: &Tensor) -> bool {
    t.device().is_cpu() && !FORCE_GENERIC.with(Cell::get)
}

/// Whether an op on `t` runs this crate's own CUDA kernel, for the ops that have one (the
/// max-pool): a CUDA tensor in a build with the `cuda` feature, generic path not forced.
pub fn uses_cuda_kernels(t: &Tensor) -> bool {
    cfg!(feature = "cuda") && t.device().is_cuda() && !FORCE_GENERIC.with(Cell::get)
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
