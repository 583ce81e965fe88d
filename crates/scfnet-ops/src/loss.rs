//! Numerically stable binary cross-entropy with logits.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use crate::dispatch::uses_cpu_kernels;
use crate::elem::{map_float2, Real};

/// `max(x, 0) − x·t + ln(1 + exp(−|x|))`, finite for every finite logit.
fn bce<T: Real>(x: T, t: T) -> T {
    let relu = if x > T::ZERO { x } else { T::ZERO };
    relu - x * t + (-x.abs()).exp().ln_1p()
}

struct BceWithLogits;

impl CustomOp2 for BceWithLogits {
    fn name(&self) -> &'static str {
        "bce-with-logits"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "bce-with-logits: logits {:?} and targets {:?} differ in shape",
                l1.shape(),
                l2.shape()
            );
        }
        let out = map_float2!(self.name(), s1, l1, s2, l2, |x, t| x
            .iter()
            .zip(t)
            .map(|(&a, &b)| bce(a, b))
            .collect());
        Ok((out, l1.shape().clone()))
    }

    /// `∂/∂x = σ(x) − t`, `∂/∂t = −x`, with σ computed without overflow.
    fn bwd(
        &self,
        x: &Tensor,
        t: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let sigmoid = (x.neg()?.exp()? + 1.0)?.recip()?;
        let dx = (sigmoid - t)?.mul(grad)?;
        // Targets that record no graph (ground truth, a frozen teacher's maps) need no gradient.
        let dt = t.track_op().then(|| x.neg()?.mul(grad)).transpose()?;
        Ok((Some(dx), dt))
    }
}

/// Element-wise binary cross-entropy between logits `x` and targets `t` in `[0, 1]` (same shape),
/// differentiable in both, stable for any logit (candle's own version overflows for |x| ≳ 17).
pub fn bce_with_logits(x: &Tensor, t: &Tensor) -> Result<Tensor> {
    if !uses_cpu_kernels(x) {
        if x.shape() != t.shape() {
            candle_core::bail!(
                "bce-with-logits: logits {:?} and targets {:?} differ in shape",
                x.shape(),
                t.shape()
            );
        }
        // relu(x) − x·t + ln(1 + e^−|x|), from candle primitives.
        let softplus = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
        return (x.relu()? - (x * t)?)? + softplus;
    }
    x.contiguous()?.apply_op2(&t.contiguous()?, BceWithLogits)
}

/// Mean of [`bce_with_logits`] over all elements (PyTorch's default `reduction='mean'`).
pub fn bce_with_logits_mean(x: &Tensor, t: &Tensor) -> Result<Tensor> {
    bce_with_logits(x, t)?.mean_all()
}
