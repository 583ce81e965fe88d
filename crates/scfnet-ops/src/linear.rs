//! A `candle_nn::Linear` that reports its multiply-accumulates.

use candle_core::{Module, Result, Tensor};

use crate::macs;

/// `layer` applied to `x` `(…, in)` → `(…, out)`, counting `in × out` MACs per vector.
pub fn linear(x: &Tensor, layer: &candle_nn::Linear) -> Result<Tensor> {
    let (c_out, c_in) = layer.weight().dims2()?;
    let y = layer.forward(x)?;
    macs::add_linear(c_in, c_out, x.elem_count() / c_in.max(1));
    Ok(y)
}
