//! How the convolutions run on CUDA: the precision of their matrix products, and whether cuDNN
//! computes them.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

static TF32: AtomicBool = AtomicBool::new(false);
static CUDNN: AtomicBool = AtomicBool::new(false);
static BATCH_COLUMNS: AtomicU8 = AtomicU8::new(BatchColumns::Off as u8);

/// Lets the convolutions' matrix products on CUDA use TF32 tensor cores (10-bit mantissa
/// products, f32 sums), as PyTorch's cuDNN convolutions do by default; off (the default here):
/// full f32. Other matrix products follow candle's own
/// `candle_core::cuda::set_gemm_reduced_precision_f32`. No effect on the CPU or in f64.
pub fn set_convolution_tf32(allow: bool) {
    TF32.store(allow, Ordering::Relaxed);
}

/// Whether the convolutions on CUDA may use TF32 ([`set_convolution_tf32`]).
pub fn convolution_tf32() -> bool {
    TF32.load(Ordering::Relaxed)
}

/// Makes the dense convolutions on CUDA run through cuDNN (forward, backward data, backward
/// filter; loaded at run time, an error naming what to install where it is missing) instead of
/// the columns kernel and cuBLAS (the default). Depthwise convolutions keep their own kernels.
/// No effect on the CPU.
pub fn set_cudnn_convolutions(on: bool) {
    CUDNN.store(on, Ordering::Relaxed);
}

/// Whether the dense convolutions on CUDA run through cuDNN ([`set_cudnn_convolutions`]).
pub fn cudnn_convolutions() -> bool {
    CUDNN.load(Ordering::Relaxed)
}

/// Which passes of the columns convolution on CUDA (batch > 1, no cuDNN) run as one matrix
/// product over the whole batch, on columns laid out `(C·k·k, B·Ho·Wo)`, instead of one product
/// per image (inner or outer dimension `Ho·Wo` only: narrow on the small maps of a network's
/// last stages). Set by [`set_batch_columns`]; no effect on the CPU (which decides by map size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchColumns {
    /// One product per image in every pass; the weight gradient summed over the batch
    /// afterwards (the default until a GPU run has measured the others).
    Off = 0,
    /// The weight gradient as one product: `dY` `(Co, B·Ho·Wo)` times the columns transposed;
    /// no `(B, Co, C·k·k)` buffer, no batch sum (`check-device`'s `batch-wgrad` mode).
    WeightGradient = 1,
    /// That, and the forward pass (`(Co, C·k·k)` times the columns, then `(Co, B, Ho·Wo)`
    /// transposed to `(B, Co, Ho·Wo)`) and the input gradient (`dY` transposed, one product,
    /// then the batch-wide columns summed back onto the image) likewise (`batch-columns` mode).
    Every = 2,
}

/// Sets which passes of the columns convolution on CUDA are one product over the batch
/// ([`BatchColumns`]).
pub fn set_batch_columns(passes: BatchColumns) {
    BATCH_COLUMNS.store(passes as u8, Ordering::Relaxed);
}

/// Which passes of the columns convolution on CUDA are one product over the batch
/// ([`set_batch_columns`]).
pub fn batch_columns() -> BatchColumns {
    match BATCH_COLUMNS.load(Ordering::Relaxed) {
        1 => BatchColumns::WeightGradient,
        2 => BatchColumns::Every,
        _ => BatchColumns::Off,
    }
}

/// cuDNN's version (e.g. 91002) when it can be loaded for [`set_cudnn_convolutions`], or why
/// not (not installed, too old, or a build without the `cuda` feature).
pub fn cudnn_version() -> std::result::Result<usize, String> {
    #[cfg(feature = "cuda")]
    return scfnet_kernels::cudnn::version();
    #[cfg(not(feature = "cuda"))]
    Err("this build has no CUDA support (the cuda feature)".to_string())
}
