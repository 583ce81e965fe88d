//! The CPU inference engine of scfnet: the layers of an eval-mode network with BatchNorm folded
//! into the convolutions, computed by fused f32 kernels, and the process policy that keeps
//! rayon's workers busy between them.
//!
//! - [`InferenceConv`] — a dense convolution with bias, activation and an optional residual
//!   fused. Each layer's weights are packed at load for every kernel of the table that computes
//!   its geometry; each call runs the first of them that suits the input:
//!
//!   | kernel | computes | suits |
//!   |---|---|---|
//!   | Winograd F(2×2, 3×3) | 3×3, stride 1, padding 1, 8–512 outputs (AVX2) | at least 400 pixels, or layers the direct 3×3 kernel does not take |
//!   | direct 3×3 | 3×3, stride 1 or 2, padding = dilation, few channels (AVX2) | unscaled inputs |
//!   | direct 1×1 | 1×1, stride 1, padding 0 (AVX2) | few input channels or small maps |
//!   | tiled | any | always: explicit columns per cache-sized tile and one matrix product |
//!
//!   Every kernel applies the bias, activation and residual with the same operations, so they
//!   agree to the rounding of their sums (tested against f64 convolutions).
//! - [`SqueezeExciteGate`] — a squeeze-excite gate on the host, from weights copied once; its
//!   factors scale the next convolution's weights ([`InferenceConv::forward_scaled`]).
//! - [`with_busy_helper`] / [`with_busy_helper_and`] — a second rayon worker kept awake while one
//!   thread runs the chain of small parallel loops of one image.
//! - [`schedule::run_eval`] — how an eval-mode pass runs on rayon's workers (a part of the batch
//!   per worker, the busy helper for a single image), apart from the network itself.
//! - [`runtime::configure`] — the process-wide thread settings a binary fixes first in `main`.
//!
//! The differentiable ops these layers stand in for at inference (BatchNorm, depthwise
//! convolution, activations, resize) are in `scfnet-ops`, which also provides the building
//! blocks the kernels share (`scfnet_ops::cpu`).

#![warn(missing_docs)]

mod busy_helper;
mod conv;
mod direct_conv;
mod kernel;
mod pointwise_conv;
pub mod runtime;
pub mod schedule;
mod se_gate;
#[cfg(test)]
mod test_values;
mod tile_store;
mod tiled;
mod winograd;

pub use busy_helper::{with_busy_helper, with_busy_helper_and};
pub use conv::{InferenceConv, Residual};
pub use se_gate::SqueezeExciteGate;
