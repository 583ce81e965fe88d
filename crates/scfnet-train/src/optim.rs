//! SGD with momentum as Paddle's `Momentum` optimiser applies it (candle 0.11 has none).
//!
//! Per step, for every parameter `w` with gradient `g`: `g ← g + λ·w` (coupled L2 weight decay,
//! λ per parameter group: 5e-4, or 0 where a parameter opts out), `v ← μ·v + g`,
//! `w ← w − lr·m·v` with `m` the group's learning-rate multiplier (0.1 for the backbone).

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use scfnet_ops::{sgd_momentum_update_all, SgdParam, SgdSettings};

/// Parameters sharing a learning-rate multiplier and a weight decay.
pub struct ParamGroup {
    /// The parameters.
    pub vars: Vec<Var>,
    /// Multiplier of the global learning rate.
    pub lr_mult: f64,
    /// Coupled L2 weight decay.
    pub weight_decay: f64,
}

/// SGD with momentum, Paddle semantics.
pub struct SgdMomentum {
    groups: Vec<ParamGroup>,
    momentum: f64,
    velocity: Vec<Vec<Option<Tensor>>>,
}

impl SgdMomentum {
    /// An optimiser over `groups` with `momentum` (0.9 in the paper).
    pub fn new(groups: Vec<ParamGroup>, momentum: f64) -> Self {
        let velocity = groups.iter().map(|g| vec![None; g.vars.len()]).collect();
        Self {
            groups,
            momentum,
            velocity,
        }
    }

    /// One update with the global learning rate `lr`. Parameters without a gradient are left as
    /// they are (and keep their velocity).
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let mut params = Vec::new();
        for (group, velocities) in self.groups.iter().zip(self.velocity.iter_mut()) {
            let settings = SgdSettings {
                momentum: self.momentum,
                weight_decay: group.weight_decay,
                step: lr * group.lr_mult,
            };
            for (var, velocity) in group.vars.iter().zip(velocities.iter_mut()) {
                if let Some(grad) = grads.get(var.as_tensor()) {
                    params.push(SgdParam {
                        weight: var,
                        velocity,
                        grad,
                        settings,
                    });
                }
            }
        }
        // All at once: on CUDA a few launches for the whole network.
        sgd_momentum_update_all(&mut params)
    }

    /// The velocity buffers (for checkpoints), group by group; `None` before the first update.
    pub fn velocities(&self) -> &[Vec<Option<Tensor>>] {
        &self.velocity
    }

    /// Restores the velocity of parameter `index` of group `group` (from a checkpoint).
    pub fn set_velocity(&mut self, group: usize, index: usize, velocity: Tensor) -> Result<()> {
        let slot = self
            .velocity
            .get_mut(group)
            .and_then(|g| g.get_mut(index))
            .ok_or_else(|| {
                candle_core::Error::Msg(format!("no parameter {index} in group {group}"))
            })?;
        *slot = Some(velocity);
        Ok(())
    }

    /// The parameter groups.
    pub fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }
}
