//! The one Conv → BatchNorm → activation block the networks are built from: ResNet's
//! `conv`/`bn` pairs, MobileNetV3's `ConvBNLayer`, and the SCFNet decoder's
//! `Sequential(Conv2D, BatchNorm2D, ReLU)`.

use candle_core::{DType, ModuleT, Result, Tensor};
use candle_nn::{Conv2d, VarBuilder};
use scfnet_infer::{InferenceConv, Residual};
use scfnet_onnx::{self as onnx, OnnxGraph, Value};
use scfnet_ops::{
    add_bias_activate, conv2d_im2col, depthwise_conv2d, depthwise_conv2d_bias_act,
    paddle_batch_norm, BatchNorm, ConvGeometry, DepthwiseConfig,
};

/// BatchNorm ε of every network here (Paddle's and torchvision's default).
pub const BN_EPS: f64 = 1e-5;

pub use scfnet_ops::Activation;

/// How a block convolves `(B, C_in, H, W)`.
#[derive(Clone, Debug)]
pub enum BlockConv {
    /// A dense convolution (one group) through explicit columns and a matrix product
    /// (`scfnet_ops::conv2d_im2col`; on the CPU several times faster than candle's kernel, in
    /// training too: see docs/benchmarks.md).
    Im2col(Conv2d, ConvGeometry),
    /// One filter per channel, weight `(C, 1, k, k)`.
    Depthwise(Tensor, DepthwiseConfig),
}

impl BlockConv {
    /// The weight, `(C_out, C_in / groups, k, k)`.
    pub fn weight(&self) -> &Tensor {
        match self {
            BlockConv::Im2col(c, _) => c.weight(),
            BlockConv::Depthwise(w, _) => w,
        }
    }

    /// The bias, if the convolution has one.
    pub fn bias(&self) -> Option<&Tensor> {
        match self {
            BlockConv::Im2col(c, _) => c.bias(),
            BlockConv::Depthwise(..) => None,
        }
    }

    /// The same convolution with `weight` in place of its weight and no bias (inference).
    pub fn with_weight(&self, weight: Tensor) -> BlockConv {
        match self {
            BlockConv::Im2col(c, g) => {
                BlockConv::Im2col(Conv2d::new(weight, None, *c.config()), *g)
            }
            BlockConv::Depthwise(_, cfg) => BlockConv::Depthwise(weight, *cfg),
        }
    }

    /// The window and the number of groups.
    pub fn geometry(&self) -> (ConvGeometry, usize) {
        let kernel = self.weight().dims().get(2).copied().unwrap_or(1);
        match self {
            BlockConv::Im2col(_, g) => (*g, 1),
            BlockConv::Depthwise(w, cfg) => {
                let g = ConvGeometry {
                    kernel,
                    stride: cfg.stride,
                    padding: cfg.padding,
                    dilation: 1,
                };
                (g, w.dim(0).unwrap_or(1))
            }
        }
    }

    /// The fused inference kernel of this convolution with per-channel `bias` values and `act`
    /// ([`InferenceConv`]): for a dense convolution through explicit columns whose weights are
    /// f32 on the CPU; `None` otherwise (depthwise, other dtypes or devices).
    pub fn fused_kernel(&self, bias: &[f64], act: Activation) -> Result<Option<InferenceConv>> {
        match self {
            BlockConv::Im2col(c, g)
                if c.weight().dtype() == DType::F32 && c.weight().device().is_cpu() =>
            {
                InferenceConv::new(c.weight(), bias, *g, act).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Writes the convolution (its own weight and bias) into `g` as node `name` on `x`.
    pub fn to_onnx(&self, g: &mut OnnxGraph, name: &str, x: &Value) -> Result<Value> {
        let (geometry, groups) = self.geometry();
        onnx::conv(g, name, x, self.weight(), self.bias(), geometry, groups)
    }

    /// Convolves `x`, `(B, C_in, H, W)` → `(B, C_out, H', W')`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            BlockConv::Im2col(c, g) => conv2d_im2col(x, c.weight(), c.bias(), *g),
            BlockConv::Depthwise(w, cfg) => depthwise_conv2d(x, w, *cfg),
        }
    }
}

/// A convolution with a BatchNorm folded into it (inference): `act(conv(x, W') + b')` with
/// `W' = W · s`, `b' = (b − μ) · s + β` and `s = γ / √(σ² + ε)` per output channel.
#[derive(Clone, Debug)]
pub struct FoldedConv {
    conv: BlockConv,
    bias: Tensor,
    bias_values: Vec<f64>,
    act: Activation,
    /// The dense convolution packed for the fused CPU kernel (f32 weights on the CPU).
    packed: Option<InferenceConv>,
}

impl FoldedConv {
    /// The folded weight `W'`, `(C_out, C_in / groups, k, k)`.
    pub fn weight(&self) -> &Tensor {
        self.conv.weight()
    }

    /// The folded bias `b'`, `(C_out)`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The convolution (folded weight, no bias).
    pub fn conv(&self) -> &BlockConv {
        &self.conv
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.act
    }

    /// Writes the folded convolution and its activation into `g` as node `name` on `x`.
    pub fn to_onnx(&self, g: &mut OnnxGraph, name: &str, x: &Value) -> Result<Value> {
        let (geometry, groups) = self.conv.geometry();
        let y = onnx::conv(
            g,
            name,
            x,
            self.weight(),
            Some(&self.bias),
            geometry,
            groups,
        )?;
        Ok(onnx::activation(g, name, &y, self.act))
    }

    /// `(B, C_in, H, W)` → `(B, C_out, H', W')`: on the CPU in f32, a dense convolution runs as
    /// one fused kernel ([`InferenceConv`]) and a depthwise one applies bias and activation per
    /// plane; elsewhere the convolution, then bias and activation.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(p) = self.packed.as_ref().filter(|_| InferenceConv::supports(x)) {
            return p.forward(x, None);
        }
        if let BlockConv::Depthwise(w, cfg) = &self.conv {
            // Bias and activation per plane inside the depthwise kernel.
            return depthwise_conv2d_bias_act(x, w, *cfg, &self.bias, &self.bias_values, self.act);
        }
        add_bias_activate(
            self.conv.forward(x)?,
            &self.bias,
            &self.bias_values,
            self.act,
        )
    }

    /// `then(forward(x) + residual)`, the residual added inside the fused kernel when it runs.
    pub fn forward_residual(
        &self,
        x: &Tensor,
        residual: &Tensor,
        then: Activation,
    ) -> Result<Tensor> {
        if let Some(p) = self.packed.as_ref().filter(|_| InferenceConv::supports(x)) {
            return p.forward(
                x,
                Some(Residual {
                    tensor: residual,
                    then,
                }),
            );
        }
        then.apply(&(self.forward(x)? + residual)?)
    }
}

/// Convolution, BatchNorm (Paddle's running-variance update, ε = [`BN_EPS`]), activation.
///
/// After [`ConvBnAct::fold_batch_norm`] the eval-mode forward runs the [`FoldedConv`] instead of
/// convolution, BatchNorm and activation; training mode always runs all three.
#[derive(Clone, Debug)]
pub struct ConvBnAct {
    conv: BlockConv,
    bn: BatchNorm,
    act: Activation,
    folded: Option<FoldedConv>,
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
            folded: None,
        })
    }

    /// The convolution with the BatchNorm's running statistics folded in (computed in f64 from
    /// the current weights).
    pub fn folded(&self) -> Result<FoldedConv> {
        let w = self.conv.weight();
        let f64v = |t: &Tensor| -> Result<Vec<f64>> { t.to_dtype(DType::F64)?.to_vec1::<f64>() };
        let (gamma, beta) = (f64v(self.bn.weight())?, f64v(self.bn.bias())?);
        let (mean, var) = (f64v(self.bn.running_mean())?, f64v(self.bn.running_var())?);
        let conv_bias = match self.conv.bias() {
            Some(b) => f64v(b)?,
            None => vec![0.0; gamma.len()],
        };
        let scale: Vec<f64> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + BN_EPS).sqrt())
            .collect();
        let bias_values: Vec<f64> = (0..scale.len())
            .map(|c| (conv_bias[c] - mean[c]) * scale[c] + beta[c])
            .collect();
        let c = scale.len();
        let scale = Tensor::from_vec(scale, (c, 1, 1, 1), w.device())?;
        let weight = w
            .to_dtype(DType::F64)?
            .broadcast_mul(&scale)?
            .to_dtype(w.dtype())?;
        let bias = Tensor::from_slice(&bias_values, c, w.device())?.to_dtype(w.dtype())?;
        let conv = self.conv.with_weight(weight);
        let packed = conv.fused_kernel(&bias_values, self.act)?;
        Ok(FoldedConv {
            conv,
            bias,
            bias_values,
            act: self.act,
            packed,
        })
    }

    /// Writes the block, BatchNorm folded, into `g` as node `name` on `x` (eval mode).
    pub fn to_onnx(&self, g: &mut OnnxGraph, name: &str, x: &Value) -> Result<Value> {
        self.folded()?.to_onnx(g, name, x)
    }

    /// Folds the BatchNorm into the convolution for eval mode (see [`ConvBnAct::folded`]); a
    /// later change of the weights (training) is not seen by the folded copy.
    pub fn fold_batch_norm(&mut self) -> Result<()> {
        self.folded = Some(self.folded()?);
        Ok(())
    }

    /// The convolution.
    pub fn conv(&self) -> &BlockConv {
        &self.conv
    }

    /// The fused CPU kernel that eval mode runs on `x` once folded (f32 on the CPU), if any: for
    /// blocks that hand it more than the plain input (a residual, a squeeze-excite scale).
    pub fn inference_kernel(&self, x: &Tensor, train: bool) -> Option<&InferenceConv> {
        let packed = self.folded.as_ref().filter(|_| !train)?.packed.as_ref()?;
        InferenceConv::supports(x).then_some(packed)
    }

    /// `then(forward_t(x, train) + residual)`: a block's output with its shortcut, the addition
    /// fused into the convolution's kernel in eval mode once folded, and into the BatchNorm's
    /// normalisation in training where the block has no activation of its own
    /// ([`BatchNorm::forward_t_residual`]).
    pub fn forward_t_residual(
        &self,
        x: &Tensor,
        residual: &Tensor,
        then: Activation,
        train: bool,
    ) -> Result<Tensor> {
        if let (Some(f), false) = (&self.folded, train) {
            return f.forward_residual(x, residual, then);
        }
        if train && self.act == Activation::None {
            return self
                .bn
                .forward_t_residual(&self.conv.forward(x)?, residual, then, train);
        }
        then.apply(&(self.forward_t(x, train)? + residual)?)
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
        if let (Some(f), false) = (&self.folded, train) {
            return f.forward(x);
        }
        let y = self.conv.forward(x)?;
        self.bn.forward_t_act(&y, self.act, train)
    }
}
