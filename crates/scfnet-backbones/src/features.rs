//! The multi-scale output shared by every backbone.

use candle_core::{Result, Tensor};
use scfnet_onnx::{OnnxGraph, Value};

/// The five feature maps of a backbone, `(B, C_i, H / s_i, W / s_i)` with strides
/// `s = 2, 4, 8, 16, 32` (Swin-B: see its docs). The SCFNet decoder uses `x2 … x5`.
#[derive(Clone, Debug)]
pub struct Features {
    /// Stride-2 map (stem output; unused by the decoder).
    pub x1: Tensor,
    /// Stride-4 map.
    pub x2: Tensor,
    /// Stride-8 map.
    pub x3: Tensor,
    /// Stride-16 map.
    pub x4: Tensor,
    /// Stride-32 map.
    pub x5: Tensor,
}

impl Features {
    /// The maps in order `x1 … x5`.
    pub fn as_array(&self) -> [&Tensor; 5] {
        [&self.x1, &self.x2, &self.x3, &self.x4, &self.x5]
    }
}

/// A network that turns `(B, 3, H, W)` images into [`Features`].
pub trait Backbone: Send + Sync {
    /// Runs the backbone; `train` selects batch statistics (and updates the running ones) in
    /// every BatchNorm, and enables stochastic depth where the backbone has it.
    fn features(&self, x: &Tensor, train: bool) -> Result<Features>;

    /// Channels of `x1 … x5`.
    fn channels(&self) -> [usize; 5];

    /// Folds every BatchNorm into its convolution for eval mode
    /// ([`crate::blocks::ConvBnAct::fold_batch_norm`]); training mode is unchanged.
    fn fold_batch_norms(&mut self) -> Result<()>;

    /// Writes the backbone in eval mode into `g` on the image `x` `(B, 3, H, W)`; returns the
    /// maps `x2 … x5` the SCFNet decoder consumes. Names start with `name`.
    fn to_onnx(&self, g: &mut OnnxGraph, name: &str, x: &Value) -> Result<[Value; 4]>;

    /// The side `S` of the `S × S` image the ONNX export is fixed to, for a backbone whose graph
    /// depends on the input size; `None` (the default): any size its [`Backbone::features`]
    /// takes, decided at run time.
    fn onnx_input_side(&self) -> Option<usize> {
        None
    }

    /// A copy sharing the weights (tensors are reference-counted).
    fn clone_box(&self) -> Box<dyn Backbone>;
}
