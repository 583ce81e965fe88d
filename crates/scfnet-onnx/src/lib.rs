//! ONNX export for scfnet: a graph builder ([`OnnxGraph`]) over hand-declared ONNX protobuf
//! messages ([`proto`]; no `protoc` at build time), and the ONNX form of `scfnet-ops`'
//! operations, each with the arithmetic of its candle kernel (bilinear resize's `half_pixel` /
//! `align_corners` modes, Paddle's hard-sigmoid slope, the max-pool's padding), plus the
//! transformer pieces of Swin ([`linear`], [`layer_norm`], [`gelu_erf`], [`transpose`],
//! [`reshape`], [`roll`]). Networks export themselves by calling these in forward order.

#![warn(missing_docs)]

mod graph;
mod layout;
pub mod proto;
mod tokens;

use candle_core::{Result, Tensor};

pub use graph::{decode_model, encode_model, Attr, Dim, OnnxGraph, Value, IR_VERSION, OPSET};
pub use layout::{reshape, roll, transpose};
pub use tokens::{gelu_erf, layer_norm, linear, scale};

use scfnet_ops::{Activation, ConvGeometry, Pool2d};

/// A 2-D convolution of `x` `(B, C, H, W)` with `weight` `(C_out, C / groups, k, k)` and an
/// optional `bias` `(C_out)` (ONNX `Conv`).
pub fn conv(
    g: &mut OnnxGraph,
    name: &str,
    x: &Value,
    weight: &Tensor,
    bias: Option<&Tensor>,
    geometry: ConvGeometry,
    groups: usize,
) -> Result<Value> {
    let w = g.constant(&format!("{name}.weight"), weight)?;
    let b = bias
        .map(|b| g.constant(&format!("{name}.bias"), b))
        .transpose()?;
    let (k, s, p, d) = (
        geometry.kernel as i64,
        geometry.stride as i64,
        geometry.padding as i64,
        geometry.dilation as i64,
    );
    Ok(g.node(
        "Conv",
        name,
        &[Some(x), Some(&w), b.as_ref()],
        &[
            ("kernel_shape", Attr::Ints(vec![k, k])),
            ("strides", Attr::Ints(vec![s, s])),
            ("pads", Attr::Ints(vec![p, p, p, p])),
            ("dilations", Attr::Ints(vec![d, d])),
            ("group", Attr::Int(groups as i64)),
        ],
    ))
}

/// `act(x)`: `Relu`, `HardSwish` (the same `x · clip(x + 3, 0, 6) / 6`), or `x` itself.
pub fn activation(g: &mut OnnxGraph, name: &str, x: &Value, act: Activation) -> Value {
    match act {
        Activation::None => x.clone(),
        Activation::Relu => g.op("Relu", &format!("{name}.relu"), &[x]),
        Activation::HardSwish => g.op("HardSwish", &format!("{name}.hardswish"), &[x]),
    }
}

/// `clip(slope · x + offset, 0, 1)` (ONNX `HardSigmoid`, whose `alpha` is a float32 like
/// Paddle's slope).
pub fn hard_sigmoid(g: &mut OnnxGraph, name: &str, x: &Value, slope: f64, offset: f64) -> Value {
    g.node(
        "HardSigmoid",
        name,
        &[Some(x)],
        &[
            ("alpha", Attr::Float(slope as f32)),
            ("beta", Attr::Float(offset as f32)),
        ],
    )
}

/// `x` `(B, C, h, w)` resized bilinearly to the height and width of `like` (any `(·, ·, H, W)`),
/// known only at run time: ONNX `Resize` in `linear` mode with `half_pixel` (`align_corners =
/// false`) or `align_corners` coordinates, as `scfnet_ops::resize_bilinear`.
pub fn resize_bilinear_like(
    g: &mut OnnxGraph,
    name: &str,
    x: &Value,
    like: &Value,
    align_corners: bool,
) -> Value {
    let batch_channels = g.node(
        "Shape",
        &format!("{name}.bc"),
        &[Some(x)],
        &[("end", Attr::Int(2))],
    );
    let spatial = g.node(
        "Shape",
        &format!("{name}.hw"),
        &[Some(like)],
        &[("start", Attr::Int(2))],
    );
    let sizes = g.node(
        "Concat",
        &format!("{name}.sizes"),
        &[Some(&batch_channels), Some(&spatial)],
        &[("axis", Attr::Int(0))],
    );
    let mode = if align_corners {
        "align_corners"
    } else {
        "half_pixel"
    };
    g.node(
        "Resize",
        name,
        &[Some(x), None, None, Some(&sizes)],
        &[
            ("mode", Attr::Str("linear".into())),
            ("coordinate_transformation_mode", Attr::Str(mode.into())),
        ],
    )
}

/// Max-pooling with `pool`'s window, stride and padding (padded cells never win the max, as in
/// `scfnet_ops::max_pool2d`).
pub fn max_pool(g: &mut OnnxGraph, name: &str, x: &Value, pool: Pool2d) -> Value {
    let (ph, pw) = (pool.padding.0 as i64, pool.padding.1 as i64);
    g.node(
        "MaxPool",
        name,
        &[Some(x)],
        &[
            (
                "kernel_shape",
                Attr::Ints(vec![pool.kernel.0 as i64, pool.kernel.1 as i64]),
            ),
            (
                "strides",
                Attr::Ints(vec![pool.stride.0 as i64, pool.stride.1 as i64]),
            ),
            ("pads", Attr::Ints(vec![ph, pw, ph, pw])),
        ],
    )
}
