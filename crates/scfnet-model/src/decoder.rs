//! The SCFNet decoder: mapping convs, the dilated context conv, three SCFMs and four heads.
//!
//! Names follow the authors' Paddle modules (`net.py`) with PyTorch BatchNorm suffixes:
//! `mp.cv{1..4}.{0,1}` (mapping conv, BN), `cv1.{0,1}` (dilated conv), `de{1,2,3}.cv{1,2,3}.{0,1}`
//! (SCFMs), `linear{2..5}` (heads).

use std::fmt::Arguments;

use candle_core::{DType, Result, Tensor};
use candle_nn::{conv2d, Conv2dConfig, VarBuilder};
use scfnet_backbones::blocks::{Activation, BlockConv, ConvBnAct};
use scfnet_backbones::pass::{inputs, Export, Op, Pass, ResizeLike, Run};
use scfnet_infer::InferenceConv;
use scfnet_onnx::{self as onnx, OnnxGraph, Value};
use scfnet_ops::{add_resized, resize_like, ConvGeometry};

/// The geometry of a same-size 3×3 convolution with `dilation`.
fn same3x3(dilation: usize) -> ConvGeometry {
    ConvGeometry {
        kernel: 3,
        stride: 1,
        padding: dilation,
        dilation,
    }
}

/// `nn.Sequential(Conv2D(c_in, c_out, 3, padding = dilation, dilation), BatchNorm2D, ReLU)`
/// under `vb` (`0.weight`, `0.bias`, `1.*`): same-size, through explicit columns (the decoder's
/// few channels, where candle's kernel is several times slower).
pub fn conv_bn_relu(
    vb: VarBuilder,
    c_in: usize,
    c_out: usize,
    dilation: usize,
) -> Result<ConvBnAct> {
    let cfg = Conv2dConfig {
        padding: dilation,
        dilation,
        ..Default::default()
    };
    ConvBnAct::new(
        BlockConv::Im2col(conv2d(c_in, c_out, 3, cfg, vb.pp("0"))?, same3x3(dilation)),
        vb.pp("1"),
        Activation::Relu,
    )
}

/// Semantics-guided contextual fusion module (the released code's wiring):
/// `fdh = cv1(fh + fh·up(fd))`, `fhl = cv2(fl + fl·up(fh))`, `out = cv3(fhl + up(fdh))`.
#[derive(Clone, Debug)]
pub struct Scfm {
    cv1: ConvBnAct,
    cv2: ConvBnAct,
    cv3: ConvBnAct,
}

impl Scfm {
    /// An SCFM on `c` channels.
    pub fn new(vb: VarBuilder, c: usize) -> Result<Self> {
        Ok(Self {
            cv1: conv_bn_relu(vb.pp("cv1"), c, c, 1)?,
            cv2: conv_bn_relu(vb.pp("cv2"), c, c, 1)?,
            cv3: conv_bn_relu(vb.pp("cv3"), c, c, 1)?,
        })
    }

    /// Folds the three BatchNorms into their convolutions for eval mode.
    pub fn fold_batch_norms(&mut self) -> Result<()> {
        for cba in [&mut self.cv1, &mut self.cv2, &mut self.cv3] {
            cba.fold_batch_norm()?;
        }
        Ok(())
    }

    /// `fl` (finer), `fh` (previous decoder output), `fd` (deepest map); output at `fl`'s size,
    /// in either pass.
    fn describe<P: Pass>(
        &self,
        p: &mut P,
        name: Arguments,
        [fl, fh, fd]: [&P::Value; 3],
    ) -> Result<P::Value> {
        let fdh = p.apply(
            format_args!("{name}.fdh"),
            &Merge { gated: true },
            &[fh, fd],
        )?;
        let fdh = p.apply(format_args!("{name}.cv1"), &self.cv1, &[&fdh])?;
        let fhl = p.apply(
            format_args!("{name}.fhl"),
            &Merge { gated: true },
            &[fl, fh],
        )?;
        let fhl = p.apply(format_args!("{name}.cv2"), &self.cv2, &[&fhl])?;
        let sum = p.apply(
            format_args!("{name}.out"),
            &Merge { gated: false },
            &[&fhl, &fdh],
        )?;
        p.apply(format_args!("{name}.cv3"), &self.cv3, &[&sum])
    }
}

/// One merge of an SCFM on inputs `[a, b]`: `a + a · up(b)` (gated) or `a + up(b)`, with `up`
/// the bilinear resize (half-pixel) to `a`'s size. In eval mode it is one kernel
/// ([`scfnet_ops::add_resized`], the same values). Exported as `name.up`, `name.mul`, `name.add`.
#[derive(Clone, Copy, Debug)]
struct Merge {
    gated: bool,
}

impl Op for Merge {
    fn run(&self, xs: &[&Tensor], train: bool) -> Result<Tensor> {
        let [a, b] = inputs("merge", xs)?;
        if !train {
            return add_resized(a, b, self.gated);
        }
        let up = resize_like(b, a)?;
        if self.gated {
            a + a.mul(&up)?
        } else {
            a + up
        }
    }

    fn export(&self, g: &mut OnnxGraph, name: &str, xs: &[&Value]) -> Result<Value> {
        let [a, b] = inputs("merge", xs)?;
        let up = onnx::resize_bilinear_like(g, &format!("{name}.up"), b, a, false);
        Ok(if self.gated {
            let prod = g.op("Mul", &format!("{name}.mul"), &[a, &up]);
            g.op("Add", &format!("{name}.add"), &[a, &prod])
        } else {
            g.op("Add", &format!("{name}.add"), &[a, &up])
        })
    }
}

/// A prediction head: a 3×3 convolution to one channel with its bias; in eval mode on the CPU
/// (f32), once folded, its fused kernel.
#[derive(Clone, Debug)]
struct Head {
    conv: BlockConv,
    kernel: Option<InferenceConv>,
}

impl Op for Head {
    /// `(B, C, H, W)` → `(B, 1, H, W)` logits.
    fn run(&self, xs: &[&Tensor], train: bool) -> Result<Tensor> {
        let [x] = inputs("head", xs)?;
        match &self.kernel {
            Some(k) if !train && InferenceConv::supports(x) => k.forward(x, None),
            _ => self.conv.forward(x),
        }
    }

    fn export(&self, g: &mut OnnxGraph, name: &str, xs: &[&Value]) -> Result<Value> {
        self.conv.export(g, name, xs)
    }
}

/// The four side outputs `p2 … p5`: logits `(B, 1, H, W)` at the input size (`p2` is the
/// prediction; the others are deep-supervision outputs).
#[derive(Clone, Debug)]
pub struct SideOutputs {
    /// Finest (the prediction).
    pub p2: Tensor,
    /// Stride-8 branch.
    pub p3: Tensor,
    /// Stride-16 branch.
    pub p4: Tensor,
    /// Stride-32 branch.
    pub p5: Tensor,
}

impl SideOutputs {
    /// `[p2, p3, p4, p5]`.
    pub fn as_array(&self) -> [&Tensor; 4] {
        [&self.p2, &self.p3, &self.p4, &self.p5]
    }
}

/// The SCFNet decoder.
#[derive(Clone, Debug)]
pub struct Decoder {
    mapping: [ConvBnAct; 4],
    context: ConvBnAct,
    scfm: [Scfm; 3],
    heads: [Head; 4],
}

/// The shape of a decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Channels of the backbone maps `x2 … x5` it consumes (the backbone's own description).
    pub in_channels: [usize; 4],
    /// Its own width `C` (16 for the student, 64 for the teachers).
    pub channels: usize,
}

impl Decoder {
    /// A decoder of shape `config`, weights from `vb`.
    pub fn new(vb: VarBuilder, config: DecoderConfig) -> Result<Self> {
        let (channels, c) = (config.in_channels, config.channels);
        let mp = vb.pp("mp");
        let mapping =
            [0, 1, 2, 3].map(|i| conv_bn_relu(mp.pp(format!("cv{}", i + 1)), channels[i], c, 1));
        let scfm = [1, 2, 3].map(|i| Scfm::new(vb.pp(format!("de{i}")), c));
        let pad = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let heads = [2, 3, 4, 5].map(|i| {
            conv2d(c, 1, 3, pad, vb.pp(format!("linear{i}"))).map(|conv| Head {
                conv: BlockConv::Im2col(conv, same3x3(1)),
                kernel: None,
            })
        });
        Ok(Self {
            mapping: collect(mapping)?,
            context: conv_bn_relu(vb.pp("cv1"), c, c, 5)?,
            scfm: collect(scfm)?,
            heads: collect(heads)?,
        })
    }

    /// Folds every BatchNorm into its convolution for eval mode
    /// ([`ConvBnAct::fold_batch_norm`]); training mode is unchanged.
    /// The heads (which have no BatchNorm) get their fused kernels here too.
    pub fn fold_batch_norms(&mut self) -> Result<()> {
        for cba in self.mapping.iter_mut().chain([&mut self.context]) {
            cba.fold_batch_norm()?;
        }
        self.scfm.iter_mut().try_for_each(Scfm::fold_batch_norms)?;
        for head in &mut self.heads {
            head.kernel = head_kernel(&head.conv)?;
        }
        Ok(())
    }

    /// The decoder on the backbone maps `x2 … x5`, in either pass: the logits `(B, 1, H, W)` of
    /// the first `heads` side outputs (`p2`, then `p3` …) at the size of `image` `(B, 3, H, W)`.
    fn describe<P: Pass>(
        &self,
        p: &mut P,
        maps: [&P::Value; 4],
        image: &P::Value,
        heads: usize,
    ) -> Result<Vec<P::Value>> {
        let mut m = Vec::with_capacity(4);
        for (i, (x, cbr)) in maps.into_iter().zip(&self.mapping).enumerate() {
            m.push(p.apply(format_args!("mp.cv{}", i + 1), cbr, &[x])?);
        }
        let x5 = p.apply(format_args!("cv1"), &self.context, &[&m[3]])?;
        let x4 = self.scfm[2].describe(p, format_args!("de3"), [&m[2], &x5, &x5])?;
        let x3 = self.scfm[1].describe(p, format_args!("de2"), [&m[1], &x4, &x5])?;
        let x2 = self.scfm[0].describe(p, format_args!("de1"), [&m[0], &x3, &x5])?;
        // The mapped maps are not needed by the heads: freed before them, as they were when the
        // fusion was a function of its own.
        drop(m);
        let resize = ResizeLike {
            align_corners: false,
        };
        let mut out = Vec::with_capacity(heads);
        for (i, (x, head)) in [x2, x3, x4, x5]
            .iter()
            .zip(&self.heads)
            .take(heads)
            .enumerate()
        {
            let y = p.apply(format_args!("linear{}", i + 2), head, &[x])?;
            out.push(p.apply(format_args!("p{}", i + 2), &resize, &[&y, image])?);
        }
        Ok(out)
    }

    /// Runs the decoder on `x2 … x5`; the outputs are at the size of `image` `(B, 3, H, W)`
    /// (bilinear, `align_corners = false`).
    pub fn forward_t(
        &self,
        maps: [&Tensor; 4],
        image: &Tensor,
        train: bool,
    ) -> Result<SideOutputs> {
        let outs = self.describe(&mut Run { train }, maps, image, 4)?;
        let [p2, p3, p4, p5]: [Tensor; 4] = outs.try_into().expect("four heads");
        Ok(SideOutputs { p2, p3, p4, p5 })
    }

    /// The prediction `p2` alone (logits `(B, 1, H, W)` at the size of `image`), without the
    /// deep-supervision heads: what inference needs.
    pub fn prediction(&self, maps: [&Tensor; 4], image: &Tensor, train: bool) -> Result<Tensor> {
        let mut outs = self.describe(&mut Run { train }, maps, image, 1)?;
        Ok(outs.remove(0))
    }

    /// Writes the decoder (eval mode) into `g`, on the backbone maps `x2 … x5`; returns the logits
    /// of the prediction `p2` at the size of `image` (the side outputs `p3 … p5` serve training
    /// only and are left out).
    pub fn to_onnx(&self, g: &mut OnnxGraph, maps: [&Value; 4], image: &Value) -> Result<Value> {
        let mut outs = self.describe(&mut Export { graph: g }, maps, image, 1)?;
        Ok(outs.remove(0))
    }
}

/// A head's fused kernel (its bias, no activation), when its weights are f32 on the CPU.
fn head_kernel(head: &BlockConv) -> Result<Option<InferenceConv>> {
    let bias = match head.bias() {
        Some(b) => b.to_dtype(DType::F64)?.to_vec1::<f64>()?,
        None => vec![0.0; head.weight().dim(0)?],
    };
    head.fused_kernel(&bias, Activation::None)
}

/// `[Result<T>; N]` → `Result<[T; N]>`.
fn collect<T: std::fmt::Debug, const N: usize>(items: [Result<T>; N]) -> Result<[T; N]> {
    let v: Vec<T> = items.into_iter().collect::<Result<_>>()?;
    Ok(v.try_into().expect("N items"))
}
