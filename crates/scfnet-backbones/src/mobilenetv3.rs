//! MobileNetV3-Large ×0.5 as PaddleClas builds it ("legendary" model), the student's encoder.
//!
//! Differences from torchvision/timm, all from the PaddleClas code: every block has an expand
//! 1×1 conv (also block 0), the SE hidden width is `mid / 4` without rounding, and the SE gate
//! is Paddle's hard-sigmoid `clip(0.2 x + 0.5, 0, 1)`. The classifier tail is not built.
//!
//! Names follow the Paddle module paths with PyTorch BatchNorm suffixes (`running_mean`,
//! `running_var`): `conv.{conv,bn}`, `blocks.{i}.expand_conv.{conv,bn}`,
//! `blocks.{i}.bottleneck_conv.{conv,bn}`, `blocks.{i}.mid_se.conv{1,2}`,
//! `blocks.{i}.linear_conv.{conv,bn}`. `scfnet convert` maps a PaddleClas checkpoint to them.

use std::fmt::Arguments;

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{conv2d, conv2d_no_bias, Conv2d, Conv2dConfig, VarBuilder};
use scfnet_infer::{Residual, SqueezeExciteGate};
use scfnet_onnx::{self as onnx, OnnxGraph, Value};
use scfnet_ops::{hard_sigmoid_paddle, ConvGeometry, DepthwiseConfig, PADDLE_HARDSIGMOID_SLOPE};

use crate::blocks::{Activation, BlockConv, ConvBnAct};
use crate::features::{Backbone, Features};
use crate::pass::{inputs, Export, Op, Pass, Run};

/// The activations of the table (the shared block's).
type Act = Activation;

/// One row of the MobileNetV3-Large table: kernel, expansion, output, SE, activation, stride.
struct BlockSpec {
    k: usize,
    exp: usize,
    out: usize,
    se: bool,
    act: Act,
    stride: usize,
}

const fn spec(k: usize, exp: usize, out: usize, se: bool, act: Act, stride: usize) -> BlockSpec {
    BlockSpec {
        k,
        exp,
        out,
        se,
        act,
        stride,
    }
}

/// The full-width (×1.0) MobileNetV3-Large blocks.
const LARGE: [BlockSpec; 15] = [
    spec(3, 16, 16, false, Act::Relu, 1),
    spec(3, 64, 24, false, Act::Relu, 2),
    spec(3, 72, 24, false, Act::Relu, 1),
    spec(5, 72, 40, true, Act::Relu, 2),
    spec(5, 120, 40, true, Act::Relu, 1),
    spec(5, 120, 40, true, Act::Relu, 1),
    spec(3, 240, 80, false, Act::HardSwish, 2),
    spec(3, 200, 80, false, Act::HardSwish, 1),
    spec(3, 184, 80, false, Act::HardSwish, 1),
    spec(3, 184, 80, false, Act::HardSwish, 1),
    spec(3, 480, 112, true, Act::HardSwish, 1),
    spec(3, 672, 112, true, Act::HardSwish, 1),
    spec(5, 672, 160, true, Act::HardSwish, 2),
    spec(5, 960, 160, true, Act::HardSwish, 1),
    spec(5, 960, 160, true, Act::HardSwish, 1),
];

/// Blocks after which the feature maps x2, x3, x4, x5 are taken.
const TAPS: [usize; 4] = [2, 5, 11, 14];

/// PaddleClas' channel rounding: nearest multiple of 8, at least 8, never below 90 % of `v`.
pub fn make_divisible(v: f64) -> usize {
    let divisor = 8.0;
    let mut new_v = (((v + divisor / 2.0) as usize) / 8 * 8).max(8);
    if (new_v as f64) < 0.9 * v {
        new_v += 8;
    }
    new_v
}

/// PaddleClas' `ConvBNLayer` under `vb` (`conv.weight`, `bn.*`): a bias-free convolution,
/// dense through explicit columns (few channels) or depthwise (`groups` = `c_in` = `c_out`),
/// BatchNorm and `act`.
fn conv_bn_act(
    vb: VarBuilder,
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    groups: usize,
    act: Act,
) -> Result<ConvBnAct> {
    let padding = (k - 1) / 2;
    let conv = if groups == 1 {
        let cfg = Conv2dConfig {
            stride,
            padding,
            ..Default::default()
        };
        let geometry = ConvGeometry {
            kernel: k,
            stride,
            padding,
            dilation: 1,
        };
        BlockConv::Im2col(
            conv2d_no_bias(c_in, c_out, k, cfg, vb.pp("conv"))?,
            geometry,
        )
    } else {
        debug_assert!(groups == c_in && c_in == c_out);
        let w = vb.pp("conv").get((c_out, 1, k, k), "weight")?;
        BlockConv::Depthwise(w, DepthwiseConfig { stride, padding })
    };
    ConvBnAct::new(conv, vb.pp("bn"), act)
}

/// Squeeze-and-excitation with Paddle's hard-sigmoid gate.
#[derive(Clone, Debug)]
struct SqueezeExcite {
    conv1: Conv2d,
    conv2: Conv2d,
    /// The host copy for eval mode, made when the block is folded.
    host: Option<SqueezeExciteGate>,
}

impl SqueezeExcite {
    fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        let hidden = channels / 4;
        Ok(Self {
            conv1: conv2d(channels, hidden, 1, Default::default(), vb.pp("conv1"))?,
            conv2: conv2d(hidden, channels, 1, Default::default(), vb.pp("conv2"))?,
            host: None,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.mean_keepdim(3)?.mean_keepdim(2)?;
        let s = scfnet_ops::conv2d(&s, &self.conv1)?;
        let s = scfnet_ops::conv2d(&s.relu()?, &self.conv2)?;
        let s = hard_sigmoid_paddle(&s)?;
        x.broadcast_mul(&s)
    }

    /// The gate of `x` `(B, C, H, W)` as plain values, `B·C` image-major: the same squeeze and
    /// excitation as [`SqueezeExcite::forward`] without the final product, computed on the host,
    /// for a projection that folds it into its weights. Uses the copy of the weights made by
    /// [`SqueezeExcite::fold`], else copies them for this call.
    fn gate_values(&self, x: &Tensor) -> Result<Vec<f32>> {
        match &self.host {
            Some(gate) => gate.factors(x),
            None => self.host_gate()?.factors(x),
        }
    }

    /// The weights as a [`SqueezeExciteGate`] (a copy on the host).
    fn host_gate(&self) -> Result<SqueezeExciteGate> {
        SqueezeExciteGate::new(
            (self.conv1.weight(), self.conv1.bias()),
            (self.conv2.weight(), self.conv2.bias()),
            PADDLE_HARDSIGMOID_SLOPE,
            0.5,
        )
    }

    /// Copies the weights to the host for [`SqueezeExcite::gate_values`], at the time the
    /// block's BatchNorms are folded (the folded kernels are the same kind of snapshot).
    fn fold(&mut self) -> Result<()> {
        self.host = Some(self.host_gate()?);
        Ok(())
    }

    fn to_onnx(&self, g: &mut OnnxGraph, name: &str, x: &Value) -> Result<Value> {
        let one = ConvGeometry {
            kernel: 1,
            stride: 1,
            padding: 0,
            dilation: 1,
        };
        let fc = |g: &mut OnnxGraph, part: &str, conv: &Conv2d, s: &Value| {
            let name = format!("{name}.{part}");
            onnx::conv(g, &name, s, conv.weight(), conv.bias(), one, 1)
        };
        let s = g.op("GlobalAveragePool", &format!("{name}.pool"), &[x]);
        let s = fc(g, "conv1", &self.conv1, &s)?;
        let s = g.op("Relu", &format!("{name}.relu"), &[&s]);
        let s = fc(g, "conv2", &self.conv2, &s)?;
        let s = onnx::hard_sigmoid(
            g,
            &format!("{name}.gate"),
            &s,
            PADDLE_HARDSIGMOID_SLOPE,
            0.5,
        );
        Ok(g.op("Mul", &format!("{name}.scale"), &[x, &s]))
    }
}

/// An inverted residual block (`ResidualUnit`).
#[derive(Clone, Debug)]
struct Block {
    expand: ConvBnAct,
    depthwise: ConvBnAct,
    se: Option<SqueezeExcite>,
    project: ConvBnAct,
    shortcut: bool,
}

impl Block {
    fn new(vb: VarBuilder, c_in: usize, mid: usize, c_out: usize, s: &BlockSpec) -> Result<Self> {
        Ok(Self {
            expand: conv_bn_act(vb.pp("expand_conv"), c_in, mid, 1, 1, 1, s.act)?,
            depthwise: conv_bn_act(
                vb.pp("bottleneck_conv"),
                mid,
                mid,
                s.k,
                s.stride,
                mid,
                s.act,
            )?,
            se: if s.se {
                Some(SqueezeExcite::new(vb.pp("mid_se"), mid)?)
            } else {
                None
            },
            project: conv_bn_act(vb.pp("linear_conv"), mid, c_out, 1, 1, 1, Act::None)?,
            shortcut: s.stride == 1 && c_in == c_out,
        })
    }

    /// The block on `x`: expand, depthwise, then the squeeze-excite gate, the projection and
    /// the shortcut as one step ([`Projection`]).
    fn describe<P: Pass>(&self, p: &mut P, name: Arguments, x: &P::Value) -> Result<P::Value> {
        let y = p.apply(format_args!("{name}.expand_conv"), &self.expand, &[x])?;
        let y = p.apply(
            format_args!("{name}.bottleneck_conv"),
            &self.depthwise,
            &[&y],
        )?;
        p.apply(name, &Projection(self), &[&y, x])
    }
}

/// The tail of a [`Block`] on inputs `[y, x]` (the depthwise output and the block's input): the
/// squeeze-excite gate on `y` if the block has one, the projection, and `x` added when the block
/// keeps its shape. In eval mode on the CPU it is one kernel: the gate scales the projection's
/// weights instead of the map, and the shortcut is added inside. Exported as `name.mid_se`,
/// `name.linear_conv` and `name.add`.
struct Projection<'a>(&'a Block);

impl Op for Projection<'_> {
    fn run(&self, xs: &[&Tensor], train: bool) -> Result<Tensor> {
        let [y, x] = inputs("projection", xs)?;
        let b = self.0;
        if let Some(project) = b.project.inference_kernel(y, train) {
            let gate = b.se.as_ref().map(|se| se.gate_values(y)).transpose()?;
            let residual = b.shortcut.then_some(Residual {
                tensor: x,
                then: Act::None,
            });
            return project.forward_scaled(y, gate.as_deref(), residual);
        }
        let gated;
        let y = match &b.se {
            Some(se) => {
                gated = se.forward(y)?;
                &gated
            }
            None => y,
        };
        if b.shortcut {
            b.project.forward_t_residual(y, x, Act::None, train)
        } else {
            b.project.forward_t(y, train)
        }
    }

    fn export(&self, g: &mut OnnxGraph, name: &str, xs: &[&Value]) -> Result<Value> {
        let [y, x] = inputs("projection", xs)?;
        let b = self.0;
        let y = match &b.se {
            Some(se) => se.to_onnx(g, &format!("{name}.mid_se"), y)?,
            None => y.clone(),
        };
        let y = b.project.to_onnx(g, &format!("{name}.linear_conv"), &y)?;
        Ok(if b.shortcut {
            g.op("Add", &format!("{name}.add"), &[&y, x])
        } else {
            y
        })
    }
}

/// MobileNetV3-Large with a width multiplier (the student uses ×0.5).
///
/// `x1` = stem (8 ch at ×0.5, stride 2), `x2 … x5` = outputs of blocks 2, 5, 11, 14
/// (16, 24, 56, 80 channels at ×0.5; strides 4, 8, 16, 32).
#[derive(Clone, Debug)]
pub struct MobileNetV3 {
    stem: ConvBnAct,
    blocks: Vec<Block>,
    channels: [usize; 5],
}

impl MobileNetV3 {
    /// Whether PaddleClas trains tensor `name` (this backbone's own name) with weight decay: not
    /// the BatchNorm scales and shifts, which its `ConvBNLayer` gives `L2Decay(0.0)`.
    pub fn decays(name: &str) -> bool {
        !name.contains("bn.")
    }

    /// MobileNetV3-Large ×`scale`, weights from `vb`.
    pub fn large(vb: VarBuilder, scale: f64) -> Result<Self> {
        let stem_out = make_divisible(16.0 * scale);
        let stem = conv_bn_act(vb.pp("conv"), 3, stem_out, 3, 2, 1, Act::HardSwish)?;
        let mut blocks = Vec::with_capacity(LARGE.len());
        let mut c_in = stem_out;
        let mut channels = [stem_out, 0, 0, 0, 0];
        for (i, s) in LARGE.iter().enumerate() {
            let (mid, c_out) = (
                make_divisible(scale * s.exp as f64),
                make_divisible(scale * s.out as f64),
            );
            blocks.push(Block::new(vb.pp("blocks").pp(i), c_in, mid, c_out, s)?);
            if let Some(t) = TAPS.iter().position(|&t| t == i) {
                channels[t + 1] = c_out;
            }
            c_in = c_out;
        }
        Ok(Self {
            stem,
            blocks,
            channels,
        })
    }

    /// The student's encoder: MobileNetV3-Large ×0.5.
    pub fn large_x0_5(vb: VarBuilder) -> Result<Self> {
        Self::large(vb, 0.5)
    }
}

impl MobileNetV3 {
    /// The network on the image `x`: the stem map `x1` and the taps `x2 … x5`, in either pass.
    fn describe<P: Pass>(&self, p: &mut P, name: Arguments, x: &P::Value) -> Result<[P::Value; 5]> {
        let x1 = p.apply(format_args!("{name}.conv"), &self.stem, &[x])?;
        let mut y = x1.clone();
        let mut maps = Vec::with_capacity(5);
        maps.push(x1);
        for (i, block) in self.blocks.iter().enumerate() {
            y = block.describe(p, format_args!("{name}.blocks.{i}"), &y)?;
            if TAPS.contains(&i) {
                maps.push(y.clone());
            }
        }
        Ok(maps.try_into().ok().expect("the stem and four taps"))
    }
}

impl Backbone for MobileNetV3 {
    fn features(&self, x: &Tensor, train: bool) -> Result<Features> {
        let [x1, x2, x3, x4, x5] = self.describe(&mut Run { train }, format_args!(""), x)?;
        Ok(Features { x1, x2, x3, x4, x5 })
    }

    fn channels(&self) -> [usize; 5] {
        self.channels
    }

    fn to_onnx(&self, g: &mut OnnxGraph, name: &str, x: &Value) -> Result<[Value; 4]> {
        let [_, x2, x3, x4, x5] =
            self.describe(&mut Export { graph: g }, format_args!("{name}"), x)?;
        Ok([x2, x3, x4, x5])
    }

    fn fold_batch_norms(&mut self) -> Result<()> {
        self.stem.fold_batch_norm()?;
        for b in &mut self.blocks {
            for cba in [&mut b.expand, &mut b.depthwise, &mut b.project] {
                cba.fold_batch_norm()?;
            }
            if let Some(se) = &mut b.se {
                se.fold()?;
            }
        }
        Ok(())
    }

    fn clone_box(&self) -> Box<dyn Backbone> {
        Box::new(self.clone())
    }
}

impl ModuleT for MobileNetV3 {
    /// The deepest map `x5`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.features(x, train)?.x5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_width_channels_follow_the_spec() {
        let widths: Vec<(usize, usize)> = LARGE
            .iter()
            .map(|s| {
                (
                    make_divisible(0.5 * s.exp as f64),
                    make_divisible(0.5 * s.out as f64),
                )
            })
            .collect();
        assert_eq!(
            widths,
            [
                (8, 8),
                (32, 16),
                (40, 16),
                (40, 24),
                (64, 24),
                (64, 24),
                (120, 40),
                (104, 40),
                (96, 40),
                (96, 40),
                (240, 56),
                (336, 56),
                (336, 80),
                (480, 80),
                (480, 80)
            ]
        );
        assert_eq!(make_divisible(8.0), 8);
    }
}
