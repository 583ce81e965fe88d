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
