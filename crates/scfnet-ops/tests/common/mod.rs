//! Shared helpers of the scfnet-ops tests.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use candle_core::{Device, Result, Tensor, Var};

/// Gradient of `sum(f(x) * weight)` with respect to `x`, by candle's autograd.
pub fn autograd(
    x: &[f64],
    shape: &[usize],
    weight: &Tensor,
    f: &dyn Fn(&Tensor) -> Result<Tensor>,
) -> Vec<f64> {
    let var = Var::from_vec(x.to_vec(), shape, &Device::Cpu).unwrap();
    let loss = f(var.as_tensor())
        .unwrap()
        .mul(weight)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    grads
        .get(var.as_tensor())
        .expect("input has a gradient")
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// The same gradient by central finite differences (step `h`), on every coordinate.
pub fn numeric(
    x: &[f64],
    shape: &[usize],
    weight: &Tensor,
    h: f64,
    f: &dyn Fn(&Tensor) -> Result<Tensor>,
) -> Vec<f64> {
    let loss = |v: &[f64]| -> f64 {
        let t = Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap();
        f(&t)
            .unwrap()
            .mul(weight)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            probe[i] = x[i] + h;
            let up = loss(&probe);
            probe[i] = x[i] - h;
            let down = loss(&probe);
            probe[i] = x[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

#[allow(unused_imports)] // not every test crate draws values
pub use scfnet_ops::check::values;

/// Asserts two vectors agree within `tol` (absolute, scaled by max(1, |want|)).
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / w.abs().max(1.0);
        assert!(
            err <= tol,
            "{what}[{i}]: got {g}, want {w} (rel err {err:.2e} > {tol:.0e})"
        );
    }
}
