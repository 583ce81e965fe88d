//! Differentiable 2-D max-pooling with any kernel, stride and padding (PyTorch semantics).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use crate::dispatch::uses_own_kernels;
use crate::elem::{dims4, map_float, map_float2, Real};
use crate::generic_ops::OpFamily;
use crate::par_vec::par_filled;
use crate::simd;
use crate::views::{pad2d, tap};

/// Kernel, stride and padding of a pooling window, per axis `(h, w)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Window size `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Step `(sh, sw)`.
    pub stride: (usize, usize),
    /// Implicit `-inf` padding on each side `(ph, pw)`.
    pub padding: (usize, usize),
}

impl Pool2d {
    /// Output size for an `h × w` input (floor mode, as PyTorch's default).
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        let out = |n: usize, k: usize, s: usize, p: usize| (n + 2 * p - k) / s + 1;
        (
            out(h, self.kernel.0, self.stride.0, self.padding.0),
            out(w, self.kernel.1, self.stride.1, self.padding.1),
        )
    }

    fn check(&self, h: usize, w: usize) -> Result<()> {
        let (kh, kw) = self.kernel;
        let (ph, pw) = self.padding;
        if kh == 0 || kw == 0 || self.stride.0 == 0 || self.stride.1 == 0 {
            candle_core::bail!("max-pool2d: kernel and stride must be positive, got {self:?}");
        }
        if 2 * ph > kh || 2 * pw > kw {
            candle_core::bail!("max-pool2d: padding must be at most half the kernel, got {self:?}");
        }
        if h + 2 * ph < kh || w + 2 * pw < kw {
            candle_core::bail!("max-pool2d: input {h}x{w} is smaller than the window {self:?}");
        }
        if h.checked_mul(w).is_none_or(|n| n > u32::MAX as usize) {
            candle_core::bail!(
                "max-pool2d: a {h}x{w} plane has more values than 32-bit indices reach"
            );
        }
        Ok(())
    }

    /// For each output pixel of one plane, the flat index of the window's maximum: the first
    /// one in row-major order; a NaN wins (PyTorch's rule). The plane holds at most `u32::MAX`
    /// values ([`Pool2d::check`]). With `wide`, the one-dimensional stride-1 windows run
    /// [`keep_greater`] compiled for AVX2 (the caller checked [`simd::wide`]).
    fn argmax<T: Real>(&self, plane: &[T], h: usize, w: usize, out: &mut [u32], wide: bool) {
        let (oh, ow) = self.output_size(h, w);
        // One-dimensional stride-1 windows (the separable same-size pool): the window swept
        // offset by offset, each offset one vectorised pass over contiguous values.
        if self.stride == (1, 1) {
            if self.kernel.0 == 1 && self.padding.0 == 0 {
                let mut best_v = vec![T::NEG_INFINITY; ow];
                for y in 0..h {
                    let row = &plane[y * w..(y + 1) * w];
                    let dst = &mut out[y * ow..(y + 1) * ow];
                    let base = (y * w) as u32;
                    row_first_max(
                        row,
                        base,
                        self.kernel.1,
                        self.padding.1,
                        &mut best_v,
                        dst,
                        wide,
                    );
                }
                return;
            }
            if self.kernel.1 == 1 && self.padding.1 == 0 {
                // Down the columns, a whole row at a time: the first row holding each column's
                // maximum wins.
                let (k, p) = (self.kernel.0, self.padding.0);
                let mut best_v = vec![T::ZERO; w];
                for o in 0..oh {
                    let lo = o.saturating_sub(p);
                    let hi = (o + k - p).min(h);
                    let dst = &mut out[o * ow..o * ow + w];
                    best_v.copy_from_slice(&plane[lo * w..lo * w + w]);
                    for (x, d) in dst.iter_mut().enumerate() {
                        *d = (lo * w + x) as u32;
                    }
                    for y in lo + 1..hi {
                        let row = &plane[y * w..y * w + w];
                        keep_greater(row, (y * w) as u32, &mut best_v, dst, wide);
                    }
                }
                return;
            }
        }
        for oy in 0..oh {
            let y_start = (oy * self.stride.0) as isize - self.padding.0 as isize;
            let ys = y_start.max(0) as usize..((y_start + self.kernel.0 as isize) as usize).min(h);
            for ox in 0..ow {
                let x_start = (ox * self.stride.1) as isize - self.padding.1 as isize;
                let xs =
                    x_start.max(0) as usize..((x_start + self.kernel.1 as isize) as usize).min(w);
                let mut best = (ys.start * w + xs.start) as u32;
                let mut best_v = T::NEG_INFINITY;
                let mut first = true;
                for y in ys.clone() {
                    for x in xs.clone() {
                        let v = plane[y * w + x];
                        if first || v > best_v || v.is_nan() {
                            best = (y * w + x) as u32;
                            best_v = v;
                            first = false;
                            if v.is_nan() {
                                break;
                            }
                        }
                    }
                    if best_v.is_nan() {
                        break;
                    }
                }
                out[oy * ow + ox] = best;
            }
        }
    }
}

/// One row's stride-1 window maxima: for each of the `dst.len()` outputs of a `k`-wide window
/// with `-inf` padding `p` each side, the flat index (`base` + position in `row`) of the window's
/// first maximum. The window is swept offset by offset, each offset one pass over contiguous
/// slices ([`keep_greater`]); a strictly greater value is needed to move, so the leftmost maximum
/// (or the leftmost NaN) stays. `k` passes a row: for the boundary loss's windows (3 to 13) far
/// faster than a sliding queue's branches. `best_v` is scratch of at least `dst.len()` values.
fn row_first_max<T: Real>(
    row: &[T],
    base: u32,
    k: usize,
    p: usize,
    best_v: &mut [T],
    dst: &mut [u32],
    wide: bool,
) {
    let (n, n_out) = (row.len(), dst.len());
    let best_v = &mut best_v[..n_out];
    // Every window starts at its first real position, with a value any real one beats.
    for (o, (b, d)) in best_v.iter_mut().zip(dst.iter_mut()).enumerate() {
        *b = T::NEG_INFINITY;
        *d = base + o.saturating_sub(p) as u32;
    }
    for off in 0..k {
        // Output `o` sees `row[o + off − p]` when that position is inside the row.
        let o_start = p.saturating_sub(off);
        let o_end = n_out.min((n + p).saturating_sub(off));
        if o_start >= o_end {
            continue;
        }
        let s_start = o_start + off - p;
        keep_greater(
            &row[s_start..s_start + (o_end - o_start)],
            base + s_start as u32,
            &mut best_v[o_start..o_end],
            &mut dst[o_start..o_end],
            wide,
        );
    }
}

/// Element by element: where `values[i]` is strictly greater than `best[i]`, or a NaN where
/// `best[i]` is none, it becomes the best and `index[i]` becomes `first + i` (so the first
/// maximum, or the first NaN, of the values swept stays). With `wide` (the caller checked
/// [`simd::wide`]) the same loop compiled for AVX2: eight comparisons and blends at a time.
#[inline]
fn keep_greater<T: Real>(values: &[T], first: u32, best: &mut [T], index: &mut [u32], wide: bool) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: the caller checked with `simd::wide` that the CPU has AVX2.
        unsafe { keep_greater_wide(values, first, best, index) };
        return;
    }
    let _ = wide;
    keep_greater_lanes(values, first, best, index)
}

/// [`keep_greater_lanes`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn keep_greater_wide<T: Real>(values: &[T], first: u32, best: &mut [T], index: &mut [u32]) {
    keep_greater_lanes(values, first, best, index)
}

/// The loop of [`keep_greater`], written as selections without branches so that it vectorises.
#[inline(always)]
fn keep_greater_lanes<T: Real>(values: &[T], first: u32, best: &mut [T], index: &mut [u32]) {
    let n = values.len().min(best.len()).min(index.len());
    let (values, best, index) = (&values[..n], &mut best[..n], &mut index[..n]);
    for i in 0..n {
        let (v, b, d) = (values[i], best[i], index[i]);
        // `&` and `!` rather than `&&`: no branch. A NaN is the only value unequal to itself.
        #[allow(clippy::eq_op)]
        let take = (v > b) | ((v != v) & (b == b));
        best[i] = if take { v } else { b };
        index[i] = if take { first + i as u32 } else { d };
    }
}

fn pool_forward<T: Real>(p: &Pool2d, x: &[T], h: usize, w: usize) -> Vec<T> {
    let (oh, ow) = p.output_size(h, w);
    let planes = x.len() / (h * w);
    let wide = simd::wide();
    par_filled(planes * oh * ow, oh * ow, |n, dst| {
        let plane = &x[n * h * w..(n + 1) * h * w];
        let mut idx = vec![0u32; oh * ow];
        p.argmax(plane, h, w, &mut idx, wide);
        for (d, &i) in dst.iter_mut().zip(&idx) {
            *d = plane[i as usize];
        }
    })
}

fn pool_backward<T: Real>(p: &Pool2d, x: &[T], grad: &[T], h: usize, w: usize) -> Vec<T> {
    let (oh, ow) = p.output_size(h, w);
    let wide = simd::wide();
    par_filled(x.len(), h * w, |n, dst| {
        let plane = &x[n * h * w..(n + 1) * h * w];
        let g = &grad[n * oh * ow..(n + 1) * oh * ow];
        let mut idx = vec![0u32; oh * ow];
        p.argmax(plane, h, w, &mut idx, wide);
        for (&i, &gv) in idx.iter().zip(g) {
            dst[i as usize] += gv;
        }
    })
}

struct MaxPool(Pool2d);
struct MaxPoolGrad(Pool2d);

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = dims4(self.name(), layout)?;
        self.0.check(h, w)?;
        let (oh, ow) = self.0.output_size(h, w);
        let out = map_float!(self.name(), storage, layout, |x| pool_forward(
            &self.0, x, h, w
        ));
        Ok((out, Shape::from((b, c, oh, ow))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &MaxPoolGrad(self.0),
        )?))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (b, c, h, w) = dims4(self.name(), layout)?;
        self.0.check(h, w)?;
        let (oh, ow) = self.0.output_size(h, w);
        let out = cuda::forward(&self.0, storage, layout, (b * c, h, w))?;
        Ok((out, Shape::from((b, c, oh, ow))))
    }
}

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "max-pool2d-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, _, h, w) = dims4(self.name(), l1)?;
        self.0.check(h, w)?;
        let out = map_float2!(self.name(), s1, l1, s2, l2, |x, g| pool_backward(
            &self.0, x, g, h, w
        ));
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (b, c, h, w) = dims4(self.name(), l1)?;
        let out = cuda::backward(&self.0, (s1, l1), (s2, l2), (b * c, h, w))?;
        Ok((out, l1.shape().clone()))
    }
}

/// The CUDA kernels (`scfnet-kernels`' `pool.cu`): one thread per output, planes along the grid's
/// y and 32-bit indices within a plane.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::{CudaStorage, Layout, Result};
    use scfnet_kernels::launch;
    use scfnet_kernels::ptx::POOL;

    use super::Pool2d;
    use crate::gpu::{by_float, kernel, output, per_plane, view, wrap, GpuFloat};

    const OP: &str = "max-pool2d";

    /// The size arguments both kernels take after their buffers: planes, `h`, `w`, the output
    /// size, then the window.
    fn sizes(p: &Pool2d, (planes, h, w): (usize, usize, usize)) -> [usize; 11] {
        let (oh, ow) = p.output_size(h, w);
        let (k, s, pad) = (p.kernel, p.stride, p.padding);
        [planes, h, w, oh, ow, k.0, k.1, s.0, s.1, pad.0, pad.1]
    }

    /// One thread per output of each plane; an error when an input or output plane is too
    /// large for the kernels' 32-bit indices.
    fn launch_config(
        p: &Pool2d,
        (planes, h, w): (usize, usize, usize),
    ) -> Result<scfnet_kernels::driver::LaunchConfig> {
        let (oh, ow) = p.output_size(h, w);
        per_plane(OP, planes, h * w)?;
        per_plane(OP, planes, oh * ow)
    }

    /// The pooled maps of `planes` `(h, w)` planes.
    pub(super) fn forward(
        p: &Pool2d,
        storage: &CudaStorage,
        layout: &Layout,
        dims: (usize, usize, usize),
    ) -> Result<CudaStorage> {
        by_float!(
            "max-pool forward",
            storage,
            forward_typed(p, storage, layout, dims)
        )
    }

    fn forward_typed<T: GpuFloat>(
        p: &Pool2d,
        storage: &CudaStorage,
        layout: &Layout,
        dims: (usize, usize, usize),
    ) -> Result<CudaStorage> {
        let dev = storage.device();
        let (oh, ow) = p.output_size(dims.1, dims.2);
        let config = launch_config(p, dims)?;
        let x = view::<T>(OP, storage, layout)?;
        let mut y = output::<T>(dev, dims.0 * oh * ow)?;
        let [planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw] = sizes(p, dims);
        launch!(dev, POOL, kernel::<T>("max_pool_fwd"), config: config,
            args: [&x, &mut y, &planes, &h, &w, &oh, &ow, &kh, &kw, &sh, &sw, &ph, &pw]);
        Ok(wrap(storage, y))
    }

    /// The input gradient: each output's gradient added to its window's first maximum.
    pub(super) fn backward(
        p: &Pool2d,
        x: (&CudaStorage, &Layout),
        g: (&CudaStorage, &Layout),
        dims: (usize, usize, usize),
    ) -> Result<CudaStorage> {
        by_float!("max-pool grad", x.0, backward_typed(p, x, g, dims))
    }

    fn backward_typed<T: GpuFloat>(
        p: &Pool2d,
        (xs, xl): (&CudaStorage, &Layout),
        (gs, gl): (&CudaStorage, &Layout),
        dims: (usize, usize, usize),
    ) -> Result<CudaStorage> {
        let dev = xs.device();
        let config = launch_config(p, dims)?;
        let x = view::<T>(OP, xs, xl)?;
        let g = view::<T>(OP, gs, gl)?;
        // Zeroed: the kernel adds into it.
        let mut dx = dev.alloc_zeros::<T>(xl.shape().elem_count())?;
        let [planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw] = sizes(p, dims);
        launch!(dev, POOL, kernel::<T>("max_pool_bwd"), config: config,
            args: [&x, &g, &mut dx, &planes, &h, &w, &oh, &ow, &kh, &kw, &sh, &sw, &ph, &pw]);
        Ok(wrap(xs, dx))
    }
}

/// Max-pooling of a `(B, C, H, W)` tensor with any window, differentiable.
///
/// Padding is `-inf` (never selected); output size uses floor mode. The gradient goes to the
/// first maximum of each window in row-major order, as in PyTorch. Examples: the ResNet stem
/// (`kernel 3, stride 2, padding 1`) and the boundary loss's same-size pooling ([`max_pool2d_same`]).
pub fn max_pool2d(x: &Tensor, pool: Pool2d) -> Result<Tensor> {
    if !uses_own_kernels(OpFamily::MaxPool, x) {
        return max_pool_generic(x, pool);
    }
    x.contiguous()?.apply_op1(MaxPool(pool))
}

/// The device-generic max-pool: the window's taps as strided views of the `-inf`-padded input,
/// folded in row-major order with a selection that replaces the running maximum only by a
/// strictly greater value or a NaN. The value is the window's maximum and the gradient reaches
/// its first maximum, as with the CPU kernel.
fn max_pool_generic(x: &Tensor, pool: Pool2d) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    pool.check(h, w)?;
    let out = pool.output_size(h, w);
    let (ph, pw) = pool.padding;
    let padded = pad2d(x, (ph, ph), (pw, pw), f64::NEG_INFINITY)?;
    let mut best: Option<Tensor> = None;
    for ky in 0..pool.kernel.0 {
        for kx in 0..pool.kernel.1 {
            let v = tap(&padded, (ky, kx), pool.stride, 1, out)?;
            best = Some(match best {
                None => v,
                Some(b) => {
                    let (vd, bd) = (v.detach(), b.detach());
                    let take = vd.gt(&bd)?.maximum(&vd.ne(&vd)?)?;
                    take.where_cond(&v, &b)?
                }
            });
        }
    }
    Ok(best.expect("the window holds at least one tap"))
}

/// `k × k` max-pooling with stride 1 and padding `k / 2`: same output size for odd `k`.
///
/// Computed as a `1 × k` pool along rows followed by a `k × 1` pool along columns (`2k`
/// comparisons a pixel instead of `k²`). The gradient still reaches the window's first maximum in
/// row-major order: the row pass keeps the leftmost maximum of each row, the column pass the
/// topmost row holding the maximum.
pub fn max_pool2d_same(x: &Tensor, k: usize) -> Result<Tensor> {
    let rows = max_pool2d(
        x,
        Pool2d {
            kernel: (1, k),
            stride: (1, 1),
            padding: (0, k / 2),
        },
    )?;
    max_pool2d(
        &rows,
        Pool2d {
            kernel: (k, 1),
            stride: (1, 1),
            padding: (k / 2, 0),
        },
    )
}
