//! One deterministic training step of any network on any device, recorded on the host, so that
//! two devices (or the CPU kernels and the device-generic path of `scfnet-ops`) can be compared
//! tensor by tensor.

use candle_core::{DType, Device, Tensor};
use scfnet_model::{InputSide, ModelKind};
use scfnet_ops::check::values;

use crate::config::TrainConfig;
use crate::engine::{Target, Trainer};
use crate::error::Result;
use crate::params::sorted_vars;

/// The outcome of [`record_step`]: the loss and what the step changed, on the host in f64.
#[derive(Clone, Debug)]
pub struct StepRecord {
    /// The total loss of the step.
    pub loss: f64,
    /// The four side losses.
    pub parts: [f64; 4],
    /// The `p2` probability map of the fresh network in eval mode, `(B, 1, H, W)` flattened.
    pub eval_map: Vec<f64>,
    /// The `p2` logits behind [`StepRecord::eval_map`], `(B, 1, H, W)` flattened: a fresh
    /// network's running statistics are 0 and 1, so its eval-mode logits are far from
    /// normalised (a fresh ResNet-50's are hundreds), and the map is 0 or 1 wherever they are
    /// large; the logits still compare the kernels there.
    pub eval_logits: Vec<f64>,
    /// The `p2` logits after the step with every BatchNorm folded into its convolution, as
    /// `scfnet predict` and a frozen teacher run a network, with the running statistics the step
    /// moved: `(B, 1, H, W)` flattened, or why the folded network failed (kept apart so that a
    /// failure of that path leaves the step's record). Logits, not probabilities: a fresh
    /// ResNet-50 in eval mode is far from normalised, its map 0 or 1 at every pixel, and
    /// saturated maps agree whatever the kernels compute.
    pub folded_logits: std::result::Result<Vec<f64>, String>,
    /// For every variable (running statistics included), in name order: its name and its change
    /// over the step, flattened.
    pub updates: Vec<(String, Vec<f64>)>,
}

/// Which loss a recorded step uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepLoss {
    /// Full supervision against a synthetic mask (Dice + boundary Dice, epoch 0). The boundary
    /// term takes maxima over windows of the prediction, so two implementations that round
    /// differently can pick different pixels: the gradient is only piecewise continuous.
    Supervised,
    /// Distillation from synthetic teacher logits (Dice on probabilities): smooth everywhere.
    Distillation,
}

/// One step of a freshly initialised `kind` (seed 0) on `device` in `dtype`: a synthetic batch
/// `(batch, 3, side, side)` with a mask or teacher logits, epoch 0, learning rate `lr`.
/// Everything that enters the step is made on the host, so two devices see the same numbers.
pub fn record_step(
    kind: ModelKind,
    loss: StepLoss,
    device: &Device,
    dtype: DType,
    side: usize,
    batch: usize,
    lr: f64,
) -> Result<StepRecord> {
    let config = TrainConfig {
        batch,
        sizes: vec![InputSide::new(side).map_err(|e| crate::TrainError::Config(e.to_string()))?],
        // Deterministic: no stochastic depth.
        drop_path: 0.0,
        ..TrainConfig::paper(kind)
    };
    let mut trainer = Trainer::fresh(config, device, dtype)?;
    let host = |seed: u64, dims: &[usize]| -> Result<Tensor> {
        let n = dims.iter().product();
        Ok(Tensor::from_vec(values(n, seed, 1.0), dims, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)?)
    };
    let images = (host(1, &[batch, 3, side, side])? * 2.0)?;
    let target = match loss {
        StepLoss::Supervised => host(2, &[batch, 1, side, side])?.ge(0.0)?.to_dtype(dtype)?,
        StepLoss::Distillation => (host(3, &[batch, 1, side, side])? * 4.0)?,
    };
    let to_host = |t: &Tensor| -> Result<Vec<f64>> {
        Ok(t.to_device(&Device::Cpu)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?)
    };
    let eval_p2 = trainer.net().side_outputs(&images, false)?.p2;
    let eval_logits = to_host(&eval_p2)?;
    let eval_map = to_host(&candle_nn::ops::sigmoid(&eval_p2)?)?;
    let before: Vec<(String, Vec<f64>)> = sorted_vars(trainer.varmap())
        .into_iter()
        .map(|(name, var)| Ok((name, to_host(var.as_tensor())?)))
        .collect::<Result<_>>()?;
    let target = match loss {
        StepLoss::Supervised => Target::Mask(&target),
        StepLoss::Distillation => Target::Teacher(&target),
    };
    let outcome = trainer.step(&images, target, 0, 0, lr)?;
    let folded_logits = trainer
        .net()
        .folded()
        .and_then(|net| net.side_outputs(&images, false).map(|s| s.p2))
        .map_err(crate::TrainError::from)
        .and_then(|p2| to_host(&p2))
        .map_err(|e| format!("the folded network: {e}"));
    let after = sorted_vars(trainer.varmap());
    let updates = before
        .into_iter()
        .zip(after)
        .map(|((name, old), (_, var))| {
            let new = to_host(var.as_tensor())?;
            let delta = new.iter().zip(&old).map(|(a, b)| a - b).collect();
            Ok((name, delta))
        })
        .collect::<Result<_>>()?;
    Ok(StepRecord {
        loss: outcome.loss,
        parts: outcome.parts,
        eval_map,
        eval_logits,
        folded_logits,
        updates,
    })
}

/// The largest difference between two sets of logits, relative to the first set's largest
/// logit (so that a network whose logits are large is held to its own scale).
pub fn logits_difference(x: &[f64], y: &[f64]) -> f64 {
    let scale = x.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    x.iter()
        .zip(y)
        .map(|(p, q)| (p - q).abs() / scale)
        .fold(0.0, f64::max)
}

/// [`logits_difference`] of the fresh networks' eval-mode logits of two records.
pub fn eval_logits_difference(a: &StepRecord, b: &StepRecord) -> f64 {
    logits_difference(&a.eval_logits, &b.eval_logits)
}

/// [`logits_difference`] of the folded networks' logits of two records, or the first error
/// where a folded network failed.
pub fn folded_logits_difference(
    a: &StepRecord,
    b: &StepRecord,
) -> std::result::Result<f64, String> {
    Ok(logits_difference(
        a.folded_logits.as_ref().map_err(Clone::clone)?,
        b.folded_logits.as_ref().map_err(Clone::clone)?,
    ))
}

/// The largest difference between two records: `(loss, eval map, update)`, the loss relative to
/// its size, the map in absolute probability, each tensor's update relative to the largest
/// magnitude of that update, and the name of the tensor where the update differs most. Updates
/// are measured against at least 1e-3 of the largest update of the whole step: a tensor whose
/// gradient is zero in exact arithmetic (a convolution bias followed by BatchNorm) moves only by
/// rounding noise, which is not a difference between implementations.
pub fn max_differences(a: &StepRecord, b: &StepRecord) -> (f64, f64, f64, String) {
    let loss = (a.loss - b.loss).abs() / a.loss.abs().max(1e-30);
    let map = a
        .eval_map
        .iter()
        .zip(&b.eval_map)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let largest = |d: &[f64]| d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let floor = 1e-3
        * a.updates
            .iter()
            .map(|(_, d)| largest(d))
            .fold(0.0, f64::max);
    let mut worst = (0.0, String::new());
    for ((name, x), (_, y)) in a.updates.iter().zip(&b.updates) {
        let scale = largest(x).max(floor);
        if scale == 0.0 {
            continue;
        }
        let d = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs() / scale)
            .fold(0.0, f64::max);
        if d > worst.0 {
            worst = (d, name.clone());
        }
    }
    (loss, map, worst.0, worst.1)
}
