//! Comparing backbone feature maps with the summaries the reference scripts wrote.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use candle_core::DType;
use serde::Deserialize;

pub use scfnet_backbones::reference::{compare, Run};

/// Reads `tests/data/backbones/NAME` as JSON.
pub fn reference<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    scfnet_backbones::reference::read(env!("CARGO_MANIFEST_DIR"), &format!("backbones/{name}"))
}

/// A backbone reference file: parameter counts and runs on synthetic inputs.
#[derive(Deserialize)]
pub struct Reference {
    pub trainable_params: usize,
    pub bn_running_stats: usize,
    pub runs: Vec<Run>,
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
            let e = compare(&what, got, want, run.tolerance());
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
