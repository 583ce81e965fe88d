//! The native CUDA kernels of scfnet. Every `src/cuda/*.cu` is compiled to PTX by `build.rs`
//! with the `cuda` feature, one module per file, with no list to keep by hand: a new kernel is a
//! new `.cu` file, and its PTX is `ptx::{FILE_STEM}`. The ops load and launch their kernels
//! through one macro, `launch!`, so no op repeats the loading, argument and launch code.
//!
//! `cudnn` runs dense convolutions through cuDNN, loaded at run time; `upload` copies host batches to the GPU on a stream of their own (page-locked buffers,
//! ordered against candle's stream by events), and `keep_freed_memory` /
//! `set_event_tracking` tune the driver for a training loop; `take_peak_pool_bytes` reads how
//! much device memory the buffers took at most.
//!
//! Without the `cuda` feature the crate holds only [`SOURCES`] and [`Module`] and needs no CUDA
//! toolkit.

#![warn(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/sources.rs"));

/// One PTX module: the name the device caches it under, and its text.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    /// The module's name on the device (`scfnet_` + the source's stem).
    pub name: &'static str,
    /// The PTX.
    pub ptx: &'static str,
}

#[cfg(feature = "cuda")]
pub mod cudnn;
#[cfg(feature = "cuda")]
mod memory_pool;
#[cfg(feature = "cuda")]
pub mod upload;
#[cfg(feature = "cuda")]
pub use memory_pool::{keep_freed_memory, take_peak_pool_bytes};

/// The PTX of each `src/cuda/*.cu`, as a [`Module`] named after the file in capitals.
#[cfg(feature = "cuda")]
pub mod ptx {
    include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
}

/// cudarc's driver API as candle re-exports it (for [`launch!`]).
#[cfg(feature = "cuda")]
pub use candle_core::cuda_backend::cudarc::driver;
/// The conversion of driver errors into candle's (for [`launch!`]).
#[cfg(feature = "cuda")]
pub use candle_core::cuda_backend::WrapErr;

/// Loads `$name` of `$module` on the `candle_core::CudaDevice` `$dev` (once; later calls find it
/// cached) and launches it on candle's stream:
/// `launch!(dev, MODULE, "name", config: cfg, args: [args...])`, with an explicit
/// `LaunchConfig` (see [`blocks`]) and the kernel's arguments (references), in order.
///
/// Returns early with the error (`?`) when loading or launching fails. The caller vouches that
/// the arguments match the kernel's signature and that the kernel stays inside the buffers (the
/// expansion launches in an `unsafe` block).
#[cfg(feature = "cuda")]
#[macro_export]
macro_rules! launch {
    ($dev:expr, $module:expr, $name:expr, config: $cfg:expr, args: [$($arg:expr),* $(,)?]) => {{
        use $crate::driver::PushKernelArg as _;
        use $crate::WrapErr as _;
        let module: $crate::Module = $module;
        let func = $dev.get_or_load_custom_func(&$name, module.name, module.ptx)?;
        let mut builder = func.builder();
        $( builder.arg($arg); )*
        let cfg: $crate::driver::LaunchConfig = $cfg;
        // SAFETY: the caller vouches for the arguments (see the macro's documentation).
        unsafe { builder.launch(cfg) }.w()?;
    }};
}

/// A launch of `grid.0 × grid.1` blocks of `threads` threads (a multiple of 32, at most 1024):
/// the shape of the kernels that reduce within a block.
#[cfg(feature = "cuda")]
pub fn blocks(grid: (usize, usize), threads: u32) -> driver::LaunchConfig {
    driver::LaunchConfig {
        grid_dim: (grid.0 as u32, grid.1 as u32, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One warp (32 threads) per row of `rows`, 8 rows to a block of 256 threads, at most 2²⁰
/// blocks (the kernels loop over the rows beyond): the shape of the kernels that reduce along
/// rows of a few hundred values (LayerNorm, softmax) with warp shuffles only.
#[cfg(feature = "cuda")]
pub fn rows_per_warp(rows: usize) -> driver::LaunchConfig {
    driver::LaunchConfig {
        grid_dim: (rows.div_ceil(8).clamp(1, 1 << 20) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// How many slices a column sum over `rows` rows is cut into (about 128 rows or more each, at
/// most 1,024 slices): one block per slice and group of columns, partial sums added in slice
/// order afterwards.
pub fn row_slices(rows: usize) -> usize {
    rows.div_ceil(128).clamp(1, 1024)
}

/// How many slices a per-channel reduction over a batch of `batch` planes of `plane` values is
/// cut into (whole images per slice, about 8,192 values or more each, at most 128 slices): enough
/// blocks to fill the GPU when channels are few and planes large, and blocks that are not mostly
/// idle when planes are small.
pub fn batch_slices(batch: usize, plane: usize) -> usize {
    (batch * plane).div_ceil(8192).clamp(1, batch.clamp(1, 128))
}

/// Turns cudarc's event tracking of new device buffers on or off for `dev`'s GPU. With it on
/// (cudarc's default) every buffer allocated afterwards creates two CUDA events and destroys them
/// when freed, thousands of driver calls a training step, to order its uses across streams
/// automatically. scfnet orders its only second stream ([`upload::SideUploader`]) by explicit
/// events, and candle runs everything else on one stream, so [`keep_freed_memory`]'s caller
/// (`scfnet_ops::prepare_device`) turns it off; on is the A/B reference.
#[cfg(feature = "cuda")]
pub fn set_event_tracking(dev: &candle_core::CudaDevice, on: bool) {
    let ctx = dev.cuda_stream().context().clone();
    // SAFETY: candle issues its work on one stream, and the side stream's copies are ordered
    // against it by events recorded and waited for explicitly (upload.rs), so no buffer relies
    // on cudarc's per-buffer events for ordering.
    unsafe {
        if on {
            ctx.enable_event_tracking();
        } else {
            ctx.disable_event_tracking();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{batch_slices, row_slices, SOURCES};

    #[test]
    fn batches_are_cut_into_bounded_slices() {
        assert_eq!(batch_slices(0, 100), 1);
        assert_eq!(batch_slices(2, 96 * 96), 2);
        assert_eq!(batch_slices(128, 88 * 88), 121);
        assert_eq!(batch_slices(128, 11 * 11), 2);
        assert_eq!(batch_slices(512, 176 * 176), 128);
    }

    #[test]
    fn rows_are_cut_into_bounded_slices() {
        assert_eq!(row_slices(0), 1);
        assert_eq!(row_slices(128), 1);
        assert_eq!(row_slices(129), 2);
        assert_eq!(row_slices(8 * 96 * 96), 576);
        assert_eq!(row_slices(1 << 20), 1024);
    }

    #[test]
    fn every_cuda_source_is_a_module() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cuda");
        let mut found: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cu"))
            .map(|p| p.file_stem().unwrap().to_str().unwrap().to_string())
            .collect();
        found.sort();
        for kernel in [
            "activation",
            "batch_norm",
            "depthwise",
            "gelu",
            "im2col",
            "layer_norm",
            "pool",
            "reduce",
            "sgd",
            "softmax",
        ] {
            assert!(found.contains(&kernel.to_string()), "{found:?}");
        }
        assert_eq!(SOURCES, found.as_slice());
    }
}
