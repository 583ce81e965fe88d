//! Scores on a labeled dataset: the maps of the one inference path
//! ([`scfnet_model::predict_maps`], the authors' test procedure) against the masks, with the
//! metrics of `sod-metrics`.

use candle_core::{DType, Device};
use scfnet_data::{decode_image, read_mask, SodDataset};
use scfnet_model::{predict_maps, InputSide, RgbRef, Scfnet};
use sod_metrics::{Accumulator, DatasetScores, GrayMap};

use crate::error::{Result, TrainError};

/// Scores `net` on a labeled `dataset` at input side `side`; `each` sees every map with its
/// sample's stem (to write it, say).
pub fn evaluate(
    net: &Scfnet,
    dataset: &SodDataset,
    side: InputSide,
    device: &Device,
    dtype: DType,
    mut each: impl FnMut(&str, &GrayMap) -> Result<()>,
) -> Result<DatasetScores> {
    // The network as `scfnet predict` runs it: BatchNorms folded (a copy; the training weights
    // are shared, not changed).
    let net = &net.folded()?;
    let mut acc = Accumulator::new();
    for sample in dataset.samples() {
        let mask_path = sample.mask.as_ref().ok_or_else(|| {
            TrainError::Config(format!(
                "{}: evaluation needs masks",
                sample.image.display()
            ))
        })?;
        let rgb = decode_image(&sample.image)?.into_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let mask = read_mask(mask_path)?;
        let image = RgbRef {
            pixels: rgb.as_raw(),
            width: w,
            height: h,
        };
        let map = predict_maps(net, side, device, dtype, &[image])
            .map_err(|source| TrainError::Inference {
                path: sample.image.clone(),
                source: Box::new(source),
            })?
            .remove(0);
        let metrics = |path: &std::path::Path| {
            let path = path.to_owned();
            move |source| TrainError::Metrics { path, source }
        };
        let pred = GrayMap::new(w, h, map).map_err(metrics(&sample.image))?;
        let gt = GrayMap::new(
            mask.width,
            mask.height,
            mask.data
                .iter()
                .map(|v| v.round().clamp(0.0, 255.0) as u8)
                .collect(),
        )
        .map_err(metrics(mask_path))?;
        each(&sample.stem, &pred)?;
        acc.add(&pred, &gt).map_err(metrics(mask_path))?;
    }
    Ok(acc.finish())
}
