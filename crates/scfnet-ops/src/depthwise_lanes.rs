//! Depthwise convolution with eight channels side by side: for small planes (the deep layers of
//! MobileNetV3, 11×11 to 22×22 with hundreds of channels) a row is too short for the per-plane
//! kernel's vector loops, so the planes of eight channels are interleaved (zero-padded, one
//! eight-value group per pixel) and every tap is one eight-lane multiply-add.
//!
//! The sum runs over the same taps in the same order as the per-plane kernel (the kernel rows
//! inside the image, every kernel column with the padding as zeros), so both give identical
//! values.

use rayon::prelude::*;

use crate::activation::Activation;
use crate::bias_act::apply_plane;
use crate::depthwise::{Geometry, Tail};
use crate::elem::Real;
use crate::simd;

/// Channels computed side by side.
const LANES: usize = 8;

/// Output rows up to this long go to this kernel: MobileNetV3's depthwise layers at 11×11 to
/// 44×44 ran 1.3–3× faster than plane by plane on 2 cores; at 88×88 and 176×176 (few channels,
/// long rows) the per-plane kernel was 2–5× faster.
const MAX_ROW: usize = 48;

/// Whether the interleaved kernel is the faster one for this layer.
pub(crate) fn prefers_lanes(g: &Geometry, channels: usize) -> bool {
    channels >= LANES && g.ow <= MAX_ROW
}

/// The depthwise convolution of `x` `(B, C, H, W)` with `wt` `(C, k·k)`, then `tail` if any.
pub(crate) fn forward<T: Real>(
    x: &[T],
    wt: &[T],
    g: Geometry,
    channels: usize,
    tail: Option<Tail>,
) -> Vec<T> {
    let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
    let mut out = vec![T::ZERO; x.len() / plane_in * plane_out];
    // Work items: LANES consecutive planes of one image (one contiguous run of the output).
    let mut items = Vec::new();
    for (img, planes) in out.chunks_mut(channels * plane_out).enumerate() {
        for (blk, dst) in planes.chunks_mut(LANES * plane_out).enumerate() {
            items.push((img * channels + blk * LANES, blk * LANES, dst));
        }
    }
    let wide = simd::wide();
    items
        .into_par_iter()
        .for_each_init(Vec::new, |buf, (first, c0, dst)| {
            let n = dst.len() / plane_out;
            let src = &x[first * plane_in..(first + n) * plane_in];
            let block = Block {
                src,
                wt: &wt[c0 * g.k * g.k..(c0 + n) * g.k * g.k],
                bias: tail.map(|t| (&t.bias[c0..c0 + n], t.act)),
            };
            #[cfg(target_arch = "x86_64")]
            if wide {
                // SAFETY: `simd::wide` checked that the CPU has AVX2 and FMA.
                unsafe { block_wide(&block, g, buf, dst) };
                return;
            }
            let _ = wide;
            block_plain(&block, g, buf, dst);
        });
    out
}

/// Up to LANES input planes, their filters `(n, k·k)` and their bias and activation.
struct Block<'a, T> {
    src: &'a [T],
    wt: &'a [T],
    bias: Option<(&'a [f64], Activation)>,
}

/// [`block_plain`] compiled for AVX2 and FMA (the same arithmetic).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_wide<T: Real>(b: &Block<T>, g: Geometry, buf: &mut Vec<T>, dst: &mut [T]) {
    block_plain(b, g, buf, dst)
}

/// One block of planes: interleave (zero-padded), convolve eight lanes at a time, write the
/// output rows back plane by plane with the tail applied.
#[inline(always)]
fn block_plain<T: Real>(b: &Block<T>, g: Geometry, buf: &mut Vec<T>, dst: &mut [T]) {
    let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    let n = dst.len() / plane_out;
    let pw = g.w + 2 * g.pad;
    let ph = g.h + 2 * g.pad;
    // Layout of `buf`: padded input `(ph, pw, LANES)`, filters `(k·k, LANES)`, one output row
    // `(ow, LANES)`.
    let (input_len, filt_len) = (ph * pw * LANES, kk * LANES);
    buf.clear();
    buf.resize(input_len + filt_len + g.ow * LANES, T::ZERO);
    let (input, rest) = buf.split_at_mut(input_len);
    let (filt, row) = rest.split_at_mut(filt_len);
    for lane in 0..n {
        let plane = &b.src[lane * plane_in..(lane + 1) * plane_in];
        for (r, src_row) in plane.chunks_exact(g.w).enumerate() {
            let base = ((r + g.pad) * pw + g.pad) * LANES + lane;
            for (c, &v) in src_row.iter().enumerate() {
                input[base + c * LANES] = v;
            }
        }
        for tap in 0..kk {
            filt[tap * LANES + lane] = b.wt[lane * kk + tap];
        }
    }
    let s = g.stride;
    for y in 0..g.oh {
        // Kernel rows inside the image: 0 ≤ y·s + ky − pad < h.
        let ky_lo = g.pad.saturating_sub(y * s);
        let ky_hi = g.k.min((g.h + g.pad).saturating_sub(y * s));
        // Four output pixels at a time: four independent sums hide the add latency.
        let mut x = 0;
        while x < g.ow {
            let at = |ky: usize| ((y * s + ky) * pw + x * s) * LANES;
            if x + 4 <= g.ow {
                let acc = accumulate::<T, 4>(input, filt, at, ky_lo..ky_hi, g);
                row[x * LANES..(x + 4) * LANES].copy_from_slice(acc.as_flattened());
                x += 4;
            } else {
                let acc = accumulate::<T, 1>(input, filt, at, ky_lo..ky_hi, g);
                row[x * LANES..(x + 1) * LANES].copy_from_slice(acc.as_flattened());
                x += 1;
            }
        }
        for lane in 0..n {
            let drow = &mut dst[lane * plane_out + y * g.ow..lane * plane_out + (y + 1) * g.ow];
            for (d, px) in drow.iter_mut().zip(row.chunks_exact(LANES)) {
                *d = px[lane];
            }
            if let Some((bias, act)) = b.bias {
                apply_plane(drow, T::from_f64(bias[lane]), act);
            }
        }
    }
}

/// A chunk of exactly LANES values as an array (lets the lane loops vectorise without checks).
#[inline(always)]
fn as_lanes<T>(v: &[T]) -> &[T; LANES] {
    v.try_into().expect("chunks of LANES values")
}

/// The sums of `X` consecutive output pixels of one row (pixel `j` starts at `at(ky) + j·s·LANES`
/// in kernel row `ky`), each over the kernel rows `rows` and every kernel column, in tap order.
#[inline(always)]
fn accumulate<T: Real, const X: usize>(
    input: &[T],
    filt: &[T],
    at: impl Fn(usize) -> usize,
    rows: std::ops::Range<usize>,
    g: Geometry,
) -> [[T; LANES]; X] {
    let mut acc = [[T::ZERO; LANES]; X];
    let step = g.stride * LANES;
    for ky in rows {
        let base = at(ky);
        for kx in 0..g.k {
            let w = as_lanes(&filt[(ky * g.k + kx) * LANES..(ky * g.k + kx + 1) * LANES]);
            for (j, a) in acc.iter_mut().enumerate() {
                let o = base + j * step + kx * LANES;
                let v = as_lanes(&input[o..o + LANES]);
                for l in 0..LANES {
                    a[l] += w[l] * v[l];
                }
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::depthwise::{forward_planes, DepthwiseConfig};

    #[test]
    fn gives_the_per_plane_kernels_values_exactly() {
        // (batch, channels, h, w, k, stride, padding): lane blocks full and partial, both
        // strides, both kernel sizes, padding wider than the plane.
        let cases = [
            (2, 16, 11, 11, 5, 1, 2),
            (1, 13, 22, 21, 3, 2, 1),
            (1, 9, 7, 9, 5, 2, 2),
            (3, 8, 5, 4, 3, 1, 1),
            (1, 3, 6, 6, 3, 1, 1),
            (1, 8, 2, 3, 5, 1, 2),
        ];
        for (i, &(b, c, h, w, k, s, p)) in cases.iter().enumerate() {
            let g = Geometry::new(
                h,
                w,
                k,
                DepthwiseConfig {
                    stride: s,
                    padding: p,
                },
            )
            .unwrap();
            let x: Vec<f32> = (0..b * c * h * w)
                .map(|j| ((j as f32) * 0.77).sin())
                .collect();
            let wt: Vec<f32> = (0..c * k * k).map(|j| ((j as f32) * 0.31).cos()).collect();
            let bias: Vec<f64> = (0..c).map(|j| j as f64 * 0.05 - 0.2).collect();
            for tail in [
                None,
                Some(Tail {
                    bias: &bias,
                    act: Activation::HardSwish,
                }),
                Some(Tail {
                    bias: &bias,
                    act: Activation::Relu,
                }),
            ] {
                let want = forward_planes(&x, &wt, g, c, tail);
                let got = forward(&x, &wt, g, c, tail);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "case {i}");
            }
        }
    }
}
