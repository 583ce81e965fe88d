//! The native CUDA kernels of scfnet. Every `src/cuda/*.cu` is compiled to PTX by `build.rs`
//! with the `cuda` feature, one module per file, with no list to keep by hand: a new kernel is a
//! new `.cu` file, and its PTX is `ptx::{FILE_STEM}`. The ops load and launch their kernels
//! through one macro, `launch!`, so no op repeats the loading, argument and launch code.
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
/// cached) and launches it with one thread per element of `$threads`, on candle's stream, with
/// the device buffers `[$buffer, ...]` (references to `CudaSlice`s or `CudaView`s) then each
/// `usize` of `$sizes` as arguments, in that order. Returns early with the error (`?`) when
/// loading or launching fails.
///
/// The caller vouches that the arguments match the kernel's signature and that the kernel
/// stays inside the buffers (the expansion launches in an `unsafe` block).
#[cfg(feature = "cuda")]
#[macro_export]
macro_rules! launch {
    ($dev:expr, $module:expr, $name:expr, $threads:expr, [$($buffer:expr),* $(,)?], $sizes:expr) => {{
        use $crate::driver::PushKernelArg as _;
        use $crate::WrapErr as _;
        let module: $crate::Module = $module;
        let func = $dev.get_or_load_custom_func($name, module.name, module.ptx)?;
        let mut builder = func.builder();
        $( builder.arg($buffer); )*
        let sizes: &[usize] = $sizes;
        for size in sizes {
            builder.arg(size);
        }
        let cfg = $crate::driver::LaunchConfig::for_num_elems(($threads) as u32);
        // SAFETY: the caller vouches for the arguments (see the macro's documentation).
        unsafe { builder.launch(cfg) }.w()?;
    }};
}

#[cfg(test)]
mod tests {
    use super::SOURCES;

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
        assert!(found.contains(&"pool".to_string()), "{found:?}");
        assert_eq!(SOURCES, found.as_slice());
    }
}
