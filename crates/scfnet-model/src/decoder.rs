//! The SCFNet decoder: mapping convs, the dilated context conv, three SCFMs and four heads.
//!
//! Names follow the authors' Paddle modules (`net.py`) with PyTorch BatchNorm suffixes:
//! `mp.cv{1..4}.{0,1}` (mapping conv, BN), `cv1.{0,1}` (dilated conv), `de{1,2,3}.cv{1,2,3}.{0,1}`
//! (SCFMs), `linear{2..5}` (heads).

use candle_core::{Result, Tensor};
use candle_nn::{conv2d, Conv2dConfig, ModuleT, VarBuilder};
use scfnet_backbones::blocks::{Activation, BlockConv, ConvBnAct};
use scfnet_ops::{resize_like, ConvGeometry};

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

    /// `fl` (finer), `fh` (previous decoder output), `fd` (deepest map); output at `fl`'s size.
    pub fn forward_t(&self, fl: &Tensor, fh: &Tensor, fd: &Tensor, train: bool) -> Result<Tensor> {
        let fdh = (fh + fh.mul(&resize_like(fd, fh)?)?)?;
        let fdh = self.cv1.forward_t(&fdh, train)?;
        let fhl = (fl + fl.mul(&resize_like(fh, fl)?)?)?;
        let fhl = self.cv2.forward_t(&fhl, train)?;
        self.cv3.forward_t(&(fhl + resize_like(&fdh, fl)?)?, train)
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
    heads: [BlockConv; 4],
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
            conv2d(c, 1, 3, pad, vb.pp(format!("linear{i}")))
                .map(|conv| BlockConv::Im2col(conv, same3x3(1)))
        });
        Ok(Self {
            mapping: collect(mapping)?,
            context: conv_bn_relu(vb.pp("cv1"), c, c, 5)?,
            scfm: collect(scfm)?,
            heads: collect(heads)?,
        })
    }

    /// Runs the decoder on `x2 … x5`; outputs are resized to `size` (`align_corners = false`).
    pub fn forward_t(
        &self,
        maps: [&Tensor; 4],
        size: (usize, usize),
        train: bool,
    ) -> Result<SideOutputs> {
        let m: Vec<Tensor> = maps
            .iter()
            .zip(&self.mapping)
            .map(|(x, cbr)| cbr.forward_t(x, train))
            .collect::<Result<_>>()?;
        let x5 = self.context.forward_t(&m[3], train)?;
        let x4 = self.scfm[2].forward_t(&m[2], &x5, &x5, train)?;
        let x3 = self.scfm[1].forward_t(&m[1], &x4, &x5, train)?;
        let x2 = self.scfm[0].forward_t(&m[0], &x3, &x5, train)?;
        let head = |i: usize, x: &Tensor| -> Result<Tensor> {
            let y = self.heads[i].forward(x)?;
            scfnet_ops::resize_bilinear(&y, size, false)
        };
        Ok(SideOutputs {
            p2: head(0, &x2)?,
            p3: head(1, &x3)?,
            p4: head(2, &x4)?,
            p5: head(3, &x5)?,
        })
    }
}

/// `[Result<T>; N]` → `Result<[T; N]>`.
fn collect<T: std::fmt::Debug, const N: usize>(items: [Result<T>; N]) -> Result<[T; N]> {
    let v: Vec<T> = items.into_iter().collect::<Result<_>>()?;
    Ok(v.try_into().expect("N items"))
}
