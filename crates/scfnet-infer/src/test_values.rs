//! Fixed inputs for the crate's tests: reproducible, unlike an unseeded generator.

use candle_core::{Device, Tensor};

/// Values in `[-1, 1]`, a fixed function of the position and `seed`, shaped `shape`.
pub(crate) fn values(shape: &[usize], seed: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i as f32 * 0.618 + seed) * 1.7).sin())
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}
