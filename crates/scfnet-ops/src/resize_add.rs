//! The decoder's merge of a coarse map into a finer one, `a + a · up(b)` (gated) or `a + up(b)`,
//! with `up` the bilinear resize to `a`'s size (`align_corners = false`), as one kernel for eval
//! mode on the CPU: each plane of `b` is resized straight into the output and combined with `a`
//! there, instead of a resize, a product and a sum each writing a fresh tensor (and the last two
//! running on candle's own thread pool). The arithmetic is the same operations in the same order,
//! so the values equal the tensor ops' exactly.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::dispatch::uses_cpu_kernels;
use crate::elem::{dims4, map_float2, Real};
use crate::resize::{resize_like, resize_plane_into, taps};
use crate::resize_columns::ColumnTaps;

/// `a + a · up(b)` when `gated`, else `a + up(b)`: `a` `(B, C, H, W)`, `b` `(B, C, h, w)`, `up`
/// the bilinear resize to `(H, W)` with half-pixel centres ([`resize_like`]). No gradient: eval
/// only (training uses the tensor ops, which give the same values).
pub fn add_resized(a: &Tensor, b: &Tensor, gated: bool) -> Result<Tensor> {
    let (ba, ca, _, _) = a.dims4()?;
    let (bb, cb, _, _) = b.dims4()?;
    if (ba, ca) != (bb, cb) {
        candle_core::bail!(
            "add-resized: {:?} and {:?} differ in batch or channels",
            a.dims(),
            b.dims()
        );
    }
    if !(uses_cpu_kernels(a) && a.dtype() == candle_core::DType::F32 && b.dtype() == a.dtype()) {
        let up = resize_like(b, a)?;
        return if gated { a + a.mul(&up)? } else { a + up };
    }
    a.contiguous()?
        .apply_op2_no_bwd(&b.contiguous()?, &AddResized { gated })
}

/// The custom op.
struct AddResized {
    gated: bool,
}

impl CustomOp2 for AddResized {
    fn name(&self) -> &'static str {
        "add-resized"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = dims4(self.name(), l1)?;
        let (b2, c2, ih, iw) = dims4(self.name(), l2)?;
        if b * c * h * w == 0 || (b2, c2) != (b, c) || ih * iw == 0 {
            candle_core::bail!("add-resized: cannot merge {ih}x{iw} planes into {b}x{c}x{h}x{w}");
        }
        let out = map_float2!(self.name(), s1, l1, s2, l2, |a, small| {
            merge(a, small, (b, c), (h, w), (ih, iw), self.gated)
        });
        Ok((out, Shape::from((b, c, h, w))))
    }
}

/// The kernel: every `(h, w)` plane of `a` (`images × channels` of them) plus (`gated`: times)
/// the matching `(ih, iw)` plane of `small` resized to `(h, w)`.
fn merge<T: Real>(
    a: &[T],
    small: &[T],
    (images, channels): (usize, usize),
    (h, w): (usize, usize),
    (ih, iw): (usize, usize),
    gated: bool,
) -> Vec<T> {
    let (plane, small_plane) = (h * w, ih * iw);
    let (ys, xs) = (
        taps::<T>(ih, h, false),
        ColumnTaps::new(&taps::<T>(iw, w, false)),
    );
    let mut out: Vec<T> = Vec::with_capacity(a.len());
    // Work items: a band of rows of one plane (see `crate::bands`).
    let items = crate::bands::plane_bands(
        &mut out.spare_capacity_mut()[..a.len()],
        (images, channels),
        (h, w),
    );
    items.into_par_iter().for_each(|(p, y0, dst)| {
        let rows = y0..y0 + dst.len() / w;
        let small = &small[p * small_plane..(p + 1) * small_plane];
        let a = &a[p * plane + y0 * w..p * plane + rows.end * w];
        if (ih, iw) == (h, w) {
            for (d, &s) in dst.iter_mut().zip(&small[y0 * w..rows.end * w]) {
                d.write(s);
            }
        } else {
            resize_plane_into(small, iw, &ys[rows], &xs, dst);
        }
        // SAFETY: every value of the band was written just above.
        let up: &mut [T] =
            unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast(), dst.len()) };
        if gated {
            up.iter_mut().zip(a).for_each(|(u, &a)| *u = a + a * *u);
        } else {
            up.iter_mut().zip(a).for_each(|(u, &a)| *u += a);
        }
    });
    // SAFETY: every plane was written above.
    unsafe { out.set_len(a.len()) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_the_tensor_ops_bit_for_bit() {
        let dev = Device::Cpu;
        // Batch 1 on four threads cuts the planes into row bands; batch 2 on two does not.
        for (images, threads) in [(2, 2), (1, 4)] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for (h, w, ih, iw) in [
                (22, 22, 11, 11),
                (88, 88, 44, 44),
                (12, 9, 5, 7),
                (6, 6, 6, 6),
                (37, 20, 37, 20),
            ] {
                let a = Tensor::randn(0f32, 1.0, (images, 3, h, w), &dev).unwrap();
                let b = Tensor::randn(0f32, 1.0, (images, 3, ih, iw), &dev).unwrap();
                for gated in [false, true] {
                    let got = pool.install(|| add_resized(&a, &b, gated)).unwrap();
                    let up = resize_like(&b, &a).unwrap();
                    let want = if gated {
                        (&a + a.mul(&up).unwrap()).unwrap()
                    } else {
                        (&a + up).unwrap()
                    };
                    let bits = |t: &Tensor| {
                        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
                        v.into_iter().map(f32::to_bits).collect::<Vec<_>>()
                    };
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{images}x3x{h}x{w} from {ih}x{iw}, gated {gated}, {threads} threads"
                    );
                }
            }
        }
        let a = Tensor::zeros((1, 2, 4, 4), candle_core::DType::F32, &dev).unwrap();
        let b = Tensor::zeros((1, 3, 2, 2), candle_core::DType::F32, &dev).unwrap();
        assert!(add_resized(&a, &b, true).is_err());
    }
}
