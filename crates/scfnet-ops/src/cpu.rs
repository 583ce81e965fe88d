//! Building blocks of this crate's CPU kernels, public so that kernels built on this crate (an
//! inference engine, say) share them instead of keeping copies: the run-time choice of AVX2, the
//! per-thread scratch buffers, the shared output pointer, the bias-and-activation pass over a
//! row and the shape check of a 4-D input.

pub use crate::elem::dims4;
pub use crate::out_ptr::OutPtr;
pub use crate::scratch::{with_scratch, ScratchBuffer, ScratchSlot};
pub use crate::simd::wide;

use crate::activation::Activation;

/// `row[i] = act(row[i] + bias)` in place, with the operations (and so the values) of every
/// kernel of this crate that applies a bias and an activation.
///
/// Always inlined, also across crates: a caller compiled for AVX2 (`#[target_feature]`) gets the
/// loop vectorised for AVX2, as the kernels of this crate do (a plain call would run the
/// baseline SSE2 build of the loop).
#[inline(always)]
pub fn bias_activate_row(row: &mut [f32], bias: f32, act: Activation) {
    crate::bias_act::apply_plane(row, bias, act);
}
