//! The 3×3 convolution of inference with stride 1 and padding 1 by Winograd's minimal filtering
//! F(2×2, 3×3): f32 with AVX2 and FMA. Each 2×2 block of outputs (a *tile*) is computed from the
//! 4×4 input patch around it with 16 products per input and output channel instead of 36:
//!
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`, summed over input channels,
//!
//! with `d` the patch, `g` the 3×3 kernel, `G g Gᵀ` computed once at load ([`pack`]). The sum
//! over input channels of the element-wise products is 16 independent 1×1 convolutions, one per
//! position `ξ` of the 4×4 transformed patch; they run with the register tile of the direct
//! kernels (4 output channels × 16 tiles).
//!
//! A work item is a few rows of tiles (two output rows each) of one image. For each row of tiles
//! it transforms the input patches of every channel into its thread's buffer (16 planes of
//! `C_in × tiles`), runs the 16 products into a second buffer, and transforms those back into
//! the two output rows, with bias, activation and residual applied in registers before the
//! store ([`crate::tile_store`]).
//!
//! The transforms add a few roundings per value: against the direct kernel the outputs differ
//! by about 1e-6 relative, well inside the inference path's tolerance.

use rayon::prelude::*;

use scfnet_ops::cpu::{wide, with_scratch, OutPtr, ScratchSlot};
use scfnet_ops::{Activation, ConvGeometry};

use crate::direct_conv;
use crate::kernel::{self, CallShape, ConvKernel, LayerShape, ResidualValues};
use crate::tile_store::{group_epilogue, Store, GROUP};

thread_local! {
    /// Each thread's transformed tiles and products (see [`forward`]).
    static TRANSFORMS: ScratchSlot<f32> = ScratchSlot::default();
}

/// Positions of a transformed 4×4 patch.
const POSITIONS: usize = 16;

/// Most input channels of a layer that runs here (the widest measured: 1024 inputs to 64
/// outputs at 22×22, the R50 decoder's, 4.2–4.4 ms against 12.4–12.5 through the tiled product;
/// 2 threads).
const MAX_INPUT_CHANNELS: usize = 2048;

/// Most output channels of a layer that runs here (the widest measured).
const MAX_OUTPUT_CHANNELS: usize = 512;

/// Fewest output channels of a layer that runs here: the register tile computes 4 at a time,
/// and with a single one (the prediction heads) the direct kernel was 1.5–2× faster.
const MIN_OUTPUT_CHANNELS: usize = 8;

/// Fewest output pixels of an input that runs here in general. At 11×11 (121 pixels, six rows
/// of tiles) the direct kernel was faster for the layers it takes (16→16, 80→16 channels), and
/// the tiled product as fast for 512→512; at 22×22 and above this kernel was faster.
const MIN_PIXELS: usize = 400;

/// Most output channels of a layer that runs here on a smaller input, when the direct kernel
/// does not take it: 2048→64 channels at 11×11 (the R50 decoder's deepest mapping convolution)
/// took 3.2–3.4 ms here against 5.7–7.6 through the tiled product (2 threads).
const SMALL_INPUT_MAX_OUTPUTS: usize = 64;

/// `G` of F(2×2, 3×3): the kernel transform `G g Gᵀ`.
const G: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// Whether a layer of this geometry and width can run here: 3×3, stride 1, padding and dilation
/// 1, at most [`MAX_INPUT_CHANNELS`] inputs and [`MIN_OUTPUT_CHANNELS`] to
/// [`MAX_OUTPUT_CHANNELS`] outputs, on a CPU with AVX2 and FMA ([`suits`] then decides per
/// input size).
pub(crate) fn applies(g: &ConvGeometry, c_in: usize, c_out: usize) -> bool {
    g.kernel == 3
        && g.stride == 1
        && g.padding == 1
        && g.dilation == 1
        && c_in <= MAX_INPUT_CHANNELS
        && (MIN_OUTPUT_CHANNELS..=MAX_OUTPUT_CHANNELS).contains(&c_out)
        && wide()
}

/// Whether an input of `pixels` per plane runs here, for a layer that [`applies`] with `c_out`
/// outputs, `direct` telling whether the direct 3×3 kernel takes the layer: from
/// [`MIN_PIXELS`] on, and below for layers of at most [`SMALL_INPUT_MAX_OUTPUTS`] outputs that
/// the direct kernel does not take.
pub(crate) fn suits(pixels: usize, c_out: usize, direct: bool) -> bool {
    pixels >= MIN_PIXELS || (!direct && c_out <= SMALL_INPUT_MAX_OUTPUTS)
}

/// The weights `(C_out, C_in, 3, 3)` row-major transformed and rearranged for the kernel:
/// `G g Gᵀ` of every channel pair as `(16, ⌈C_out/4⌉, C_in, 4)`, output channels past `C_out`
/// zero. The transform runs in f64.
pub(crate) fn pack(weight: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let groups = c_out.div_ceil(GROUP);
    let mut packed = vec![0f32; POSITIONS * groups * c_in * GROUP];
    for (pair, g) in weight.chunks_exact(9).enumerate().take(c_out * c_in) {
        let (co, ci) = (pair / c_in, pair % c_in);
        let (grp, r) = (co / GROUP, co % GROUP);
        // t = G g (4×3), then t Gᵀ (4×4).
        let t: [[f64; 3]; 4] = std::array::from_fn(|i| {
            std::array::from_fn(|k| (0..3).map(|m| G[i][m] * g[m * 3 + k] as f64).sum())
        });
        for i in 0..4 {
            for j in 0..4 {
                let v: f64 = (0..3).map(|k| t[i][k] * G[j][k]).sum();
                packed[(((i * 4 + j) * groups + grp) * c_in + ci) * GROUP + r] = v as f32;
            }
        }
    }
    packed
}

/// The sizes of a work item's buffers (see [`forward`]).
#[derive(Clone, Copy)]
struct Tiles {
    /// Input channels.
    c: usize,
    /// Output channels rounded up to whole groups.
    cp: usize,
    /// Tiles per row rounded up to a multiple of 8 (the transforms run 8 tiles at a time).
    tw8: usize,
    /// Input height and width (the output's too).
    h: usize,
    w: usize,
}

impl Tiles {
    /// Values of the transformed input: `(16, C_in, tw8)`.
    fn input_len(&self) -> usize {
        POSITIONS * self.c * self.tw8
    }

    /// Values of the products: `(16, cp, tw8)`.
    fn product_len(&self) -> usize {
        POSITIONS * self.cp * self.tw8
    }

    /// Values of the row transform of four input rows: each the padded row (`2·tw8 + 2`), then
    /// its four combinations (`tw8` each).
    fn rows_len(&self) -> usize {
        4 * (2 * self.tw8 + 2 + 4 * self.tw8)
    }

    /// Values of the spare output rows (channels past `C_out`, the row past an odd height).
    fn spare_len(&self) -> usize {
        2 * GROUP * 2 * self.tw8
    }
}

/// `x` `(B, C, H, W)` → `(B, C_out, H, W)`: `act(conv(x) + bias)`, then `then(· + residual)`.
/// Only when [`applies`] held for the layer.
fn forward(
    layer: &kernel::Layer,
    x: &[f32],
    (b, c, h, w): (usize, usize, usize, usize),
    residual: Option<(&[f32], Activation)>,
) -> Vec<f32> {
    let c_out = layer.shape.c_out;
    let len = b * c_out * h * w;
    if len == 0 {
        return Vec::new();
    }
    assert!(wide(), "Winograd convolution without AVX2");
    let groups = c_out.div_ceil(GROUP);
    assert_eq!(layer.packed.len(), POSITIONS * groups * c * GROUP);
    assert_eq!(x.len(), b * c * h * w);
    if let Some((r, _)) = residual {
        assert_eq!(r.len(), len);
    }
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let tiles = Tiles {
        c,
        cp: groups * GROUP,
        tw8: tw.next_multiple_of(8),
        h,
        w,
    };
    // Work items: a few rows of tiles of one image, every output channel.
    let wanted = 4 * rayon::current_num_threads();
    let rows_per_item = (b * th).div_ceil(wanted).clamp(1, 4);
    let blocks = th.div_ceil(rows_per_item);
    let (u_len, m_len, r_len) = (tiles.input_len(), tiles.product_len(), tiles.rows_len());
    let scratch_len = u_len + m_len + r_len + tiles.spare_len();
    // The transforms and products write every value they later read, and what the spare rows
    // hold only flows back into spare rows, so the buffer's state from an earlier layer does
    // not matter; the key only sizes it.
    let key = [c, tiles.cp, tiles.tw8];
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let dst = OutPtr::new(&mut out);
    (0..b * blocks).into_par_iter().for_each(|item| {
        let (img, blk) = (item / blocks, item % blocks);
        let image = &x[img * c * h * w..(img + 1) * c * h * w];
        with_scratch(&TRANSFORMS, &key, scratch_len, |buf: &mut [f32]| {
            let (u, rest) = buf.split_at_mut(u_len);
            let (m, rest) = rest.split_at_mut(m_len);
            let (rows, spare) = rest.split_at_mut(r_len);
            for ty in blk * rows_per_item..((blk + 1) * rows_per_item).min(th) {
                // SAFETY: AVX2 and FMA (asserted above); the buffers have the sizes `Tiles`
                // gives; this item alone writes output rows 2·ty and 2·ty + 1 of image `img`,
                // every channel (each target has room for `w` values: `dst` for `len`, the
                // spare rows for 2·tw8 ≥ w), and each residual row holds `w` values.
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("applies() is false without AVX2");
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    transform_input(u, rows, image, &tiles, ty);
                    products(m, u, layer.packed, &tiles);
                    let at = |co: usize, oy: usize| ((img * c_out + co) * h + oy) * w;
                    transform_output(m, spare, &tiles, ty, layer, |co, oy| {
                        (co < c_out && oy < h).then(|| {
                            let i = at(co, oy);
                            (dst.at(i), residual.map(|(r, then)| (r[i..].as_ptr(), then)))
                        })
                    });
                }
            }
        });
    });
    // SAFETY: the items cover every (image, row of tiles) with every channel, see above.
    unsafe { out.set_len(len) };
    out
}

/// `Bᵀ d B` of the patches of tile row `ty` of `image` `(C, h, w)`, for every channel, into `u`
/// `(16, C, tw8)`; `rows` is working space ([`Tiles::rows_len`]).
///
/// Patch `(ty, tx)` covers input rows `2ty − 1 … 2ty + 2` and columns `2tx − 1 … 2tx + 2`
/// (zeros outside the image). Per input row, with `e[t] = x[2t − 1]` and `o[t] = x[2t]`, the
/// row transform of tile `t` is `(e[t] − e[t+1], o[t] + e[t+1], e[t+1] − o[t], o[t] − o[t+1])`;
/// the column transform combines four rows the same way.
///
/// # Safety
/// AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_input(u: &mut [f32], rows: &mut [f32], image: &[f32], s: &Tiles, ty: usize) {
    use std::arch::x86_64::*;
    let (c, tw8, h, w) = (s.c, s.tw8, s.h, s.w);
    // Per row: the padded row (`2·tw8 + 2` values: a zero, the row, zeros), then its four
    // combinations (`tw8` each).
    let padded = 2 * tw8 + 2;
    let per_row = padded + 4 * tw8;
    assert!(rows.len() >= 4 * per_row && u.len() >= POSITIONS * c * tw8);
    assert!(image.len() >= c * h * w && w < padded && tw8 % 8 == 0);
    for (ci, plane) in image.chunks_exact(h * w).enumerate() {
        for (k, row) in rows.chunks_exact_mut(per_row).take(4).enumerate() {
            let (p, comb) = row.split_at_mut(padded);
            match (2 * ty + k).checked_sub(1).filter(|&iy| iy < h) {
                Some(iy) => {
                    p[0] = 0.0;
                    p[1..w + 1].copy_from_slice(&plane[iy * w..(iy + 1) * w]);
                    p[w + 1..].fill(0.0);
                }
                None => p.fill(0.0),
            }
            // p[2t] = e[t], p[2t + 1] = o[t]: tiles t … t + 7 need p[2t … 2t + 17].
            let pp = p.as_ptr();
            let cp = comb.as_mut_ptr();
            let mut t = 0;
            while t < tw8 {
                // SAFETY: reads p[2t … 2t + 17], inside p (t + 8 ≤ tw8, so 2t + 17 < 2·tw8 + 2);
                // writes comb[j·tw8 + t … + 7], inside comb (4·tw8 values).
                let (e0, o0) = deinterleave(pp.add(2 * t));
                let (e1, o1) = deinterleave(pp.add(2 * t + 2));
                _mm256_storeu_ps(cp.add(t), _mm256_sub_ps(e0, e1));
                _mm256_storeu_ps(cp.add(tw8 + t), _mm256_add_ps(o0, e1));
                _mm256_storeu_ps(cp.add(2 * tw8 + t), _mm256_sub_ps(e1, o0));
                _mm256_storeu_ps(cp.add(3 * tw8 + t), _mm256_sub_ps(o0, o1));
                t += 8;
            }
        }
        // Column transform: position (i, j) from combination j of the four rows.
        let rp = rows.as_ptr();
        let up = u.as_mut_ptr();
        for j in 0..4 {
            let comb = |k: usize| rp.add(k * per_row + padded + j * tw8);
            let (r0, r1, r2, r3) = (comb(0), comb(1), comb(2), comb(3));
            let at = |i: usize| up.add(((i * 4 + j) * c + ci) * tw8);
            let (p0, p1, p2, p3) = (at(0), at(1), at(2), at(3));
            let mut t = 0;
            while t < tw8 {
                // SAFETY: inside the combinations and `u` (asserted above).
                let (a0, a1) = (_mm256_loadu_ps(r0.add(t)), _mm256_loadu_ps(r1.add(t)));
                let (a2, a3) = (_mm256_loadu_ps(r2.add(t)), _mm256_loadu_ps(r3.add(t)));
                _mm256_storeu_ps(p0.add(t), _mm256_sub_ps(a0, a2));
                _mm256_storeu_ps(p1.add(t), _mm256_add_ps(a1, a2));
                _mm256_storeu_ps(p2.add(t), _mm256_sub_ps(a2, a1));
                _mm256_storeu_ps(p3.add(t), _mm256_sub_ps(a1, a3));
                t += 8;
            }
        }
    }
}

/// The even and the odd ones of the 16 values at `p`: `(p[0], p[2], …, p[14])` and
/// `(p[1], p[3], …, p[15])`.
///
/// # Safety
/// AVX2; `p` valid for reading 16 values.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn deinterleave(p: *const f32) -> (std::arch::x86_64::__m256, std::arch::x86_64::__m256) {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
    // Within each 128-bit half: (a0 a2 b0 b2 | a4 a6 b4 b6), then the 64-bit pieces reordered.
    let even = _mm256_shuffle_ps::<0x88>(a, b);
    let odd = _mm256_shuffle_ps::<0xDD>(a, b);
    let order =
        |v: __m256| _mm256_castsi256_ps(_mm256_permute4x64_epi64::<0xD8>(_mm256_castps_si256(v)));
    (order(even), order(odd))
}

/// The 16 products: `m[ξ, co, t] = Σ_ci V[ξ, co, ci] · u[ξ, ci, t]`, `m` `(16, cp, tw8)`.
///
/// # Safety
/// AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn products(m: &mut [f32], u: &[f32], packed: &[f32], s: &Tiles) {
    let (c, cp, tw8) = (s.c, s.cp, s.tw8);
    let groups = cp / GROUP;
    assert!(m.len() >= POSITIONS * cp * tw8 && u.len() >= POSITIONS * c * tw8);
    assert!(packed.len() >= POSITIONS * groups * c * GROUP && tw8 % 8 == 0);
    for xi in 0..POSITIONS {
        let up = u[xi * c * tw8..].as_ptr();
        for grp in 0..groups {
            let wp = packed[(xi * groups + grp) * c * GROUP..].as_ptr();
            let mp = m[(xi * cp + grp * GROUP) * tw8..].as_mut_ptr();
            let mut t0 = 0;
            // SAFETY (both): reads `c` rows of `tw8` from `up` and `c · GROUP` weights, writes
            // GROUP rows of `tw8` at `mp` (asserted above).
            while t0 + 16 <= tw8 {
                group_product::<2>(up.add(t0), tw8, wp, c, mp.add(t0), tw8);
                t0 += 16;
            }
            if t0 < tw8 {
                group_product::<1>(up.add(t0), tw8, wp, c, mp.add(t0), tw8);
            }
        }
    }
}

/// `GROUP` output channels × `8·V` tiles of one position: sums over `c` input channels (rows
/// `stride` apart from `u`, weights `(c, GROUP)` at `w`), stored to GROUP rows `m_stride` apart.
///
/// # Safety
/// AVX2 and FMA; the reads and writes in bounds as described.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn group_product<const V: usize>(
    u: *const f32,
    stride: usize,
    w: *const f32,
    c: usize,
    m: *mut f32,
    m_stride: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); V]; GROUP];
    for ci in 0..c {
        let x: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(u.add(ci * stride + 8 * v)));
        for (r, row) in acc.iter_mut().enumerate() {
            let wv = _mm256_set1_ps(*w.add(ci * GROUP + r));
            for (a, &xv) in row.iter_mut().zip(&x) {
                *a = _mm256_fmadd_ps(wv, xv, *a);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, &a) in row.iter().enumerate() {
            _mm256_storeu_ps(m.add(r * m_stride + 8 * v), a);
        }
    }
}

/// Where output channel `co`'s row `oy` goes (and its residual row), or `None` for a channel
/// past the layer's last or a row past the image.
type Target = Option<(*mut f32, Option<(*const f32, Activation)>)>;

/// `Aᵀ M A` of every tile of row `ty` from the products `m`, stored through [`Store`] (bias,
/// activation, residual) to output rows `2ty` and `2ty + 1` at the places `target` gives, spare
/// rows in `spare` for the rest.
///
/// # Safety
/// AVX2 and FMA; each target valid for writing `w` values, each residual row for reading `w`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_output(
    m: &[f32],
    spare: &mut [f32],
    s: &Tiles,
    ty: usize,
    layer: &kernel::Layer,
    target: impl Fn(usize, usize) -> Target,
) {
    use std::arch::x86_64::*;
    let (cp, tw8, w) = (s.cp, s.tw8, s.w);
    assert!(m.len() >= POSITIONS * cp * tw8 && spare.len() >= 2 * GROUP * 2 * tw8);
    let spare_row = |k: usize| spare[k * 2 * tw8..].as_mut_ptr();
    let spare_rows: [*mut f32; 2 * GROUP] = std::array::from_fn(spare_row);
    for grp in 0..cp / GROUP {
        let stores: [Store; 2] = std::array::from_fn(|dy| {
            let places: [Target; GROUP] =
                std::array::from_fn(|r| target(grp * GROUP + r, 2 * ty + dy));
            let residual = residual_rows(&places, &spare_rows, dy);
            Store {
                targets: std::array::from_fn(|r| {
                    places[r].map_or(spare_rows[dy * GROUP + r], |(p, _)| p)
                }),
                ow: w,
                epilogue: group_epilogue(layer.bias, grp, layer.act),
                residual,
            }
        });
        let mut t0 = 0;
        while t0 < tw8 && 2 * t0 < w {
            // Per channel of the group: output rows 2ty and 2ty + 1, 16 values each.
            let per_channel: [[[__m256; 2]; 2]; GROUP] = std::array::from_fn(|r| {
                let base = (grp * GROUP + r) * tw8 + t0;
                let mv: [__m256; POSITIONS] =
                    std::array::from_fn(|xi| _mm256_loadu_ps(m.as_ptr().add(xi * cp * tw8 + base)));
                // Over columns j: s0 = M[i][0] + M[i][1] + M[i][2], s1 = M[i][1] − M[i][2] − M[i][3].
                let s0: [__m256; 4] = std::array::from_fn(|i| {
                    _mm256_add_ps(_mm256_add_ps(mv[4 * i], mv[4 * i + 1]), mv[4 * i + 2])
                });
                let s1: [__m256; 4] = std::array::from_fn(|i| {
                    _mm256_sub_ps(_mm256_sub_ps(mv[4 * i + 1], mv[4 * i + 2]), mv[4 * i + 3])
                });
                // Over rows i the same: Y[0][b] = s[0] + s[1] + s[2], Y[1][b] = s[1] − s[2] − s[3].
                let top = |s: &[__m256; 4]| _mm256_add_ps(_mm256_add_ps(s[0], s[1]), s[2]);
                let bottom = |s: &[__m256; 4]| _mm256_sub_ps(_mm256_sub_ps(s[1], s[2]), s[3]);
                // Tile t's two columns side by side: 2t ← left[t], 2t + 1 ← right[t].
                let side_by_side = |left: __m256, right: __m256| {
                    let lo = _mm256_unpacklo_ps(left, right);
                    let hi = _mm256_unpackhi_ps(left, right);
                    [
                        _mm256_permute2f128_ps(lo, hi, 0x20),
                        _mm256_permute2f128_ps(lo, hi, 0x31),
                    ]
                };
                [
                    side_by_side(top(&s0), top(&s1)),
                    side_by_side(bottom(&s0), bottom(&s1)),
                ]
            });
            for (dy, store) in stores.iter().enumerate() {
                store.write::<2>(std::array::from_fn(|r| per_channel[r][dy]), 2 * t0);
            }
            t0 += 8;
        }
    }
}

/// The residual rows of a group's stores for output row parity `dy`: the places' residual
/// rows, spare rows where a place has none; `None` when the layer adds no residual.
fn residual_rows(
    places: &[Target; GROUP],
    spare: &[*mut f32; 2 * GROUP],
    dy: usize,
) -> Option<([*const f32; GROUP], Activation)> {
    let then = places
        .iter()
        .flatten()
        .find_map(|(_, r)| r.map(|(_, t)| t))?;
    Some((
        std::array::from_fn(|r| {
            places[r]
                .and_then(|(_, res)| res.map(|(p, _)| p))
                .unwrap_or(spare[dy * GROUP + r].cast_const())
        }),
        then,
    ))
}

/// The Winograd kernel in the table of [`crate::kernel`].
pub(crate) struct Winograd;

impl ConvKernel for Winograd {
    fn name(&self) -> &'static str {
        "winograd"
    }

    fn applies(&self, l: &LayerShape) -> bool {
        applies(&l.geometry, l.c_in, l.c_out)
    }

    fn pack(&self, weight: &[f32], l: &LayerShape) -> Vec<f32> {
        pack(weight, l.c_out, l.c_in)
    }

    /// Unscaled inputs, on large maps or where the direct 3×3 kernel does not compute the layer
    /// ([`suits`]).
    fn suits(&self, l: &LayerShape, call: &CallShape) -> bool {
        let direct = direct_conv::applies(&l.geometry, l.c_in, l.c_out);
        !call.scaled && suits(call.pixels(), l.c_out, direct)
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
