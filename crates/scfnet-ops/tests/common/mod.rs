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

/// Deterministic pseudo-random values in `[-scale, scale)` (xorshift), distinct almost surely.
pub fn values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let u = (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
            (2.0 * u - 1.0) * scale
        })
        .collect()
}

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
