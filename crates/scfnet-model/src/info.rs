//! Parameter and MAC counts of a network, in the paper's convention and the plain one.

use candle_core::{DType, Device, Result};
use scfnet_backbones::{macs::count_macs, synthetic_image, synthetic_var_builder};
use serde::Serialize;

use crate::kind::ModelKind;
use crate::scfnet::Scfnet;

/// What `scfnet info` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// The variant.
    pub model: ModelKind,
    /// Input side used for the MACs.
    pub size: usize,
    /// Trainable parameters (PyTorch convention; no BN statistics).
    pub trainable_params: usize,
    /// BatchNorm running statistics (mean and variance).
    pub bn_statistics: usize,
    /// Parameters as `paddle.flops` counts them (the paper): trainable + BN statistics, minus
    /// parameters of non-leaf layers (Swin's relative-position tables).
    pub paddle_params: usize,
    /// Multiply-accumulates of conv, BN and linear layers at `size × size` (the paper's "FLOPs").
    pub macs: u64,
}

/// Builds `kind` on synthetic weights, runs one eval forward at `1 × 3 × size × size`, and counts.
pub fn model_info(kind: ModelKind, size: usize) -> Result<ModelInfo> {
    let (vb, weights) = synthetic_var_builder(DType::F32, &Device::Cpu);
    let net = Scfnet::new(kind, vb)?;
    let (mut trainable, mut stats, mut non_leaf) = (0, 0, 0);
    for (name, shape) in weights.requested() {
        let n: usize = shape.iter().product();
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            stats += n;
        } else {
            trainable += n;
            if name.ends_with("relative_position_bias_table") {
                non_leaf += n;
            }
        }
    }
    let x = synthetic_image("info", &[1, 3, size, size], DType::F32, &Device::Cpu)?;
    let (out, macs) = count_macs(|| net.side_outputs(&x, false));
    out?;
    Ok(ModelInfo {
        model: kind,
        size,
        trainable_params: trainable,
        bn_statistics: stats,
        paddle_params: trainable + stats - non_leaf,
        macs,
    })
}
