//! The training step shared by full supervision and distillation: a train-mode forward of the
//! network, the loss against a mask or the frozen teacher's map, backward, and one SGD update.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use scfnet_model::{ModelKind, Scfnet};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::loss::{distillation_loss, supervised_loss};
use crate::optim::SgdMomentum;
use crate::params::{init_fresh, param_groups};

/// What a step learns from.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// Ground-truth masks `(B, 1, H, W)` in `[0, 1]` (full supervision).
    Mask(&'a Tensor),
    /// The frozen teacher's `p2` logits `(B, 1, H, W)` on the same batch (distillation).
    Teacher(&'a Tensor),
}

/// Loss and learning rate of one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// The weighted total `L2 + L3/2 + L4/4 + L5/8`.
    pub loss: f64,
    /// The four side losses (`p2 … p5`).
    pub parts: [f64; 4],
    /// The global learning rate used.
    pub lr: f64,
}

/// A frozen teacher in eval mode (BatchNorm running statistics, no gradients), its BatchNorms
/// folded into their convolutions: the inference path, one convolution with bias and activation
/// per block.
pub struct Teacher {
    net: Scfnet,
}

impl Teacher {
    /// Wraps a network built on fixed weights (e.g. `VarBuilder::from_mmaped_safetensors`) and
    /// folds its BatchNorms ([`Scfnet::fold_batch_norms`]); the maps equal the unfolded
    /// network's up to f32 rounding. The folded weights sit beside the loaded ones.
    pub fn new(mut net: Scfnet) -> Result<Self> {
        net.fold_batch_norms()?;
        Ok(Self { net })
    }

    /// The teacher's `p2` logits for a normalised batch `(B, 3, H, W)`, detached.
    pub fn p2(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.net.side_outputs(images, false)?.p2.detach())
    }

    /// Which network the teacher is.
    pub fn kind(&self) -> ModelKind {
        self.net.kind()
    }
}

/// A network being trained: its variables, the optimiser and the settings.
pub struct Trainer {
    config: TrainConfig,
    varmap: VarMap,
    net: Scfnet,
    optimizer: SgdMomentum,
    names: Vec<Vec<String>>,
    device: Device,
}

impl Trainer {
    /// A fresh network of `config.model` (stochastic depth `config.drop_path`) on `device` in
    /// `dtype`, initialised from `config.seed` (see [`init_fresh`]).
    pub fn fresh(config: TrainConfig, device: &Device, dtype: DType) -> Result<Self> {
        let varmap = VarMap::new();
        let net = Scfnet::with_drop_path(
            config.model,
            VarBuilder::from_varmap(&varmap, dtype, device),
            config.drop_path,
        )?;
        init_fresh(&varmap, config.seed)?;
        Ok(Self::from_parts(config, varmap, net, device))
    }

    /// A trainer over a network already built on `varmap` (e.g. with chosen weights).
    pub fn from_parts(config: TrainConfig, varmap: VarMap, net: Scfnet, device: &Device) -> Self {
        let (groups, names) = param_groups(&varmap, &config);
        let optimizer = SgdMomentum::new(groups, config.momentum);
        Self {
            config,
            varmap,
            net,
            optimizer,
            names,
            device: device.clone(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The network (for evaluation: `side_outputs(x, false)`).
    pub fn net(&self) -> &Scfnet {
        &self.net
    }

    /// Every variable, running statistics included.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The optimiser.
    pub fn optimizer(&self) -> &SgdMomentum {
        &self.optimizer
    }

    /// Mutable optimiser (to restore its state).
    pub fn optimizer_mut(&mut self) -> &mut SgdMomentum {
        &mut self.optimizer
    }

    /// Parameter names, group by group, in the optimiser's order.
    pub fn param_names(&self) -> &[Vec<String>] {
        &self.names
    }

    /// One step on a normalised batch `images` `(B, 3, H, W)` at learning rate `lr`; `epoch`
    /// sets the boundary band of full supervision; `step` names the step in errors. A NaN or
    /// infinite loss stops before any update, naming the part.
    pub fn step(
        &mut self,
        images: &Tensor,
        target: Target,
        epoch: usize,
        step: usize,
        lr: f64,
    ) -> Result<StepOutcome> {
        let out = self.net.side_outputs(images, true)?;
        let (total, parts) = match target {
            Target::Mask(mask) => supervised_loss(out.as_array(), mask, epoch)?,
            Target::Teacher(p2) => distillation_loss(out.as_array(), p2)?,
        };
        // The backward pass is queued before the loss is read, so that on a GPU it runs while
        // the host waits; the update comes only after the loss was found finite. The five
        // values come to the host in one copy (one synchronisation, not five).
        let grads = total.backward()?;
        let values: Vec<Tensor> = std::iter::once(&total)
            .chain(parts.iter())
            .map(Tensor::detach)
            .collect();
        let read: Vec<f64> = Tensor::stack(&values, 0)?.to_dtype(DType::F64)?.to_vec1()?;
        let loss = read[0];
        let mut values = [0.0; 4];
        values.copy_from_slice(&read[1..]);
        let bad = values
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
            .map(|(i, v)| (format!("p{} (side output {})", i + 2, i + 2), *v))
            .or_else(|| (!loss.is_finite()).then(|| ("total".to_string(), loss)));
        if let Some((part, value)) = bad {
            return Err(TrainError::NonFinite {
                step,
                epoch,
                part,
                value,
            });
        }
        self.optimizer.step(&grads, lr)?;
        Ok(StepOutcome {
            loss,
            parts: values,
            lr,
        })
    }
}
