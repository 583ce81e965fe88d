//! Network input straight from an 8-bit RGB image: each channel normalised, `(p − mean) / std`,
//! and resized bilinearly, without building the normalised planes.

use std::mem::MaybeUninit;

use candle_core::Result;

use crate::resize::{resize_rows_into, taps, RowSource};
use crate::resize_columns::ColumnTaps;

/// The three channels of an interleaved 8-bit RGB image `(h, w, 3)`, each byte `p` of channel `c`
/// normalised to `(p − mean[c]) / std[c]` (f32), as planes `(3, out_h, out_w)` resized
/// bilinearly: the values of [`crate::resize_bilinear_planes`] on the normalised planes, bit for
/// bit, without building them (each source row is normalised when the resize first needs it,
/// sixteen pixels at a time with AVX2). On the calling thread.
///
/// Fails when a side is zero or `pixels` does not hold `h · w · 3` bytes.
pub fn resize_bilinear_normalised_rgb(
    pixels: &[u8],
    (in_h, in_w): (usize, usize),
    (mean, std): ([f32; 3], [f32; 3]),
    (out_h, out_w): (usize, usize),
    align_corners: bool,
) -> Result<Vec<f32>> {
    let len = 3 * out_h * out_w;
    let mut out = Vec::with_capacity(len);
    resize_bilinear_normalised_rgb_into(
        pixels,
        (in_h, in_w),
        (mean, std),
        (out_h, out_w),
        align_corners,
        &mut out.spare_capacity_mut()[..len],
    )?;
    // SAFETY: on success every value of the `len` written above is initialised.
    unsafe { out.set_len(len) };
    Ok(out)
}

/// [`resize_bilinear_normalised_rgb`] into `out`, which must hold `3 · out_h · out_w` values
/// (memory that need not be initialised, so that a caller filling a batch in place pays for no
/// zeroing). On success every value of `out` is written; on failure none is.
///
/// Fails when a side is zero, `pixels` does not hold `h · w · 3` bytes, or `out` has the wrong
/// length.
pub fn resize_bilinear_normalised_rgb_into(
    pixels: &[u8],
    (in_h, in_w): (usize, usize),
    (mean, std): ([f32; 3], [f32; 3]),
    (out_h, out_w): (usize, usize),
    align_corners: bool,
    out: &mut [MaybeUninit<f32>],
) -> Result<()> {
    if in_h == 0 || in_w == 0 || out_h == 0 || out_w == 0 || pixels.len() != in_h * in_w * 3 {
        candle_core::bail!(
            "resize-bilinear: cannot resize {} bytes as a {in_h}x{in_w} RGB image to {out_h}x{out_w}",
            pixels.len()
        );
    }
    let plane = out_h * out_w;
    if out.len() != 3 * plane {
        candle_core::bail!(
            "resize-bilinear: room for {} values, but 3x{out_h}x{out_w} are {}",
            out.len(),
            3 * plane
        );
    }
    let mut line = vec![0f32; in_w];
    let ys = taps::<f32>(in_h, out_h, align_corners);
    let xs = ColumnTaps::new(&taps::<f32>(in_w, out_w, align_corners));
    for (c, dst) in out.chunks_mut(plane).enumerate() {
        let mut source = NormalisedRows {
            pixels,
            width: in_w,
            channel: c,
            mean: mean[c],
            std: std[c],
            line: &mut line,
        };
        if (in_h, in_w) == (out_h, out_w) {
            for (y, row) in dst.chunks_exact_mut(out_w).enumerate() {
                for (d, &v) in row.iter_mut().zip(source.row(y)) {
                    d.write(v);
                }
            }
        } else {
            resize_rows_into(source, &ys, &xs, dst);
        }
    }
    Ok(())
}

/// The rows of one channel of an interleaved RGB image, normalised into `line`.
struct NormalisedRows<'a> {
    pixels: &'a [u8],
    width: usize,
    channel: usize,
    mean: f32,
    std: f32,
    line: &'a mut [f32],
}

impl RowSource<f32> for NormalisedRows<'_> {
    fn row(&mut self, y: usize) -> &[f32] {
        let bytes = &self.pixels[y * self.width * 3..(y + 1) * self.width * 3];
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if crate::simd::wide() {
            // SAFETY: AVX2 was detected; `line` holds `width` values and `bytes` `3 · width`.
            done = unsafe { normalise_avx2(bytes, self.channel, self.mean, self.std, self.line) };
        }
        for (v, px) in self.line[done..]
            .iter_mut()
            .zip(bytes[3 * done..].chunks_exact(3))
        {
            *v = (f32::from(px[self.channel]) - self.mean) / self.std;
        }
        self.line
    }
}

/// For each of the three 16-byte loads of sixteen RGB pixels, where each pixel's byte of channel
/// `channel` sits in it, as a byte-shuffle mask (0x80: not in this load, shuffled to zero).
const fn shuffle_masks(channel: usize) -> [[u8; 16]; 3] {
    let mut masks = [[0x80u8; 16]; 3];
    let mut j = 0;
    while j < 16 {
        let at = 3 * j + channel;
        masks[at / 16][j] = (at % 16) as u8;
        j += 1;
    }
    masks
}

/// Channel `channel` of the interleaved pixels `bytes`, normalised into `line`, sixteen pixels
/// (three 16-byte loads, one byte shuffle each) at a time; returns how many pixels it did (the
/// whole groups of sixteen). The same subtraction and division as the scalar loop, so the same
/// values.
///
/// # Safety
/// The CPU must have AVX2; `bytes` must hold `3 · line.len()` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn normalise_avx2(
    bytes: &[u8],
    channel: usize,
    mean: f32,
    std: f32,
    line: &mut [f32],
) -> usize {
    use std::arch::x86_64::*;
    let masks = shuffle_masks(channel).map(|m| _mm_loadu_si128(m.as_ptr().cast()));
    let (mean, std) = (_mm256_set1_ps(mean), _mm256_set1_ps(std));
    let groups = line.len() / 16;
    for g in 0..groups {
        let src = bytes.as_ptr().add(48 * g);
        let mut packed = _mm_setzero_si128();
        for (k, mask) in masks.iter().enumerate() {
            let chunk = _mm_loadu_si128(src.add(16 * k).cast());
            packed = _mm_or_si128(packed, _mm_shuffle_epi8(chunk, *mask));
        }
        for (half, bytes8) in [packed, _mm_srli_si128::<8>(packed)]
            .into_iter()
            .enumerate()
        {
            let values = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes8));
            let normalised = _mm256_div_ps(_mm256_sub_ps(values, mean), std);
            _mm256_storeu_ps(line.as_mut_ptr().add(16 * g + 8 * half), normalised);
        }
    }
    16 * groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize_bilinear_planes;

    #[test]
    fn resizes_as_the_normalised_planes_bit_for_bit() {
        let (mean, std) = ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375]);
        // Widths below, at and above the 16-pixel groups, with a partial last group.
        for (h, w) in [(13, 17), (9, 70), (4, 5)] {
            let pixels: Vec<u8> = (0..h * w * 3)
                .map(|i| ((i * 37 + i / 5) % 256) as u8)
                .collect();
            let mut planes = Vec::new();
            for c in 0..3 {
                planes.extend(
                    pixels
                        .chunks_exact(3)
                        .map(|px| (f32::from(px[c]) - mean[c]) / std[c]),
                );
            }
            for (out, align) in [
                ((20, 9), false),
                ((5, 30), true),
                ((h, w), false),
                ((7, 64), false),
            ] {
                let want = resize_bilinear_planes(&planes, (h, w), out, align).unwrap();
                let got = resize_bilinear_normalised_rgb(&pixels, (h, w), (mean, std), out, align)
                    .unwrap();
                assert_eq!(got.len(), 3 * out.0 * out.1);
                for (i, (g, v)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        v.to_bits(),
                        "{h}x{w}->{out:?} #{i}: {g} vs {v}"
                    );
                }
            }
        }
        let err = resize_bilinear_normalised_rgb(&[0; 10], (2, 2), (mean, std), (4, 4), false);
        assert!(err.unwrap_err().to_string().contains("2x2 RGB image"));
    }

    #[test]
    fn into_a_slice_of_the_wrong_length_fails_without_writing() {
        let (mean, std) = ([0.0; 3], [1.0; 3]);
        let mut room = vec![MaybeUninit::new(7f32); 3 * 4 * 4 + 1];
        let err = resize_bilinear_normalised_rgb_into(
            &[9; 12],
            (2, 2),
            (mean, std),
            (4, 4),
            false,
            &mut room,
        );
        assert!(err.unwrap_err().to_string().contains("room for 49 values"));
        // SAFETY: every value was initialised above.
        assert!(room.iter().all(|v| unsafe { v.assume_init() } == 7.0));
        resize_bilinear_normalised_rgb_into(
            &[9; 12],
            (2, 2),
            (mean, std),
            (4, 4),
            false,
            &mut room[..48],
        )
        .unwrap();
        // SAFETY: as above; a constant image resizes to the same constant.
        assert!(room[..48].iter().all(|v| unsafe { v.assume_init() } == 9.0));
        assert_eq!(unsafe { room[48].assume_init() }, 7.0);
    }
}
