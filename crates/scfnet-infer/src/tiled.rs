//! The kernel that computes every layer: the output of each image is cut into column tiles
//! (output pixels); a tile's explicit columns are built in a per-thread buffer that stays in
//! cache (a 1×1 convolution of stride 1 reads the input directly), one single-threaded matrix
//! product writes the tile of every output channel, and the bias, activation and residual are
//! applied to it while it is still in cache.

use rayon::prelude::*;
use scfnet_ops::cpu::{bias_activate_row, wide, OutPtr};
use scfnet_ops::{Activation, ConvGeometry};

use crate::kernel::{scaled_weights, CallShape, ConvKernel, Layer, LayerShape, ResidualValues};

/// Target size, in values, of one tile's explicit columns (`C·k·k × tile`): well inside L2.
const COLUMN_VALUES: usize = 32_768;
/// Narrowest and widest tile, in output pixels.
const TILE_RANGE: (usize, usize) = (128, 2048);
/// Fewest output channels of one work item when the channels are split for parallelism.
const MIN_CHANNEL_BLOCK: usize = 32;

/// The tiled kernel: any window, any channels, scaled or not; the table's last resort.
pub(crate) struct Tiled;

impl ConvKernel for Tiled {
    fn name(&self) -> &'static str {
        "tiled"
    }

    fn applies(&self, _: &LayerShape) -> bool {
        true
    }

    /// Reads the weights as loaded: nothing to pack.
    fn pack(&self, _: &[f32], _: &LayerShape) -> Vec<f32> {
        Vec::new()
    }

    fn suits(&self, _: &LayerShape, _: &CallShape) -> bool {
        true
    }

    fn forward(
        &self,
        layer: &Layer,
        x: &[f32],
        dims: (usize, usize, usize, usize),
        scale: Option<&[f32]>,
        residual: ResidualValues,
    ) -> Vec<f32> {
        forward(layer, x, dims, scale, residual)
    }
}

/// `x` `(B, C, H, W)` → `(B, C_out, H', W')`, tiled over images, output pixels and (when there
/// are too few tiles for the threads) output channels; with `scale`, each image's weights are
/// scaled by its input-channel factors first.
fn forward(
    layer: &Layer,
    x: &[f32],
    (b, c, h, w): (usize, usize, usize, usize),
    scale: Option<&[f32]>,
    residual: ResidualValues,
) -> Vec<f32> {
    let g = layer.shape.geometry;
    let (oh, ow) = (g.output(h), g.output(w));
    let (hwo, co, k) = (oh * ow, layer.shape.c_out, g.kernel);
    let kdim = c * k * k;
    if b * hwo * co == 0 {
        return Vec::new(); // an empty batch
    }
    let direct = k == 1 && g.stride == 1 && g.padding == 0;
    let tile = (COLUMN_VALUES / kdim.max(1)).clamp(TILE_RANGE.0, TILE_RANGE.1);
    let tiles = hwo.div_ceil(tile);
    let wanted = 4 * rayon::current_num_threads();
    let blocks = wanted
        .div_ceil(b * tiles)
        .min(co.div_ceil(MIN_CHANNEL_BLOCK))
        .max(1);
    let block = co.div_ceil(blocks);
    let len = b * co * hwo;
    let scaled = scale.map(|s| scaled_weights(layer.weight, c, k * k, s));
    let weights = |img: usize| match &scaled {
        Some(w) => &w[img * co * kdim..(img + 1) * co * kdim],
        None => layer.weight,
    };
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let dst = OutPtr::new(&mut out);
    let wide = wide();
    // With the channels split, the blocks of one tile share its columns: built once, up front.
    let per_tile = kdim * tile;
    let shared: Option<Vec<f32>> = (!direct && blocks > 1).then(|| {
        let mut cols = vec![0f32; b * tiles * per_tile];
        cols.par_chunks_mut(per_tile)
            .enumerate()
            .for_each(|(it, dst)| {
                let (img, t0) = (it / tiles, (it % tiles) * tile);
                let n = tile.min(hwo - t0);
                let image = &x[img * c * h * w..(img + 1) * c * h * w];
                fill_columns(&mut dst[..kdim * n], image, (c, h, w), g, ow, t0, n);
            });
        cols
    });
    (0..b * tiles * blocks)
        .into_par_iter()
        .for_each_init(Vec::<f32>::new, |columns, item| {
            let (img, rest) = (item / (tiles * blocks), item % (tiles * blocks));
            let (t, blk) = (rest / blocks, rest % blocks);
            let (t0, c0) = (t * tile, blk * block);
            let (n, m) = (tile.min(hwo - t0), block.min(co - c0.min(co)));
            if m == 0 {
                return;
            }
            let image = &x[img * c * h * w..(img + 1) * c * h * w];
            let (rhs, rhs_rs) = if direct {
                (image[t0..].as_ptr(), hwo)
            } else if let Some(cols) = &shared {
                (cols[(img * tiles + t) * per_tile..].as_ptr(), n)
            } else {
                columns.resize(kdim * n, 0.0);
                fill_columns(columns, image, (c, h, w), g, ow, t0, n);
                (columns.as_ptr(), n)
            };
            let first = img * co * hwo + c0 * hwo + t0;
            // SAFETY: `dst` has room for `len` values; this item writes rows c0..c0+m, columns
            // t0..t0+n of image `img`, which no other item touches. The product reads
            // `m × kdim` weights from row c0 and `kdim × n` values of `rhs` at row stride
            // `rhs_rs`, all in bounds; `read_dst = false` never reads the uninitialised output.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    kdim,
                    dst.at(first),
                    1,
                    hwo as isize,
                    false,
                    weights(img).as_ptr().add(c0 * kdim),
                    1,
                    kdim as isize,
                    rhs,
                    1,
                    rhs_rs as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            for r in 0..m {
                let at = first + r * hwo;
                // SAFETY: the row segment just written by the product (see above).
                let row = unsafe { std::slice::from_raw_parts_mut(dst.at(at), n) };
                let res = residual.map(|(v, then)| (&v[at..at + n], then));
                tail(row, layer.bias[c0 + r], layer.act, res, wide);
            }
        });
    // SAFETY: the items cover every (image, channel, column) of the output once, and each
    // wrote its region above.
    unsafe { out.set_len(len) };
    out
}

/// The epilogue of one row segment: `act(v + bias)`, then `then(v + residual)`.
fn tail(
    row: &mut [f32],
    bias: f32,
    act: Activation,
    residual: Option<(&[f32], Activation)>,
    wide: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` checked that the CPU has AVX2 and FMA.
        return unsafe { tail_wide(row, bias, act, residual) };
    }
    let _ = wide;
    tail_plain(row, bias, act, residual)
}

/// [`tail_plain`] compiled for AVX2 and FMA (same operations in the same order).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tail_wide(
    row: &mut [f32],
    bias: f32,
    act: Activation,
    residual: Option<(&[f32], Activation)>,
) {
    tail_plain(row, bias, act, residual)
}

#[inline(always)]
fn tail_plain(row: &mut [f32], bias: f32, act: Activation, residual: Option<(&[f32], Activation)>) {
    bias_activate_row(row, bias, act);
    if let Some((r, then)) = residual {
        row.iter_mut().zip(r).for_each(|(v, &r)| *v += r);
        bias_activate_row(row, 0.0, then);
    }
}

/// The explicit columns of output pixels `t0..t0 + n` of one image: row `(c, ky, kx)` holds
/// what that tap sees at each pixel (zero in the padding), `(C·k·k, n)` row-major.
fn fill_columns(
    dst: &mut [f32],
    image: &[f32],
    (c, h, w): (usize, usize, usize),
    g: ConvGeometry,
    ow: usize,
    t0: usize,
    n: usize,
) {
    let k = g.kernel;
    for (r, drow) in dst.chunks_exact_mut(n).enumerate().take(c * k * k) {
        let (ci, tap) = (r / (k * k), r % (k * k));
        let (ky, kx) = (tap / k, tap % k);
        let plane = &image[ci * h * w..(ci + 1) * h * w];
        // One segment per output row the tile crosses.
        let (mut j, mut p) = (0, t0);
        while j < n {
            let (oy, ox0) = (p / ow, p % ow);
            let len = (ow - ox0).min(n - j);
            let seg = &mut drow[j..j + len];
            match g.input(oy, ky, h) {
                None => seg.fill(0.0),
                Some(iy) => fill_segment(seg, &plane[iy * w..(iy + 1) * w], ox0, kx, g),
            }
            j += len;
            p += len;
        }
    }
}

/// Outputs `ox0..ox0 + seg.len()` of one output row for tap column `kx`, reading input `row`.
fn fill_segment(seg: &mut [f32], row: &[f32], ox0: usize, kx: usize, g: ConvGeometry) {
    let (w, s) = (row.len(), g.stride);
    // The outputs that see the row, `0 ≤ ox·s + kx·d − pad < w`, are one run.
    let end = ox0 + seg.len();
    let shift = kx * g.dilation;
    let lo = g.padding.saturating_sub(shift).div_ceil(s).clamp(ox0, end);
    let hi = (w + g.padding)
        .saturating_sub(shift)
        .div_ceil(s)
        .clamp(lo, end);
    if lo == hi {
        seg.fill(0.0); // only padding
        return;
    }
    let src = lo * s + shift - g.padding;
    seg[..lo - ox0].fill(0.0);
    let run = &mut seg[lo - ox0..hi - ox0];
    if s == 1 {
        run.copy_from_slice(&row[src..src + run.len()]);
    } else {
        let row = &row[src..src + (run.len() - 1) * s + 1];
        for (q, d) in run.iter_mut().enumerate() {
            *d = row[q * s];
        }
    }
    seg[hi - ox0..].fill(0.0);
}
