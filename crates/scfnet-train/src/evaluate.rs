//! Scores on a labeled dataset: the maps of the one inference path
//! ([`scfnet_model::predict_maps`], the authors' test procedure) against the masks, with the
//! metrics of `sod-metrics`.

use std::path::Path;

use candle_core::{DType, Device};
use image::RgbImage;
use rayon::prelude::*;
use scfnet_data::{decode_image, read_mask, Planar, Sample, SodDataset};
use scfnet_model::{predict_maps, InputSide, RgbRef, Scfnet};
use sod_metrics::{score_pair, Accumulator, DatasetScores, GrayMap, ImageScores, SaliencyPair};

use crate::error::{Result, TrainError};

/// Samples decoded together, and scored together, on all cores (a group's network passes run
/// between the two).
const GROUP: usize = 16;

/// Images per network pass on a GPU, where a pass of one image is bound by kernel launches (each
/// map then within the tolerance of its single-image map, as `scfnet predict --batch` gives). A
/// pass never spans two groups.
const GPU_IMAGES_PER_PASS: usize = 16;

/// Images per network pass: one on the CPU (the maps of `scfnet predict`'s default batch, whose
/// cores the network already fills), [`GPU_IMAGES_PER_PASS`] on a GPU.
fn images_per_pass(device: &Device) -> usize {
    if device.is_cpu() {
        1
    } else {
        GPU_IMAGES_PER_PASS
    }
}

/// Scores `net` on a labeled `dataset` at input side `side`; `each` sees every map with its
/// sample's stem (to write it, say), in the dataset's order. Images and masks are decoded, and
/// the maps scored, several at a time on all cores (the scores the same as one at a time); the
/// network runs [`images_per_pass`] images a pass.
pub fn evaluate(
    net: &Scfnet,
    dataset: &SodDataset,
    side: InputSide,
    device: &Device,
    dtype: DType,
    each: impl FnMut(&str, &GrayMap) -> Result<()>,
) -> Result<DatasetScores> {
    let per_pass = images_per_pass(device);
    evaluate_passes(net, dataset, side, device, dtype, per_pass, each)
}

/// [`evaluate`] with `per_pass` images a network pass.
fn evaluate_passes(
    net: &Scfnet,
    dataset: &SodDataset,
    side: InputSide,
    device: &Device,
    dtype: DType,
    per_pass: usize,
    mut each: impl FnMut(&str, &GrayMap) -> Result<()>,
) -> Result<DatasetScores> {
    // The network as `scfnet predict` runs it: BatchNorms folded (a copy; the training weights
    // are shared, not changed).
    let net = &net.folded()?;
    let mut acc = Accumulator::new();
    for chunk in dataset.samples().chunks(GROUP) {
        let decoded: Vec<Result<Decoded>> = chunk.par_iter().map(decode).collect();
        // The first failure in the dataset's order.
        let decoded = decoded.into_iter().collect::<Result<Vec<_>>>()?;
        let mut maps = Vec::with_capacity(chunk.len());
        for (samples, pairs) in chunk.chunks(per_pass).zip(decoded.chunks(per_pass)) {
            let images: Vec<RgbRef> = pairs.iter().map(Decoded::image).collect();
            match predict_maps(net, side, device, dtype, &images) {
                Ok(m) => maps.extend(m),
                Err(e) => return Err(inference_error(net, side, device, dtype, samples, pairs, e)),
            }
        }
        let scored: Vec<Result<(GrayMap, ImageScores)>> = chunk
            .par_iter()
            .zip(decoded.par_iter())
            .zip(maps.into_par_iter())
            .map(|((sample, pair), map)| score(&sample.image, pair, map))
            .collect();
        for (sample, scored) in chunk.iter().zip(scored) {
            let (pred, scores) = scored?;
            each(&sample.stem, &pred)?;
            acc.push(&scores);
        }
    }
    Ok(acc.finish())
}

/// A sample's image and mask, decoded.
struct Decoded<'a> {
    rgb: RgbImage,
    mask: Planar,
    /// Where the mask was read (named when it does not fit the map).
    mask_path: &'a Path,
}

impl Decoded<'_> {
    fn image(&self) -> RgbRef<'_> {
        RgbRef {
            pixels: self.rgb.as_raw(),
            width: self.rgb.width() as usize,
            height: self.rgb.height() as usize,
        }
    }
}

fn decode(sample: &Sample) -> Result<Decoded<'_>> {
    let mask_path = sample.mask.as_deref().ok_or_else(|| {
        TrainError::Config(format!(
            "{}: evaluation needs masks",
            sample.image.display()
        ))
    })?;
    let rgb = decode_image(&sample.image)?.into_rgb8();
    let mask = read_mask(mask_path)?;
    Ok(Decoded {
        rgb,
        mask,
        mask_path,
    })
}

/// A decoded mask as the grey map the metrics take (values rounded into 0..=255).
fn ground_truth(mask: &Planar) -> std::result::Result<GrayMap, sod_metrics::MetricsError> {
    let grey = mask
        .data
        .iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect();
    GrayMap::new(mask.width, mask.height, grey)
}

/// The map of the image at `image` as a grey map, and its scores against the image's mask.
fn score(image: &Path, pair: &Decoded, map: Vec<u8>) -> Result<(GrayMap, ImageScores)> {
    let metrics = |path: &Path| {
        let path = path.to_owned();
        move |source| TrainError::Metrics { path, source }
    };
    let (w, h) = (pair.rgb.width() as usize, pair.rgb.height() as usize);
    let pred = GrayMap::new(w, h, map).map_err(metrics(image))?;
    let gt = ground_truth(&pair.mask).map_err(metrics(pair.mask_path))?;
    let scores = score_pair(&SaliencyPair::from_maps(&pred, &gt).map_err(metrics(pair.mask_path))?);
    Ok((pred, scores))
}

/// The error of a network pass over `samples`, naming the image: a pass of several images is
/// run again one image at a time to find which one fails.
fn inference_error(
    net: &Scfnet,
    side: InputSide,
    device: &Device,
    dtype: DType,
    samples: &[Sample],
    pairs: &[Decoded],
    error: scfnet_model::PredictError,
) -> TrainError {
    let alone = |pair: &Decoded| predict_maps(net, side, device, dtype, &[pair.image()]);
    let (path, source) = match samples
        .iter()
        .zip(pairs)
        .find_map(|(s, p)| alone(p).err().map(|e| (s, e)))
    {
        Some((sample, e)) => (sample.image.clone(), e),
        None => (samples[0].image.clone(), error),
    };
    TrainError::Inference {
        path,
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TrainConfig, Trainer};
    use scfnet_data::synth::{generate, SynthConfig};
    use scfnet_model::ModelKind;

    /// 21 samples (a chunk of 16 and a short one) of 40–90 px.
    fn dataset(dir: &Path) -> SodDataset {
        let cfg = SynthConfig {
            count: 21,
            seed: 9,
            side: (40, 90),
            test_fraction: 0.0,
            clutter: 1,
        };
        generate(dir, &cfg, || {}).unwrap();
        SodDataset::labeled(dir, None).unwrap()
    }

    fn student() -> Trainer {
        let config = TrainConfig {
            seed: 3,
            ..TrainConfig::paper(ModelKind::Student)
        };
        Trainer::fresh(config, &Device::Cpu, DType::F32).unwrap()
    }

    /// The scores one image at a time, decoded, predicted and added in order (what `evaluate`
    /// did before it decoded and scored in parallel).
    fn one_at_a_time(
        net: &Scfnet,
        data: &SodDataset,
        side: InputSide,
    ) -> (DatasetScores, Vec<GrayMap>) {
        let net = net.folded().unwrap();
        let mut acc = Accumulator::new();
        let mut maps = Vec::new();
        for sample in data.samples() {
            let d = decode(sample).unwrap();
            let map = predict_maps(&net, side, &Device::Cpu, DType::F32, &[d.image()])
                .unwrap()
                .remove(0);
            let pred = GrayMap::new(d.rgb.width() as usize, d.rgb.height() as usize, map).unwrap();
            let gt = ground_truth(&d.mask).unwrap();
            acc.add(&pred, &gt).unwrap();
            maps.push(pred);
        }
        (acc.finish(), maps)
    }

    #[test]
    fn scores_and_maps_are_those_of_one_image_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let data = dataset(dir.path());
        let trainer = student();
        let side = InputSide::new(64).unwrap();
        let (want, want_maps) = one_at_a_time(trainer.net(), &data, side);
        let mut seen = Vec::new();
        let got = evaluate(
            trainer.net(),
            &data,
            side,
            &Device::Cpu,
            DType::F32,
            |stem, map| {
                seen.push((stem.to_owned(), map.clone()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, want);
        let stems: Vec<_> = data.samples().iter().map(|s| s.stem.clone()).collect();
        assert_eq!(
            seen.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
            stems
        );
        assert!(seen.iter().zip(&want_maps).all(|((_, a), b)| a == b));
        assert!(want.mae > 0.0 && want.mae.is_finite());
        // Several images a pass (a GPU's setting): each map within the batch tolerance of its
        // own, so the scores within a small margin of the same.
        let batched = evaluate_passes(
            trainer.net(),
            &data,
            side,
            &Device::Cpu,
            DType::F32,
            3,
            |_, _| Ok(()),
        )
        .unwrap();
        assert!(
            (batched.mae - want.mae).abs() < 1e-3,
            "{} vs {}",
            batched.mae,
            want.mae
        );
        assert!((batched.s_measure - want.s_measure).abs() < 1e-3);
    }

    #[test]
    fn a_bad_image_is_named_whatever_its_place_in_a_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let data = dataset(dir.path());
        let bad = data.samples()[18].image.clone();
        std::fs::write(&bad, b"not an image").unwrap();
        let trainer = student();
        let side = InputSide::new(64).unwrap();
        let mut seen = 0;
        let err = evaluate(
            trainer.net(),
            &data,
            side,
            &Device::Cpu,
            DType::F32,
            |_, _| {
                seen += 1;
                Ok(())
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().contains(&bad.display().to_string()),
            "{err}"
        );
        assert_eq!(seen, 16, "the first chunk was scored, the second stopped");
    }
}
