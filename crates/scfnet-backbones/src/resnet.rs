//! ResNet-50 (v1.5: stride on the 3×3 conv) with torchvision / timm checkpoint names.
//!
//! Names: `conv1`, `bn1`, `layer{1..4}.{i}.{conv1,bn1,conv2,bn2,conv3,bn3}`,
//! `layer{1..4}.0.downsample.{0,1}`; the classifier `fc` is not built. Checkpoints such as
//! `timm/resnet50.tv_in1k` (`model.safetensors`) load as they are.
//!
//! In training mode its BatchNorms update the running variance as Paddle does (the batch's biased
//! variance, [`scfnet_ops::RunningVariance::Biased`]), since SCFNet-R50 is trained as the authors'
//! Paddle code trains it.

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{conv2d_no_bias, Conv2dConfig, VarBuilder};
use std::fmt::Arguments;

use scfnet_onnx::{OnnxGraph, Value};
use scfnet_ops::{ConvGeometry, Pool2d};

/// The stem's max-pool: 3×3, stride 2, padding 1.
const STEM_POOL: Pool2d = Pool2d {
    kernel: (3, 3),
    stride: (2, 2),
    padding: (1, 1),
};

use crate::blocks::{Activation, BlockConv, ConvBnAct};
use crate::features::{Backbone, Features};
use crate::pass::{Export, Pass, Run, Shortcut};

/// A bias-free convolution (`conv`) followed by BatchNorm (`bn`) and `act`.
#[allow(clippy::too_many_arguments)]
fn conv_bn(
    vb: &VarBuilder,
    conv: &str,
    bn: &str,
    c_in: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    act: Activation,
) -> Result<ConvBnAct> {
    let cfg = Conv2dConfig {
        stride,
        padding: k / 2,
        ..Default::default()
    };
    let geometry = ConvGeometry {
        kernel: k,
        stride,
        padding: k / 2,
        dilation: 1,
    };
    ConvBnAct::new(
        BlockConv::Im2col(conv2d_no_bias(c_in, c_out, k, cfg, vb.pp(conv))?, geometry),
        vb.pp(bn),
        act,
    )
}

/// One bottleneck block: 1×1 → 3×3 (stride) → 1×1 (×4), plus the shortcut.
#[derive(Clone, Debug)]
struct Bottleneck {
    reduce: ConvBnAct,
    spatial: ConvBnAct,
    expand: ConvBnAct,
    downsample: Option<ConvBnAct>,
}

impl Bottleneck {
    fn new(vb: VarBuilder, c_in: usize, width: usize, stride: usize) -> Result<Self> {
        let c_out = width * 4;
        let downsample = if stride != 1 || c_in != c_out {
            Some(conv_bn(
                &vb,
                "downsample.0",
                "downsample.1",
                c_in,
                c_out,
                1,
                stride,
                Activation::None,
            )?)
        } else {
            None
        };
        Ok(Self {
            reduce: conv_bn(&vb, "conv1", "bn1", c_in, width, 1, 1, Activation::Relu)?,
            spatial: conv_bn(
                &vb,
                "conv2",
                "bn2",
                width,
                width,
                3,
                stride,
                Activation::Relu,
            )?,
            expand: conv_bn(&vb, "conv3", "bn3", width, c_out, 1, 1, Activation::None)?,
            downsample,
        })
    }

    /// The block on `x`: reduce, spatial, the shortcut (downsampled where the shape changes),
    /// then the expansion with the shortcut added and ReLU.
    fn describe<P: Pass>(&self, p: &mut P, name: Arguments, x: &P::Value) -> Result<P::Value> {
        let y = p.apply(format_args!("{name}.conv1"), &self.reduce, &[x])?;
        let y = p.apply(format_args!("{name}.conv2"), &self.spatial, &[&y])?;
        let shortcut = match &self.downsample {
            Some(d) => p.apply(format_args!("{name}.downsample"), d, &[x])?,
            None => x.clone(),
        };
        let join = Shortcut {
            block: &self.expand,
            part: "conv3",
            then: Activation::Relu,
        };
        p.apply(name, &join, &[&y, &shortcut])
    }
}

/// ResNet-50 returning its stem and four stage outputs.
///
/// `x1` = stem after ReLU (64 ch, stride 2, before the max-pool), `x2 … x5` = `layer1 … layer4`
/// (256, 512, 1024, 2048 channels at strides 4, 8, 16, 32).
#[derive(Clone, Debug)]
pub struct ResNet50 {
    stem: ConvBnAct,
    stages: Vec<Vec<Bottleneck>>,
}

/// Blocks per stage of ResNet-50.
const DEPTHS: [usize; 4] = [3, 4, 6, 3];

impl ResNet50 {
    /// Builds the network, reading weights from `vb` (root of a torchvision/timm checkpoint).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let stem = conv_bn(&vb, "conv1", "bn1", 3, 64, 7, 2, Activation::Relu)?;
        let mut stages = Vec::with_capacity(4);
        let mut c_in = 64;
        for (s, &depth) in DEPTHS.iter().enumerate() {
            let width = 64 << s;
            let vb_stage = vb.pp(format!("layer{}", s + 1));
            let mut blocks = Vec::with_capacity(depth);
            for b in 0..depth {
                let stride = if b == 0 && s > 0 { 2 } else { 1 };
                blocks.push(Bottleneck::new(vb_stage.pp(b), c_in, width, stride)?);
                c_in = width * 4;
            }
            stages.push(blocks);
        }
        Ok(Self { stem, stages })
    }
}

impl ResNet50 {
    /// The network on the image `x`: the stem map `x1` (before the max-pool) and the four stage
    /// outputs `x2 … x5`, in either pass.
    fn describe<P: Pass>(&self, p: &mut P, name: Arguments, x: &P::Value) -> Result<[P::Value; 5]> {
        let x1 = p.apply(format_args!("{name}.conv1"), &self.stem, &[x])?;
        let mut y = p.apply(format_args!("{name}.maxpool"), &STEM_POOL, &[&x1])?;
        let mut outs = Vec::with_capacity(5);
        outs.push(x1);
        for (s, stage) in self.stages.iter().enumerate() {
            for (b, block) in stage.iter().enumerate() {
                y = block.describe(p, format_args!("{name}.layer{}.{b}", s + 1), &y)?;
            }
            outs.push(y.clone());
        }
        Ok(outs.try_into().ok().expect("the stem and four stages"))
    }
}

impl Backbone for ResNet50 {
    fn features(&self, x: &Tensor, train: bool) -> Result<Features> {
        let [x1, x2, x3, x4, x5] = self.describe(&mut Run { train }, format_args!(""), x)?;
        Ok(Features { x1, x2, x3, x4, x5 })
    }

    fn channels(&self) -> [usize; 5] {
        [64, 256, 512, 1024, 2048]
    }

    fn to_onnx(&self, g: &mut OnnxGraph, name: &str, x: &Value) -> Result<[Value; 4]> {
        let [_, x2, x3, x4, x5] =
            self.describe(&mut Export { graph: g }, format_args!("{name}"), x)?;
        Ok([x2, x3, x4, x5])
    }

    fn fold_batch_norms(&mut self) -> Result<()> {
        self.stem.fold_batch_norm()?;
        for b in self.stages.iter_mut().flatten() {
            for cba in [&mut b.reduce, &mut b.spatial, &mut b.expand] {
                cba.fold_batch_norm()?;
            }
            if let Some(d) = &mut b.downsample {
                d.fold_batch_norm()?;
            }
        }
        Ok(())
    }

    fn clone_box(&self) -> Box<dyn Backbone> {
        Box::new(self.clone())
    }
}

impl ModuleT for ResNet50 {
    /// The deepest map `x5`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.features(x, train)?.x5)
    }
}
