//! Hard-swish and hard-sigmoid, with the exact slopes of the reference backbone.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use crate::dispatch::uses_cpu_kernels;
use crate::elem::{map_float, map_float2, Real};

/// The activation after a convolution (and its BatchNorm) in the networks here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// None (a linear projection).
    None,
    /// `max(x, 0)`.
    Relu,
    /// MobileNetV3's hard-swish ([`hard_swish`]).
    HardSwish,
}

impl Activation {
    /// Applies the activation to any shape (differentiable).
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::None => Ok(x.clone()),
            Activation::Relu => x.relu(),
            Activation::HardSwish => hard_swish(x),
        }
    }
}

/// Which piecewise-linear activation.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// `x · clip(x + 3, 0, 6) / 6`.
    HardSwish,
    /// `clip(slope · x + offset, 0, 1)`.
    HardSigmoid { slope: f64, offset: f64 },
}

impl Kind {
    fn value<T: Real>(self, x: T) -> T {
        let clip = |v: T, hi: T| {
            if v < T::ZERO {
                T::ZERO
            } else if v > hi {
                hi
            } else {
                v
            }
        };
        match self {
            Kind::HardSwish => x * clip(x + T::from_f64(3.0), T::from_f64(6.0)) / T::from_f64(6.0),
            Kind::HardSigmoid { slope, offset } => {
                clip(T::from_f64(slope) * x + T::from_f64(offset), T::ONE)
            }
        }
    }

    /// Derivative, following the reference frameworks at the kinks: PyTorch's hardswish
    /// (`x < -3`: 0, `x <= 3`: `x / 3 + 0.5`, else 1) and Paddle's hardsigmoid (slope where the
    /// output is strictly inside `(0, 1)`, else 0).
    fn derivative<T: Real>(self, x: T) -> T {
        match self {
            Kind::HardSwish => {
                if x < T::from_f64(-3.0) {
                    T::ZERO
                } else if x <= T::from_f64(3.0) {
                    x / T::from_f64(3.0) + T::from_f64(0.5)
                } else {
                    T::ONE
                }
            }
            Kind::HardSigmoid { slope, offset } => {
                let y = T::from_f64(slope) * x + T::from_f64(offset);
                if y > T::ZERO && y < T::ONE {
                    T::from_f64(slope)
                } else {
                    T::ZERO
                }
            }
        }
    }
}

struct Piecewise(Kind);
struct ActivationGrad(Kind);

impl CustomOp1 for Piecewise {
    fn name(&self) -> &'static str {
        match self.0 {
            Kind::HardSwish => "hard-swish",
            Kind::HardSigmoid { .. } => "hard-sigmoid",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = map_float!(self.name(), storage, layout, |x| x
            .iter()
            .map(|&v| self.0.value(v))
            .collect());
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &ActivationGrad(self.0),
        )?))
    }
}

impl CustomOp2 for ActivationGrad {
    fn name(&self) -> &'static str {
        "activation-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = map_float2!(self.name(), s1, l1, s2, l2, |x, g| x
            .iter()
            .zip(g)
            .map(|(&v, &gv)| gv * self.0.derivative(v))
            .collect());
        Ok((out, l1.shape().clone()))
    }
}

/// Hard-swish `x · clip(x + 3, 0, 6) / 6` (MobileNetV3), differentiable, any shape.
pub fn hard_swish(x: &Tensor) -> Result<Tensor> {
    if !uses_cpu_kernels(x) {
        // x · relu6(x + 3) / 6: the same derivative away from the kinks at ±3.
        return (x * (x + 3.0)?.clamp(0.0, 6.0)?)? / 6.0;
    }
    x.contiguous()?.apply_op1(Piecewise(Kind::HardSwish))
}

/// Hard-sigmoid `clip(slope · x + offset, 0, 1)`, differentiable, any shape.
pub fn hard_sigmoid(x: &Tensor, slope: f64, offset: f64) -> Result<Tensor> {
    if !uses_cpu_kernels(x) {
        return x.affine(slope, offset)?.clamp(0.0, 1.0);
    }
    x.contiguous()?
        .apply_op1(Piecewise(Kind::HardSigmoid { slope, offset }))
}

/// Paddle's hard-sigmoid as the PaddleClas MobileNetV3 SE block uses it: slope 0.2, offset 0.5
/// (not PyTorch's `x / 6 + 0.5`). Paddle stores the slope as a `float32` attribute, so in `f64`
/// it is `0.2f32` = 0.20000000298…; we use the same value to agree with Paddle in both precisions.
pub fn hard_sigmoid_paddle(x: &Tensor) -> Result<Tensor> {
    hard_sigmoid(x, PADDLE_HARDSIGMOID_SLOPE, 0.5)
}

/// The slope of Paddle's hard-sigmoid: 0.2 rounded to `f32`, as Paddle stores it.
pub const PADDLE_HARDSIGMOID_SLOPE: f64 = 0.2f32 as f64;
