//! The precision of the convolutions' matrix products on CUDA.

use std::sync::atomic::{AtomicBool, Ordering};

static TF32: AtomicBool = AtomicBool::new(false);

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
