//! Run-time choice of wider vector instructions for the hottest kernels. The crate is built for
//! the baseline target (SSE2 on x86-64), so that the binary runs on any CPU; kernels with a
//! `_wide` twin compile the same Rust code a second time with AVX2 and FMA enabled and take it
//! when the CPU has them. The arithmetic is the same operations in the same order (no fused
//! multiply-adds are introduced), so both give identical results.

/// Whether the CPU has AVX2 and FMA (detected once, then cached by the standard library).
#[inline]
pub fn wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
