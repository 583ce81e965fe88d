//! The one finiteness check of the workspace: where values enter (weight files) and leave
//! (checkpoints, maps), a NaN or infinity is an error naming the tensor, never a silent result.

use candle_core::{Result, Tensor};

/// Whether every element of `t` is finite (integer tensors always are). One subtraction and one
/// reduction on `t`'s device: `x − x` is 0 for finite `x` and NaN for NaN or ±∞.
pub fn all_finite(t: &Tensor) -> Result<bool> {
    if !t.dtype().is_float() || t.elem_count() == 0 {
        return Ok(true);
    }
    #[allow(clippy::eq_op)] // x − x is the point: NaN exactly where x is not finite.
    let s = (t - t)?
        .sum_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?;
    Ok(s.is_finite())
}

/// Whether every value of a slice is finite (no NaN, no infinity), on the calling thread: 64
/// values at a time without an early exit inside a block, so that the check vectorises.
pub fn all_finite_values(values: &[f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::wide() {
        // SAFETY: `simd::wide` checked that the CPU has AVX2.
        return unsafe { all_finite_wide(values) };
    }
    all_finite_plain(values)
}

/// The loop of [`all_finite_values`].
#[inline(always)]
fn all_finite_plain(values: &[f32]) -> bool {
    values
        .chunks(64)
        .all(|block| block.iter().fold(true, |ok, v| ok & v.is_finite()))
}

/// [`all_finite_plain`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn all_finite_wide(values: &[f32]) -> bool {
    all_finite_plain(values)
}

/// The names of the tensors of `named` that hold a NaN or an infinity.
pub fn non_finite_names<'a>(
    named: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
) -> Result<Vec<String>> {
    let mut bad = Vec::new();
    for (name, t) in named {
        if !all_finite(t)? {
            bad.push(name.to_owned());
        }
    }
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn one_bad_value_anywhere_is_found() {
        let good: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 1e30).collect();
        assert!(all_finite_values(&good) && all_finite_values(&[]));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            // First, last, and in a partial last block.
            for at in [0, 63, 64, 500, 999] {
                let mut v = good.clone();
                v[at] = bad;
                assert!(!all_finite_values(&v), "{bad} at {at}");
            }
        }
    }

    #[test]
    fn nan_and_infinities_are_found_in_every_float_type() {
        for dtype in [DType::F32, DType::F64, DType::F16, DType::BF16] {
            let ok = Tensor::new(&[1f32, -2.0, 0.0], &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            assert!(all_finite(&ok).unwrap(), "{dtype:?}");
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let t = Tensor::new(&[1f32, bad, 0.0], &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                assert!(!all_finite(&t).unwrap(), "{dtype:?} {bad}");
            }
        }
        let ints = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
        assert!(all_finite(&ints).unwrap());
        let a = Tensor::new(&[f32::NAN], &Device::Cpu).unwrap();
        let b = Tensor::new(&[1f32], &Device::Cpu).unwrap();
        assert_eq!(
            non_finite_names([("a", &a), ("b", &b)]).unwrap(),
            vec!["a".to_owned()]
        );
    }
}
