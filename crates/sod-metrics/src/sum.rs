//! Pairwise summation in the order numpy uses for contiguous arrays.
//!
//! pysodmetrics takes every mean with numpy, which sums contiguous arrays pairwise: blocks of at
//! most 128 values are summed with eight interleaved accumulators, longer runs are split in two
//! (the split point rounded down to a multiple of 8) and summed recursively. Using the same order
//! makes our means agree with the reference to the last bit on contiguous data, and is more
//! accurate than a plain running sum on large images.

/// Length below which numpy falls back to a plain running sum.
const UNROLL: usize = 8;
/// Largest block summed with the eight-accumulator loop.
const BLOCK: usize = 128;

/// Sums `len` values produced by `value(i)` for `i` in `offset..offset + len`, pairwise.
///
/// `value` is called exactly once per index. This is how every mean of the crate is taken.
#[inline]
pub fn pairwise_sum_by<F: Fn(usize) -> f64>(offset: usize, len: usize, value: &F) -> f64 {
    if len < UNROLL {
        let mut acc = 0.0;
        for i in offset..offset + len {
            acc += value(i);
        }
        acc
    } else if len <= BLOCK {
        let mut r = [0.0f64; UNROLL];
        for (k, slot) in r.iter_mut().enumerate() {
            *slot = value(offset + k);
        }
        let whole = len - len % UNROLL;
        let mut i = UNROLL;
        while i < whole {
            for (k, slot) in r.iter_mut().enumerate() {
                *slot += value(offset + i + k);
            }
            i += UNROLL;
        }
        let mut acc = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for j in offset + whole..offset + len {
            acc += value(j);
        }
        acc
    } else {
        let mut half = len / 2;
        half -= half % UNROLL;
        pairwise_sum_by(offset, half, value) + pairwise_sum_by(offset + half, len - half, value)
    }
}

/// Number of interleaved accumulators of [`sum_lanes`].
const LANES: usize = 8;

/// Sums `K` values per index over `range`, each with eight interleaved accumulators.
///
/// A single running sum is one long chain of dependent additions (the CPU waits for each);
/// eight independent chains run in parallel. The order is fixed, so results are deterministic.
/// Used for the S-measure and weighted F-measure sums, whose tolerance is 1e-9.
#[inline]
pub fn sum_lanes<const K: usize>(
    range: std::ops::Range<usize>,
    f: impl Fn(usize) -> [f64; K],
) -> [f64; K] {
    let mut acc = [[0.0f64; K]; LANES];
    let len = range.end - range.start;
    let whole = range.start + len - len % LANES;
    let mut i = range.start;
    while i < whole {
        for (lane, a) in acc.iter_mut().enumerate() {
            let v = f(i + lane);
            for k in 0..K {
                a[k] += v[k];
            }
        }
        i += LANES;
    }
    for j in whole..range.end {
        let v = f(j);
        for k in 0..K {
            acc[0][k] += v[k];
        }
    }
    let mut out = [0.0; K];
    for k in 0..K {
        out[k] = ((acc[0][k] + acc[1][k]) + (acc[2][k] + acc[3][k]))
            + ((acc[4][k] + acc[5][k]) + (acc[6][k] + acc[7][k]));
    }
    out
}

/// Pairwise sum of a slice (numpy's `np.sum` on a contiguous `float64` array).
#[inline]
pub fn pairwise_sum(values: &[f64]) -> f64 {
    pairwise_sum_by(0, values.len(), &|i| values[i])
}

/// Pairwise mean of a slice; `NaN` for an empty slice, as numpy returns.
#[inline]
pub fn pairwise_mean(values: &[f64]) -> f64 {
    pairwise_sum(values) / values.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sums_are_plain_running_sums() {
        let v = [0.1, 0.2, 0.3, 0.4, 0.5];
        let mut plain = 0.0;
        for x in v {
            plain += x;
        }
        assert_eq!(pairwise_sum(&v).to_bits(), plain.to_bits());
    }

    #[test]
    fn block_sum_uses_eight_accumulators() {
        // 0.1 * i over 20 values: compute the documented order by hand.
        let v: Vec<f64> = (0..20).map(|i| 0.1 * i as f64).collect();
        let mut r = [0.0; 8];
        r.copy_from_slice(&v[..8]);
        for k in 0..8 {
            r[k] += v[8 + k];
        }
        let mut expect = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &v[16..] {
            expect += x;
        }
        assert_eq!(pairwise_sum(&v).to_bits(), expect.to_bits());
    }

    #[test]
    fn long_sums_are_accurate() {
        // A million copies of 0.1: a running sum drifts by ~1e-6, pairwise stays near exact.
        let v = vec![0.1f64; 1_000_000];
        let s = pairwise_sum(&v);
        assert!((s - 100_000.0).abs() < 1e-8, "{s}");
        let mut running = 0.0;
        for x in &v {
            running += x;
        }
        assert!((running - 100_000.0).abs() > 1e-7);
    }

    #[test]
    fn lane_sums_agree_with_exact_sums() {
        let v: Vec<f64> = (0..1001).map(|i| (i as f64 * 0.37).sin()).collect();
        let [a, b] = sum_lanes(3..1001, |i| [v[i], 2.0 * v[i]]);
        let exact: f64 = v[3..].iter().sum();
        assert!((a - exact).abs() < 1e-12 && (b - 2.0 * exact).abs() < 1e-12);
        assert_eq!(sum_lanes(5..5, |_| [1.0]), [0.0]);
    }

    #[test]
    fn empty_mean_is_nan() {
        assert!(pairwise_mean(&[]).is_nan());
    }
}
