//! BatchNorm over `(B, C, H, W)` with fused CPU kernels: one pass for the batch statistics, one
//! for the normalisation, two for the backward — instead of candle-nn's transposed copies and
//! half a dozen broadcast operations each way, which dominated a training step. Same weight
//! names, same arithmetic and the same running-statistics update as `candle_nn::BatchNorm`
//! (biased variance to normalise, unbiased in the running variance, momentum 0.1);
//! [`paddle_batch_norm`] keeps Paddle's update instead (biased variance in the running variance).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, Var};
use candle_nn::{Init, ModuleT, VarBuilder};
use rayon::prelude::*;

use crate::activation::Activation;
use crate::dispatch::uses_own_kernels;
use crate::elem::{dims4, map_float2, map_float3, Real};
use crate::generic_ops::OpFamily;
use crate::par_vec::par_filled;

/// A 2-D BatchNorm layer with learnable scale and shift and running statistics.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
    running_variance: RunningVariance,
}

/// Which batch variance a training step blends into the running variance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunningVariance {
    /// `Σ(x − μ)² / (n − 1)`: PyTorch and `candle_nn`.
    Unbiased,
    /// `Σ(x − μ)² / n`, the variance that normalises the batch: Paddle (`paddle.nn.BatchNorm2D`),
    /// hence the authors' training.
    Biased,
}

/// A BatchNorm on `channels` channels under `vb` (`weight`, `bias`, `running_mean`,
/// `running_var`, initialised to 1, 0, 0, 1), like `candle_nn::batch_norm`.
pub fn batch_norm(channels: usize, eps: f64, vb: VarBuilder) -> Result<BatchNorm> {
    let running_mean = vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
    let running_var = vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
    let weight = vb.get_with_hints(channels, "weight", Init::Const(1.0))?;
    let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
    Ok(BatchNorm {
        weight,
        bias,
        // Shares the storage when the builder hands out variables (training), copies otherwise.
        running_mean: Var::from_tensor(&running_mean)?,
        running_var: Var::from_tensor(&running_var)?,
        eps,
        momentum: 0.1,
        running_variance: RunningVariance::Unbiased,
    })
}

/// [`batch_norm`] with Paddle's running-variance update ([`RunningVariance::Biased`]), as the
/// authors' networks train; inference is the same.
pub fn paddle_batch_norm(channels: usize, eps: f64, vb: VarBuilder) -> Result<BatchNorm> {
    Ok(BatchNorm {
        running_variance: RunningVariance::Biased,
        ..batch_norm(channels, eps, vb)?
    })
}

impl BatchNorm {
    /// The scale γ, `(C)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The shift β, `(C)`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The running mean, `(C)`.
    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }

    /// The running variance, `(C)`.
    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    /// The running-variance update's weight of the batch's biased variance over `n` values.
    fn variance_weight(&self, n: f64) -> f64 {
        match self.running_variance {
            RunningVariance::Unbiased if n > 1.0 => self.momentum * n / (n - 1.0),
            _ => self.momentum,
        }
    }

    /// `act(self(x))` in train or eval mode: in training, where this crate has kernels, one op
    /// (normalisation and activation in one pass each way: one graph node fewer, and the
    /// normalised map is never stored); otherwise the BatchNorm then [`Activation::apply`].
    pub fn forward_t_act(&self, x: &Tensor, act: Activation, train: bool) -> Result<Tensor> {
        if train && act != Activation::None && uses_own_kernels(OpFamily::BatchNorm, x) {
            crate::macs::add_batch_norm(x.elem_count());
            return self.forward_train(x, act);
        }
        act.apply(&self.forward_t(x, train)?)
    }

    /// `act(self(x) + residual)`, `residual` of `x`'s shape: in training, where this crate has
    /// kernels and `act` is none or ReLU, one op (normalisation, addition and activation in one
    /// pass; the backward takes ReLU's slope from the output, 0 where it is 0, as PyTorch's
    /// `threshold_backward`), so neither the normalised map nor the sum is stored; otherwise the
    /// BatchNorm, the addition, then [`Activation::apply`]. ResNet's blocks end so.
    pub fn forward_t_residual(
        &self,
        x: &Tensor,
        residual: &Tensor,
        act: Activation,
        train: bool,
    ) -> Result<Tensor> {
        if train
            && matches!(act, Activation::None | Activation::Relu)
            && uses_own_kernels(OpFamily::BatchNorm, x)
            && residual.shape() == x.shape()
        {
            crate::macs::add_batch_norm(x.elem_count());
            let x = x.contiguous()?;
            let params = self.batch_params(&x)?;
            return x.apply_op3(
                &params,
                &residual.contiguous()?,
                BnResidual { eps: self.eps, act },
            );
        }
        act.apply(&(self.forward_t(x, train)? + residual)?)
    }

    fn forward_train(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        if !uses_own_kernels(OpFamily::BatchNorm, x) {
            return act.apply(&self.forward_train_composed(x)?);
        }
        let x = x.contiguous()?;
        let params = self.batch_params(&x)?;
        x.apply_op2(
            &params,
            BnTrain {
                eps: self.eps,
                batch_stats: true,
                act,
            },
        )
    }

    /// `[γ; β; mean; var]`, `(4, C)`, in `x`'s dtype: the scale and shift next to the batch
    /// mean and biased variance of a contiguous `x`, made by one op whose backward hands rows 0
    /// and 1 back to γ and β (the kernels' path: no stacking or concatenation, each a launch per
    /// row on a GPU, either way); the running statistics are updated from rows 2 and 3.
    fn batch_params(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let n = (b * h * w) as f64;
        let dtype = x.dtype();
        let params = x.detach().apply_op3(
            &self.weight.to_dtype(dtype)?,
            &self.bias.to_dtype(dtype)?,
            BatchParams,
        )?;
        let stats = params.detach();
        let mean = stats.get(2)?;
        let var = stats.get(3)?;
        let m = self.momentum;
        crate::running_stats::update_running(&self.running_mean, &mean, 1.0 - m, m)?;
        let unbiased = self.variance_weight(n);
        crate::running_stats::update_running(&self.running_var, &var, 1.0 - m, unbiased)?;
        Ok(params)
    }

    /// The same computation from candle operations (devices without the fused kernel).
    fn forward_train_composed(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let n = (b * h * w) as f64;
        let mean = x.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred
            .sqr()?
            .mean_keepdim(0)?
            .mean_keepdim(2)?
            .mean_keepdim(3)?;
        let m = self.momentum;
        self.running_mean.set(
            &((self.running_mean.as_tensor() * (1.0 - m))? + (mean.flatten_all()?.detach() * m)?)?,
        )?;
        let unbiased = self.variance_weight(n);
        self.running_var.set(
            &((self.running_var.as_tensor() * (1.0 - m))?
                + (var.flatten_all()?.detach() * unbiased)?)?,
        )?;
        let scale = (self.weight.reshape((1, c, 1, 1))? / (var + self.eps)?.sqrt()?)?;
        centred
            .broadcast_mul(&scale)?
            .broadcast_add(&self.bias.reshape((1, c, 1, 1))?)
    }

    fn forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let c = x.dim(1)?;
        if uses_own_kernels(OpFamily::BatchNorm, x) {
            // One fused pass with the running statistics in place of the batch's.
            let x = x.contiguous()?;
            let params = Tensor::stack(
                &[
                    &self.weight,
                    &self.bias,
                    &self.running_mean.as_detached_tensor(),
                    &self.running_var.as_detached_tensor(),
                ],
                0,
            )?
            .to_dtype(x.dtype())?;
            return x.apply_op2(
                &params,
                BnTrain {
                    eps: self.eps,
                    batch_stats: false,
                    act: Activation::None,
                },
            );
        }
        let inv = (self.running_var.as_detached_tensor() + self.eps)?
            .sqrt()?
            .recip()?;
        let scale = (&self.weight * inv)?;
        let shift = (&self.bias - (self.running_mean.as_detached_tensor() * &scale)?)?;
        x.broadcast_mul(&scale.reshape((1, c, 1, 1))?)?
            .broadcast_add(&shift.reshape((1, c, 1, 1))?)
    }
}

impl ModuleT for BatchNorm {
    /// Batch statistics (and a running-statistics update) when `train`, running statistics
    /// otherwise.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        crate::macs::add_batch_norm(x.elem_count());
        if train {
            self.forward_train(x, Activation::None)
        } else {
            self.forward_eval(x)
        }
    }
}

/// Inputs `x` `(B, C, H, W)` (contiguous, no gradient), `γ` and `β` `(C)`: `[γ; β; mean; var]`,
/// `(4, C)`, the per-channel mean and biased variance of `x` (sums in f64) after γ and β. The
/// backward passes rows 0 and 1 of the gradient to γ and β; the statistics' rows lead nowhere
/// (the normalisation's own backward differentiates through them).
struct BatchParams;

fn channel_stats<T: Real + Into<f64>>(x: &[T], b: usize, c: usize, hw: usize) -> Vec<T> {
    let n = (b * hw) as f64;
    let per: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut s = 0f64;
            for bi in 0..b {
                let plane = &x[(bi * c + ch) * hw..(bi * c + ch + 1) * hw];
                s += plane.iter().map(|&v| v.into()).sum::<f64>();
            }
            let mean = s / n;
            let mut q = 0f64;
            for bi in 0..b {
                let plane = &x[(bi * c + ch) * hw..(bi * c + ch + 1) * hw];
                q += plane
                    .iter()
                    .map(|&v| {
                        let d = v.into() - mean;
                        d * d
                    })
                    .sum::<f64>();
            }
            (mean, q / n)
        })
        .collect();
    let mut out: Vec<T> = per.iter().map(|p| T::from_f64(p.0)).collect();
    out.extend(per.iter().map(|p| T::from_f64(p.1)));
    out
}

impl BatchParams {
    /// `x`'s `(B, C, H·W)`; an error when γ or β does not hold C values.
    fn sizes(&self, x: &Layout, gamma: &Layout, beta: &Layout) -> Result<(usize, usize, usize)> {
        let (b, c, h, w) = dims4(self.name(), x)?;
        for (what, l) in [("scale", gamma), ("shift", beta)] {
            if l.shape().elem_count() != c {
                candle_core::bail!(
                    "{}: {what} of shape {:?} for {c} channels",
                    self.name(),
                    l.shape()
                );
            }
        }
        Ok((b, c, h * w))
    }
}

impl CustomOp3 for BatchParams {
    fn name(&self) -> &'static str {
        "batch-norm-params"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, hw) = self.sizes(l1, l2, l3)?;
        let out = map_float3!(self.name(), s1, l1, s2, l2, s3, l3, |x, gamma, beta| {
            let mut params = Vec::with_capacity(4 * c);
            params.extend_from_slice(gamma);
            params.extend_from_slice(beta);
            params.extend(channel_stats(x, b, c, hw));
            params
        });
        Ok((out, Shape::from((4, c))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (b, c, hw) = self.sizes(l1, l2, l3)?;
        let out = cuda::params((s1, l1), (s2, l2), (s3, l3), (b, c, hw))?;
        Ok((out, Shape::from((4, c))))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _gamma: &Tensor,
        _beta: &Tensor,
        _params: &Tensor,
        dparams: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        Ok((None, Some(dparams.get(0)?), Some(dparams.get(1)?)))
    }
}

/// `y = act((x − mean) / √(var + ε) · γ + β)` with `params` = `[γ; β; mean; var]`, `(4, C)`:
/// the batch's statistics (training, from [`BatchParams`]; the backward goes through them) or
/// the running ones (eval; constants, no activation).
struct BnTrain {
    eps: f64,
    batch_stats: bool,
    act: Activation,
}

/// Per-channel `(scale, shift)` so that `y = x · scale + shift`, and `1 / √(var + ε)`.
fn coefficients<T: Real + Into<f64>>(
    affine: &[T],
    stats: &[T],
    c: usize,
    eps: f64,
) -> Vec<(T, T, f64)> {
    (0..c)
        .map(|ch| {
            let (g, bt) = (affine[ch].into(), affine[c + ch].into());
            let (mean, var) = (stats[ch].into(), stats[c + ch].into());
            let inv = 1.0 / (var + eps).sqrt();
            (T::from_f64(g * inv), T::from_f64(bt - mean * g * inv), inv)
        })
        .collect()
}

/// `act(x · scale + shift + residual)` per channel (`act(x · scale + shift)` without a
/// residual), with the composition's roundings: the normalised value, then the sum, in `T`.
fn bn_apply<T: Real + Into<f64>>(
    x: &[T],
    affine: &[T],
    stats: &[T],
    residual: Option<&[T]>,
    (c, hw): (usize, usize),
    eps: f64,
    act: Activation,
) -> Vec<T> {
    let coef = coefficients(affine, stats, c, eps);
    par_filled(x.len(), hw, |i, dst| {
        let src = &x[i * hw..][..dst.len()];
        let (s, t, _) = coef[i % c];
        match (residual, act) {
            (None, Activation::None) => {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = v * s + t;
                }
            }
            (None, _) => {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = act.value(v * s + t);
                }
            }
            (Some(r), _) => {
                let r = &r[i * hw..(i + 1) * hw];
                for ((d, &v), &rv) in dst.iter_mut().zip(src).zip(r) {
                    *d = act.value((v * s + t) + rv);
                }
            }
        }
    })
}

/// The gradients of [`BnTrain`], packed: `dx` (B·C·H·W values), then the gradient of its
/// parameters `[γ; β; mean; var]`: `dγ`, `dβ` and two rows of zeros (C each).
/// With an activation, `dy` is first multiplied by its derivative at the recomputed
/// pre-activation `x·scale + shift`.
fn bn_backward<T: Real + Into<f64>>(
    x: &[T],
    dy: &[T],
    params: &[T],
    (b, c, hw): (usize, usize, usize),
    eps: f64,
    act: Activation,
) -> Vec<T> {
    // params = [γ; β; mean; var], (4, C).
    let (affine, stats) = params.split_at(2 * c);
    let coef = coefficients(affine, stats, c, eps);
    let n = (b * hw) as f64;
    // Per channel: Σ dy and Σ dy · x̂.
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let mean: f64 = stats[ch].into();
            let (s, t, inv) = coef[ch];
            let (mut sd, mut sdx) = (0f64, 0f64);
            for bi in 0..b {
                let o = (bi * c + ch) * hw;
                for (&v, &g) in x[o..o + hw].iter().zip(&dy[o..o + hw]) {
                    let g: f64 = (g * act.derivative(v * s + t)).into();
                    sd += g;
                    sdx += g * (v.into() - mean) * inv;
                }
            }
            (sd, sdx)
        })
        .collect();
    let mut out = vec![T::ZERO; x.len() + 4 * c];
    let (dx, dparams) = out.split_at_mut(x.len());
    dx.par_chunks_mut(hw).enumerate().for_each(|(i, dst)| {
        let ch = i % c;
        let gamma: f64 = affine[ch].into();
        let mean: f64 = stats[ch].into();
        let (s, t, inv) = coef[ch];
        let (sd, sdx) = sums[ch];
        let k = gamma * inv;
        let (a, m) = (sd / n, sdx / n);
        let o = i * hw;
        for ((d, &v), &g) in dst.iter_mut().zip(&x[o..o + hw]).zip(&dy[o..o + hw]) {
            let xhat = (v.into() - mean) * inv;
            let g: f64 = (g * act.derivative(v * s + t)).into();
            *d = T::from_f64(k * (g - a - xhat * m));
        }
    });
    for ch in 0..c {
        dparams[ch] = T::from_f64(sums[ch].1);
        dparams[c + ch] = T::from_f64(sums[ch].0);
    }
    out
}

/// The channels and plane size of an op's input `(B, C, H, W)`; an error naming `op` when its
/// `params` are not `(4, C)` (`[γ; β; mean; var]`).
fn param_sizes(op: &str, x: &Layout, params: &Layout) -> Result<(usize, usize)> {
    let (_, c, h, w) = dims4(op, x)?;
    if params.shape().elem_count() != 4 * c {
        candle_core::bail!(
            "{op}: parameters of shape {:?} for {c} channels (want (4, {c}))",
            params.shape()
        );
    }
    Ok((c, h * w))
}

impl CustomOp2 for BnTrain {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (c, hw) = param_sizes(self.name(), l1, l2)?;
        let out = map_float2!(self.name(), s1, l1, s2, l2, |x, params| {
            let (affine, stats) = params.split_at(2 * c);
            bn_apply(x, affine, stats, None, (c, hw), self.eps, self.act)
        });
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
        let (c, hw) = param_sizes(self.name(), l1, l2)?;
        let out = cuda::apply((s1, l1), (s2, l2), None, (c, hw), self.eps, self.act)?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if !self.batch_stats {
            let c = params.dim(1)?;
            // Fixed statistics: y = x̂·γ + β with x̂ = (x − mean)·inv, a per-channel affine map.
            let shape = (1, c, 1, 1);
            let inv = (params.get(3)? + self.eps)?
                .sqrt()?
                .recip()?
                .reshape(shape)?;
            let xhat = x
                .broadcast_sub(&params.get(2)?.reshape(shape)?)?
                .broadcast_mul(&inv)?;
            let dx = dy.broadcast_mul(&(params.get(0)?.reshape(shape)? * &inv)?)?;
            let per_channel = |t: Tensor| -> Result<Tensor> { t.sum(0)?.sum(1)?.sum(1) };
            let dgamma = per_channel((dy * xhat)?)?;
            let dbeta = per_channel(dy.clone())?;
            let zeros = dgamma.zeros_like()?;
            let dparams = Tensor::stack(&[&dgamma, &dbeta, &zeros, &zeros], 0)?;
            return Ok((Some(dx), Some(dparams)));
        }
        let (dx, dparams) = batch_backward(x, &dy.contiguous()?, params, self.eps, self.act)?;
        Ok((Some(dx), Some(dparams)))
    }
}

/// The backward of the normalisation with batch statistics: `dx` and the gradient of `params`
/// `(4, C)` (`[dγ; dβ; 0; 0]`), both views of [`BnBackward`]'s one output, so that no copy or
/// concatenation is launched for them.
fn batch_backward(
    x: &Tensor,
    dy: &Tensor,
    params: &Tensor,
    eps: f64,
    act: Activation,
) -> Result<(Tensor, Tensor)> {
    let c = params.elem_count() / 4;
    let packed = x.apply_op3_no_bwd(dy, &params.contiguous()?, &BnBackward { eps, act })?;
    let n = x.elem_count();
    let dx = packed.narrow(0, 0, n)?.reshape(x.shape())?;
    let dparams = packed.narrow(0, n, 4 * c)?.reshape((4, c))?;
    Ok((dx, dparams))
}

/// `act(BatchNorm(x) + residual)` in training: inputs `x`, `params` = `[γ; β; mean; var]`
/// `(4, C)` (the batch statistics), `residual`; `act` none or ReLU.
struct BnResidual {
    eps: f64,
    act: Activation,
}

impl BnResidual {
    /// The channels and plane size of the input `(B, C, H, W)`; an error when the residual's
    /// shape differs or `params` is not `(4, C)`.
    fn sizes(&self, input: &Layout, params: &Layout, residual: &Layout) -> Result<(usize, usize)> {
        let sizes = param_sizes(self.name(), input, params)?;
        if residual.shape() != input.shape() {
            candle_core::bail!(
                "{}: residual {:?} and input {:?} differ in shape",
                self.name(),
                residual.shape(),
                input.shape()
            );
        }
        Ok(sizes)
    }
}

impl CustomOp3 for BnResidual {
    fn name(&self) -> &'static str {
        "batch-norm-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (c, hw) = self.sizes(l1, l2, l3)?;
        let out = map_float3!(self.name(), s1, l1, s2, l2, s3, l3, |x, params, r| {
            let (affine, stats) = params.split_at(2 * c);
            bn_apply(x, affine, stats, Some(r), (c, hw), self.eps, self.act)
        });
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (c, hw) = self.sizes(l1, l2, l3)?;
        let out = cuda::apply(
            (s1, l1),
            (s2, l2),
            Some((s3, l3)),
            (c, hw),
            self.eps,
            self.act,
        )?;
        Ok((out, l1.shape().clone()))
    }

    /// The slope of the activation from the output `y` (ReLU: 1 where `y > 0`), then the
    /// BatchNorm's backward of that gradient; the residual's gradient is the same.
    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        residual: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = match self.act {
            Activation::Relu => crate::activation::relu_grad_from_output(y, dy)?,
            _ => dy.contiguous()?,
        };
        let (dx, dparams) = batch_backward(x, &g, params, self.eps, Activation::None)?;
        let dr = residual.track_op().then_some(g);
        Ok((Some(dx), Some(dparams), dr))
    }
}

/// Inputs `x`, `dy` `(B, C, H, W)` and `params` `(4, C)`: the gradients of the normalisation with
/// batch statistics, packed as [`bn_backward`] packs them.
struct BnBackward {
    eps: f64,
    act: Activation,
}

impl CustomOp3 for BnBackward {
    fn name(&self) -> &'static str {
        "batch-norm-train-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = dims4(self.name(), l1)?;
        param_sizes(self.name(), l1, l3)?;
        let out = map_float3!(self.name(), s1, l1, s2, l2, s3, l3, |x, dy, params| {
            bn_backward(x, dy, params, (b, c, h * w), self.eps, self.act)
        });
        Ok((out, Shape::from(b * c * h * w + 4 * c)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (b, c, h, w) = dims4(self.name(), l1)?;
        param_sizes(self.name(), l1, l3)?;
        let out = cuda::backward(
            (s1, l1),
            (s2, l2),
            (s3, l3),
            (b, c, h * w),
            self.eps,
            self.act,
        )?;
        Ok((out, Shape::from(b * c * h * w + 4 * c)))
    }
}

/// The CUDA kernels (`scfnet-kernels`' `batch_norm.cu`): the same sums in `f64`, each channel's
/// values cut into slices so that the reductions fill the GPU.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::{CudaStorage, Layout, Result};
    use scfnet_kernels::ptx::BATCH_NORM;
    use scfnet_kernels::{batch_slices, blocks, launch};

    use crate::activation::Activation;
    use crate::gpu::{by_float, kernel, output, per_element, per_plane, view, wrap, GpuFloat};

    const OP: &str = "batch-norm";

    /// `[γ; β; mean; biased variance]`, `(4, C)`.
    pub(super) fn params(
        x: (&CudaStorage, &Layout),
        gamma: (&CudaStorage, &Layout),
        beta: (&CudaStorage, &Layout),
        dims: (usize, usize, usize),
    ) -> Result<CudaStorage> {
        by_float!("batch-norm params", x.0, params_typed(x, gamma, beta, dims))
    }

    fn params_typed<T: GpuFloat>(
        (xs, xl): (&CudaStorage, &Layout),
        (gs, gl): (&CudaStorage, &Layout),
        (bs, bl): (&CudaStorage, &Layout),
        (b, c, hw): (usize, usize, usize),
    ) -> Result<CudaStorage> {
        let dev = xs.device();
        let x = view::<T>(OP, xs, xl)?;
        let (gamma, beta) = (view::<T>(OP, gs, gl)?, view::<T>(OP, bs, bl)?);
        per_plane(OP, 1, hw)?;
        let splits = batch_slices(b, hw);
        let mut part = output::<f64>(dev, 2 * c * splits)?;
        launch!(dev, BATCH_NORM, kernel::<T>("bn_stat_partials"),
            config: blocks((splits, c), 256), args: [&x, &mut part, &b, &c, &hw, &splits]);
        let mut out = output::<T>(dev, 4 * c)?;
        launch!(dev, BATCH_NORM, kernel::<T>("bn_stat_finish"), config: per_element(c),
            args: [&x, &part, &gamma, &beta, &mut out, &b, &c, &hw, &splits]);
        Ok(wrap(xs, out))
    }

    /// `act(x · scale + shift)` per channel, `act(x · scale + shift + residual)` with a
    /// residual; `params` = `[γ; β; mean; var]`.
    pub(super) fn apply(
        x: (&CudaStorage, &Layout),
        params: (&CudaStorage, &Layout),
        residual: Option<(&CudaStorage, &Layout)>,
        (c, hw): (usize, usize),
        eps: f64,
        act: Activation,
    ) -> Result<CudaStorage> {
        by_float!(
            "batch-norm apply",
            x.0,
            apply_typed(x, params, residual, (c, hw), eps, act)
        )
    }

    /// The coefficients of every channel (`bn_coefficients`), then the normalisation with the
    /// activation, adding `residual` when there is one (`bn_apply`, `bn_apply_residual`).
    fn apply_typed<T: GpuFloat>(
        (xs, xl): (&CudaStorage, &Layout),
        (ps, pl): (&CudaStorage, &Layout),
        residual: Option<(&CudaStorage, &Layout)>,
        (c, hw): (usize, usize),
        eps: f64,
        act: Activation,
    ) -> Result<CudaStorage> {
        let act = act.code();
        let dev = xs.device();
        let x = view::<T>(OP, xs, xl)?;
        let params = view::<T>(OP, ps, pl)?;
        let (affine, stats) = (params.slice(0..2 * c), params.slice(2 * c..4 * c));
        let total = xl.shape().elem_count();
        let planes = total / hw.max(1);
        let config = per_plane(OP, planes, hw)?;
        // Scale and shift per channel, once: no division or square root per element.
        let mut coef = output::<T>(dev, 2 * c)?;
        launch!(dev, BATCH_NORM, kernel::<T>("bn_coefficients"), config: per_element(c),
            args: [&affine, &stats, &mut coef, &eps, &c]);
        let mut y = output::<T>(dev, total)?;
        match residual {
            None => launch!(dev, BATCH_NORM, kernel::<T>("bn_apply"), config: config,
                args: [&x, &coef, &mut y, &planes, &c, &hw, &act]),
            Some((rs, rl)) => {
                let r = view::<T>(OP, rs, rl)?;
                launch!(dev, BATCH_NORM, kernel::<T>("bn_apply_residual"), config: config,
                    args: [&x, &coef, &r, &mut y, &planes, &c, &hw, &act]);
            }
        }
        Ok(wrap(xs, y))
    }

    /// `dx` then `dγ`, `dβ` and two rows of zeros, packed as the CPU kernel packs them.
    pub(super) fn backward(
        x: (&CudaStorage, &Layout),
        dy: (&CudaStorage, &Layout),
        params: (&CudaStorage, &Layout),
        dims: (usize, usize, usize),
        eps: f64,
        act: Activation,
    ) -> Result<CudaStorage> {
        by_float!(
            "batch-norm grad",
            x.0,
            backward_typed(x, dy, params, dims, eps, act)
        )
    }

    fn backward_typed<T: GpuFloat>(
        (xs, xl): (&CudaStorage, &Layout),
        (ds, dl): (&CudaStorage, &Layout),
        (ps, pl): (&CudaStorage, &Layout),
        (b, c, hw): (usize, usize, usize),
        eps: f64,
        act: Activation,
    ) -> Result<CudaStorage> {
        let act = act.code();
        let dev = xs.device();
        let (x, dy, params) = (
            view::<T>(OP, xs, xl)?,
            view::<T>(OP, ds, dl)?,
            view::<T>(OP, ps, pl)?,
        );
        let (planes, total) = (b * c, b * c * hw);
        let config = per_plane(OP, planes, hw)?;
        let splits = batch_slices(b, hw);
        let mut part = output::<f64>(dev, 2 * c * splits)?;
        launch!(dev, BATCH_NORM, kernel::<T>("bn_grad_partials"), config: blocks((splits, c), 256),
            args: [&x, &dy, &params, &mut part, &eps, &b, &c, &hw, &splits, &act]);
        // Per channel: dγ, dβ, and the coefficients of the input gradient (7 each).
        let mut coef = output::<f64>(dev, 7 * c)?;
        let mut out = output::<T>(dev, total + 4 * c)?;
        launch!(dev, BATCH_NORM, kernel::<T>("bn_grad_finish"), config: per_element(c),
            args: [&part, &params, &mut coef, &mut out, &eps, &total, &c, &splits]);
        launch!(dev, BATCH_NORM, kernel::<T>("bn_grad_input"), config: config,
            args: [&x, &dy, &coef, &mut out, &planes, &c, &hw, &act]);
        Ok(wrap(xs, out))
    }
}
