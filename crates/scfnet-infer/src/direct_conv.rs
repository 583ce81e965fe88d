//! The 3×3 convolution of inference with padding = dilation (stride 1: same size; stride 2: the
//! student's stem) computed directly, without explicit columns: f32 with AVX2 and FMA. For the
//! few channels of the student's decoder the explicit columns cost as much as the product itself
//! (nine copies of every input value per layer); here the input rows that a work item's outputs
//! see are copied once into a zero-padded window and read in place.
//!
//! The kernel keeps 4 output channels × 16 pixels of one output row in registers and adds, for
//! every input channel and tap, 16 input values (two vector loads) times each channel's weight
//! (a broadcast). With stride 2 the window stores each row as its even and its odd columns one
//! after the other, so that the 16 inputs of every tap are again consecutive. The output rows
//! get bias, activation and a residual in registers, with the operations of the tiled kernel's
//! epilogue ([`crate::tile_store`]).

use rayon::prelude::*;

use scfnet_ops::cpu::{wide, with_scratch, OutPtr, ScratchSlot};
use scfnet_ops::{Activation, ConvGeometry};

use crate::kernel::{self, CallShape, ConvKernel, LayerShape, ResidualValues};
use crate::tile_store::{group_epilogue, Store, GROUP};

/// Taps of the window.
const TAPS: usize = 9;

/// Most input channels of a layer that runs here. Measured on the project's machine (AMD EPYC,
/// AVX2, 2 cores): single layers at 16 input channels ran 2.3–2.8× faster than the tiled kernel,
/// at 64 channels 10–30 % faster; in the whole R50 teacher, the direct kernel for every 3×3 layer
/// (up to 512 channels) lost 10–15 % against up to 32 channels, and up to 64 channels was level
/// with up to 32 (`bench-models`, alternating runs): with long sums the tiled product is the
/// faster one.
const MAX_INPUT_CHANNELS: usize = 64;

/// Most output channels of a layer with more than [`MAX_INPUT_CHANNELS`] inputs that still runs
/// here. With few outputs the tiled product has little to share its packed columns with: 80→16
/// channels at 11×11 (the student's deepest mapping convolution) took 0.13–0.19 ms there and
/// 0.04–0.07 ms here, 128→32 at 22×22 0.72 against 0.42, 512→16 at 11×11 1.0–1.3 against 0.25–0.28;
/// at 64 outputs (the R50 decoder's mapping convolutions, 128 to 2048 inputs) the tiled product
/// was 5–50 % faster (single layers, 2 threads, 352² input).
const NARROW_OUTPUT: usize = 32;

thread_local! {
    /// Each thread's input window (see [`forward`]).
    static WINDOW: ScratchSlot<f32> = ScratchSlot::default();
}

/// Most input channels of a narrow layer ([`NARROW_OUTPUT`]) that runs here (512 is the widest
/// measured).
const MAX_INPUT_CHANNELS_NARROW: usize = 512;

/// Whether a layer of this geometry and width runs here: 3×3, stride 1 or 2, padding equal to
/// the dilation, at most [`MAX_INPUT_CHANNELS`] input channels (or [`MAX_INPUT_CHANNELS_NARROW`]
/// with at most [`NARROW_OUTPUT`] outputs), on a CPU with AVX2 and FMA.
pub(crate) fn applies(g: &ConvGeometry, c_in: usize, c_out: usize) -> bool {
    let width =
        c_in <= MAX_INPUT_CHANNELS || (c_out <= NARROW_OUTPUT && c_in <= MAX_INPUT_CHANNELS_NARROW);
    g.kernel == 3 && (g.stride == 1 || g.stride == 2) && g.padding == g.dilation && width && wide()
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

/// `x` `(B, C, H, W)` → `(B, C_out, H', W')`: `act(conv(x) + bias)`, then `then(· + residual)`.
/// Only when [`applies`] held for the layer.
fn forward(
    layer: &kernel::Layer,
    x: &[f32],
    (b, c, h, w): (usize, usize, usize, usize),
    residual: Option<(&[f32], Activation)>,
) -> Vec<f32> {
    let (g, c_out) = (layer.shape.geometry, layer.shape.c_out);
    let (d, st) = (g.dilation, g.stride);
    assert!(st == 1 || st == 2, "direct convolution with stride {st}");
    let (oh, ow) = (g.output(h), g.output(w));
    let len = b * c_out * oh * ow;
    if len == 0 {
        return Vec::new();
    }
    assert!(wide(), "direct convolution without AVX2");
    assert_eq!(layer.packed.len(), c_out.div_ceil(GROUP) * c * TAPS * GROUP);
    // Output rows are computed 8 pixels at a time up to `wr`.
    let wr = ow.next_multiple_of(8);
    // Work items: a few output rows of one image, every output channel.
    let wanted = 4 * rayon::current_num_threads();
    let rows_per_item = (b * oh).div_ceil(wanted).clamp(1, 8);
    let blocks = oh.div_ceil(rows_per_item);
    // Each item copies the padded input rows its outputs see into a window of its thread:
    // per channel `(rows, st, wq)`, each row as its `st` column phases (padded column `j` at
    // phase `j % st`, index `j / st`). Tap `(ky, kx)` of output `(oy, x)` reads window row
    // `oy·st + ky·d` (from the item's first row), phase `kx·d % st`, index `x + kx·d / st`.
    // Values the copy never writes (padding) are zeroed when the thread's window (kept across
    // layers and calls, `scfnet_ops::cpu::with_scratch`) gets this layout.
    let win = Window {
        c,
        rows: (rows_per_item - 1) * st + 2 * d + 1,
        st,
        wq: wr + 2 * d / st + 1,
        d,
        wr,
    };
    let plane = win.rows * st * win.wq;
    let key = [c, win.rows, st, win.wq, d, w];
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let dst = OutPtr::new(&mut out);
    (0..b * blocks)
        .into_par_iter()
        .for_each_init(Vec::<f32>::new, |scratch, item| {
            let (img, blk) = (item / blocks, item % blocks);
            let image = &x[img * c * h * w..(img + 1) * c * h * w];
            let y0 = blk * rows_per_item;
            // Rows of the channels past `c_out` (the last group's), and their residual rows.
            scratch.resize(GROUP * wr, 0.0);
            with_scratch(&WINDOW, &key, c * plane, |window: &mut [f32]| {
                fill_window(window, image, (h, w), &win, y0);
                for oy in y0..(y0 + rows_per_item).min(oh) {
                    for (grp, wts) in layer.packed.chunks_exact(c * TAPS * GROUP).enumerate() {
                        let valid = GROUP.min(c_out - grp * GROUP);
                        let at = |r: usize| (img * c_out + grp * GROUP + r) * oh * ow + oy * ow;
                        let store = Store {
                            targets: std::array::from_fn(|r| {
                                if r < valid {
                                    dst.at(at(r))
                                } else {
                                    scratch[r * wr..].as_mut_ptr()
                                }
                            }),
                            ow,
                            epilogue: group_epilogue(layer.bias, grp, layer.act),
                            residual: residual.map(|(values, then)| {
                                let rows = std::array::from_fn(|r| {
                                    if r < valid {
                                        values[at(r)..].as_ptr()
                                    } else {
                                        scratch[r * wr..].as_ptr()
                                    }
                                });
                                (rows, then)
                            }),
                        };
                        // SAFETY: AVX2 and FMA (asserted above); the window and weights are
                        // checked inside; each target has room for `ow` values (`dst` has room
                        // for `len`, and this item alone writes rows `oy` of image `img`, every
                        // channel, each once; the scratch rows hold `wr ≥ ow`), and each
                        // residual row holds `ow` values.
                        unsafe { row_group(window, wts, &win, oy - y0, &store) };
                    }
                }
            })
        });
    // SAFETY: the items cover every (image, row) with every channel, see above.
    unsafe { out.set_len(len) };
    out
}

/// The padded input rows that output rows `y0…` see, from `image` `(C, h, w)` into `window`
/// (`win`'s layout): padded row `y0·st + lr` is input row `y0·st + lr − d`, or zeros.
fn fill_window(window: &mut [f32], image: &[f32], (h, w): (usize, usize), win: &Window, y0: usize) {
    let (st, d) = (win.st, win.d);
    let plane = win.rows * st * win.wq;
    for (src, dst) in image
        .chunks_exact(h * w)
        .zip(window.chunks_exact_mut(plane))
    {
        for (lr, row) in dst.chunks_exact_mut(st * win.wq).enumerate() {
            match (y0 * st + lr).checked_sub(d).filter(|&iy| iy < h) {
                Some(iy) => copy_row(&src[iy * w..(iy + 1) * w], row, d, st, win.wq),
                None => row.fill(0.0),
            }
        }
    }
}

/// Input row `src` into window row `row` (`st` phases of `wq` values) at padded column `d`
/// onwards; the padding columns are left as they are (zero).
fn copy_row(src: &[f32], row: &mut [f32], d: usize, st: usize, wq: usize) {
    if st == 1 {
        row[d..d + src.len()].copy_from_slice(src);
        return;
    }
    debug_assert_eq!(st, 2, "direct convolution with stride {st}");
    // Stride 2: the even padded columns to the first phase, the odd ones to the second, as two
    // strided copies (no division or branch per value).
    let (even, odd) = row.split_at_mut(wq);
    for (phase, first) in [(even, d & 1), (odd, 1 - (d & 1))] {
        // Input column `first + 2i` is padded column `first + d + 2i`, index `(first + d)/2 + i`.
        let dst = &mut phase[(first + d) / 2..];
        for (t, &v) in dst.iter_mut().zip(src.iter().skip(first).step_by(2)) {
            *t = v;
        }
    }
}

/// The shape of a work item's window (see [`forward`]).
struct Window {
    /// Input channels.
    c: usize,
    /// Window rows per channel.
    rows: usize,
    /// Stride (column phases per row).
    st: usize,
    /// Values per phase.
    wq: usize,
    /// Dilation.
    d: usize,
    /// Output row length, a multiple of 8.
    wr: usize,
}

/// Output row `oy` (counted from the window's first) of 4 channels, `out.ow` values to each of
/// its targets, from the window `(c, rows, st, wq)` and weights `(c, 9, 4)`, stored through
/// `out` (epilogue and residual there).
///
/// # Safety
/// AVX2 and FMA; `out` valid as [`Store::write`] needs for `out.ow` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_group(window: &[f32], wts: &[f32], s: &Window, oy: usize, out: &Store) {
    let (row_len, wr, ow) = (s.st * s.wq, s.wr, out.ow);
    assert!(window.len() >= s.c * s.rows * row_len && wts.len() >= s.c * TAPS * GROUP);
    assert!(wr % 8 == 0 && ow <= wr && wr < ow + 8);
    // The farthest read: row `oy·st + 2d`, phase `st − 1` at most, index `wr − 1 + 2d / st`.
    assert!(oy * s.st + 2 * s.d < s.rows && wr + 2 * s.d / s.st <= s.wq);
    let (ip, wp) = (window.as_ptr(), wts.as_ptr());
    let mut x0 = 0;
    // SAFETY (both): reads inside the window (asserted above), writes inside the targets'
    // `ow` values (`Store::write`).
    while x0 + 16 <= wr {
        pixels::<2>(ip, wp, out, s, oy, x0);
        x0 += 16;
    }
    if x0 < wr {
        pixels::<1>(ip, wp, out, s, oy, x0);
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn row_group(_: &[f32], _: &[f32], _: &Window, _: usize, _: &Store) {
    unreachable!("applies() is false without AVX2")
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
    out: &Store,
    s: &Window,
    oy: usize,
    x0: usize,
) {
    use std::arch::x86_64::*;
    let row_len = s.st * s.wq;
    let plane = s.rows * row_len;
    // Offset of tap (ky, kx) from a channel's window start, for this row and first pixel.
    let taps: [usize; TAPS] = std::array::from_fn(|t| {
        let (ky, kx) = (t / 3, t % 3);
        let col = kx * s.d;
        (oy * s.st + ky * s.d) * row_len + (col % s.st) * s.wq + col / s.st + x0
    });
    let mut acc = [[_mm256_setzero_ps(); V]; GROUP];
    for ci in 0..s.c {
        let base = ip.add(ci * plane);
        let w = wts.add(ci * TAPS * GROUP);
        for (t, &off) in taps.iter().enumerate() {
            let src = base.add(off);
            let v: [__m256; V] = std::array::from_fn(|j| _mm256_loadu_ps(src.add(8 * j)));
            let wt = w.add(t * GROUP);
            for (r, a) in acc.iter_mut().enumerate() {
                let wv = _mm256_broadcast_ss(&*wt.add(r));
                for (aj, &vj) in a.iter_mut().zip(&v) {
                    *aj = _mm256_fmadd_ps(wv, vj, *aj);
                }
            }
        }
    }
    out.write(acc, x0);
}

/// The direct 3×3 kernel in the table of [`crate::kernel`].
pub(crate) struct Direct3x3;

impl ConvKernel for Direct3x3 {
    fn name(&self) -> &'static str {
        "direct-3x3"
    }

    fn applies(&self, l: &LayerShape) -> bool {
        applies(&l.geometry, l.c_in, l.c_out)
    }

    fn pack(&self, weight: &[f32], l: &LayerShape) -> Vec<f32> {
        pack(weight, l.c_out, l.c_in)
    }

    /// Unscaled inputs (the weights are packed once).
    fn suits(&self, _: &LayerShape, call: &CallShape) -> bool {
        !call.scaled
    }

    fn forward(
        &self,
        l: &kernel::Layer,
        x: &[f32],
        dims: (usize, usize, usize, usize),
        _scale: Option<&[f32]>,
        residual: ResidualValues,
    ) -> Vec<f32> {
        forward(l, x, dims, residual)
    }
}
