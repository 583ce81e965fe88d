//! The queries, keys or values of a fused attention projection, split into heads: one gather
//! each way (CPU and CUDA).
//!
//! Composed from candle primitives (`reshape`, `permute`, `get`, `contiguous`, a scale), the
//! backward pass of each `get` is candle's `narrow` backward: zero-filled tensors concatenated
//! around the gradient, then a strided copy for the permutation and a scale. Here the backward is
//! one kernel that writes the projection-shaped gradient (the other two parts zero).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::dispatch::uses_own_kernels;
use crate::elem::{map_float, Real};
use crate::generic_ops::OpFamily;

/// Token rows per rayon task in the CPU kernels.
const ROWS_PER_TASK: usize = 64;

/// Part `part` (0: queries, 1: keys, 2: values) of a fused projection `qkv` `(B, N, 3·C)`, split
/// into `heads` heads and multiplied by `scale`: `(B, heads, N, C / heads)`, contiguous (what
/// Swin's attention multiplies). Differentiable in `qkv`.
pub fn qkv_heads(qkv: &Tensor, part: usize, heads: usize, scale: f64) -> Result<Tensor> {
    let (b, n, c3) = qkv.dims3()?;
    if part > 2 || heads == 0 || c3 % (3 * heads) != 0 {
        candle_core::bail!(
            "qkv-heads: part {part} of {heads} heads of a projection of {c3} channels (needs \
             part 0, 1 or 2 and 3·heads dividing the channels)"
        );
    }
    let split = Split {
        b,
        n,
        c: c3 / 3,
        heads,
        part,
        scale,
    };
    if !uses_own_kernels(OpFamily::Heads, qkv) || !matches!(qkv.dtype(), DType::F32 | DType::F64) {
        let h = qkv
            .reshape((b, n, 3, heads, split.c / heads))?
            .permute((2, 0, 3, 1, 4))?
            .get(part)?
            .contiguous()?;
        return if scale == 1.0 { Ok(h) } else { h * scale };
    }
    qkv.contiguous()?.apply_op1(split)
}

/// The split: batch `b`, tokens `n`, channels `c` of one part, `heads`, which `part`, `scale`.
#[derive(Clone, Copy, Debug)]
struct Split {
    b: usize,
    n: usize,
    c: usize,
    heads: usize,
    part: usize,
    scale: f64,
}

impl Split {
    fn head_shape(&self) -> Shape {
        Shape::from((self.b, self.heads, self.n, self.c / self.heads))
    }

    /// The heads' offset of channel `k` (of the part) of token `t` in image `b`. Mirrors
    /// `head_offset` in `scfnet-kernels`' `heads.cu`.
    fn head_offset(&self, b: usize, t: usize, k: usize) -> usize {
        let hd = self.c / self.heads;
        ((b * self.heads + k / hd) * self.n + t) * hd + k % hd
    }
}

/// The heads `(B, heads, N, hd)` of `qkv` `(B, N, 3·C)`, scaled.
fn split_cpu<T: Real>(qkv: &[T], s: Split) -> Vec<T> {
    let len = s.b * s.n * s.c;
    let mut out: Vec<T> = Vec::with_capacity(len);
    let scale = T::from_f64(s.scale);
    let out_ptr = crate::out_ptr::OutPtr::new(&mut out);
    let rows = s.b * s.n;
    (0..rows.div_ceil(ROWS_PER_TASK))
        .into_par_iter()
        .for_each(|task| {
            for r in task * ROWS_PER_TASK..((task + 1) * ROWS_PER_TASK).min(rows) {
                let (b, t) = (r / s.n, r % s.n);
                let src = &qkv[r * 3 * s.c + s.part * s.c..][..s.c];
                for (k, &v) in src.iter().enumerate() {
                    // SAFETY: (b, t, k) ↦ head_offset is a bijection onto 0..len: no two tasks
                    // write one value, and every value is written before `set_len`.
                    unsafe { out_ptr.at(s.head_offset(b, t, k)).write(v * scale) };
                }
            }
        });
    // SAFETY: every one of the `len` values was written above.
    unsafe { out.set_len(len) };
    out
}

/// The gradient `(B, N, 3·C)` of the projection from that of the heads, zero outside the part.
fn merge_cpu<T: Real>(grad: &[T], s: Split) -> Vec<T> {
    let mut out = vec![T::ZERO; s.b * s.n * 3 * s.c];
    let scale = T::from_f64(s.scale);
    if s.c == 0 {
        return out;
    }
    out.par_chunks_mut(ROWS_PER_TASK * 3 * s.c)
        .enumerate()
        .for_each(|(task, chunk)| {
            for (j, row) in chunk.chunks_mut(3 * s.c).enumerate() {
                let r = task * ROWS_PER_TASK + j;
                let (b, t) = (r / s.n, r % s.n);
                for (k, o) in row[s.part * s.c..][..s.c].iter_mut().enumerate() {
                    *o = grad[s.head_offset(b, t, k)] * scale;
                }
            }
        });
    out
}

impl CustomOp1 for Split {
    fn name(&self) -> &'static str {
        "qkv-heads"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = map_float!(self.name(), s, l, |x| split_cpu(x, *self));
        Ok((out, self.head_shape()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::gpu::by_float;
        let out = by_float!(self.name(), s, cuda::run(s, l, *self, "qkv_heads_split"))?;
        Ok((out, self.head_shape()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Merge(*self))?))
    }
}

/// The backward of [`Split`]: heads' gradient → the projection's.
struct Merge(Split);

impl CustomOp1 for Merge {
    fn name(&self) -> &'static str {
        "qkv-heads-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = map_float!(self.name(), s, l, |g| merge_cpu(g, self.0));
        let sp = self.0;
        Ok((out, Shape::from((sp.b, sp.n, 3 * sp.c))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::gpu::by_float;
        let sp = self.0;
        let out = by_float!(self.name(), s, cuda::run(s, l, sp, "qkv_heads_grad"))?;
        Ok((out, Shape::from((sp.b, sp.n, 3 * sp.c))))
    }
}

/// The CUDA kernels (`scfnet-kernels`' `heads.cu`): blocks of 32 × 8 threads, a token row per
/// `threadIdx.y`, its channels along `threadIdx.x`.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::{CudaStorage, Layout, Result};
    use scfnet_kernels::launch;
    use scfnet_kernels::ptx::HEADS;

    use super::Split;
    use crate::gpu::{kernel, output, rows_of_32x8, view, wrap, GpuFloat};

    pub(super) fn run<T: GpuFloat>(
        s: &CudaStorage,
        l: &Layout,
        sp: Split,
        name: &str,
    ) -> Result<CudaStorage> {
        let dev = s.device();
        let x = view::<T>("qkv-heads", s, l)?;
        let rows = sp.b * sp.n;
        if rows >= 1 << 31 || sp.n >= 1 << 31 || 3 * sp.c >= 1 << 31 {
            candle_core::bail!("qkv-heads (cuda): {rows} rows exceed the kernels' 32-bit index");
        }
        let len = if name == "qkv_heads_split" { 1 } else { 3 } * rows * sp.c;
        let mut y = output::<T>(dev, len)?;
        let cfg = rows_of_32x8(rows);
        let u = |v: usize| v as u32;
        let (rows, n, c, heads, part) = (u(rows), u(sp.n), u(sp.c), u(sp.heads), u(sp.part));
        let scale: T = T::from_f64(sp.scale);
        launch!(dev, HEADS, kernel::<T>(name), config: cfg,
            args: [&x, &mut y, &rows, &n, &c, &heads, &part, &scale]);
        Ok(wrap(s, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn composed(qkv: &Tensor, part: usize, heads: usize, scale: f64) -> Tensor {
        let _guard = crate::force_generic_path();
        qkv_heads(qkv, part, heads, scale).unwrap()
    }

    #[test]
    fn the_kernels_equal_the_composition_both_ways() {
        for (b, n, c, heads) in [(2, 5, 6, 2), (3, 4, 8, 4), (1, 7, 3, 1)] {
            let qkv =
                Var::from_tensor(&Tensor::rand(-1f64, 1.0, (b, n, 3 * c), &Device::Cpu).unwrap())
                    .unwrap();
            for part in 0..3 {
                let scale = if part == 0 { 0.37 } else { 1.0 };
                let a = qkv_heads(&qkv, part, heads, scale).unwrap();
                let r = composed(&qkv, part, heads, scale);
                assert_eq!(a.dims(), r.dims());
                let d = (&a - &r).unwrap().abs().unwrap().max_all().unwrap();
                assert_eq!(
                    d.to_scalar::<f64>().unwrap(),
                    0.0,
                    "{b} {n} {c} {heads} {part}"
                );
                let w = Tensor::rand(-1f64, 1.0, a.shape(), &Device::Cpu).unwrap();
                let grad = |y: &Tensor| {
                    let g = (y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                    g.get(qkv.as_tensor()).unwrap().clone()
                };
                let d = (grad(&a) - grad(&r))
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap();
                assert_eq!(
                    d.to_scalar::<f64>().unwrap(),
                    0.0,
                    "gradient of part {part}"
                );
            }
        }
    }

    #[test]
    fn a_bad_split_is_refused_by_name() {
        let qkv = Tensor::zeros((1, 2, 12), DType::F32, &Device::Cpu).unwrap();
        for (part, heads) in [(3, 2), (0, 3), (0, 0)] {
            let e = qkv_heads(&qkv, part, heads, 1.0).unwrap_err().to_string();
            assert!(e.contains("qkv-heads"), "{e}");
        }
    }
}
