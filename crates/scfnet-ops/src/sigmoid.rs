//! The logistic function on plain slices, vectorised: the last step of inference, run on the
//! calling thread beside the network (`1 / (1 + e^(−x))` for every pixel of a map).

use crate::simd;

/// `e^x` for `f32` without a library call, so that loops over it vectorise: Cody–Waite range
/// reduction `x = k·ln 2 + r`, `|r| ≤ ln 2 / 2`, and Cephes' degree-6 polynomial for `e^r`
/// (relative error about 2e-7 against the exact value); inputs are clamped to `[−87.3, 88.7]`,
/// where the result is a normal float.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.7);
    let k = (x * LOG2E + 0.5).floor();
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^k through the exponent bits. `k` is an integer in [-126, 128] here, or NaN for a NaN
    // input (which `r`, and so the result, carries). `max`/`min` return the other operand for
    // a NaN, so `k_bits` is always finite and in range and the unchecked conversion exact; the
    // saturating `as` would not vectorise (one scalar conversion with checks per lane).
    #[allow(clippy::manual_clamp)] // `clamp` would keep the NaN, which is the point here.
    let k_bits = k.max(-126.0).min(128.0);
    // SAFETY: `k_bits` is finite and within i32's range (see above).
    let k_bits = unsafe { k_bits.to_int_unchecked::<i32>() };
    let two_k = f32::from_bits(((k_bits + 127) as u32) << 23);
    e_r * two_k
}

#[inline(always)]
fn sigmoid_plain(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = 1.0 / (1.0 + exp(-v));
    }
}

/// [`sigmoid_plain`] compiled for AVX2 and FMA (the same operations).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sigmoid_wide(x: &[f32], out: &mut [f32]) {
    sigmoid_plain(x, out)
}

/// `1 / (1 + e^(−x))` of every value, on the calling thread (no thread pool); absolute error
/// below 1e-7 against the exact logistic (values in `[0, 1]`).
pub fn sigmoid_values(x: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    #[cfg(target_arch = "x86_64")]
    if simd::wide() {
        // SAFETY: `simd::wide` checked that the CPU has AVX2 and FMA.
        unsafe { sigmoid_wide(x, &mut out) };
        return out;
    }
    sigmoid_plain(x, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_exact_logistic() {
        let xs: Vec<f32> = (-200_000..=200_000)
            .map(|i| i as f32 * 1e-4)
            .chain([-1e4, -100.0, -88.0, 88.0, 100.0, 1e4, 0.0, -0.0])
            .collect();
        let got = sigmoid_values(&xs);
        let mut plain = vec![0f32; xs.len()];
        sigmoid_plain(&xs, &mut plain);
        for ((&x, &g), &p) in xs.iter().zip(&got).zip(&plain) {
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!((g as f64 - want).abs() < 1e-7, "x = {x}: {g} vs {want}");
            assert_eq!(g.to_bits(), p.to_bits(), "x = {x}: wide and plain differ");
        }
        for (i, &x) in xs.iter().enumerate() {
            let rel = (exp(x) as f64 - (x as f64).exp()).abs() / (x as f64).exp();
            if x.abs() < 80.0 {
                assert!(rel < 3e-7, "exp({x}): relative error {rel} (#{i})");
            }
        }
    }

    #[test]
    fn a_nan_stays_nan_on_both_paths() {
        // Nine values, so that the NaNs fall in a full vector and in the remainder.
        let mut xs = vec![0.5f32; 9];
        xs[3] = f32::NAN;
        xs[8] = f32::NAN;
        let got = sigmoid_values(&xs);
        let mut plain = vec![0f32; xs.len()];
        sigmoid_plain(&xs, &mut plain);
        for (i, (&g, &p)) in got.iter().zip(&plain).enumerate() {
            assert_eq!(g.is_nan(), i == 3 || i == 8, "#{i}: {g}");
            assert_eq!(p.is_nan(), i == 3 || i == 8, "#{i}: {p}");
        }
    }
}
