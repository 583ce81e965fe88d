//! The GPU's stream-ordered memory pool, from which candle's buffers come (cudarc allocates with
//! `cuMemAllocAsync` where the device has pools): how long freed memory stays in it, and how
//! much of it the buffers took at most.

use crate::driver::sys;
use crate::WrapErr;

/// The default memory pool of `dev`'s GPU (the one `cuMemAllocAsync` draws from), with the
/// device's context bound to this thread.
fn default_pool(dev: &candle_core::CudaDevice) -> candle_core::Result<sys::CUmemoryPool> {
    let stream = dev.cuda_stream();
    let ctx = stream.context();
    ctx.bind_to_thread().w()?;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    // SAFETY: `pool` is written by the driver for the device of a live context.
    unsafe {
        sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device())
            .result()
            .w()?;
    }
    Ok(pool)
}

/// Sets one of `pool`'s attributes that take a u64 (all the ones used here).
fn set_attribute(
    pool: sys::CUmemoryPool,
    attribute: sys::CUmemPool_attribute,
    mut value: u64,
) -> candle_core::Result<()> {
    // SAFETY: the callers pass attributes that take a pointer to a u64, as passed, for a pool of
    // a live device.
    unsafe {
        sys::cuMemPoolSetAttribute(pool, attribute, (&mut value as *mut u64).cast())
            .result()
            .w()?;
    }
    Ok(())
}

/// Keeps freed device memory in the stream-ordered pool of `dev`'s GPU instead of returning it to
/// the driver at every synchronisation (the pool's default release threshold is 0): a training
/// loop then allocates the same buffers step after step without driver calls.
pub fn keep_freed_memory(dev: &candle_core::CudaDevice) -> candle_core::Result<()> {
    let pool = default_pool(dev)?;
    set_attribute(
        pool,
        sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
        u64::MAX,
    )
}

/// The most bytes of `dev`'s stream-ordered pool that were in use at once (allocated and not yet
/// freed: candle's tensors, the gradients, the optimiser's state, the cuDNN workspaces) since the
/// last call, or since the context was made; then starts the count again from what is in use
/// now. Memory a library allocates for itself outside the pool is not in it, nor the CUDA
/// context's own. Reads the pool's statistics on the host: no synchronisation, no work on the GPU.
pub fn take_peak_pool_bytes(dev: &candle_core::CudaDevice) -> candle_core::Result<u64> {
    let pool = default_pool(dev)?;
    let attribute = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH;
    let mut peak: u64 = 0;
    // SAFETY: the attribute takes a pointer to a u64, as passed, for a pool of a live device.
    unsafe {
        sys::cuMemPoolGetAttribute(pool, attribute, (&mut peak as *mut u64).cast())
            .result()
            .w()?;
    }
    // The driver accepts only zero for the high watermark's reset.
    set_attribute(pool, attribute, 0)?;
    Ok(peak)
}
