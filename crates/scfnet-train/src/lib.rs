//! Training pieces of KD-SCFNet on candle: the losses ([`supervised_loss`], [`distillation_loss`]),
//! SGD with momentum in Paddle's semantics ([`SgdMomentum`]) and the warm-up + cosine schedule
//! ([`WarmupCosine`]). Each is checked against the authors' Paddle code
//! (`tests/reference/train/`).

#![warn(missing_docs)]

mod loss;
mod optim;
mod schedule;

pub use loss::{
    boundary_band, boundary_dice_loss, dice_loss, distillation_loss, kd_dice_loss, side_loss,
    supervised_loss, SIDE_WEIGHTS,
};
pub use optim::{ParamGroup, SgdMomentum};
pub use schedule::WarmupCosine;
