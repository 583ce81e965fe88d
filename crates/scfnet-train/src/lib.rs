//! Training of KD-SCFNet on candle: the losses ([`supervised_loss`], [`distillation_loss`]),
//! SGD with momentum in Paddle's semantics ([`SgdMomentum`]), the warm-up + cosine schedule
//! ([`WarmupCosine`]), the parameter groups of the recipe ([`param_groups`]), the step shared by
//! full supervision and distillation ([`Trainer`]), checkpoints with exact resume
//! ([`checkpoint`]) in a run folder whose names one type owns ([`RunDir`]), per-epoch validation ([`evaluate`]) and the loop ([`fit`]). Losses, optimiser
//! and one whole step are checked against the authors' Paddle code (`tests/reference/train/`).

#![warn(missing_docs)]

pub mod checkpoint;
mod config;
pub mod cross_device;
mod engine;
mod error;
mod evaluate;
mod feed;
mod fit;
mod loss;
mod optim;
pub mod params;
pub mod progress;
pub mod run_dir;
pub mod run_log;
mod schedule;

pub use config::TrainConfig;
pub use engine::{StepOutcome, Target, Teacher, Trainer};
pub use error::{Result, TrainError};
pub use evaluate::evaluate;
pub use fit::{fit, resume_state, validate_epoch, EpochScores, FitOptions, FitSummary};
pub use loss::{
    boundary_band, boundary_dice_loss, dice_loss, distillation_loss, kd_dice_loss, side_loss,
    supervised_loss, SIDE_WEIGHTS,
};
pub use optim::{ParamGroup, SgdMomentum};
pub use params::{init_fresh, load_backbone, load_weights, param_groups};
pub use progress::{FitEvent, ProgressCallback};
pub use run_dir::{RunDir, Start};
pub use schedule::WarmupCosine;

/// The examples of the crate's README.md, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
