//! How the convolutions run on CUDA: the precision of their matrix products, whether cuDNN
//! computes them, and which passes multiply over the whole batch.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

static PRODUCTS: AtomicU8 = AtomicU8::new(ProductPrecision::F32 as u8);
static CUDNN: AtomicBool = AtomicBool::new(false);
static BATCH_COLUMNS: AtomicU8 = AtomicU8::new(BatchColumns::Off as u8);

/// How the f32 matrix products of the convolutions on CUDA multiply (their operands and results
/// stay f32 in memory; the sums are always f32). No effect on the CPU or in f64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProductPrecision {
    /// Full f32 (the default here; what the comparisons with the CPU use).
    F32 = 0,
    /// TF32 tensor cores: each factor rounded to a 10-bit mantissa, as PyTorch's cuDNN
    /// convolutions do by default (cuBLAS's `CUBLAS_COMPUTE_32F_FAST_TF32`).
    Tf32 = 1,
    /// bf16 tensor cores: each factor rounded to bf16's 7-bit mantissa, as under PyTorch's bf16
    /// autocast (cuBLAS's `CUBLAS_COMPUTE_32F_FAST_16BF`). cuDNN's f32 convolutions have no such
    /// mode: through cuDNN ([`set_cudnn_convolutions`]) this is TF32.
    Bf16 = 2,
}

/// Sets how the convolutions' f32 matrix products on CUDA multiply ([`ProductPrecision`]).
/// Other matrix products follow candle's own `candle_core::cuda::set_gemm_reduced_precision_f32`
/// (and, in our patched candle, `set_gemm_f32_bf16_products`).
pub fn set_convolution_products(precision: ProductPrecision) {
    PRODUCTS.store(precision as u8, Ordering::Relaxed);
}

/// How the convolutions' f32 matrix products on CUDA multiply ([`set_convolution_products`]).
pub fn convolution_products() -> ProductPrecision {
    match PRODUCTS.load(Ordering::Relaxed) {
        1 => ProductPrecision::Tf32,
        2 => ProductPrecision::Bf16,
        _ => ProductPrecision::F32,
    }
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
