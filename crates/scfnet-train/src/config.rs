//! The settings of a training run; [`TrainConfig::paper`] is the authors' recipe (spec §3.5, §4).

use scfnet_data::PAPER_SIZES;
use scfnet_model::{InputSide, ModelKind};
use serde::{Deserialize, Serialize};

use crate::schedule::WarmupCosine;

/// The most epochs a run may have ([`TrainConfig::check`]): the paper trains 69; a plan or a
/// command line asking for more is a mistake, not a wish.
pub const MAX_EPOCHS: usize = 10_000;

/// Everything that defines a run's result (saved in every checkpoint, so a resume continues with
/// it). How a run is executed — loader threads, checkpoint frequency, output folder — is in
/// [`crate::FitOptions`] and may change between invocations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The network being trained.
    pub model: ModelKind,
    /// Epochs.
    pub epochs: usize,
    /// Samples per batch.
    pub batch: usize,
    /// Input sides; each batch draws one (each checked on reading).
    pub sizes: Vec<InputSide>,
    /// Peak learning rate (after warm-up).
    pub max_lr: f64,
    /// Learning rate at the start of warm-up and at the end of the cosine.
    pub min_lr: f64,
    /// Warm-up length in epochs (the original: `5 · (N / B + 1)` iterations).
    pub warmup_epochs: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Coupled L2 weight decay.
    pub weight_decay: f64,
    /// Learning-rate multiplier of the backbone.
    pub backbone_lr_mult: f64,
    /// Stochastic depth of the backbone in training (Swin-B only; see
    /// [`ModelKind::paper_drop_path`]). Absent from older checkpoints, where it reads as 0.
    #[serde(default)]
    pub drop_path: f64,
    /// Seed of data order, augmentation and fresh weights.
    pub seed: u64,
    /// Run the original augmentation chain (off: normalisation and resize only).
    pub augment: bool,
    /// Side of the validation input (checked on reading).
    pub test_size: InputSide,
    /// Skip (and count) samples that fail to load instead of stopping.
    pub skip_bad_samples: bool,
}

impl TrainConfig {
    /// The authors' recipe for `model`: 69 epochs, batch 128, sides 224–352, lr 6.4e-4 → 6.4e-2 →
    /// 6.4e-4 with 5 warm-up epochs, momentum 0.9, weight decay 5e-4, backbone lr × 0.1.
    pub fn paper(model: ModelKind) -> Self {
        Self {
            model,
            epochs: 69,
            batch: 128,
            // The authors' Swin-B takes 384×384 only.
            sizes: if model.spec().fixed_side {
                vec![model.default_size()]
            } else {
                PAPER_SIZES
                    .iter()
                    .map(|&s| InputSide::new(s).expect("the paper's sides are multiples of 32"))
                    .collect()
            },
            max_lr: 6.4e-2,
            min_lr: 6.4e-4,
            warmup_epochs: 5.0,
            momentum: 0.9,
            weight_decay: 5e-4,
            backbone_lr_mult: 0.1,
            drop_path: model.paper_drop_path(),
            seed: 0,
            augment: true,
            test_size: model.default_size(),
            skip_bad_samples: true,
        }
    }

    /// Batches per epoch for `samples` training samples (the last, partial batch kept).
    pub fn batches_per_epoch(&self, samples: usize) -> usize {
        samples.div_ceil(self.batch.max(1))
    }

    /// The per-iteration learning-rate schedule for `samples` training samples: the paper's
    /// formula, generalised to any warm-up length and epoch count.
    pub fn schedule(&self, samples: usize) -> WarmupCosine {
        let per_epoch = self.batches_per_epoch(samples) as f64;
        WarmupCosine {
            min_lr: self.min_lr,
            max_lr: self.max_lr,
            warmup: self.warmup_epochs * (samples as f64 / self.batch as f64 + 1.0),
            t_max: (per_epoch * (self.epochs as f64 - self.warmup_epochs)).max(1.0),
        }
    }

    /// Refuses settings that cannot run.
    pub fn check(&self) -> Result<(), String> {
        if self.epochs == 0 || self.batch == 0 {
            return Err("epochs and batch size must be at least 1".into());
        }
        if self.epochs > MAX_EPOCHS {
            return Err(format!(
                "{} epochs is more than the {MAX_EPOCHS} a run may have (the paper trains 69)",
                self.epochs
            ));
        }
        if self.sizes.is_empty() {
            return Err("at least one input size is needed".into());
        }
        let spec = self.model.spec();
        if spec.fixed_side && self.sizes.iter().any(|&s| s != spec.input_side) {
            let side = spec.input_side;
            return Err(format!(
                "the {} network takes {side}x{side} input only",
                spec.name
            ));
        }
        let finite = [
            ("peak learning rate", self.max_lr),
            ("minimum learning rate", self.min_lr),
            ("warm-up length", self.warmup_epochs),
            ("momentum", self.momentum),
            ("weight decay", self.weight_decay),
            ("backbone learning-rate multiplier", self.backbone_lr_mult),
            ("stochastic-depth rate", self.drop_path),
        ];
        if let Some((name, v)) = finite.iter().find(|(_, v)| !v.is_finite()) {
            return Err(format!("the {name} must be a finite number, got {v}"));
        }
        if !(self.max_lr > 0.0 && self.min_lr >= 0.0 && self.min_lr <= self.max_lr) {
            return Err(format!(
                "learning rates must satisfy 0 <= minimum <= peak, peak > 0; got {} and {}",
                self.min_lr, self.max_lr
            ));
        }
        if self.warmup_epochs < 0.0 || self.weight_decay < 0.0 || self.backbone_lr_mult < 0.0 {
            return Err("the warm-up, weight decay and backbone multiplier must be >= 0".into());
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(format!("momentum must be in [0, 1), got {}", self.momentum));
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            return Err(format!(
                "the stochastic-depth rate must be in [0, 1), got {}",
                self.drop_path
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_schedule_is_the_authors() {
        let c = TrainConfig::paper(ModelKind::Student);
        assert_eq!(c.schedule(10553), WarmupCosine::paper(10553, 128, 69));
        assert_eq!(c.schedule(80000), WarmupCosine::paper(80000, 128, 69));
        assert!(c.check().is_ok());
        // A side that is not a multiple of 32 cannot be in a config: refused on reading.
        let json = serde_json::to_string(&c).unwrap().replace("[224,", "[100,");
        let err = serde_json::from_str::<TrainConfig>(&json).unwrap_err();
        assert!(err.to_string().contains("input side 100"), "{err}");
    }

    #[test]
    fn the_paper_recipe_is_valid_for_every_model() {
        for kind in ModelKind::ALL {
            assert_eq!(TrainConfig::paper(kind).check(), Ok(()), "{kind}");
        }
    }
}
