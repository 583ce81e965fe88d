//! One description of each network for both of its forms: the candle forward pass and the ONNX
//! graph.
//!
//! A network's wiring (which block feeds which, where shortcuts join, which maps it returns) is
//! written once, as a function generic over a [`Pass`]. Each step of it is an [`Op`]: a unit
//! that knows how to run on tensors ([`Op::run`]) and how to write itself into an ONNX graph
//! ([`Op::export`]). Running the description with [`Run`] is the forward pass; running it with
//! [`Export`] writes the graph. A new block therefore needs its wiring once and, if it is a new
//! kind of unit, one `Op` implementation; there is no second hand-kept copy of the wiring.
//!
//! Steps are named as ONNX nodes are (`backbone.layer1.0.conv1`); the names are
//! [`std::fmt::Arguments`], so [`Run`] never formats them.

use std::fmt::Arguments;

use candle_core::{bail, Result, Tensor};
use scfnet_onnx::{self as onnx, OnnxGraph, Value};
use scfnet_ops::{max_pool2d, resize_bilinear, Activation, Pool2d};

use crate::blocks::{BlockConv, ConvBnAct};

/// One step of a network with both of its forms.
pub trait Op {
    /// The candle forward of `inputs`; `train` selects batch statistics (and the paths that
    /// record gradients).
    fn run(&self, inputs: &[&Tensor], train: bool) -> Result<Tensor>;

    /// Writes the step in eval mode into `g` as node `name` (and `name.*` for its parts) on
    /// `inputs`; returns its output.
    fn export(&self, g: &mut OnnxGraph, name: &str, inputs: &[&Value]) -> Result<Value>;
}

/// A way of going through a network's description: [`Run`] (tensors) or [`Export`] (ONNX).
pub trait Pass {
    /// What flows between steps: [`Tensor`] or an ONNX [`Value`].
    type Value: Clone;

    /// Applies `op` to `inputs` as the step named `name`.
    fn apply(
        &mut self,
        name: Arguments,
        op: &dyn Op,
        inputs: &[&Self::Value],
    ) -> Result<Self::Value>;
}

/// The forward pass on tensors, in training (`train = true`) or eval mode.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// Training mode: batch statistics in every BatchNorm.
    pub train: bool,
}

impl Pass for Run {
    type Value = Tensor;

    fn apply(&mut self, _name: Arguments, op: &dyn Op, inputs: &[&Tensor]) -> Result<Tensor> {
        op.run(inputs, self.train)
    }
}

/// The ONNX graph of the network in eval mode (BatchNorms folded), written into a graph.
#[derive(Debug)]
pub struct Export<'g> {
    /// The graph the steps are written into.
    pub graph: &'g mut OnnxGraph,
}

impl Pass for Export<'_> {
    type Value = Value;

    fn apply(&mut self, name: Arguments, op: &dyn Op, inputs: &[&Value]) -> Result<Value> {
        op.export(self.graph, &name.to_string(), inputs)
    }
}

/// The `N` inputs of a step, or an error naming the step's kind when their number differs.
pub fn inputs<'a, T, const N: usize>(what: &str, xs: &[&'a T]) -> Result<[&'a T; N]> {
    match <[&T; N]>::try_from(xs) {
        Ok(a) => Ok(a),
        Err(_) => bail!("{what}: {} inputs, expected {N}", xs.len()),
    }
}

impl Op for ConvBnAct {
    /// `(B, C_in, H, W)` → `(B, C_out, H', W')`.
    fn run(&self, xs: &[&Tensor], train: bool) -> Result<Tensor> {
        let [x] = inputs("conv-bn-act", xs)?;
        candle_core::ModuleT::forward_t(self, x, train)
    }

    fn export(&self, g: &mut OnnxGraph, name: &str, xs: &[&Value]) -> Result<Value> {
        let [x] = inputs("conv-bn-act", xs)?;
        self.to_onnx(g, name, x)
    }
}

impl Op for BlockConv {
    /// `(B, C_in, H, W)` → `(B, C_out, H', W')`, the convolution alone (its own bias).
    fn run(&self, xs: &[&Tensor], _train: bool) -> Result<Tensor> {
        let [x] = inputs("convolution", xs)?;
        self.forward(x)
    }

    fn export(&self, g: &mut OnnxGraph, name: &str, xs: &[&Value]) -> Result<Value> {
        let [x] = inputs("convolution", xs)?;
        self.to_onnx(g, name, x)
    }
}

impl Op for Pool2d {
    /// Max-pooling `(B, C, H, W)` → `(B, C, H', W')` (padded cells never win).
    fn run(&self, xs: &[&Tensor], _train: bool) -> Result<Tensor> {
        let [x] = inputs("max-pool", xs)?;
        max_pool2d(x, *self)
    }

    fn export(&self, g: &mut OnnxGraph, name: &str, xs: &[&Value]) -> Result<Value> {
        let [x] = inputs("max-pool", xs)?;
        Ok(onnx::max_pool(g, name, x, *self))
    }
}

/// A block's last convolution with the shortcut joined: `then(block(y) + shortcut)` on inputs
/// `[y, shortcut]`. In eval mode on the CPU the sum is taken inside the convolution's fused
/// kernel. Exported as the block at `name.PART`, `Add` at `name.add` and the activation.
#[derive(Clone, Copy, Debug)]
pub struct Shortcut<'a> {
    /// The convolution, BatchNorm and activation before the sum.
    pub block: &'a ConvBnAct,
    /// Its name inside the step (`conv3`).
    pub part: &'static str,
    /// The activation after the sum.
    pub then: Activation,
}

impl Op for Shortcut<'_> {
    fn run(&self, xs: &[&Tensor], train: bool) -> Result<Tensor> {
        let [y, shortcut] = inputs("shortcut", xs)?;
        self.block.forward_t_residual(y, shortcut, self.then, train)
    }

    fn export(&self, g: &mut OnnxGraph, name: &str, xs: &[&Value]) -> Result<Value> {
        let [y, shortcut] = inputs("shortcut", xs)?;
        let y = self.block.to_onnx(g, &format!("{name}.{}", self.part), y)?;
        let sum = g.op("Add", &format!("{name}.add"), &[&y, shortcut]);
        Ok(onnx::activation(g, name, &sum, self.then))
    }
}

/// Bilinear resize of `x` `(B, C, h, w)` to the height and width of `like` `(·, ·, H, W)`, on
/// inputs `[x, like]` (`align_corners` or half-pixel coordinates).
#[derive(Clone, Copy, Debug)]
pub struct ResizeLike {
    /// Corner-aligned coordinates (`false`: half-pixel, PyTorch's `align_corners = False`).
    pub align_corners: bool,
}

impl Op for ResizeLike {
    fn run(&self, xs: &[&Tensor], _train: bool) -> Result<Tensor> {
        let [x, like] = inputs("resize", xs)?;
        let (_, _, h, w) = like.dims4()?;
        resize_bilinear(x, (h, w), self.align_corners)
    }

    fn export(&self, g: &mut OnnxGraph, name: &str, xs: &[&Value]) -> Result<Value> {
        let [x, like] = inputs("resize", xs)?;
        Ok(onnx::resize_bilinear_like(
            g,
            name,
            x,
            like,
            self.align_corners,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn a_step_given_the_wrong_number_of_inputs_is_an_error() {
        let x = Tensor::zeros((1, 1, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let resize = ResizeLike {
            align_corners: false,
        };
        let err = Run { train: false }
            .apply(format_args!("r"), &resize, &[&x])
            .unwrap_err();
        assert!(
            err.to_string().contains("resize: 1 inputs, expected 2"),
            "{err}"
        );
        let y = Run { train: false }
            .apply(format_args!("r"), &resize, &[&x, &x])
            .unwrap();
        assert_eq!(y.dims(), x.dims());
    }
}
