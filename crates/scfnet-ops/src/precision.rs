//! How the convolutions run on CUDA: the precision of their matrix products, and whether cuDNN
//! computes them.

use std::sync::atomic::{AtomicBool, Ordering};

static TF32: AtomicBool = AtomicBool::new(false);
static CUDNN: AtomicBool = AtomicBool::new(false);
static BATCH_WEIGHT_GRADIENT: AtomicBool = AtomicBool::new(false);

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

/// Makes the weight gradient of the columns convolution on CUDA one matrix product over the
/// whole batch (`dY` `(Co, B·Ho·Wo)` times the batch-wide columns `(C·k·k, B·Ho·Wo)` transposed)
/// instead of one product per image (inner dimension `Ho·Wo` only) summed over the batch
/// afterwards (the default). Off until a GPU run has measured it (`check-device`'s
/// `batch-wgrad` mode). No effect on the CPU (which decides by map size) or with cuDNN.
pub fn set_batch_weight_gradient(on: bool) {
    BATCH_WEIGHT_GRADIENT.store(on, Ordering::Relaxed);
}

/// Whether the columns convolution's weight gradient on CUDA is one product over the batch
/// ([`set_batch_weight_gradient`]).
pub fn batch_weight_gradient() -> bool {
    BATCH_WEIGHT_GRADIENT.load(Ordering::Relaxed)
}

/// cuDNN's version (e.g. 91002) when it can be loaded for [`set_cudnn_convolutions`], or why
/// not (not installed, too old, or a build without the `cuda` feature).
pub fn cudnn_version() -> std::result::Result<usize, String> {
    #[cfg(feature = "cuda")]
    return scfnet_kernels::cudnn::version();
    #[cfg(not(feature = "cuda"))]
    Err("this build has no CUDA support (the cuda feature)".to_string())
}
