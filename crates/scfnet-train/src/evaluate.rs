//! Test-time maps and scores: the original test procedure (normalise, resize to the test side,
//! eval mode, `sigmoid(p2)`, bilinear `align_corners = true` back to the image size, ×255) and the
//! metrics of `sod-metrics` on a labeled dataset.

use candle_core::{DType, Device, Tensor};
use scfnet_data::{read_mask, read_rgb, test_input, Planar, SodDataset};
use scfnet_model::Scfnet;
use sod_metrics::{Accumulator, DatasetScores, GrayMap};

use crate::error::{Result, TrainError};

/// The 8-bit saliency map of one RGB image (`[0, 255]`), at the image's own size.
pub fn predict_map(
    net: &Scfnet,
    rgb: &Planar,
    size: usize,
    device: &Device,
    dtype: DType,
) -> Result<Vec<u8>> {
    let x = Tensor::from_vec(test_input(rgb, size), (1, 3, size, size), device)?.to_dtype(dtype)?;
    let logits = net.side_outputs(&x, false)?.p2;
    let prob = candle_nn::ops::sigmoid(&logits)?.to_device(&Device::Cpu)?;
    let full = scfnet_ops::resize_bilinear(&prob, (rgb.height, rgb.width), true)?;
    let values = full.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    Ok(values
        .iter()
        .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect())
}

/// Scores `net` on a labeled `dataset` at input side `size`; `each` sees every map with its
/// sample's stem (to write it, say).
pub fn evaluate(
    net: &Scfnet,
    dataset: &SodDataset,
    size: usize,
    device: &Device,
    dtype: DType,
    mut each: impl FnMut(&str, &GrayMap) -> Result<()>,
) -> Result<DatasetScores> {
    let mut acc = Accumulator::new();
    for sample in dataset.samples() {
        let mask_path = sample.mask.as_ref().ok_or_else(|| {
            TrainError::Config(format!(
                "{}: evaluation needs masks",
                sample.image.display()
            ))
        })?;
        let rgb = read_rgb(&sample.image)?;
        let mask = read_mask(mask_path)?;
        let map = predict_map(net, &rgb, size, device, dtype)?;
        let pred = GrayMap::new(rgb.width, rgb.height, map)
            .map_err(|e| TrainError::Config(format!("{}: {e}", sample.image.display())))?;
        let gt = GrayMap::new(
            mask.width,
            mask.height,
            mask.data
                .iter()
                .map(|v| v.round().clamp(0.0, 255.0) as u8)
                .collect(),
        )
        .map_err(|e| TrainError::Config(format!("{}: {e}", mask_path.display())))?;
        each(&sample.stem, &pred)?;
        acc.add(&pred, &gt)
            .map_err(|e| TrainError::Config(format!("{}: {e}", sample.image.display())))?;
    }
    Ok(acc.finish())
}
