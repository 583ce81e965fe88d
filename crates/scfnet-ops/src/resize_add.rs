//! The decoder's merge of a coarse map into a finer one, `a + a · up(b)` (gated) or `a + up(b)`,
//! with `up` the bilinear resize to `a`'s size (`align_corners = false`), as one kernel for eval
//! mode on the CPU: each plane of `b` is resized straight into the output and combined with `a`
//! there, instead of a resize, a product and a sum each writing a fresh tensor (and the last two
//! running on candle's own thread pool). The arithmetic is the same operations in the same order,
//! so the values equal the tensor ops' exactly.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::dispatch::uses_cpu_kernels;
use crate::elem::dims4;
use crate::resize::{resize_like, resize_plane_into, taps};

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
        let (_, _, ih, iw) = dims4(self.name(), l2)?;
        let slice = |s: &'_ CpuStorage, l: &Layout| -> Result<std::ops::Range<usize>> {
            match (s, l.contiguous_offsets()) {
                (CpuStorage::F32(_), Some((x, y))) => Ok(x..y),
                _ => candle_core::bail!("add-resized: contiguous f32 inputs only"),
            }
        };
        let (CpuStorage::F32(va), CpuStorage::F32(vb)) = (s1, s2) else {
            candle_core::bail!("add-resized: f32 only");
        };
        let (a, small) = (&va[slice(s1, l1)?], &vb[slice(s2, l2)?]);
        let (plane, small_plane) = (h * w, ih * iw);
        let len = b * c * plane;
        if len == 0 || small.len() != b * c * small_plane {
            candle_core::bail!("add-resized: cannot merge {small_plane}-value planes");
        }
        let (ys, xs) = (taps::<f32>(ih, h, false), taps::<f32>(iw, w, false));
        let mut out: Vec<f32> = Vec::with_capacity(len);
        out.spare_capacity_mut()[..len]
            .par_chunks_mut(plane)
            .zip(a.par_chunks(plane).zip(small.par_chunks(small_plane)))
            .for_each(|(dst, (a, small))| {
                if (ih, iw) == (h, w) {
                    for (d, &s) in dst.iter_mut().zip(small) {
                        d.write(s);
                    }
                } else {
                    resize_plane_into(small, iw, &ys, &xs, dst);
                }
                // SAFETY: every value of the plane was written just above.
                let up: &mut [f32] =
                    unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast(), plane) };
                if self.gated {
                    up.iter_mut().zip(a).for_each(|(u, &a)| *u = a + a * *u);
                } else {
                    up.iter_mut().zip(a).for_each(|(u, &a)| *u += a);
                }
            });
        // SAFETY: every plane was written above.
        unsafe { out.set_len(len) };
        Ok((CpuStorage::F32(out), Shape::from((b, c, h, w))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_the_tensor_ops_bit_for_bit() {
        let dev = Device::Cpu;
        for (h, w, ih, iw) in [
            (22, 22, 11, 11),
            (88, 88, 44, 44),
            (12, 9, 5, 7),
            (6, 6, 6, 6),
        ] {
            let a = Tensor::randn(0f32, 1.0, (2, 3, h, w), &dev).unwrap();
            let b = Tensor::randn(0f32, 1.0, (2, 3, ih, iw), &dev).unwrap();
            for gated in [false, true] {
                let got = add_resized(&a, &b, gated).unwrap();
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
                    "{h}x{w} from {ih}x{iw}, gated {gated}"
                );
            }
        }
        let a = Tensor::zeros((1, 2, 4, 4), candle_core::DType::F32, &dev).unwrap();
        let b = Tensor::zeros((1, 3, 2, 2), candle_core::DType::F32, &dev).unwrap();
        assert!(add_resized(&a, &b, true).is_err());
    }
}
