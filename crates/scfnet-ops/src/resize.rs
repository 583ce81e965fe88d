//! Differentiable bilinear resize of `(B, C, H, W)` tensors, PyTorch / Paddle semantics.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::constants::cached_constant;
use crate::dispatch::uses_cpu_kernels;
use crate::elem::{dims4, map_float, Real};
use crate::par_vec::par_filled;
use crate::resize_columns::ColumnTaps;

/// One output coordinate's two source indices and weights.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tap<T> {
    /// The first source index.
    pub i0: usize,
    /// The second source index (`i0 + 1`, or `i0` at the last one).
    pub i1: usize,
    /// The first one's weight.
    pub w0: T,
    /// The second one's weight.
    pub w1: T,
}

/// Source taps along one axis, as PyTorch's `upsample_bilinear2d` computes them (in the tensor's
/// own float type): `align_corners` maps the corner pixel centres onto each other, otherwise
/// half-pixel centres with the source index clamped at 0.
pub(crate) fn taps<T: Real>(in_len: usize, out_len: usize, align_corners: bool) -> Vec<Tap<T>> {
    let scale = if align_corners {
        if out_len > 1 {
            T::from_usize(in_len - 1) / T::from_usize(out_len - 1)
        } else {
            T::ZERO
        }
    } else {
        T::from_usize(in_len) / T::from_usize(out_len)
    };
    (0..out_len)
        .map(|d| {
            let src = if align_corners {
                scale * T::from_usize(d)
            } else {
                let s = scale * (T::from_usize(d) + T::from_f64(0.5)) - T::from_f64(0.5);
                if s < T::ZERO {
                    T::ZERO
                } else {
                    s
                }
            };
            let i0 = src.floor_to_usize().min(in_len - 1);
            let i1 = if i0 < in_len - 1 { i0 + 1 } else { i0 };
            let w1 = src - T::from_usize(i0);
            Tap {
                i0,
                i1,
                w0: T::ONE - w1,
                w1,
            }
        })
        .collect()
}

/// The source rows of one plane, handed to [`resize_rows_into`] as it needs them.
pub(crate) trait RowSource<T> {
    /// Source row `y` (all its values).
    fn row(&mut self, y: usize) -> &[T];
}

/// The rows of a plane stored row-major, `width` values each.
pub(crate) struct PlaneRows<'a, T> {
    /// The plane.
    pub plane: &'a [T],
    /// Values per row.
    pub width: usize,
}

impl<T> RowSource<T> for PlaneRows<'_, T> {
    fn row(&mut self, y: usize) -> &[T] {
        &self.plane[y * self.width..(y + 1) * self.width]
    }
}

/// One `(ih, iw)` plane resized into `dst` `(oh, ow)` along the row taps `ys` and column taps `xs`.
///
/// Each source row is resampled along the columns once ([`ColumnTaps::blend`]) and kept while
/// consecutive output rows use it; an output row is then one vectorisable blend of two resampled
/// rows. The arithmetic is the textbook `w0·(u0·a + u1·b) + w1·(u0·c + u1·d)`, term for term.
pub(crate) fn resize_plane_into<T: Real>(
    plane: &[T],
    iw: usize,
    ys: &[Tap<T>],
    xs: &ColumnTaps<T>,
    dst: &mut [MaybeUninit<T>],
) {
    let rows = PlaneRows { plane, width: iw };
    resize_rows_into(rows, ys, xs, dst);
}

/// [`resize_plane_into`] of the plane whose rows `source` gives.
pub(crate) fn resize_rows_into<T: Real>(
    source: impl RowSource<T>,
    ys: &[Tap<T>],
    xs: &ColumnTaps<T>,
    dst: &mut [MaybeUninit<T>],
) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::wide() {
        // SAFETY: `simd::wide` checked that the CPU has AVX2 and FMA.
        unsafe { resize_rows_wide(source, ys, xs, dst) };
        return;
    }
    resize_rows_plain(source, ys, xs, dst);
}

/// [`resize_rows_plain`] compiled for AVX2 and FMA (the same operations: Rust does not fuse
/// the products and sums, so the values are the same).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn resize_rows_wide<T: Real>(
    source: impl RowSource<T>,
    ys: &[Tap<T>],
    xs: &ColumnTaps<T>,
    dst: &mut [MaybeUninit<T>],
) {
    resize_rows_plain(source, ys, xs, dst);
}

/// The loops of [`resize_rows_into`].
#[inline(always)]
fn resize_rows_plain<T: Real>(
    mut source: impl RowSource<T>,
    ys: &[Tap<T>],
    xs: &ColumnTaps<T>,
    dst: &mut [MaybeUninit<T>],
) {
    let ow = xs.len();
    let mut rows = [vec![T::ZERO; ow], vec![T::ZERO; ow]];
    let mut held = [usize::MAX; 2];
    for (ty, out) in ys.iter().zip(dst.chunks_exact_mut(ow)) {
        for (need, other) in [(ty.i0, ty.i1), (ty.i1, ty.i0)] {
            if held.contains(&need) {
                continue;
            }
            let slot = usize::from(held[0] == other);
            xs.blend(source.row(need), &mut rows[slot]);
            held[slot] = need;
        }
        let top = &rows[usize::from(held[0] != ty.i0)];
        let bottom = &rows[usize::from(held[0] != ty.i1)];
        for ((d, &a), &b) in out.iter_mut().zip(top).zip(bottom) {
            d.write(ty.w0 * a + ty.w1 * b);
        }
    }
}

/// Forward kernel: every `(in_h, in_w)` plane of `src` to `(out_h, out_w)`.
fn resize_planes<T: Real>(
    src: &[T],
    in_hw: (usize, usize),
    out_hw: (usize, usize),
    align_corners: bool,
) -> Vec<T> {
    let (ih, iw) = in_hw;
    let (oh, ow) = out_hw;
    let ys = taps::<T>(ih, oh, align_corners);
    let xs = ColumnTaps::new(&taps::<T>(iw, ow, align_corners));
    let len = src.len() / (ih * iw) * oh * ow;
    let mut out = Vec::with_capacity(len);
    // Work items: bands of rows of a plane when there are fewer planes than threads (see
    // `crate::bands`), else whole planes.
    let planes = len / (oh * ow).max(1);
    let items =
        crate::bands::plane_bands(&mut out.spare_capacity_mut()[..len], (planes, 1), (oh, ow));
    items.into_par_iter().for_each(|(p, y0, dst)| {
        let rows = y0..y0 + dst.len() / ow;
        let plane = &src[p * ih * iw..(p + 1) * ih * iw];
        resize_plane_into(plane, iw, &ys[rows], &xs, dst)
    });
    // SAFETY: `resize_plane_into` wrote every value of every band of every plane.
    unsafe { out.set_len(len) };
    out
}

/// Bilinear resize of the `(in_h, in_w)` planes of `src` (row-major, one after another) to
/// `(out_h, out_w)`, on the calling thread: the arithmetic of [`resize_bilinear`] (a copy when
/// the sizes are equal) on plain
/// slices, for pre- and post-processing that runs beside the network instead of on its threads.
///
/// Fails when a side is zero or `src` is not a whole number of planes.
pub fn resize_bilinear_planes(
    src: &[f32],
    (in_h, in_w): (usize, usize),
    (out_h, out_w): (usize, usize),
    align_corners: bool,
) -> Result<Vec<f32>> {
    if in_h == 0 || in_w == 0 || out_h == 0 || out_w == 0 || src.len() % (in_h * in_w) != 0 {
        candle_core::bail!(
            "resize-bilinear: cannot resize {} values as {in_h}x{in_w} planes to {out_h}x{out_w}",
            src.len()
        );
    }
    if (in_h, in_w) == (out_h, out_w) {
        return Ok(src.to_vec());
    }
    let ys = taps::<f32>(in_h, out_h, align_corners);
    let xs = ColumnTaps::new(&taps::<f32>(in_w, out_w, align_corners));
    let len = src.len() / (in_h * in_w) * out_h * out_w;
    let mut out = Vec::with_capacity(len);
    for (dst, plane) in out.spare_capacity_mut()[..len]
        .chunks_mut(out_h * out_w)
        .zip(src.chunks(in_h * in_w))
    {
        resize_plane_into(plane, in_w, &ys, &xs, dst);
    }
    // SAFETY: `resize_plane_into` wrote every value of every plane.
    unsafe { out.set_len(len) };
    Ok(out)
}

/// Adjoint kernel: scatters `(out_h, out_w)` gradients back onto `(in_h, in_w)` planes.
fn resize_planes_adjoint<T: Real>(
    grad: &[T],
    in_hw: (usize, usize),
    out_hw: (usize, usize),
    align_corners: bool,
) -> Vec<T> {
    let (ih, iw) = in_hw;
    let (oh, ow) = out_hw;
    let ys = taps::<T>(ih, oh, align_corners);
    let xs = taps::<T>(iw, ow, align_corners);
    let planes = grad.len() / (oh * ow);
    par_filled(planes * ih * iw, ih * iw, |p, dst| {
        let g = &grad[p * oh * ow..(p + 1) * oh * ow];
        for (oy, ty) in ys.iter().enumerate() {
            for (ox, tx) in xs.iter().enumerate() {
                let v = g[oy * ow + ox];
                dst[ty.i0 * iw + tx.i0] += ty.w0 * tx.w0 * v;
                dst[ty.i0 * iw + tx.i1] += ty.w0 * tx.w1 * v;
                dst[ty.i1 * iw + tx.i0] += ty.w1 * tx.w0 * v;
                dst[ty.i1 * iw + tx.i1] += ty.w1 * tx.w1 * v;
            }
        }
    })
}

/// The `(out_len, in_len)` interpolation matrix of one axis: row `d` holds the weights of output
/// coordinate `d`'s two taps (added when both taps read the same pixel).
fn interpolation_matrix<T: Real>(in_len: usize, out_len: usize, align_corners: bool) -> Vec<T> {
    let mut m = vec![T::ZERO; out_len * in_len];
    for (d, t) in taps::<T>(in_len, out_len, align_corners).iter().enumerate() {
        m[d * in_len + t.i0] += t.w0;
        m[d * in_len + t.i1] += t.w1;
    }
    m
}

/// The interpolation matrix as a tensor in `x`'s dtype and device, transposed: `(in, out)`;
/// made once per size, mode, dtype and device.
fn interpolation_tensor(
    x: &Tensor,
    in_len: usize,
    out_len: usize,
    align_corners: bool,
) -> Result<Tensor> {
    let key = format!(
        "interpolation:{in_len}:{out_len}:{align_corners}:{:?}",
        x.dtype()
    );
    cached_constant(&key, x.device(), || {
        interpolation_tensor_uncached(x, in_len, out_len, align_corners)
    })
}

fn interpolation_tensor_uncached(
    x: &Tensor,
    in_len: usize,
    out_len: usize,
    align_corners: bool,
) -> Result<Tensor> {
    let m = match x.dtype() {
        candle_core::DType::F64 => Tensor::from_vec(
            interpolation_matrix::<f64>(in_len, out_len, align_corners),
            (out_len, in_len),
            x.device(),
        )?,
        dtype => Tensor::from_vec(
            interpolation_matrix::<f32>(in_len, out_len, align_corners),
            (out_len, in_len),
            x.device(),
        )?
        .to_dtype(dtype)?,
    };
    m.t()?.contiguous()
}

/// The device-generic resize: two plain matrix products with the interpolation matrices (one
/// per axis), so the backward is a matrix product as well.
fn resize_generic(x: &Tensor, (oh, ow): (usize, usize), align_corners: bool) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let along_w = interpolation_tensor(x, w, ow, align_corners)?; // (W, ow)
    let along_h = interpolation_tensor(x, h, oh, align_corners)?; // (H, oh)
    let rows = x.contiguous()?.reshape((b * c * h, w))?.matmul(&along_w)?; // (B·C·H, ow)
    let cols = rows
        .reshape((b * c, h, ow))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * c * ow, h))?
        .matmul(&along_h)?; // (B·C·ow, oh)
    cols.reshape((b, c, ow, oh))?.transpose(2, 3)?.contiguous()
}

/// The resize as a candle op: `(B, C, H, W)` → `(B, C, out_h, out_w)`.
struct BilinearResize {
    out_h: usize,
    out_w: usize,
    align_corners: bool,
}

/// Its adjoint (the gradient): `(B, C, out_h, out_w)` → `(B, C, in_h, in_w)`.
struct BilinearResizeAdjoint {
    in_h: usize,
    in_w: usize,
    align_corners: bool,
}

impl CustomOp1 for BilinearResize {
    fn name(&self) -> &'static str {
        "resize-bilinear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = dims4(self.name(), layout)?;
        let out = map_float!(self.name(), storage, layout, |x| resize_planes(
            x,
            (h, w),
            (self.out_h, self.out_w),
            self.align_corners
        ));
        Ok((out, Shape::from((b, c, self.out_h, self.out_w))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = arg.dims4()?;
        let op = BilinearResizeAdjoint {
            in_h: h,
            in_w: w,
            align_corners: self.align_corners,
        };
        Ok(Some(grad_res.contiguous()?.apply_op1(op)?))
    }
}

impl CustomOp1 for BilinearResizeAdjoint {
    fn name(&self) -> &'static str {
        "resize-bilinear-adjoint"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, oh, ow) = dims4(self.name(), layout)?;
        let out = map_float!(self.name(), storage, layout, |g| resize_planes_adjoint(
            g,
            (self.in_h, self.in_w),
            (oh, ow),
            self.align_corners
        ));
        Ok((out, Shape::from((b, c, self.in_h, self.in_w))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        // The adjoint is linear; its own adjoint is the forward resize.
        let (_, _, oh, ow) = arg.dims4()?;
        Ok(Some(resize_bilinear(
            grad_res,
            (oh, ow),
            self.align_corners,
        )?))
    }
}

/// Bilinear resize of a `(B, C, H, W)` tensor to `(B, C, out_h, out_w)`, differentiable.
///
/// `align_corners = false` is the half-pixel mapping of PyTorch's and Paddle's default (used in
/// training and inside the decoder); `true` maps corner pixel centres onto each other (used for
/// the final map at the original image size). `f32` and `f64` on the CPU (fused kernel); any
/// float type on other devices (two matrix products).
pub fn resize_bilinear(
    x: &Tensor,
    (out_h, out_w): (usize, usize),
    align_corners: bool,
) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if (h, w) == (out_h, out_w) {
        // PyTorch's resize to the same size is the identity for both modes.
        return Ok(x.clone());
    }
    if out_h == 0 || out_w == 0 || h == 0 || w == 0 {
        candle_core::bail!("resize-bilinear: cannot resize {h}x{w} to {out_h}x{out_w}");
    }
    if !uses_cpu_kernels(x) {
        return crate::profile::timed_on("resize (matrix products, forward)", x.device(), || {
            resize_generic(x, (out_h, out_w), align_corners)
        });
    }
    x.contiguous()?.apply_op1(BilinearResize {
        out_h,
        out_w,
        align_corners,
    })
}

/// Resizes `x` to the spatial size of `like` (both `(B, C, H, W)`), `align_corners = false`.
pub fn resize_like(x: &Tensor, like: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = like.dims4()?;
    resize_bilinear(x, (h, w), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_rows_give_the_textbook_formula_exactly() {
        // Every output pixel as w0·(u0·a + u1·b) + w1·(u0·c + u1·d), computed directly.
        // Two planes on four threads: the larger outputs are cut into row bands.
        let pools = [1, 4].map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        });
        let cases = [
            (4, 5, 9, 7),
            (9, 7, 4, 5),
            (3, 8, 3, 8),
            (1, 3, 5, 2),
            (5, 6, 41, 9),
        ];
        for ((ih, iw, oh, ow), pool) in cases
            .into_iter()
            .flat_map(|c| pools.iter().map(move |p| (c, p)))
        {
            for ac in [false, true] {
                let src: Vec<f64> = (0..2 * ih * iw).map(|i| (i as f64 * 0.7).sin()).collect();
                let got = pool.install(|| resize_planes(&src, (ih, iw), (oh, ow), ac));
                let (ys, xs) = (taps::<f64>(ih, oh, ac), taps::<f64>(iw, ow, ac));
                for p in 0..2 {
                    let plane = &src[p * ih * iw..(p + 1) * ih * iw];
                    for (oy, ty) in ys.iter().enumerate() {
                        for (ox, tx) in xs.iter().enumerate() {
                            let at = |y: usize, x: usize| plane[y * iw + x];
                            let want = ty.w0
                                * (tx.w0 * at(ty.i0, tx.i0) + tx.w1 * at(ty.i0, tx.i1))
                                + ty.w1 * (tx.w0 * at(ty.i1, tx.i0) + tx.w1 * at(ty.i1, tx.i1));
                            let v = got[(p * oh + oy) * ow + ox];
                            assert_eq!(v.to_bits(), want.to_bits(), "{ih}x{iw}->{oh}x{ow} {ac}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn half_pixel_taps_match_pytorch_rules() {
        // 4 → 2: sources at 0.5 and 2.5.
        let t = taps::<f64>(4, 2, false);
        assert_eq!((t[0].i0, t[0].i1, t[0].w1), (0, 1, 0.5));
        assert_eq!((t[1].i0, t[1].i1, t[1].w1), (2, 3, 0.5));
        // 2 → 4: the first source index -0.25 is clamped to 0.
        let t = taps::<f64>(2, 4, false);
        assert_eq!((t[0].i0, t[0].w1), (0, 0.0));
        // The last source index 1.25 keeps its weight but both taps read pixel 1 (as PyTorch).
        assert_eq!((t[3].i0, t[3].i1, t[3].w1), (1, 1, 0.25));
        // align_corners: 3 → 5 puts sources at 0, 0.5, 1, 1.5, 2.
        let t = taps::<f64>(3, 5, true);
        assert_eq!((t[1].i0, t[1].w1), (0, 0.5));
        assert_eq!((t[4].i0, t[4].i1), (2, 2));
    }
}
