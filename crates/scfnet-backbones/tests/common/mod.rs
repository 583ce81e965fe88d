//! Comparing backbone feature maps with the summaries the reference scripts wrote.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use candle_core::{DType, Tensor};
use serde::Deserialize;

/// What a reference script stored about one feature map.
#[derive(Deserialize)]
pub struct MapSummary {
    pub shape: Vec<usize>,
    pub mean: f64,
    pub std: f64,
    pub absmax: f64,
    pub step: usize,
    pub sample: Vec<f64>,
}

/// Reads `tests/data/backbones/NAME` as JSON.
pub fn reference<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/backbones")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Compares a map with its summary: shape exactly; the sampled values, mean and std within
/// `tol` relative to the map's largest |value|. Returns the largest relative error seen.
pub fn compare(what: &str, got: &Tensor, want: &MapSummary, tol: f64) -> f64 {
    assert_eq!(got.dims(), want.shape.as_slice(), "{what}: shape");
    let flat = got
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let scale = want.absmax.max(1e-12);
    let mut worst = 0.0f64;
    for (k, &w) in want.sample.iter().enumerate() {
        let g = flat[k * want.step];
        worst = worst.max((g - w).abs() / scale);
    }
    let n = flat.len() as f64;
    let mean = flat.iter().sum::<f64>() / n;
    let std = (flat.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    worst = worst
        .max((mean - want.mean).abs() / scale)
        .max((std - want.std).abs() / scale);
    assert!(
        worst <= tol,
        "{what}: max relative error {worst:.2e} > {tol:.0e}"
    );
    worst
}

/// A backbone reference file: parameter counts and runs on synthetic inputs.
#[derive(Deserialize)]
pub struct Reference {
    pub trainable_params: usize,
    pub bn_running_stats: usize,
    pub runs: Vec<Run>,
}

/// One forward pass of the reference.
#[derive(Deserialize)]
pub struct Run {
    pub input: String,
    pub shape: Vec<usize>,
    pub train: bool,
    pub dtype: String,
    pub maps: Vec<MapSummary>,
}

/// Builds a backbone from a weight source.
pub type Build =
    fn(candle_nn::VarBuilder) -> candle_core::Result<Box<dyn scfnet_backbones::Backbone>>;

/// Runs every reference run on a fresh synthetic-weight backbone and compares x1…x5
/// (f32: ≤ 1e-4, f64: ≤ 1e-10 relative to each map's largest |value|). Returns the largest error.
pub fn check_runs(label: &str, r: &Reference, build: Build) -> f64 {
    use candle_core::Device;
    let mut worst = 0.0f64;
    let f64_runs = r.runs.iter().filter(|run| run.dtype == "float64").count();
    for run in &r.runs {
        let dtype = if run.dtype == "float64" {
            DType::F64
        } else {
            DType::F32
        };
        // A fresh network per run: train mode updates the running statistics.
        let (vb, _) = scfnet_backbones::synthetic_var_builder(dtype, &Device::Cpu);
        let net = build(vb).unwrap();
        let x =
            scfnet_backbones::synthetic_image(&run.input, &run.shape, dtype, &Device::Cpu).unwrap();
        let f = net.features(&x, run.train).unwrap();
        for (i, (got, want)) in f.as_array().into_iter().zip(&run.maps).enumerate() {
            let what = format!("{label} {} train={} x{}", run.input, run.train, i + 1);
            let tol = if dtype == DType::F64 { 1e-10 } else { 1e-4 };
            let e = compare(&what, got, want, tol);
            if dtype == DType::F32 {
                worst = worst.max(e);
            }
        }
    }
    eprintln!("{label}: max relative error in f32 {worst:.2e}; {f64_runs} f64 runs within 1e-10");
    worst
}

/// `(trainable, running statistics)` element counts of a backbone's weights.
pub fn count_params(build: Build) -> (usize, usize) {
    let (vb, weights) =
        scfnet_backbones::synthetic_var_builder(DType::F32, &candle_core::Device::Cpu);
    build(vb).unwrap();
    let (mut trainable, mut stats) = (0, 0);
    for (name, shape) in weights.requested() {
        let n: usize = shape.iter().product();
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            stats += n;
        } else {
            trainable += n;
        }
    }
    (trainable, stats)
}
