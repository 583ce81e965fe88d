//! The one Conv → BatchNorm → activation block the networks are built from: ResNet's
//! `conv`/`bn` pairs, MobileNetV3's `ConvBNLayer`, and the SCFNet decoder's
//! `Sequential(Conv2D, BatchNorm2D, ReLU)`.

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{Conv2d, VarBuilder};
use scfnet_ops::{
    conv2d_im2col, depthwise_conv2d, hard_swish, paddle_batch_norm, BatchNorm, ConvGeometry,
    DepthwiseConfig,
};

/// BatchNorm ε of every network here (Paddle's and torchvision's default).
pub const BN_EPS: f64 = 1e-5;

/// The activation after the BatchNorm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// None (a linear projection).
    None,
    /// `max(x, 0)`.
    Relu,
    /// MobileNetV3's hard-swish.
    HardSwish,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::None => Ok(x.clone()),
            Activation::Relu => x.relu(),
            Activation::HardSwish => hard_swish(x),
        }
    }
}

/// How a block convolves `(B, C_in, H, W)`.
#[derive(Clone, Debug)]
pub enum BlockConv {
    /// candle's convolution (through `scfnet_ops::conv2d`): many channels (ResNet).
    Candle(Conv2d),
    /// Explicit columns and one matrix product (`scfnet_ops::conv2d_im2col`): few channels
    /// (MobileNetV3, the decoder), where candle's kernel is several times slower.
    Im2col(Conv2d, ConvGeometry),
    /// One filter per channel, weight `(C, 1, k, k)`.
    Depthwise(Tensor, DepthwiseConfig),
}

impl BlockConv {
    /// The weight, `(C_out, C_in / groups, k, k)`.
    pub fn weight(&self) -> &Tensor {
        match self {
            BlockConv::Candle(c) | BlockConv::Im2col(c, _) => c.weight(),
            BlockConv::Depthwise(w, _) => w,
        }
    }

    /// The bias, if the convolution has one.
    pub fn bias(&self) -> Option<&Tensor> {
        match self {
            BlockConv::Candle(c) | BlockConv::Im2col(c, _) => c.bias(),
            BlockConv::Depthwise(..) => None,
        }
    }

    /// Convolves `x`, `(B, C_in, H, W)` → `(B, C_out, H', W')`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            BlockConv::Candle(c) => scfnet_ops::conv2d(x, c),
            BlockConv::Im2col(c, g) => conv2d_im2col(x, c.weight(), c.bias(), *g),
            BlockConv::Depthwise(w, cfg) => depthwise_conv2d(x, w, *cfg),
        }
    }
}

/// Convolution, BatchNorm (Paddle's running-variance update, ε = [`BN_EPS`]), activation.
#[derive(Clone, Debug)]
pub struct ConvBnAct {
    conv: BlockConv,
    bn: BatchNorm,
    act: Activation,
}

impl ConvBnAct {
    /// The block of `conv`, with its BatchNorm's weights under `bn` (`weight`, `bias`,
    /// `running_mean`, `running_var`).
    pub fn new(conv: BlockConv, bn: VarBuilder, act: Activation) -> Result<Self> {
        let channels = conv.weight().dim(0)?;
        Ok(Self {
            bn: paddle_batch_norm(channels, BN_EPS, bn)?,
            conv,
            act,
        })
    }

    /// The convolution.
    pub fn conv(&self) -> &BlockConv {
        &self.conv
    }

    /// The BatchNorm.
    pub fn bn(&self) -> &BatchNorm {
        &self.bn
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.act
    }
}

impl ModuleT for ConvBnAct {
    /// `(B, C_in, H, W)` → `(B, C_out, H', W')`; `train` selects batch statistics.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.conv.forward(x)?;
        self.act.apply(&y.apply_t(&self.bn, train)?)
    }
}
