//! The CPU kernels of [`crate::InferenceConv`] behind one interface, and the table that chooses
//! among them.
//!
//! A layer's weights are packed at load for every kernel that [`ConvKernel::applies`] to its
//! geometry; a call runs the first kernel of [`KERNELS`] that was packed and
//! [`ConvKernel::suits`] the input. The last entry, the tiled kernel, applies to every layer,
//! so every call has a kernel. A new kernel is one type implementing [`ConvKernel`] and one
//! entry in the table, placed before the kernels it should win over.

use scfnet_ops::{Activation, ConvGeometry};

use crate::direct_conv::Direct3x3;
use crate::pointwise_conv::Pointwise;
use crate::tiled::Tiled;
use crate::winograd::Winograd;

/// A layer's window and channels, what a kernel decides on at load.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LayerShape {
    /// The window.
    pub geometry: ConvGeometry,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
}

/// One call's input, what a kernel decides on at run time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallShape {
    /// The input `(B, C, H, W)`.
    pub dims: (usize, usize, usize, usize),
    /// Whether each image's weights are scaled by its input-channel factors.
    pub scaled: bool,
}

impl CallShape {
    /// Pixels of one input plane.
    pub fn pixels(&self) -> usize {
        self.dims.2 * self.dims.3
    }
}

/// What a kernel's [`ConvKernel::forward`] reads of the layer.
pub(crate) struct Layer<'a> {
    /// Window and channels.
    pub shape: LayerShape,
    /// The weights as loaded, `(C_out, C_in·k·k)` row-major.
    pub weight: &'a [f32],
    /// This kernel's [`ConvKernel::pack`] of them.
    pub packed: &'a [f32],
    /// Bias per output channel.
    pub bias: &'a [f32],
    /// Activation after the bias.
    pub act: Activation,
}

/// A residual row source and the activation after adding it.
pub(crate) type ResidualValues<'a> = Option<(&'a [f32], Activation)>;

/// One way to compute `act(conv(x) + bias)` (then `then(· + residual)`) on the CPU, in f32.
pub(crate) trait ConvKernel: Sync {
    /// The kernel's name, for tests and logs.
    fn name(&self) -> &'static str;

    /// Whether the kernel computes layers of this shape on this CPU (decided once, at load).
    fn applies(&self, layer: &LayerShape) -> bool;

    /// The weights `(C_out, C_in·k·k)` rearranged for the kernel.
    fn pack(&self, weight: &[f32], layer: &LayerShape) -> Vec<f32>;

    /// Whether the kernel is the one to run for this input (it [`ConvKernel::applies`]).
    fn suits(&self, layer: &LayerShape, call: &CallShape) -> bool;

    /// `x` `(B, C_in, H, W)` → `(B, C_out, H', W')`; `scale` (`B·C_in` factors, image-major)
    /// only when [`ConvKernel::suits`] accepted a scaled call.
    fn forward(
        &self,
        layer: &Layer,
        x: &[f32],
        dims: (usize, usize, usize, usize),
        scale: Option<&[f32]>,
        residual: ResidualValues,
    ) -> Vec<f32>;
}

/// The kernels, in order of preference.
pub(crate) static KERNELS: [&dyn ConvKernel; 4] = [&Winograd, &Direct3x3, &Pointwise, &Tiled];

/// The weights of each image scaled by its input-channel factors, `(B, C_out, C_in·k·k)`:
/// `W[o, c, ·] · scale[b, c]`, so that the input is never rescaled.
pub(crate) fn scaled_weights(weight: &[f32], c_in: usize, taps: usize, scale: &[f32]) -> Vec<f32> {
    let row_len = c_in * taps;
    let mut out = vec![0f32; scale.len() / c_in * weight.len()];
    let images = out.chunks_exact_mut(weight.len());
    for (factors, image) in scale.chunks_exact(c_in).zip(images) {
        let rows = image
            .chunks_exact_mut(row_len)
            .zip(weight.chunks_exact(row_len));
        for (dst, row) in rows {
            if taps == 1 {
                // 1×1 (the squeeze-excite projections): one product per weight, vectorised.
                for ((d, &w), &f) in dst.iter_mut().zip(row).zip(factors) {
                    *d = w * f;
                }
                continue;
            }
            let tap_rows = dst.chunks_exact_mut(taps).zip(row.chunks_exact(taps));
            for ((d, w), &f) in tap_rows.zip(factors) {
                for (d, &w) in d.iter_mut().zip(w) {
                    *d = w * f;
                }
            }
        }
    }
    out
}
