//! ResNet-50 against timm 1.0.31 with the same synthetic weights (eval mode in f32, train mode in
//! f64; square and non-square inputs), and its parameter count.

mod common;

use candle_core::{DType, Device};
use common::{compare, reference, MapSummary};
use scfnet_backbones::{synthetic_image, synthetic_var_builder, Backbone, ResNet50};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    trainable_params: usize,
    bn_running_stats: usize,
    runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    input: String,
    shape: Vec<usize>,
    train: bool,
    dtype: String,
    maps: Vec<MapSummary>,
}

#[test]
fn feature_maps_match_timm() {
    let r: Reference = reference("resnet50.json");
    let mut worst = 0.0f64;
    for run in &r.runs {
        // A fresh network per run: train mode updates the running statistics.
        // Train mode is compared in f64 (see the reference script), eval mode in f32.
        let dtype = if run.dtype == "float64" {
            DType::F64
        } else {
            DType::F32
        };
        let (vb, _) = synthetic_var_builder(dtype, &Device::Cpu);
        let net = ResNet50::new(vb).unwrap();
        let x = synthetic_image(&run.input, &run.shape, dtype, &Device::Cpu).unwrap();
        let f = net.features(&x, run.train).unwrap();
        for (i, (got, want)) in f.as_array().into_iter().zip(&run.maps).enumerate() {
            let what = format!("{} train={} x{}", run.input, run.train, i + 1);
            let tol = if dtype == DType::F64 { 1e-10 } else { 1e-4 };
            worst = worst.max(compare(&what, got, want, tol));
        }
    }
    eprintln!("ResNet-50 vs timm: max relative error {worst:.2e}");
}

#[test]
fn parameter_count_matches_timm() {
    let r: Reference = reference("resnet50.json");
    let (vb, weights) = synthetic_var_builder(DType::F32, &Device::Cpu);
    ResNet50::new(vb).unwrap();
    let (mut trainable, mut stats) = (0, 0);
    for (name, shape) in weights.requested() {
        let n: usize = shape.iter().product();
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            stats += n;
        } else {
            trainable += n;
        }
    }
    assert_eq!(trainable, r.trainable_params);
    assert_eq!(stats, r.bn_running_stats);
    assert_eq!(trainable, 23_508_032);
}
