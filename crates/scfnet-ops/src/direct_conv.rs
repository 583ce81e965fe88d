//! The same-size 3×3 convolution of inference (stride 1, padding = dilation) computed directly,
//! without explicit columns: f32 with AVX2 and FMA. For the few channels of the student's decoder
//! the explicit columns cost as much as the product itself (nine copies of every input value per
//! layer); here every input row is read in place from a zero-padded copy of the image.
//!
//! The kernel keeps 4 output channels × 16 pixels of one output row in registers and adds, for
//! every input channel and tap, 16 input values (two vector loads) times each channel's weight
//! (a broadcast). The output rows then take the same epilogue as the tiled kernel (bias,
//! activation, residual).

use rayon::prelude::*;

use crate::activation::Activation;
use crate::inference_conv::{tail, OutPtr};

/// Output channels computed together.
const GROUP: usize = 4;
/// Taps of the window.
const TAPS: usize = 9;

/// Most input channels of a layer that runs here. Measured single-threaded on the project's
/// machine (AMD EPYC, AVX2), against the tiled kernel: 16 channels 2.3–2.8× faster, 64 and 128
/// channels 10–30 % faster, 256 channels at 22×22 no faster, 512 at 11×11 slower (the tiled
/// product is efficient with long sums, and rows of 11 pixels fill 16-wide vectors badly).
const MAX_INPUT_CHANNELS: usize = 128;

/// Whether a layer of this geometry and width runs here: 3×3, stride 1, "same" padding, at most
/// [`MAX_INPUT_CHANNELS`] input channels, on a CPU with AVX2 and FMA.
pub(crate) fn applies(
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    c_in: usize,
) -> bool {
    kernel == 3
        && stride == 1
        && padding == dilation
        && c_in <= MAX_INPUT_CHANNELS
        && crate::simd::wide()
}

/// The weights `(C_out, C_in·9)` row-major rearranged for the kernel: `(⌈C_out/4⌉, C_in, 9, 4)`,
/// output channels past `C_out` zero.
pub(crate) fn pack(weight: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let groups = c_out.div_ceil(GROUP);
    let mut packed = vec![0f32; groups * c_in * TAPS * GROUP];
    for (co, row) in weight.chunks_exact(c_in * TAPS).enumerate().take(c_out) {
        let (grp, r) = (co / GROUP, co % GROUP);
        for (i, &v) in row.iter().enumerate() {
            packed[((grp * c_in) * TAPS + i) * GROUP + r] = v;
        }
    }
    packed
}

/// One layer's shapes and parameters.
pub(crate) struct Layer<'a> {
    /// [`pack`]ed weights.
    pub packed: &'a [f32],
    /// Bias per output channel.
    pub bias: &'a [f32],
    /// Activation after the bias.
    pub act: Activation,
    /// Output channels.
    pub c_out: usize,
    /// Tap spacing (= padding).
    pub dilation: usize,
}

/// `x` `(B, C, H, W)` → `(B, C_out, H, W)`: `act(conv(x) + bias)`, then `then(· + residual)`.
/// Only when [`applies`] held for the layer.
pub(crate) fn forward(
    layer: &Layer,
    x: &[f32],
    (b, c, h, w): (usize, usize, usize, usize),
    residual: Option<(&[f32], Activation)>,
) -> Vec<f32> {
    let (d, c_out) = (layer.dilation, layer.c_out);
    let len = b * c_out * h * w;
    if len == 0 {
        return Vec::new();
    }
    assert!(crate::simd::wide(), "direct convolution without AVX2");
    assert_eq!(layer.packed.len(), c_out.div_ceil(GROUP) * c * TAPS * GROUP);
    // Rows are computed 8 pixels at a time up to `wr`; the padded rows leave room for the last
    // vector's taps.
    let wr = w.next_multiple_of(8);
    // Work items: a few output rows of one image, every output channel.
    let wanted = 4 * rayon::current_num_threads();
    let rows_per_item = (b * h).div_ceil(wanted).clamp(1, 8);
    let blocks = h.div_ceil(rows_per_item);
    // Each item copies the input rows its outputs see into a zero-padded buffer of its thread,
    // `(c, rows_per_item + 2d, wp)`: the padding columns are zeroed once and never written.
    let (hp, wp) = (rows_per_item + 2 * d, wr + 2 * d);
    let plane = hp * wp;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let dst = OutPtr::new(&mut out);
    let wide = true;
    (0..b * blocks).into_par_iter().for_each_init(
        || (Vec::<f32>::new(), Vec::<f32>::new()),
        |(window, rows), item| {
            let (img, blk) = (item / blocks, item % blocks);
            let image = &x[img * c * h * w..(img + 1) * c * h * w];
            let y0 = blk * rows_per_item;
            window.resize(c * plane, 0.0);
            for (src, dst) in image
                .chunks_exact(h * w)
                .zip(window.chunks_exact_mut(plane))
            {
                for (lr, row) in dst.chunks_exact_mut(wp).enumerate() {
                    // Input row `y0 + lr − d`, or padding.
                    match (y0 + lr).checked_sub(d).filter(|&iy| iy < h) {
                        Some(iy) => row[d..d + w].copy_from_slice(&src[iy * w..(iy + 1) * w]),
                        None => row.fill(0.0),
                    }
                }
            }
            rows.resize(GROUP * wr, 0.0);
            for oy in y0..(y0 + rows_per_item).min(h) {
                for (grp, wts) in layer.packed.chunks_exact(c * TAPS * GROUP).enumerate() {
                    // SAFETY: AVX2 and FMA (asserted above); the sizes are checked inside.
                    unsafe { row_group(window, wts, (c, hp, wp), d, oy - y0, wr, rows) };
                    for r in 0..GROUP.min(c_out - grp * GROUP) {
                        let co = grp * GROUP + r;
                        let at = (img * c_out + co) * h * w + oy * w;
                        // SAFETY: `dst` has room for `len` values; this item alone writes rows
                        // `oy` of image `img` (every channel), each once.
                        let out_row = unsafe { std::slice::from_raw_parts_mut(dst.at(at), w) };
                        out_row.copy_from_slice(&rows[r * wr..r * wr + w]);
                        let res = residual.map(|(v, then)| (&v[at..at + w], then));
                        tail(out_row, layer.bias[co], layer.act, res, wide);
                    }
                }
            }
        },
    );
    // SAFETY: the items cover every (image, row) with every channel, see above.
    unsafe { out.set_len(len) };
    out
}

/// Output row `oy` of 4 channels, `(4, wr)` into `out`: the padded image `(c, hp, wp)`, weights
/// `(c, 9, 4)`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_group(
    image: &[f32],
    wts: &[f32],
    (c, hp, wp): (usize, usize, usize),
    d: usize,
    oy: usize,
    wr: usize,
    out: &mut [f32],
) {
    assert!(image.len() >= c * hp * wp && wts.len() >= c * TAPS * GROUP);
    assert!(out.len() >= GROUP * wr && wr % 8 == 0 && wr + 2 * d <= wp && oy + 2 * d < hp);
    let (ip, wp_ptr, op) = (image.as_ptr(), wts.as_ptr(), out.as_mut_ptr());
    let shape = Shape {
        c,
        plane: hp * wp,
        wp,
        d,
        wr,
    };
    let mut x0 = 0;
    // SAFETY (both): a vector of pixels `x0 .. x0 + 8·V ≤ wr` reads up to column
    // `x0 + 8·V − 1 + 2d < wp` of rows `oy .. oy + 2d < hp`, and writes inside `out` (asserted).
    while x0 + 16 <= wr {
        pixels::<2>(ip, wp_ptr, op, &shape, oy, x0);
        x0 += 16;
    }
    if x0 < wr {
        pixels::<1>(ip, wp_ptr, op, &shape, oy, x0);
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn row_group(
    _: &[f32],
    _: &[f32],
    _: (usize, usize, usize),
    _: usize,
    _: usize,
    _: usize,
    _: &mut [f32],
) {
    unreachable!("applies() is false without AVX2")
}

/// Sizes the kernel steps by.
#[cfg(target_arch = "x86_64")]
struct Shape {
    c: usize,
    plane: usize,
    wp: usize,
    d: usize,
    wr: usize,
}

/// `8·V` pixels from `x0` of output row `oy`, 4 channels.
///
/// # Safety
/// AVX2 and FMA; the reads and writes inside the buffers (see [`row_group`]).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn pixels<const V: usize>(
    ip: *const f32,
    wts: *const f32,
    op: *mut f32,
    s: &Shape,
    oy: usize,
    x0: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); V]; GROUP];
    for ci in 0..s.c {
        let base = ip.add(ci * s.plane + oy * s.wp + x0);
        let w = wts.add(ci * TAPS * GROUP);
        for ky in 0..3 {
            for kx in 0..3 {
                let src = base.add(ky * s.d * s.wp + kx * s.d);
                let v: [__m256; V] = std::array::from_fn(|j| _mm256_loadu_ps(src.add(8 * j)));
                let t = w.add((ky * 3 + kx) * GROUP);
                for (r, a) in acc.iter_mut().enumerate() {
                    let wv = _mm256_broadcast_ss(&*t.add(r));
                    for (aj, &vj) in a.iter_mut().zip(&v) {
                        *aj = _mm256_fmadd_ps(wv, vj, *aj);
                    }
                }
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        for (j, &aj) in a.iter().enumerate() {
            _mm256_storeu_ps(op.add(r * s.wr + x0 + 8 * j), aj);
        }
    }
}
