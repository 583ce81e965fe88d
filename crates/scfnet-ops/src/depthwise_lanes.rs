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
use crate::elem::{f32s, f32s_mut, is_f32, same_type_mut, Real};
use crate::out_ptr::OutPtr;
use crate::scratch::{with_scratch, ScratchSlot};
use crate::simd;

thread_local! {
    /// Each thread's interleaved band (see `block_plain`), per element type.
    static BAND_F32: ScratchSlot<f32> = ScratchSlot::default();
    static BAND_F64: ScratchSlot<f64> = ScratchSlot::default();
}

/// [`with_scratch`] on this thread's band buffer of `T`'s type.
fn with_band<T: Real, R>(key: &[usize], len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    if is_f32::<T>() {
        with_scratch(&BAND_F32, key, len, |b| f(same_type_mut(b)))
    } else {
        with_scratch(&BAND_F64, key, len, |b| f(same_type_mut(b)))
    }
}

/// Channels computed side by side.
const LANES: usize = 8;

/// Without the vector kernel ([`row_avx`]: f32 on a CPU with AVX2, stride 1 or 2), output rows
/// up to this long go to this kernel: MobileNetV3's depthwise layers at 11×11 to 44×44 ran
/// 1.3–3× faster than plane by plane on 2 cores; at 88×88 and 176×176 (few channels, long rows)
/// the per-plane kernel was 2–5× faster. With it, every layer of the student with at least eight
/// channels is faster here (1.4–2.8× at 88×88 and 176×176, single thread).
const MAX_ROW: usize = 48;

/// Whether the interleaved kernel is the faster one for this layer and element type.
pub(crate) fn prefers_lanes<T: 'static>(g: &Geometry, channels: usize) -> bool {
    channels >= LANES && ((simd::wide() && vector_rows::<T>(g.stride)) || g.ow <= MAX_ROW)
}

/// Whether [`row_avx`] computes layers of this element type and stride (on a CPU with AVX2).
fn vector_rows<T: 'static>(stride: usize) -> bool {
    cfg!(target_arch = "x86_64") && is_f32::<T>() && (stride == 1 || stride == 2)
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
    let images = x.len() / (plane_in * channels).max(1);
    let len = images * channels * plane_out;
    if len == 0 {
        return Vec::new();
    }
    let mut out: Vec<T> = Vec::with_capacity(len);
    let dst = OutPtr::new(&mut out);
    // Work items: a band of output rows of LANES consecutive planes of one image, band-major
    // (see `crate::bands`).
    let blocks = channels.div_ceil(LANES);
    let bands = crate::bands::row_bands(images, g.oh);
    let band_rows = g.oh.div_ceil(bands);
    let wide = simd::wide();
    // Each thread's band buffer (see `block_plain`), kept across layers and calls: zeroed when
    // the layout changes.
    let buf_len = band_buffer_len(g, band_rows);
    let key = [g.k, g.stride, g.pad, g.w, g.ow, band_rows];
    (0..images * bands * blocks)
        .into_par_iter()
        .for_each(|item| {
            let (img, rest) = (item / (bands * blocks), item % (bands * blocks));
            let (band, blk) = (rest / blocks, rest % blocks);
            let rows = band * band_rows..((band + 1) * band_rows).min(g.oh);
            if rows.is_empty() {
                return;
            }
            let (c0, n) = (blk * LANES, LANES.min(channels - blk * LANES));
            let first = img * channels + c0;
            let block = Block {
                src: &x[first * plane_in..(first + n) * plane_in],
                wt: &wt[c0 * g.k * g.k..(c0 + n) * g.k * g.k],
                bias: tail.map(|t| (&t.bias[c0..c0 + n], t.act)),
                n,
                band_rows,
            };
            // SAFETY (both): `dst` has room for `len` values; this item writes output rows
            // `rows` of planes `first .. first + n`, which no other item writes.
            let planes = dst.at(first * plane_out);
            with_band(&key, buf_len, |buf: &mut [T]| {
                #[cfg(target_arch = "x86_64")]
                if wide {
                    // SAFETY: `simd::wide` checked that the CPU has AVX2 and FMA; see above.
                    unsafe { block_wide(&block, g, buf, planes, rows) };
                    return;
                }
                let _ = wide;
                // SAFETY: see above.
                unsafe { block_plain::<T, false>(&block, g, buf, planes, rows) };
            });
        });
    // SAFETY: the items cover every row of every plane, and each writes all of its rows.
    unsafe { out.set_len(len) };
    out
}

/// Values of a band buffer of [`block_plain`] for bands of `band_rows` output rows: the padded
/// input rows `((band_rows − 1)·s + k, w + 2·pad, LANES)`, the filters `(k·k, LANES)` and one
/// output row `(ow, LANES)`.
fn band_buffer_len(g: Geometry, band_rows: usize) -> usize {
    let buf_rows = (band_rows.max(1) - 1) * g.stride + g.k;
    (buf_rows * (g.w + 2 * g.pad) + g.k * g.k + g.ow) * LANES
}

/// Up to LANES input planes, their filters `(n, k·k)` and their bias and activation.
struct Block<'a, T> {
    src: &'a [T],
    wt: &'a [T],
    bias: Option<(&'a [f64], Activation)>,
    /// Planes in the block (`1..=LANES`).
    n: usize,
    /// Output rows of the layer's bands (the last may have fewer).
    band_rows: usize,
}

/// [`block_plain`] compiled for AVX2 and FMA (the same arithmetic), with the interleaving of a
/// full block of f32 planes done by 8×8 transposes.
///
/// # Safety
/// As [`block_plain`]; the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_wide<T: Real>(
    b: &Block<T>,
    g: Geometry,
    buf: &mut [T],
    dst: *mut T,
    rows: std::ops::Range<usize>,
) {
    block_plain::<T, true>(b, g, buf, dst, rows)
}

/// Output rows `rows` of one block of planes: interleave the input rows they see (zero-padded),
/// convolve eight lanes at a time, write the output rows back plane by plane with the tail
/// applied. `AVX`: the caller runs with AVX2 enabled, so full f32 blocks may move through
/// [`transpose`].
///
/// # Safety
/// `dst` points at the first of `b.n` output planes of `oh·ow` values each, and nothing else
/// reads or writes rows `rows` of those planes during the call.
#[inline(always)]
unsafe fn block_plain<T: Real, const AVX: bool>(
    b: &Block<T>,
    g: Geometry,
    buf: &mut [T],
    dst: *mut T,
    rows: std::ops::Range<usize>,
) {
    let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    let n = b.n;
    let pw = g.w + 2 * g.pad;
    let s = g.stride;
    // Layout of `buf` ([`band_buffer_len`]): the padded input rows a band sees
    // `(rows, pw, LANES)` (buffer row `i` is padded row `rows.start·s + i`), filters
    // `(k·k, LANES)`, one output row `(ow, LANES)`. The buffer was zeroed for this layout (a
    // thread's buffer of one layout serves every layer of that layout): its padding columns are
    // never written; the inside is overwritten for lanes `0..n` and the rows the band sees
    // (padding rows are never read; lanes past `n` keep an earlier block's values, dropped from
    // the sums).
    let buf_rows = (b.band_rows - 1) * s + g.k;
    let (input_len, filt_len) = (buf_rows * pw * LANES, kk * LANES);
    assert_eq!(buf.len(), band_buffer_len(g, b.band_rows), "band buffer");
    let (input, rest) = buf.split_at_mut(input_len);
    let (filt, row) = rest.split_at_mut(filt_len);
    // The input rows that output rows `rows` see: `y·s + ky − pad` inside the image.
    let row0 = rows.start * s;
    let seen = row0.saturating_sub(g.pad)
        ..((rows.end.max(1) - 1) * s + g.k)
            .saturating_sub(g.pad)
            .min(g.h);
    let transposing = AVX && n == LANES && is_f32::<T>();
    if transposing {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `AVX` says the CPU has AVX2; `T` is f32; the slices hold LANES full planes
        // and the band's padded rows `(buf_rows, pw, LANES)`.
        unsafe {
            interleave_avx(f32s(b.src), f32s_mut(input), g, pw, seen, row0)
        };
    } else {
        for lane in 0..n {
            let plane = &b.src[lane * plane_in..(lane + 1) * plane_in];
            for r in seen.clone() {
                let base = ((r + g.pad - row0) * pw + g.pad) * LANES + lane;
                for (c, &v) in plane[r * g.w..(r + 1) * g.w].iter().enumerate() {
                    input[base + c * LANES] = v;
                }
            }
        }
    }
    for lane in 0..n {
        for tap in 0..kk {
            filt[tap * LANES + lane] = b.wt[lane * kk + tap];
        }
    }
    // Whole output rows through the vector kernel.
    let vector = AVX && vector_rows::<T>(s);
    for y in rows.clone() {
        // Kernel rows inside the image: 0 ≤ y·s + ky − pad < h.
        let ky_lo = g.pad.saturating_sub(y * s);
        let ky_hi = g.k.min((g.h + g.pad).saturating_sub(y * s));
        if vector {
            #[cfg(target_arch = "x86_64")]
            {
                let (input, filt) = (f32s(input), f32s(filt));
                let taps = ky_lo..ky_hi;
                // SAFETY: `AVX` says the CPU has AVX2; the slices are the layer's buffers.
                unsafe {
                    match s {
                        1 => row_avx::<1>(input, filt, f32s_mut(row), y - rows.start, taps, g, pw),
                        _ => row_avx::<2>(input, filt, f32s_mut(row), y - rows.start, taps, g, pw),
                    }
                }
            }
        } else {
            accumulate_row(input, filt, row, y - rows.start, ky_lo..ky_hi, g, pw);
        }
        let out_row = y * g.ow..(y + 1) * g.ow;
        if transposing {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as for the interleaving; `dst` holds LANES output planes (caller).
            unsafe {
                deinterleave_avx(f32s(row), dst.cast::<f32>(), plane_out, out_row.clone())
            };
        } else {
            for lane in 0..n {
                for (x, px) in out_row.clone().zip(row.chunks_exact(LANES)) {
                    // SAFETY: pixel `x` of output row `y` of plane `lane` (caller).
                    unsafe { dst.add(lane * plane_out + x).write(px[lane]) };
                }
            }
        }
        if let Some((bias, act)) = b.bias {
            for (lane, &bias) in bias.iter().enumerate().take(n) {
                // SAFETY: the row was written just above (caller: this call's alone).
                let drow = unsafe {
                    std::slice::from_raw_parts_mut(dst.add(lane * plane_out + out_row.start), g.ow)
                };
                apply_plane(drow, T::from_f64(bias), act);
            }
        }
    }
}

/// Writes rows `rows` of LANES planes `(LANES, h, w)` of `src` into the inside of the padded
/// interleaved buffer `(·, pw, LANES)` whose first row is padded row `row0`, eight columns at a
/// time through [`transpose`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn interleave_avx(
    src: &[f32],
    input: &mut [f32],
    g: Geometry,
    pw: usize,
    rows: std::ops::Range<usize>,
    row0: usize,
) {
    use std::arch::x86_64::*;
    let plane = g.h * g.w;
    assert!(src.len() >= LANES * plane);
    assert!(rows.end <= g.h && rows.start + g.pad >= row0 && pw >= g.w + 2 * g.pad);
    assert!(input.len() >= (rows.end + g.pad - row0) * pw * LANES);
    let (sp, ip) = (src.as_ptr(), input.as_mut_ptr());
    for r in rows {
        let base = ((r + g.pad - row0) * pw + g.pad) * LANES;
        let mut c = 0;
        while c + LANES <= g.w {
            // SAFETY: rows `r·w + c .. + 8` of each plane and pixels `c .. c + 8` of padded row
            // `r + pad` are inside the slices (asserted sizes).
            let rows: [__m256; LANES] =
                std::array::from_fn(|l| _mm256_loadu_ps(sp.add(l * plane + r * g.w + c)));
            for (j, col) in transpose(rows).into_iter().enumerate() {
                _mm256_storeu_ps(ip.add(base + (c + j) * LANES), col);
            }
            c += LANES;
        }
        for c in c..g.w {
            for l in 0..LANES {
                input[base + c * LANES + l] = src[l * plane + r * g.w + c];
            }
        }
    }
}

/// Writes the interleaved output row `row` `(ow, LANES)` to pixels `out` of LANES output planes
/// of `plane` values each in `dst`, eight pixels at a time through [`transpose`].
///
/// # Safety
/// AVX2; `dst` points at LANES planes of `plane` values each, `out` lies inside a plane, and
/// nothing else accesses those pixels during the call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn deinterleave_avx(row: &[f32], dst: *mut f32, plane: usize, out: std::ops::Range<usize>) {
    use std::arch::x86_64::*;
    let ow = out.len();
    assert!(row.len() >= ow * LANES && out.end <= plane);
    let (rp, dp) = (row.as_ptr(), dst);
    let mut x = 0;
    while x + LANES <= ow {
        // SAFETY: pixels `x .. x + 8` of the row and of each plane's output row (asserted).
        let px: [__m256; LANES] = std::array::from_fn(|j| _mm256_loadu_ps(rp.add((x + j) * LANES)));
        for (l, lane) in transpose(px).into_iter().enumerate() {
            _mm256_storeu_ps(dp.add(l * plane + out.start + x), lane);
        }
        x += LANES;
    }
    for x in x..ow {
        for l in 0..LANES {
            dp.add(l * plane + out.start + x).write(row[x * LANES + l]);
        }
    }
}

/// Output row `y` (counted from the band's first) `(ow, LANES)` of the interleaved input
/// `(rows, pw, LANES)` (the band's, see [`block_plain`]) with filters
/// `(k·k, LANES)`, stride `S`, over the kernel rows `rows`: [`accumulate`]'s sums in the same
/// order (a multiply, then an add, per tap), eight pixels at a time in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx<const S: usize>(
    input: &[f32],
    filt: &[f32],
    row: &mut [f32],
    y: usize,
    rows: std::ops::Range<usize>,
    g: Geometry,
    pw: usize,
) {
    let (k, ow) = (g.k, g.ow);
    assert!(rows.end <= k && filt.len() >= k * k * LANES && row.len() >= ow * LANES);
    if rows.is_empty() || ow == 0 {
        row[..ow * LANES].fill(0.0);
        return;
    }
    // The last value read: kernel row `rows.end − 1`, pixel `ow − 1`, column `k − 1`.
    let last = ((y * S + rows.end - 1) * pw + (ow - 1) * S + k - 1) * LANES + LANES;
    assert!(last <= input.len());
    let (ip, fp, rp) = (input.as_ptr(), filt.as_ptr(), row.as_mut_ptr());
    let mut x = 0;
    // SAFETY (all three): every read is at most `last` (asserted) and every write inside
    // `row` (`x + X ≤ ow`).
    while x + 8 <= ow {
        pixels_avx::<8, S>(ip, fp, rp, (y, x), rows.clone(), k, pw);
        x += 8;
    }
    if x + 4 <= ow {
        pixels_avx::<4, S>(ip, fp, rp, (y, x), rows.clone(), k, pw);
        x += 4;
    }
    while x < ow {
        pixels_avx::<1, S>(ip, fp, rp, (y, x), rows.clone(), k, pw);
        x += 1;
    }
}

/// Pixels `x .. x + X` of output row `y` (see [`row_avx`]).
///
/// # Safety
/// AVX2; the reads and writes inside the buffers (checked by [`row_avx`]).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn pixels_avx<const X: usize, const S: usize>(
    ip: *const f32,
    fp: *const f32,
    rp: *mut f32,
    (y, x): (usize, usize),
    rows: std::ops::Range<usize>,
    k: usize,
    pw: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); X];
    for ky in rows {
        let p = ip.add(((y * S + ky) * pw + x * S) * LANES);
        let f = fp.add(ky * k * LANES);
        for kx in 0..k {
            let w = _mm256_loadu_ps(f.add(kx * LANES));
            let q = p.add(kx * LANES);
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_ps(*a, _mm256_mul_ps(w, _mm256_loadu_ps(q.add(j * S * LANES))));
            }
        }
    }
    for (j, a) in acc.into_iter().enumerate() {
        _mm256_storeu_ps(rp.add((x + j) * LANES), a);
    }
}

/// The 8×8 transpose of `r` (row `i` of the result is column `i` of `r`).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose(r: [std::arch::x86_64::__m256; LANES]) -> [std::arch::x86_64::__m256; LANES] {
    use std::arch::x86_64::*;
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

/// Output row `y` `(ow, LANES)` into `row`, over the kernel rows `rows`: several pixels at a time
/// ([`accumulate`]), so that independent sums hide the add latency.
#[inline(always)]
fn accumulate_row<T: Real>(
    input: &[T],
    filt: &[T],
    row: &mut [T],
    y: usize,
    rows: std::ops::Range<usize>,
    g: Geometry,
    pw: usize,
) {
    let s = g.stride;
    let mut x = 0;
    while x < g.ow {
        let at = |ky: usize| ((y * s + ky) * pw + x * s) * LANES;
        let rows = rows.clone();
        let done = if x + 8 <= g.ow {
            let acc = accumulate::<T, 8>(input, filt, at, rows, g);
            row[x * LANES..(x + 8) * LANES].copy_from_slice(acc.as_flattened());
            8
        } else if x + 4 <= g.ow {
            let acc = accumulate::<T, 4>(input, filt, at, rows, g);
            row[x * LANES..(x + 4) * LANES].copy_from_slice(acc.as_flattened());
            4
        } else {
            let acc = accumulate::<T, 1>(input, filt, at, rows, g);
            row[x * LANES..(x + 1) * LANES].copy_from_slice(acc.as_flattened());
            1
        };
        x += done;
    }
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

/// A chunk of exactly LANES values as an array (lets the lane loops vectorise without checks).
#[inline(always)]
fn as_lanes<T>(v: &[T]) -> &[T; LANES] {
    v.try_into().expect("chunks of LANES values")
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
            (1, 8, 30, 61, 3, 1, 1),
            (1, 17, 17, 50, 5, 2, 2),
            (1, 8, 35, 9, 5, 2, 2),
            (1, 16, 64, 12, 3, 1, 1),
            // The same band buffer layout but one column less: on one thread, the second layer
            // must not read the first one's last column as its padding (`crate::scratch`).
            (1, 8, 10, 16, 3, 2, 1),
            (1, 8, 10, 15, 3, 2, 1),
        ];
        let pools = [1, 4].map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        });
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
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                // On one thread whole planes; on four, single images are cut into row bands.
                for pool in &pools {
                    let got = pool.install(|| forward(&x, &wt, g, c, tail));
                    assert_eq!(bits(&got), bits(&want), "case {i}");
                }
            }
        }
    }
}
