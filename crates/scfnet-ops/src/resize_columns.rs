//! The column pass of the bilinear resize: every value of a resampled row is a weighted sum of
//! two values of a source row, `w0[x]·src[i0[x]] + w1[x]·src[i1[x]]`.
//!
//! The taps are stored column by column (arrays), so that the AVX2 kernel loads eight outputs'
//! indices and weights at once. Eight consecutive outputs read a short run of the source row
//! (under 16 values unless the row shrinks by more than about 2×): the kernel loads that run as
//! one or two vectors and picks the values out with permutes, and gathers only where the run is
//! longer. The products and the sum are the same operations, in the same order, as the scalar
//! loop (no fused multiply-add), so both give identical values.

use crate::elem::{f32s, f32s_mut, is_f32, Real};
use crate::resize::Tap;

/// The column taps of one resize `(in_len → out_len)`, as four arrays of `out_len` values.
pub(crate) struct ColumnTaps<T> {
    i0: Vec<i32>,
    i1: Vec<i32>,
    w0: Vec<T>,
    w1: Vec<T>,
    /// One past the farthest source column any tap reads.
    reach: usize,
    /// Per group of eight outputs (whole groups only): the first source index they read.
    group_base: Vec<i32>,
    /// Per group: how the AVX2 kernel reads the group's source run.
    group_run: Vec<Run>,
    /// `i0 − group_base`, per output of the whole groups.
    offset0: Vec<i32>,
    /// `i1 − group_base`, per output of the whole groups.
    offset1: Vec<i32>,
}

/// How eight consecutive outputs' source values are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// All within 8 values from the group's base: one load, permuted.
    One,
    /// All within 16 values: two loads, each permuted, blended.
    Two,
    /// Farther apart (or too close to the row's end for a whole load): gathers.
    Gather,
}

impl<T: Real> ColumnTaps<T> {
    /// The taps `taps` (of [`crate::resize::taps`]) stored by column.
    ///
    /// # Panics
    /// When a source index does not fit an `i32` (a row of over two billion values).
    pub(crate) fn new(taps: &[Tap<T>]) -> Self {
        let index = |i: usize| i32::try_from(i).expect("resize: source row too long");
        let reach = taps.iter().map(|t| t.i0.max(t.i1) + 1).max().unwrap_or(0);
        let groups = taps.chunks_exact(8);
        let mut out = Self {
            i0: taps.iter().map(|t| index(t.i0)).collect(),
            i1: taps.iter().map(|t| index(t.i1)).collect(),
            w0: taps.iter().map(|t| t.w0).collect(),
            w1: taps.iter().map(|t| t.w1).collect(),
            reach,
            group_base: Vec::with_capacity(groups.len()),
            group_run: Vec::with_capacity(groups.len()),
            offset0: Vec::with_capacity(8 * groups.len()),
            offset1: Vec::with_capacity(8 * groups.len()),
        };
        for group in groups {
            let base = group.iter().map(|t| t.i0.min(t.i1)).min().unwrap_or(0);
            let span = group
                .iter()
                .map(|t| t.i0.max(t.i1) + 1 - base)
                .max()
                .unwrap_or(0);
            let run = if span <= 8 && base + 8 <= reach {
                Run::One
            } else if span <= 16 && base + 16 <= reach {
                Run::Two
            } else {
                Run::Gather
            };
            out.group_base.push(index(base));
            out.group_run.push(run);
            out.offset0.extend(group.iter().map(|t| index(t.i0 - base)));
            out.offset1.extend(group.iter().map(|t| index(t.i1 - base)));
        }
        out
    }

    /// Output values per row.
    pub(crate) fn len(&self) -> usize {
        self.w0.len()
    }

    /// `out[x] = w0[x]·src[i0[x]] + w1[x]·src[i1[x]]` for every output column `x`.
    ///
    /// # Panics
    /// When `src` is shorter than the taps reach or `out` does not hold [`ColumnTaps::len`]
    /// values.
    pub(crate) fn blend(&self, src: &[T], out: &mut [T]) {
        assert!(
            src.len() >= self.reach,
            "resize: a source row shorter than its taps"
        );
        assert_eq!(
            out.len(),
            self.len(),
            "resize: output row of the wrong length"
        );
        #[cfg(target_arch = "x86_64")]
        if is_f32::<T>() && crate::simd::wide() {
            // SAFETY: AVX2 was detected; `src` covers every index (asserted above) and `out`
            // has one value per tap.
            unsafe {
                self.blend_f32_avx2(f32s(&self.w0), f32s(&self.w1), f32s(src), f32s_mut(out))
            };
            return;
        }
        for (x, o) in out.iter_mut().enumerate() {
            // SAFETY: every index is below `reach` ≤ `src.len()` (asserted above).
            let (a, b) = unsafe {
                (
                    *src.get_unchecked(self.i0[x] as usize),
                    *src.get_unchecked(self.i1[x] as usize),
                )
            };
            *o = self.w0[x] * a + self.w1[x] * b;
        }
    }
}

impl<T> ColumnTaps<T> {
    /// [`ColumnTaps::blend`] for `f32` (`w0`, `w1` are the weights as f32), eight outputs per
    /// step (see the module's doc), the last `len % 8` one by one.
    ///
    /// # Safety
    /// The CPU must have AVX2; `src` must hold at least `reach` values and `out` `len`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn blend_f32_avx2(&self, w0: &[f32], w1: &[f32], src: &[f32], out: &mut [f32]) {
        use std::arch::x86_64::*;
        let load_i = |v: &[i32], x: usize| _mm256_loadu_si256(v.as_ptr().add(x).cast());
        let eight = _mm256_set1_epi32(8);
        for (g, (&base, &run)) in self.group_base.iter().zip(&self.group_run).enumerate() {
            let x = 8 * g;
            let (o0, o1) = (load_i(&self.offset0, x), load_i(&self.offset1, x));
            // `base + 16 ≤ reach` for Two, `+ 8` for One (see `new`); the offsets of a group
            // are below its span.
            let run_ptr = src.as_ptr().add(base as usize);
            let (a, b) = match run {
                Run::One => {
                    let v = _mm256_loadu_ps(run_ptr);
                    (
                        _mm256_permutevar8x32_ps(v, o0),
                        _mm256_permutevar8x32_ps(v, o1),
                    )
                }
                Run::Two => {
                    let (lo, hi) = (_mm256_loadu_ps(run_ptr), _mm256_loadu_ps(run_ptr.add(8)));
                    let pick = |o: __m256i| {
                        let high = _mm256_castsi256_ps(_mm256_cmpgt_epi32(eight, o));
                        // Lanes whose offset is below 8 take `lo`, the others `hi`.
                        _mm256_blendv_ps(
                            _mm256_permutevar8x32_ps(hi, o),
                            _mm256_permutevar8x32_ps(lo, o),
                            high,
                        )
                    };
                    (pick(o0), pick(o1))
                }
                Run::Gather => (
                    _mm256_i32gather_ps::<4>(run_ptr, o0),
                    _mm256_i32gather_ps::<4>(run_ptr, o1),
                ),
            };
            let wa = _mm256_mul_ps(_mm256_loadu_ps(w0.as_ptr().add(x)), a);
            let wb = _mm256_mul_ps(_mm256_loadu_ps(w1.as_ptr().add(x)), b);
            _mm256_storeu_ps(out.as_mut_ptr().add(x), _mm256_add_ps(wa, wb));
        }
        for x in 8 * self.group_base.len()..out.len() {
            let (a, b) = (
                *src.get_unchecked(*self.i0.get_unchecked(x) as usize),
                *src.get_unchecked(*self.i1.get_unchecked(x) as usize),
            );
            *out.get_unchecked_mut(x) = *w0.get_unchecked(x) * a + *w1.get_unchecked(x) * b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::taps;

    /// The textbook sum, tap by tap.
    fn reference<T: Real>(src: &[T], taps: &[Tap<T>]) -> Vec<T> {
        taps.iter()
            .map(|t| t.w0 * src[t.i0] + t.w1 * src[t.i1])
            .collect()
    }

    #[test]
    fn the_blend_is_the_textbook_sum_bit_for_bit() {
        // Up and down, both corner rules, widths with and without a partial vector of 8.
        let mut runs = Vec::new();
        for (in_len, out_len) in [
            (400, 352),
            (352, 400),
            (7, 29),
            (88, 352),
            (352, 13),
            (1, 9),
        ] {
            for align in [false, true] {
                let src: Vec<f32> = (0..in_len).map(|i| ((i * 37 % 101) as f32).sin()).collect();
                let t = taps::<f32>(in_len, out_len, align);
                let mut out = vec![f32::NAN; out_len];
                let columns = ColumnTaps::new(&t);
                runs.extend_from_slice(&columns.group_run);
                columns.blend(&src, &mut out);
                let want = reference(&src, &t);
                let same = out
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{in_len}->{out_len} align {align}: {out:?} vs {want:?}"
                );

                let src64: Vec<f64> = src.iter().map(|&v| f64::from(v)).collect();
                let t64 = taps::<f64>(in_len, out_len, align);
                let mut out64 = vec![f64::NAN; out_len];
                ColumnTaps::new(&t64).blend(&src64, &mut out64);
                assert_eq!(out64, reference(&src64, &t64));
            }
        }
        // The cases cover every way the AVX2 kernel reads a run.
        for run in [Run::One, Run::Two, Run::Gather] {
            assert!(runs.contains(&run), "no case reads a run as {run:?}");
        }
    }

    #[test]
    #[should_panic(expected = "shorter than its taps")]
    fn a_short_source_row_is_refused() {
        let t = taps::<f32>(10, 20, false);
        ColumnTaps::new(&t).blend(&[0.0; 9], &mut [0.0; 20]);
    }
}
