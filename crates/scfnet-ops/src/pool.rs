//! Differentiable 2-D max-pooling with any kernel, stride and padding (PyTorch semantics).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::elem::{dims4, map_float, map_float2, Real};

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
        Ok(())
    }

    /// For each output pixel of one plane, the flat index of the window's maximum: the first
    /// one in row-major order; a NaN wins (PyTorch's rule).
    fn argmax<T: Real>(&self, plane: &[T], h: usize, w: usize, out: &mut [usize]) {
        let (oh, ow) = self.output_size(h, w);
        for oy in 0..oh {
            let y_start = (oy * self.stride.0) as isize - self.padding.0 as isize;
            let ys = y_start.max(0) as usize..((y_start + self.kernel.0 as isize) as usize).min(h);
            for ox in 0..ow {
                let x_start = (ox * self.stride.1) as isize - self.padding.1 as isize;
                let xs =
                    x_start.max(0) as usize..((x_start + self.kernel.1 as isize) as usize).min(w);
                let mut best = ys.start * w + xs.start;
                let mut best_v = T::NEG_INFINITY;
                let mut first = true;
                for y in ys.clone() {
                    for x in xs.clone() {
                        let v = plane[y * w + x];
                        if first || v > best_v || v.is_nan() {
                            best = y * w + x;
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

fn pool_forward<T: Real>(p: &Pool2d, x: &[T], h: usize, w: usize) -> Vec<T> {
    let (oh, ow) = p.output_size(h, w);
    let planes = x.len() / (h * w);
    let mut out = vec![T::ZERO; planes * oh * ow];
    out.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(h * w))
        .for_each(|(dst, plane)| {
            let mut idx = vec![0usize; oh * ow];
            p.argmax(plane, h, w, &mut idx);
            for (d, &i) in dst.iter_mut().zip(&idx) {
                *d = plane[i];
            }
        });
    out
}

fn pool_backward<T: Real>(p: &Pool2d, x: &[T], grad: &[T], h: usize, w: usize) -> Vec<T> {
    let (oh, ow) = p.output_size(h, w);
    let mut out = vec![T::ZERO; x.len()];
    out.par_chunks_mut(h * w)
        .zip(x.par_chunks(h * w))
        .zip(grad.par_chunks(oh * ow))
        .for_each(|((dst, plane), g)| {
            let mut idx = vec![0usize; oh * ow];
            p.argmax(plane, h, w, &mut idx);
            for (&i, &gv) in idx.iter().zip(g) {
                dst[i] += gv;
            }
        });
    out
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
        let out = map_float2!(self.name(), s1, l1, s2, l2, |x, g| pool_backward(
            &self.0, x, g, h, w
        ));
        Ok((out, l1.shape().clone()))
    }
}

/// Max-pooling of a `(B, C, H, W)` tensor with any window, differentiable.
///
/// Padding is `-inf` (never selected); output size uses floor mode. The gradient goes to the
/// first maximum of each window in row-major order, as in PyTorch. Examples: the ResNet stem
/// (`kernel 3, stride 2, padding 1`) and the boundary loss's same-size pooling ([`max_pool2d_same`]).
pub fn max_pool2d(x: &Tensor, pool: Pool2d) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool(pool))
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
