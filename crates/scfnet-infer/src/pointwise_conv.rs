//! The 1×1 convolution of inference (stride 1, no padding) computed directly: f32 with AVX2 and
//! FMA. MobileNetV3's expand and project layers have few input channels (8 to 40 on the
//! student's large maps, up to 120 on its small ones), where a general matrix product spends
//! much of its time packing its operands; here each input channel's row is read in place.
//!
//! The kernel keeps [`GROUP`] output channels × 16 pixels in registers (8 accumulators; with 24
//! pixels the compiler spilled them) and adds, for every input channel, 16 input values (two
//! vector loads) times each channel's weight (a broadcast); the last pixels of a plane go 8 at
//! a time, the very last ones through masked loads. Bias, activation and residual are applied
//! in registers before the store ([`crate::tile_store`]). A work item is a tile of pixels of
//! one image; it runs one group of output channels over the whole tile before the next, so the
//! group's weights stay in the nearest cache.
//!
//! Single layers on the project's machine (one core, 352² input): 8→8 channels at 176² took
//! 0.070–0.075 ms against 0.100 ms through the matrix product, 8→32 0.27–0.29 against 0.35,
//! 40→16 at 88² 0.13 against 0.15, 96→40 at 22² 0.043 against 0.051; 64 channels at 44² and
//! 88² were slower than the product, hence [`suits`].

use rayon::prelude::*;

use scfnet_ops::cpu::{wide, OutPtr};
use scfnet_ops::{Activation, ConvGeometry};

use crate::kernel::{self, scaled_weights, CallShape, ConvKernel, LayerShape, ResidualValues};
use crate::tile_store::{group_epilogue, Store, GROUP};

/// Most input channels of a layer that runs here. With more, the sums are long enough for the
/// general matrix product's packing to pay off.
const MAX_INPUT_CHANNELS: usize = 128;

/// Most input channels of a layer with planes larger than [`SMALL_PLANE`] that runs here. The
/// kernel reads 16 pixels of every input channel in turn, each channel's row a plane further
/// on: on large planes that is one memory page per channel, and past about 40 of them the
/// general matrix product (which packs its operands first) was faster (64 channels at 44×44
/// and 88×88; single layers on the project's machine).
const MAX_INPUT_CHANNELS_LARGE_PLANES: usize = 40;

/// Pixels of a plane small enough (4 KiB) for several input channels to share a page.
const SMALL_PLANE: usize = 1024;

/// Input values a work item's pixels span (all input channels): about 16 KiB, so that the
/// item's input stays in the core's nearest cache while every group of output channels reads it.
const TILE_VALUES: usize = 4 * 1024;

/// Pixels of the widest register tile.
const WIDE: usize = 16;

/// Whether a layer of this geometry and width can run here: 1×1, stride 1, no padding, at most
/// [`MAX_INPUT_CHANNELS`] input channels, on a CPU with AVX2 and FMA ([`suits`] then decides
/// per input size).
pub(crate) fn applies(g: &ConvGeometry, c_in: usize) -> bool {
    g.kernel == 1 && g.stride == 1 && g.padding == 0 && c_in <= MAX_INPUT_CHANNELS && wide()
}

/// Whether an input of `c_in` planes of `pixels` values runs here (for a layer that
/// [`applies`]): few channels, or planes small enough to share pages.
pub(crate) fn suits(c_in: usize, pixels: usize) -> bool {
    c_in <= MAX_INPUT_CHANNELS_LARGE_PLANES || pixels <= SMALL_PLANE
}

/// The weights `(C_out, C_in)` row-major rearranged for the kernel: `(⌈C_out/4⌉, C_in, 4)`,
/// output channels past `C_out` zero.
pub(crate) fn pack(weight: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let groups = c_out.div_ceil(GROUP);
    let mut packed = vec![0f32; groups * c_in * GROUP];
    for (co, row) in weight.chunks_exact(c_in).enumerate().take(c_out) {
        let (grp, r) = (co / GROUP, co % GROUP);
        for (ci, &v) in row.iter().enumerate() {
            packed[(grp * c_in + ci) * GROUP + r] = v;
        }
    }
    packed
}

/// `x` `(B, C, H, W)` → `(B, C_out, H, W)`: `act(conv(x) + bias)`, then `then(· + residual)`,
/// with the [`pack`]ed weights `packed`: one set, or one per image (`per_image`: `B` sets one
/// after the other). Only for a 1×1 layer for which [`applies`] held.
fn forward(
    layer: &kernel::Layer,
    (packed, per_image): (&[f32], bool),
    x: &[f32],
    (b, c, h, w): (usize, usize, usize, usize),
    residual: Option<(&[f32], Activation)>,
) -> Vec<f32> {
    let (hw, c_out) = (h * w, layer.shape.c_out);
    let len = b * c_out * hw;
    if len == 0 {
        return Vec::new();
    }
    assert!(wide(), "pointwise convolution without AVX2");
    let groups = c_out.div_ceil(GROUP);
    let set = groups * c * GROUP;
    let sets = if per_image { b } else { 1 };
    assert_eq!(packed.len(), sets * set, "packed weights");
    assert_eq!(x.len(), b * c * hw, "input");
    if let Some((r, _)) = residual {
        assert_eq!(r.len(), len, "residual");
    }
    // Work items: a tile of pixels of one image (numbered image, then tile: a halved loop
    // gives each thread one region of the image), and with too few tiles for the threads, a
    // block of the groups of output channels.
    let tile = (TILE_VALUES / c.max(1))
        .next_multiple_of(WIDE)
        .min(hw.next_multiple_of(8));
    let tiles = hw.div_ceil(tile);
    let wanted = 4 * rayon::current_num_threads();
    let blocks = wanted.div_ceil(b * tiles).min(groups).max(1);
    let per_block = groups.div_ceil(blocks);
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let dst = OutPtr::new(&mut out);
    (0..b * tiles * blocks)
        .into_par_iter()
        .for_each_init(Vec::<f32>::new, |scratch, item| {
            let (img, rest) = (item / (tiles * blocks), item % (tiles * blocks));
            let (t, blk) = (rest / blocks, rest % blocks);
            let (p0, g0) = (t * tile, blk * per_block);
            let (n, g1) = (tile.min(hw - p0), (g0 + per_block).min(groups));
            if g0 >= g1 {
                return;
            }
            let image = &x[img * c * hw..(img + 1) * c * hw];
            let weights = &packed[if per_image { img * set } else { 0 }..][..set];
            let src = Source {
                x: image[p0..].as_ptr(),
                stride: hw,
                c,
                n,
            };
            // Rows of the channels past `c_out` (the last group's), and their residual rows.
            scratch.resize(n, 0.0);
            let scratch_out = scratch.as_mut_ptr();
            for grp in g0..g1 {
                let valid = GROUP.min(c_out - grp * GROUP);
                let at = |r: usize| (img * c_out + grp * GROUP + r) * hw + p0;
                let store = Store {
                    targets: std::array::from_fn(|r| {
                        if r < valid {
                            dst.at(at(r))
                        } else {
                            scratch_out
                        }
                    }),
                    ow: n,
                    epilogue: group_epilogue(layer.bias, grp, layer.act),
                    residual: residual.map(|(values, then)| {
                        let rows = std::array::from_fn(|r| {
                            if r < valid {
                                values[at(r)..].as_ptr()
                            } else {
                                scratch_out.cast_const()
                            }
                        });
                        (rows, then)
                    }),
                };
                let w = &weights[grp * c * GROUP..(grp + 1) * c * GROUP];
                // SAFETY: AVX2 and FMA (asserted above). Reads: input channel `ci`'s values
                // `p0..p0 + n` of this image (`image[ci·hw + p0 ..]`, `n ≤ hw − p0`), the
                // group's `c·4` weights, and the residual's `n` values at each target's
                // position. Writes: `n` values of rows `(img, grp·4 + r)` from pixel `p0`,
                // which this item alone writes (its tile, its block of groups), each once; the
                // scratch row holds `n`.
                unsafe { group_pixels(&src, w, &store) };
            }
        });
    // SAFETY: the items cover every (image, channel, pixel) of the output once, see above.
    unsafe { out.set_len(len) };
    out
}

/// A work item's input: `c` rows of `n` pixels, row `ci` at `x + ci·stride`.
struct Source {
    x: *const f32,
    stride: usize,
    c: usize,
    n: usize,
}

/// One group of 4 output channels over the item's pixels, 16 at a time (then 8, then the rest).
///
/// # Safety
/// AVX2 and FMA; `src` readable as described; `w` holds the group's `c·4` packed weights; the
/// store valid for `src.n` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn group_pixels(src: &Source, w: &[f32], store: &Store) {
    assert!(w.len() >= src.c * GROUP);
    let (w, n) = (w.as_ptr(), src.n);
    let mut x0 = 0;
    while x0 + WIDE <= n {
        pixels::<2>(src, w, store, x0, WIDE);
        x0 += WIDE;
    }
    while x0 < n {
        pixels::<1>(src, w, store, x0, (n - x0).min(8));
        x0 += 8;
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn group_pixels(_: &Source, _: &[f32], _: &Store) {
    unreachable!("applies() is false without AVX2")
}

/// `8·V` pixels from `x0` (`valid` of them read, the rest zero) of one group of 4 channels.
///
/// # Safety
/// AVX2 and FMA; pixels `x0..x0 + valid` of every input row readable; `w` holds `c·4` values.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn pixels<const V: usize>(
    src: &Source,
    w: *const f32,
    out: &Store,
    x0: usize,
    valid: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); V]; GROUP];
    let base = src.x.add(x0);
    if valid == 8 * V {
        for ci in 0..src.c {
            let row = base.add(ci * src.stride);
            let v: [__m256; V] = std::array::from_fn(|j| _mm256_loadu_ps(row.add(8 * j)));
            let wt = w.add(ci * GROUP);
            for (r, a) in acc.iter_mut().enumerate() {
                let wv = _mm256_broadcast_ss(&*wt.add(r));
                for (aj, &vj) in a.iter_mut().zip(&v) {
                    *aj = _mm256_fmadd_ps(wv, vj, *aj);
                }
            }
        }
    } else {
        // Lanes at and past `valid` are neither read nor stored.
        assert!(V == 1 && valid < 8);
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid as i32), lanes);
        for ci in 0..src.c {
            let v = _mm256_maskload_ps(base.add(ci * src.stride), mask);
            let wt = w.add(ci * GROUP);
            for (r, a) in acc.iter_mut().enumerate() {
                let wv = _mm256_broadcast_ss(&*wt.add(r));
                a[0] = _mm256_fmadd_ps(wv, v, a[0]);
            }
        }
    }
    out.write(acc, x0);
}

/// The direct 1×1 kernel in the table of [`crate::kernel`].
pub(crate) struct Pointwise;

impl ConvKernel for Pointwise {
    fn name(&self) -> &'static str {
        "direct-1x1"
    }

    fn applies(&self, l: &LayerShape) -> bool {
        applies(&l.geometry, l.c_in)
    }

    fn pack(&self, weight: &[f32], l: &LayerShape) -> Vec<f32> {
        pack(weight, l.c_out, l.c_in)
    }

    /// Few input channels or small maps ([`suits`]), scaled or not.
    fn suits(&self, _: &LayerShape, call: &CallShape) -> bool {
        suits(call.dims.1, call.pixels())
    }

    /// With `scale`, each image's scaled weights are packed first.
    fn forward(
        &self,
        l: &kernel::Layer,
        x: &[f32],
        dims: (usize, usize, usize, usize),
        scale: Option<&[f32]>,
        residual: ResidualValues,
    ) -> Vec<f32> {
        let (c, c_out) = (l.shape.c_in, l.shape.c_out);
        let scaled: Option<Vec<f32>> = scale.map(|s| {
            scaled_weights(l.weight, c, 1, s)
                .chunks_exact(c_out * c)
                .flat_map(|w| pack(w, c_out, c))
                .collect()
        });
        let packed = scaled.as_deref().unwrap_or(l.packed);
        forward(l, (packed, scaled.is_some()), x, dims, residual)
    }
}
