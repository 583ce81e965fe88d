//! ONNX forms of the token-wise layers of transformers: linear maps, LayerNorm and GELU, over the
//! last axis of a tensor of any rank.

use candle_core::{Result, Tensor};

use super::{Attr, OnnxGraph, Value};

/// `x · Wᵀ + b` over the last axis of `x` (`(…, in)` → `(…, out)`), for `layer`'s weight
/// `(out, in)` and optional bias `(out)`: ONNX `MatMul` with the transposed weight, then `Add`.
pub fn linear(
    g: &mut OnnxGraph,
    name: &str,
    x: &Value,
    layer: &candle_nn::Linear,
) -> Result<Value> {
    let wt = g.constant(
        &format!("{name}.weight_t"),
        &layer.weight().t()?.contiguous()?,
    )?;
    let y = g.op("MatMul", &format!("{name}.matmul"), &[x, &wt]);
    Ok(match layer.bias() {
        Some(b) => {
            let b = g.constant(&format!("{name}.bias"), b)?;
            g.op("Add", &format!("{name}.add"), &[&y, &b])
        }
        None => y,
    })
}

/// LayerNorm over the last axis with `weight` and `bias` (`(C)`) and `eps` (ONNX
/// `LayerNormalization`, opset 17).
pub fn layer_norm(
    g: &mut OnnxGraph,
    name: &str,
    x: &Value,
    ln: &candle_nn::LayerNorm,
    eps: f64,
) -> Result<Value> {
    let w = g.constant(&format!("{name}.weight"), ln.weight())?;
    let zeros;
    let b = match ln.bias() {
        Some(b) => b,
        None => {
            zeros = ln.weight().zeros_like()?;
            &zeros
        }
    };
    let b = g.constant(&format!("{name}.bias"), b)?;
    Ok(g.node(
        "LayerNormalization",
        name,
        &[Some(x), Some(&w), Some(&b)],
        &[
            ("axis", Attr::Int(-1)),
            ("epsilon", Attr::Float(eps as f32)),
        ],
    ))
}

/// The exact GELU `x · ½ · (1 + erf(x / √2))` (candle's `gelu_erf`), from `Div`, `Erf`, `Add`
/// and `Mul` (ONNX's own `Gelu` needs opset 20).
pub fn gelu_erf(g: &mut OnnxGraph, name: &str, x: &Value) -> Result<Value> {
    let sqrt2 = scalar(g, &format!("{name}.sqrt2"), std::f32::consts::SQRT_2)?;
    let one = scalar(g, &format!("{name}.one"), 1.0)?;
    let half = scalar(g, &format!("{name}.half"), 0.5)?;
    let z = g.op("Div", &format!("{name}.div"), &[x, &sqrt2]);
    let e = g.op("Erf", &format!("{name}.erf"), &[&z]);
    let e1 = g.op("Add", &format!("{name}.add"), &[&e, &one]);
    let xh = g.op("Mul", &format!("{name}.half"), &[x, &half]);
    Ok(g.op("Mul", name, &[&xh, &e1]))
}

/// `x` times a scalar `v` (a one-value constant, broadcast).
pub fn scale(g: &mut OnnxGraph, name: &str, x: &Value, v: f64) -> Result<Value> {
    let c = scalar(g, &format!("{name}.factor"), v as f32)?;
    Ok(g.op("Mul", name, &[x, &c]))
}

/// A one-value float32 constant (broadcast against any tensor).
fn scalar(g: &mut OnnxGraph, name: &str, v: f32) -> Result<Value> {
    g.constant(name, &Tensor::new(&[v], &candle_core::Device::Cpu)?)
}
