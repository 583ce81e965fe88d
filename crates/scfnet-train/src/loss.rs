//! The training losses of KD-SCFNet (spec §3.4 and §4): soft Dice, the boundary Dice with its
//! epoch-dependent band (PBSM), deep supervision over the four side outputs, and the KD loss.
//!
//! All inputs are `(B, 1, H, W)`: logits for predictions, masks in `[0, 1]` (soft after resizing).

use candle_core::{Result, Tensor, D};
use candle_nn::ops::sigmoid;
use scfnet_ops::max_pool2d_same;

/// Weights of the side outputs `p2, p3, p4, p5` in the total loss.
pub const SIDE_WEIGHTS: [f64; 4] = [1.0, 0.5, 0.25, 0.125];

/// `mean_batch(1 − (2 Σ a·b + 1) / (Σ a + Σ b + 1))`, sums per image over all other dimensions.
fn dice(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let n = a.dim(0)?;
    let a = a.reshape((n, ()))?;
    let b = b.reshape((n, ()))?;
    let inter = (a.mul(&b)?.sum(D::Minus1)? * 2.0)? + 1.0;
    let union = (a.sum(D::Minus1)? + b.sum(D::Minus1)?)? + 1.0;
    (1.0 - inter?.div(&union?)?)?.mean_all()
}

/// Soft Dice loss of logits `pred` against `mask`.
pub fn dice_loss(pred: &Tensor, mask: &Tensor) -> Result<Tensor> {
    dice(&sigmoid(pred)?, mask)
}

/// Width of the boundary band at a 0-based `epoch`: `max(1, 13 − 2·floor((epoch + 1) / 10))`.
pub fn boundary_band(epoch: usize) -> usize {
    13usize.saturating_sub(2 * ((epoch + 1) / 10)).max(1)
}

/// Inner boundary of a map in `[0, 1]`: `maxpool3×3(1 − m) − (1 − m)`.
fn inner_boundary(m: &Tensor) -> Result<Tensor> {
    let inv = (1.0 - m)?;
    max_pool2d_same(&inv, 3)? - inv
}

/// The inner boundary of a map in `[0, 1]` thickened by a `k × k` max-pool.
fn thick_boundary(m: &Tensor, k: usize) -> Result<Tensor> {
    max_pool2d_same(&inner_boundary(m)?, k)
}

/// Boundary Dice loss: Dice between the inner boundaries of `sigmoid(pred)` and `mask`, both
/// thickened by a `k × k` max-pool with `k` = [`boundary_band`]`(epoch)`.
pub fn boundary_dice_loss(pred: &Tensor, mask: &Tensor, epoch: usize) -> Result<Tensor> {
    let k = boundary_band(epoch);
    dice(
        &thick_boundary(&sigmoid(pred)?, k)?,
        &thick_boundary(mask, k)?,
    )
}

/// Full-supervision loss of one side output: Dice + boundary Dice.
pub fn side_loss(pred: &Tensor, mask: &Tensor, epoch: usize) -> Result<Tensor> {
    dice_loss(pred, mask)? + boundary_dice_loss(pred, mask, epoch)?
}

/// Deep supervision: `L2 + L3/2 + L4/4 + L5/8`; returns the total and the four side losses.
/// The mask's thickened boundary is computed once for the four outputs.
pub fn supervised_loss(
    outputs: [&Tensor; 4],
    mask: &Tensor,
    epoch: usize,
) -> Result<(Tensor, [Tensor; 4])> {
    let k = boundary_band(epoch);
    let mask_edge = thick_boundary(&mask.detach(), k)?;
    weighted(outputs, |p| {
        dice_loss(p, mask)? + dice(&thick_boundary(&sigmoid(p)?, k)?, &mask_edge)?
    })
}

/// KD loss of one student output against the teacher's `p2` logits: soft Dice between
/// `sigmoid(student)` and `sigmoid(teacher)` (the teacher is not differentiated).
pub fn kd_dice_loss(student: &Tensor, teacher_p2: &Tensor) -> Result<Tensor> {
    dice(&sigmoid(student)?, &sigmoid(&teacher_p2.detach())?)
}

/// Distillation: the KD Dice of the four student outputs against the teacher's `p2`, weighted
/// like [`supervised_loss`]; returns the total and the four parts.
pub fn distillation_loss(
    outputs: [&Tensor; 4],
    teacher_p2: &Tensor,
) -> Result<(Tensor, [Tensor; 4])> {
    weighted(outputs, |p| kd_dice_loss(p, teacher_p2))
}

fn weighted(
    outputs: [&Tensor; 4],
    loss: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<(Tensor, [Tensor; 4])> {
    let parts: Vec<Tensor> = outputs.iter().map(|p| loss(p)).collect::<Result<_>>()?;
    let mut total = parts[0].clone();
    for (part, w) in parts.iter().zip(SIDE_WEIGHTS).skip(1) {
        total = (total + (part * w)?)?;
    }
    Ok((total, parts.try_into().expect("four parts")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_follows_the_schedule() {
        let bands: Vec<usize> = [0, 8, 9, 18, 19, 28, 29, 38, 39, 48, 49, 58, 59, 68]
            .iter()
            .map(|&e| boundary_band(e))
            .collect();
        assert_eq!(bands, [13, 13, 11, 11, 9, 9, 7, 7, 5, 5, 3, 3, 1, 1]);
        assert_eq!(boundary_band(500), 1);
    }
}
