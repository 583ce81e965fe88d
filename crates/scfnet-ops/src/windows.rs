//! Swin's (shifted) windows: the cut of a `(B, H, W, C)` map into `window × window` windows
//! and its inverse, each one gather of whole rows of `C` values (CPU and CUDA), each the
//! other's backward.
//!
//! Composed from candle primitives, a shifted block's cut is two rolls (each two narrows and a
//! concatenation), a zero padding and a strided copy, and its backward pass per roll two
//! zero-filled tensors, a concatenation and an addition (candle's `narrow` backward): about a
//! dozen passes over the map where one suffices. The composition stays as the device-generic
//! path (and the tests' reference).

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::dispatch::uses_own_kernels;
use crate::elem::map_float;
use crate::generic_ops::OpFamily;

/// Rows of `C` values per rayon task in the CPU kernels.
const ROWS_PER_TASK: usize = 64;

/// The geometry of a cut: batch `b`, map `h × w`, channels `c`, window side `ws`, and the cyclic
/// shift `(sh, sw)` (below `h` and `w`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    b: usize,
    h: usize,
    w: usize,
    c: usize,
    ws: usize,
    sh: usize,
    sw: usize,
}

impl Geometry {
    fn new(
        op: &str,
        (b, h, w, c): (usize, usize, usize, usize),
        window: usize,
        shift: (usize, usize),
    ) -> Result<Self> {
        if window == 0 {
            candle_core::bail!("{op}: the window side must be at least 1");
        }
        let g = Self {
            b,
            h,
            w,
            c,
            ws: window,
            sh: if h == 0 { 0 } else { shift.0 % h },
            sw: if w == 0 { 0 } else { shift.1 % w },
        };
        if g.window_rows() >= 1 << 31 {
            candle_core::bail!(
                "{op}: {} window rows exceed the kernels' 32-bit row index",
                g.window_rows()
            );
        }
        Ok(g)
    }

    /// Windows along the height and the width (the map zero-padded to multiples of `ws`).
    fn windows(&self) -> (usize, usize) {
        (self.h.div_ceil(self.ws), self.w.div_ceil(self.ws))
    }

    /// Rows of the windows tensor: `B · nW · ws²`.
    fn window_rows(&self) -> usize {
        let (ny, nx) = self.windows();
        self.b * ny * nx * self.ws * self.ws
    }

    /// Rows of the map: `B · H · W`.
    fn map_rows(&self) -> usize {
        self.b * self.h * self.w
    }

    /// The shape of the windows tensor, `(B · nW, ws², C)`.
    fn windows_shape(&self) -> Shape {
        let (ny, nx) = self.windows();
        Shape::from((self.b * ny * nx, self.ws * self.ws, self.c))
    }

    /// The map row `(b·H + y)·W + x` that window row `r` holds, `None` where `r` is padding.
    /// Mirrors `partition_source` in `scfnet-kernels`' `windows.cu`.
    fn partition_source(&self, r: usize) -> Option<usize> {
        let (ny, nx) = self.windows();
        let n = self.ws * self.ws;
        let (win, t) = (r / n, r % n);
        let (b, wi) = (win / (ny * nx), win % (ny * nx));
        let (wy, wx) = (wi / nx, wi % nx);
        let (py, px) = (wy * self.ws + t / self.ws, wx * self.ws + t % self.ws);
        if py >= self.h || px >= self.w {
            return None;
        }
        let y = (py + self.sh) % self.h;
        let x = (px + self.sw) % self.w;
        Some((b * self.h + y) * self.w + x)
    }

    /// The window row that holds map row `r`. Mirrors `merge_source` in `windows.cu`.
    fn merge_source(&self, r: usize) -> usize {
        let (ny, nx) = self.windows();
        let (b, p) = (r / (self.h * self.w), r % (self.h * self.w));
        let (y, x) = (p / self.w, p % self.w);
        let py = (y + self.h - self.sh) % self.h;
        let px = (x + self.w - self.sw) % self.w;
        ((b * ny + py / self.ws) * nx + px / self.ws) * self.ws * self.ws
            + (py % self.ws) * self.ws
            + px % self.ws
    }
}

/// Swin's windows of `x` `(B, H, W, C)`: the map rolled by `(−shift.0, −shift.1)` along H and W
/// (as `torch.roll`), zero-padded at the bottom and right to multiples of `window`, and cut into
/// `window × window` windows, as `(B · nW, window², C)` (windows in row-major order per image,
/// tokens in row-major order per window). Differentiable; its backward is [`window_merge`].
pub fn window_partition(x: &Tensor, window: usize, shift: (usize, usize)) -> Result<Tensor> {
    let g = Geometry::new("window-partition", x.dims4()?, window, shift)?;
    if !uses_own_kernels(OpFamily::Windows, x) || !matches!(x.dtype(), DType::F32 | DType::F64) {
        return composed_partition(x, g);
    }
    x.contiguous()?.apply_op1(Partition(g))
}

/// The inverse of [`window_partition`]: windows `(B · nW, window², C)` of a `(B, H, W, C)` map
/// (`map` = `(B, H, W)`) back to the map, the padding dropped and the shift undone.
/// Differentiable; its backward is [`window_partition`].
pub fn window_merge(
    windows: &Tensor,
    window: usize,
    shift: (usize, usize),
    (b, h, w): (usize, usize, usize),
) -> Result<Tensor> {
    let c = windows.dim(candle_core::D::Minus1)?;
    let g = Geometry::new("window-merge", (b, h, w, c), window, shift)?;
    if windows.shape() != &g.windows_shape() {
        candle_core::bail!(
            "window-merge: windows of shape {:?}, expected {:?} for a {b}×{h}×{w} map of {c} \
             channels in windows of {window}",
            windows.dims(),
            g.windows_shape().dims()
        );
    }
    if !uses_own_kernels(OpFamily::Windows, windows)
        || !matches!(windows.dtype(), DType::F32 | DType::F64)
    {
        return composed_merge(windows, g);
    }
    windows.contiguous()?.apply_op1(Merge(g))
}

/// The device-generic cut: rolls, zero padding and a strided copy.
fn composed_partition(x: &Tensor, g: Geometry) -> Result<Tensor> {
    let mut y = x.clone();
    if g.sh > 0 {
        y = y.roll(-(g.sh as i32), 1)?;
    }
    if g.sw > 0 {
        y = y.roll(-(g.sw as i32), 2)?;
    }
    let (ny, nx) = g.windows();
    let ws = g.ws;
    y.pad_with_zeros(1, 0, ny * ws - g.h)?
        .pad_with_zeros(2, 0, nx * ws - g.w)?
        .reshape((g.b, ny, ws, nx, ws, g.c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .contiguous()?
        .reshape(g.windows_shape())
}

/// The device-generic inverse: a strided copy, a crop and rolls.
fn composed_merge(windows: &Tensor, g: Geometry) -> Result<Tensor> {
    let (ny, nx) = g.windows();
    let ws = g.ws;
    let mut y = windows
        .reshape((g.b, ny, nx, ws, ws, g.c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .contiguous()?
        .reshape((g.b, ny * ws, nx * ws, g.c))?
        .narrow(1, 0, g.h)?
        .narrow(2, 0, g.w)?;
    if g.sh > 0 {
        y = y.roll(g.sh as i32, 1)?;
    }
    if g.sw > 0 {
        y = y.roll(g.sw as i32, 2)?;
    }
    Ok(y)
}

/// Output row `r` (of `rows`, `c` values each) is row `source(r)` of `src`, or zeros for `None`.
fn gather_rows<T: Copy + Default + Send + Sync>(
    src: &[T],
    rows: usize,
    c: usize,
    source: impl Fn(usize) -> Option<usize> + Sync,
) -> Vec<T> {
    let mut out = vec![T::default(); rows * c];
    if c == 0 {
        return out;
    }
    out.par_chunks_mut(ROWS_PER_TASK * c)
        .enumerate()
        .for_each(|(task, chunk)| {
            for (j, row) in chunk.chunks_mut(c).enumerate() {
                match source(task * ROWS_PER_TASK + j) {
                    Some(s) => row.copy_from_slice(&src[s * c..(s + 1) * c]),
                    None => row.fill(T::default()),
                }
            }
        });
    out
}

/// [`window_partition`] as a custom op on a contiguous `(B, H, W, C)` map.
struct Partition(Geometry);

/// [`window_merge`] as a custom op on contiguous `(B · nW, ws², C)` windows.
struct Merge(Geometry);

impl CustomOp1 for Partition {
    fn name(&self) -> &'static str {
        "window-partition"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let out = map_float!(self.name(), s, l, |x| gather_rows(
            x,
            g.window_rows(),
            g.c,
            |r| g.partition_source(r)
        ));
        Ok((out, g.windows_shape()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::gpu::by_float;
        let out = by_float!(
            self.name(),
            s,
            cuda::gather(s, l, self.0, cuda::Way::Partition)
        )?;
        Ok((out, self.0.windows_shape()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Merge(self.0))?))
    }
}

impl CustomOp1 for Merge {
    fn name(&self) -> &'static str {
        "window-merge"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let out = map_float!(self.name(), s, l, |x| gather_rows(
            x,
            g.map_rows(),
            g.c,
            |r| Some(g.merge_source(r))
        ));
        Ok((out, Shape::from((g.b, g.h, g.w, g.c))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::gpu::by_float;
        let g = self.0;
        let out = by_float!(self.name(), s, cuda::gather(s, l, g, cuda::Way::Merge))?;
        Ok((out, Shape::from((g.b, g.h, g.w, g.c))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            grad.contiguous()?.apply_op1_no_bwd(&Partition(self.0))?,
        ))
    }
}

/// The CUDA kernels (`scfnet-kernels`' `windows.cu`): blocks of 32 × 8 threads, a row per
/// `threadIdx.y` (its source found once), its values along `threadIdx.x`.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::{CudaStorage, Layout, Result};
    use scfnet_kernels::launch;
    use scfnet_kernels::ptx::WINDOWS;

    use super::Geometry;
    use crate::gpu::{kernel, output, rows_of_32x8, view, wrap, GpuFloat};

    /// Which of the two gathers.
    #[derive(Clone, Copy)]
    pub(super) enum Way {
        Partition,
        Merge,
    }

    pub(super) fn gather<T: GpuFloat>(
        s: &CudaStorage,
        l: &Layout,
        g: Geometry,
        way: Way,
    ) -> Result<CudaStorage> {
        let dev = s.device();
        let x = view::<T>("window", s, l)?;
        let (rows, name) = match way {
            Way::Partition => (g.window_rows(), "window_partition"),
            Way::Merge => (g.map_rows(), "window_merge"),
        };
        let mut y = output::<T>(dev, rows * g.c)?;
        let (ny, nx) = g.windows();
        let u = |v: usize| v as u32; // every size is below the window rows, checked < 2³¹
        let cfg = rows_of_32x8(rows);
        let (rows, c, h, w, ws, sh, sw, ny, nx) = (
            u(rows),
            u(g.c),
            u(g.h),
            u(g.w),
            u(g.ws),
            u(g.sh),
            u(g.sw),
            u(ny),
            u(nx),
        );
        launch!(dev, WINDOWS, kernel::<T>(name), config: cfg,
            args: [&x, &mut y, &rows, &c, &h, &w, &ws, &sh, &sw, &ny, &nx]);
        Ok(wrap(s, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn map(dims: (usize, usize, usize, usize)) -> Tensor {
        let n = dims.0 * dims.1 * dims.2 * dims.3;
        Tensor::arange(0f64, n as f64, &Device::Cpu)
            .unwrap()
            .reshape(dims)
            .unwrap()
    }

    /// Geometries: exact multiples, padding on one or both sides, shifts on one or both axes,
    /// a window larger than the map, one channel.
    /// A map's `(B, H, W, C)`, the window side and the shift.
    type Cut = ((usize, usize, usize, usize), usize, (usize, usize));

    const CUTS: [Cut; 7] = [
        ((2, 4, 6, 3), 2, (0, 0)),
        ((2, 4, 6, 3), 2, (1, 1)),
        ((1, 5, 7, 2), 3, (1, 2)),
        ((2, 6, 5, 4), 3, (2, 0)),
        ((1, 3, 4, 5), 6, (0, 3)),
        ((3, 7, 7, 1), 4, (2, 2)),
        ((1, 12, 12, 2), 12, (6, 6)),
    ];

    #[test]
    fn the_kernels_equal_the_composition() {
        for (dims, ws, shift) in CUTS {
            let x = map(dims);
            let g = Geometry::new("t", dims, ws, shift).unwrap();
            let kernel = window_partition(&x, ws, shift).unwrap();
            let composed = composed_partition(&x, g).unwrap();
            assert_eq!(kernel.dims(), composed.dims(), "{dims:?} {ws} {shift:?}");
            let diff = (&kernel - &composed).unwrap().abs().unwrap().max_all();
            assert_eq!(diff.unwrap().to_scalar::<f64>().unwrap(), 0.0);
            let back = window_merge(&kernel, ws, shift, (dims.0, dims.1, dims.2)).unwrap();
            let back_composed = composed_merge(&kernel, g).unwrap();
            let diff = (&back - &back_composed).unwrap().abs().unwrap().max_all();
            assert_eq!(diff.unwrap().to_scalar::<f64>().unwrap(), 0.0);
            let diff = (&back - &x).unwrap().abs().unwrap().max_all();
            assert_eq!(
                diff.unwrap().to_scalar::<f64>().unwrap(),
                0.0,
                "merge inverts"
            );
        }
    }

    #[test]
    fn gradients_equal_the_compositions() {
        for (dims, ws, shift) in CUTS {
            let g = Geometry::new("t", dims, ws, shift).unwrap();
            let x = Var::from_tensor(&map(dims)).unwrap();
            let weights = |shape: &Shape| Tensor::rand(-1f64, 1.0, shape, &Device::Cpu).unwrap();
            let wp = weights(&g.windows_shape());
            let grad = |y: Tensor, w: &Tensor| {
                let store = (y * w).unwrap().sum_all().unwrap().backward().unwrap();
                store.get(x.as_tensor()).unwrap().clone()
            };
            let a = grad(window_partition(&x, ws, shift).unwrap(), &wp);
            let b = grad(composed_partition(&x, g).unwrap(), &wp);
            let diff = (&a - &b).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(
                diff.to_scalar::<f64>().unwrap(),
                0.0,
                "{dims:?} {ws} {shift:?}"
            );

            let win = Var::from_tensor(&weights(&g.windows_shape())).unwrap();
            let wm = weights(&Shape::from(dims));
            let grad_w = |y: Tensor| {
                let store = (y * &wm).unwrap().sum_all().unwrap().backward().unwrap();
                store.get(win.as_tensor()).unwrap().clone()
            };
            let a = grad_w(window_merge(&win, ws, shift, (dims.0, dims.1, dims.2)).unwrap());
            let b = grad_w(composed_merge(&win, g).unwrap());
            let diff = (&a - &b).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(
                diff.to_scalar::<f64>().unwrap(),
                0.0,
                "{dims:?} {ws} {shift:?}"
            );
        }
    }

    #[test]
    fn padding_rows_are_zero_and_every_map_row_appears_once() {
        let (dims, ws, shift) = CUTS[2];
        let g = Geometry::new("t", dims, ws, shift).unwrap();
        let mut seen = vec![0usize; g.map_rows()];
        let mut padding = 0;
        for r in 0..g.window_rows() {
            match g.partition_source(r) {
                Some(s) => {
                    seen[s] += 1;
                    assert_eq!(g.merge_source(s), r);
                }
                None => padding += 1,
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
        assert_eq!(padding, g.window_rows() - g.map_rows());
        assert!(padding > 0);
    }

    #[test]
    fn wrong_windows_are_refused_by_name() {
        let w = Tensor::zeros((3, 4, 2), DType::F32, &Device::Cpu).unwrap();
        let e = window_merge(&w, 2, (0, 0), (1, 4, 4))
            .unwrap_err()
            .to_string();
        assert!(e.contains("window-merge") && e.contains("expected"), "{e}");
        let x = Tensor::zeros((1, 4, 4, 2), DType::F32, &Device::Cpu).unwrap();
        let e = window_partition(&x, 0, (0, 0)).unwrap_err().to_string();
        assert!(e.contains("at least 1"), "{e}");
    }
}
