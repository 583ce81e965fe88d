//! The SCFNet decoder: mapping convs, the dilated context conv, three SCFMs and four heads.
//!
//! Names follow the authors' Paddle modules (`net.py`) with PyTorch BatchNorm suffixes:
//! `mp.cv{1..4}.{0,1}` (mapping conv, BN), `cv1.{0,1}` (dilated conv), `de{1,2,3}.cv{1,2,3}.{0,1}`
//! (SCFMs), `linear{2..5}` (heads).

use candle_core::{DType, Result, Tensor};
use candle_nn::{conv2d, Conv2dConfig, ModuleT, VarBuilder};
use scfnet_backbones::blocks::{Activation, BlockConv, ConvBnAct};
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

    /// `fl` (finer), `fh` (previous decoder output), `fd` (deepest map); output at `fl`'s size.
    ///
    /// In eval mode each merge runs as one kernel ([`scfnet_ops::add_resized`], the same values).
    pub fn forward_t(&self, fl: &Tensor, fh: &Tensor, fd: &Tensor, train: bool) -> Result<Tensor> {
        if !train {
            let fdh = self.cv1.forward_t(&add_resized(fh, fd, true)?, false)?;
            let fhl = self.cv2.forward_t(&add_resized(fl, fh, true)?, false)?;
            return self.cv3.forward_t(&add_resized(&fhl, &fdh, false)?, false);
        }
        let fdh = (fh + fh.mul(&resize_like(fd, fh)?)?)?;
        let fdh = self.cv1.forward_t(&fdh, train)?;
        let fhl = (fl + fl.mul(&resize_like(fh, fl)?)?)?;
        let fhl = self.cv2.forward_t(&fhl, train)?;
        self.cv3.forward_t(&(fhl + resize_like(&fdh, fl)?)?, train)
    }

    /// Writes the module (eval mode) into `g` as nodes `name.*`.
    pub fn to_onnx(
        &self,
        g: &mut OnnxGraph,
        name: &str,
        [fl, fh, fd]: [&Value; 3],
    ) -> Result<Value> {
        // a + a · up(b), at a's size.
        let gate = |g: &mut OnnxGraph, part: &str, a: &Value, b: &Value| {
            let up = onnx::resize_bilinear_like(g, &format!("{name}.{part}.up"), b, a, false);
            let prod = g.op("Mul", &format!("{name}.{part}.mul"), &[a, &up]);
            g.op("Add", &format!("{name}.{part}.add"), &[a, &prod])
        };
        let fdh = gate(g, "fdh", fh, fd);
        let fdh = self.cv1.to_onnx(g, &format!("{name}.cv1"), &fdh)?;
        let fhl = gate(g, "fhl", fl, fh);
        let fhl = self.cv2.to_onnx(g, &format!("{name}.cv2"), &fhl)?;
        let up = onnx::resize_bilinear_like(g, &format!("{name}.out.up"), &fdh, fl, false);
        let sum = g.op("Add", &format!("{name}.out.add"), &[&fhl, &up]);
        self.cv3.to_onnx(g, &format!("{name}.cv3"), &sum)
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
    /// The heads as fused kernels for eval mode on the CPU (f32), once folded; empty before.
    head_kernels: Vec<InferenceConv>,
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
            head_kernels: Vec::new(),
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
        self.head_kernels = self
            .heads
            .iter()
            .map(head_kernel)
            .collect::<Result<Option<Vec<_>>>>()?
            .unwrap_or_default();
        Ok(())
    }

    /// The fused maps `x2 … x5` (decoder width) of the backbone maps `x2 … x5`.
    fn fuse(&self, maps: [&Tensor; 4], train: bool) -> Result<[Tensor; 4]> {
        let m: Vec<Tensor> = maps
            .iter()
            .zip(&self.mapping)
            .map(|(x, cbr)| cbr.forward_t(x, train))
            .collect::<Result<_>>()?;
        let x5 = self.context.forward_t(&m[3], train)?;
        let x4 = self.scfm[2].forward_t(&m[2], &x5, &x5, train)?;
        let x3 = self.scfm[1].forward_t(&m[1], &x4, &x5, train)?;
        let x2 = self.scfm[0].forward_t(&m[0], &x3, &x5, train)?;
        Ok([x2, x3, x4, x5])
    }

    /// Head `i` (0 = `p2`) on `x`, resized to `size`; in eval mode through its fused kernel when
    /// there is one.
    fn head(&self, i: usize, x: &Tensor, size: (usize, usize), train: bool) -> Result<Tensor> {
        let y = match self.head_kernels.get(i) {
            Some(k) if !train && InferenceConv::supports(x) => k.forward(x, None)?,
            _ => self.heads[i].forward(x)?,
        };
        scfnet_ops::resize_bilinear(&y, size, false)
    }

    /// Runs the decoder on `x2 … x5`; outputs are resized to `size` (`align_corners = false`).
    pub fn forward_t(
        &self,
        maps: [&Tensor; 4],
        size: (usize, usize),
        train: bool,
    ) -> Result<SideOutputs> {
        let [x2, x3, x4, x5] = self.fuse(maps, train)?;
        Ok(SideOutputs {
            p2: self.head(0, &x2, size, train)?,
            p3: self.head(1, &x3, size, train)?,
            p4: self.head(2, &x4, size, train)?,
            p5: self.head(3, &x5, size, train)?,
        })
    }

    /// The prediction `p2` alone (logits `(B, 1, H, W)` at `size`), without the
    /// deep-supervision heads: what inference needs.
    pub fn prediction(
        &self,
        maps: [&Tensor; 4],
        size: (usize, usize),
        train: bool,
    ) -> Result<Tensor> {
        let [x2, ..] = self.fuse(maps, train)?;
        self.head(0, &x2, size, train)
    }
}

impl Decoder {
    /// Writes the decoder (eval mode) into `g`, on the backbone maps `x2 … x5`; returns the logits
    /// of the prediction `p2` at the size of `image` (the side outputs `p3 … p5` serve training
    /// only and are left out).
    pub fn to_onnx(&self, g: &mut OnnxGraph, maps: [&Value; 4], image: &Value) -> Result<Value> {
        let names = ["mp.cv1", "mp.cv2", "mp.cv3", "mp.cv4"];
        let m: Vec<Value> = maps
            .iter()
            .zip(&self.mapping)
            .zip(names)
            .map(|((x, cbr), name)| cbr.to_onnx(g, name, x))
            .collect::<Result<_>>()?;
        let x5 = self.context.to_onnx(g, "cv1", &m[3])?;
        let x4 = self.scfm[2].to_onnx(g, "de3", [&m[2], &x5, &x5])?;
        let x3 = self.scfm[1].to_onnx(g, "de2", [&m[1], &x4, &x5])?;
        let x2 = self.scfm[0].to_onnx(g, "de1", [&m[0], &x3, &x5])?;
        let p2 = self.heads[0].to_onnx(g, "linear2", &x2)?;
        Ok(onnx::resize_bilinear_like(g, "p2", &p2, image, false))
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
