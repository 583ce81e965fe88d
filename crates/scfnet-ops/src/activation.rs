//! Hard-swish and hard-sigmoid, with the exact slopes of the reference backbone.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use crate::dispatch::uses_own_kernels;
use crate::elem::{map_float, map_float2, Real};
use crate::generic_ops::OpFamily;

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
    /// The activation of one value (the same arithmetic as [`Activation::apply`]).
    pub(crate) fn value<T: Real>(self, x: T) -> T {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(T::ZERO),
            Activation::HardSwish => Kind::HardSwish.value(x),
        }
    }

    /// The derivative [`Activation::apply`]'s backward uses at `x`: candle's ReLU rule (1 where
    /// `x ≥ 0`), [`hard_swish`]'s.
    pub(crate) fn derivative<T: Real>(self, x: T) -> T {
        match self {
            Activation::None => T::ONE,
            Activation::Relu => {
                if x >= T::ZERO {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            Activation::HardSwish => Kind::HardSwish.derivative(x),
        }
    }

    /// The CUDA kernels' code of the activation (0 none, 1 ReLU, 2 hard-swish).
    #[cfg(feature = "cuda")]
    pub(crate) fn code(self) -> usize {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::HardSwish => 2,
        }
    }

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
    /// ReLU seen from its output `y` (only its gradient is taken): slope 1 where `y > 0`.
    ReluOfOutput,
}

impl Kind {
    /// The CUDA kernels' arguments: kind (0 hard-swish, 1 hard-sigmoid), slope, offset.
    #[cfg(feature = "cuda")]
    fn kernel_args(self) -> (usize, f64, f64) {
        match self {
            Kind::HardSwish => (0, 0.0, 0.0),
            Kind::HardSigmoid { slope, offset } => (1, slope, offset),
            Kind::ReluOfOutput => (2, 0.0, 0.0),
        }
    }

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
            Kind::ReluOfOutput => x.max(T::ZERO),
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
            Kind::ReluOfOutput => {
                if x > T::ZERO {
                    T::ONE
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
            Kind::ReluOfOutput => "relu",
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::gpu::by_float;
        let out = by_float!(self.name(), storage, cuda_forward(self.0, storage, layout))?;
        Ok((out, layout.shape().clone()))
    }
}

/// `activation_fwd` of `scfnet-kernels`' `activation.cu`: one thread per element.
#[cfg(feature = "cuda")]
fn cuda_forward<T: crate::gpu::GpuFloat>(
    kind: Kind,
    storage: &candle_core::CudaStorage,
    layout: &Layout,
) -> Result<candle_core::CudaStorage> {
    use crate::gpu::{kernel, output, per_element, view, wrap};
    use candle_core::backend::BackendStorage;
    let dev = storage.device();
    let x = view::<T>("activation", storage, layout)?;
    let n = layout.shape().elem_count();
    let mut y = output::<T>(dev, n)?;
    let (k, slope, offset) = kind.kernel_args();
    scfnet_kernels::launch!(dev, scfnet_kernels::ptx::ACTIVATION, kernel::<T>("activation_fwd"),
        config: per_element(n), args: [&x, &mut y, &slope, &offset, &n, &k]);
    Ok(wrap(storage, y))
}

/// `activation_grad`: the gradient times the derivative, one thread per element.
#[cfg(feature = "cuda")]
fn cuda_gradient<T: crate::gpu::GpuFloat>(
    kind: Kind,
    (xs, xl): (&candle_core::CudaStorage, &Layout),
    (gs, gl): (&candle_core::CudaStorage, &Layout),
) -> Result<candle_core::CudaStorage> {
    use crate::gpu::{kernel, output, per_element, view, wrap};
    use candle_core::backend::BackendStorage;
    let dev = xs.device();
    let x = view::<T>("activation-grad", xs, xl)?;
    let g = view::<T>("activation-grad", gs, gl)?;
    let n = xl.shape().elem_count();
    let mut dx = output::<T>(dev, n)?;
    let (k, slope, offset) = kind.kernel_args();
    scfnet_kernels::launch!(dev, scfnet_kernels::ptx::ACTIVATION, kernel::<T>("activation_grad"),
        config: per_element(n), args: [&x, &g, &mut dx, &slope, &offset, &n, &k]);
    Ok(wrap(xs, dx))
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

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::gpu::by_float;
        let out = by_float!(
            "activation grad",
            s1,
            cuda_gradient(self.0, (s1, l1), (s2, l2))
        )?;
        Ok((out, l1.shape().clone()))
    }
}

/// The gradient through a ReLU from its output `y` and the output's gradient `dy` (same
/// shape): `dy` where `y > 0`, else 0 (PyTorch's `threshold_backward`; candle's ReLU, from its
/// input, passes the gradient at exactly 0 too). For fused ops that keep only the output.
pub(crate) fn relu_grad_from_output(y: &Tensor, dy: &Tensor) -> Result<Tensor> {
    if !uses_own_kernels(OpFamily::Activation, y) {
        return dy * y.gt(0.0)?.to_dtype(dy.dtype())?;
    }
    y.contiguous()?
        .apply_op2_no_bwd(&dy.contiguous()?, &ActivationGrad(Kind::ReluOfOutput))
}

/// Hard-swish `x · clip(x + 3, 0, 6) / 6` (MobileNetV3), differentiable, any shape.
pub fn hard_swish(x: &Tensor) -> Result<Tensor> {
    if !uses_own_kernels(OpFamily::Activation, x) {
        // x · relu6(x + 3) / 6: the same derivative away from the kinks at ±3.
        return (x * (x + 3.0)?.clamp(0.0, 6.0)?)? / 6.0;
    }
    x.contiguous()?.apply_op1(Piecewise(Kind::HardSwish))
}

/// Hard-sigmoid `clip(slope · x + offset, 0, 1)`, differentiable, any shape.
pub fn hard_sigmoid(x: &Tensor, slope: f64, offset: f64) -> Result<Tensor> {
    if !uses_own_kernels(OpFamily::Activation, x) {
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
