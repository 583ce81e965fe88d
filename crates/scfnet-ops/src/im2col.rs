//! Convolution as image-to-columns plus a matrix product, for small-channel layers.
//!
//! candle 0.11's CPU convolution copies the input to NHWC in tiles before its matrix product; for
//! SCFNet's decoder (16 channels at stride 4, and 1-channel heads) that copying dominates, and a
//! 3×3 16→16 convolution at 88×88 runs at ~5 GFLOP/s. Here the columns are built plane by plane
//! with contiguous row copies (`(C·kh·kw, Ho·Wo)` per image) and multiplied by the weights with
//! candle's matmul; the column op has a backward (columns back to the image), so the layer trains.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use crate::dispatch::{uses_cpu_kernels, uses_own_kernels};
use crate::elem::{dims4, map_float, Real};
use crate::generic_ops::OpFamily;
use crate::macs;
use crate::par_vec::par_filled;
use crate::views::{pad2d, tap};

/// Geometry of a 2-D convolution window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Kernel side.
    pub kernel: usize,
    /// Step.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
}

impl ConvGeometry {
    /// A 1×1 window, stride 1, no padding: the columns are the input itself.
    pub const POINTWISE: ConvGeometry = ConvGeometry {
        kernel: 1,
        stride: 1,
        padding: 0,
        dilation: 1,
    };

    /// Output side for an input side `n`.
    pub fn output(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) / self.stride + 1
    }

    /// Input coordinate of output coordinate `o` and tap `k`, if inside `0..n`.
    pub fn input(&self, o: usize, k: usize, n: usize) -> Option<usize> {
        (o * self.stride + k * self.dilation)
            .checked_sub(self.padding)
            .filter(|&i| i < n)
    }
}

/// Fills `dst` `(Ho·Wo)` with what tap `(ky, kx)` sees of the plane `src` `(H·W)` (padding
/// positions are left as they are: zero).
fn fill_tap<T: Real>(
    src: &[T],
    dst: &mut [T],
    (ky, kx): (usize, usize),
    (h, w): (usize, usize),
    g: ConvGeometry,
) {
    let (oh, ow) = (g.output(h), g.output(w));
    for y in 0..oh {
        let Some(iy) = g.input(y, ky, h) else {
            continue;
        };
        let row = &src[iy * w..(iy + 1) * w];
        let drow = &mut dst[y * ow..(y + 1) * ow];
        if g.stride == 1 {
            // Contiguous run of valid columns.
            let lo = g.padding.saturating_sub(kx * g.dilation);
            let hi = (w + g.padding).saturating_sub(kx * g.dilation).min(ow);
            if lo >= hi {
                continue; // this tap sees only padding on this row
            }
            let off = lo + kx * g.dilation - g.padding;
            drow[lo..hi].copy_from_slice(&row[off..off + (hi - lo)]);
        } else {
            for (xo, d) in drow.iter_mut().enumerate() {
                if let Some(ix) = g.input(xo, kx, w) {
                    *d = row[ix];
                }
            }
        }
    }
}

/// Adjoint of [`fill_tap`]: adds `src` `(Ho·Wo)` onto the plane `dst` `(H·W)` where tap
/// `(ky, kx)` read it.
fn add_tap<T: Real>(
    src: &[T],
    dst: &mut [T],
    (ky, kx): (usize, usize),
    (h, w): (usize, usize),
    g: ConvGeometry,
) {
    let (oh, ow) = (g.output(h), g.output(w));
    for y in 0..oh {
        let Some(iy) = g.input(y, ky, h) else {
            continue;
        };
        for xo in 0..ow {
            if let Some(ix) = g.input(xo, kx, w) {
                dst[iy * w + ix] += src[y * ow + xo];
            }
        }
    }
}

/// `(B, C, H, W)` → the columns of `layout`: row `(c, ky, kx)` holds the input seen by that tap.
fn im2col<T: Real>(
    x: &[T],
    layout: Columns,
    c: usize,
    h: usize,
    w: usize,
    g: ConvGeometry,
) -> Vec<T> {
    let sizes = ColumnSizes::new(x.len() / (c * h * w), c, g, (h, w));
    par_filled(sizes.len(), sizes.plane, |run, dst| {
        let (b, ci, tap) = layout.source(sizes, run);
        let p = b * c + ci;
        let src = &x[p * h * w..(p + 1) * h * w];
        fill_tap(src, dst, (tap / g.kernel, tap % g.kernel), (h, w), g);
    })
}

/// Adjoint of [`im2col`]: sums the columns of `layout` back onto `(B, C, H, W)`.
fn col2im<T: Real>(
    cols: &[T],
    layout: Columns,
    c: usize,
    h: usize,
    w: usize,
    g: ConvGeometry,
) -> Vec<T> {
    let one = ColumnSizes::new(1, c, g, (h, w));
    let sizes = ColumnSizes {
        images: cols.len() / one.len(),
        ..one
    };
    let plane = sizes.plane;
    par_filled(sizes.images * c * h * w, h * w, |p, dst| {
        for tap in 0..sizes.taps {
            let start = layout.run(sizes, (p / c, p % c, tap)) * plane;
            add_tap(
                &cols[start..start + plane],
                dst,
                (tap / g.kernel, tap % g.kernel),
                (h, w),
                g,
            );
        }
    })
}

/// The sizes of a batch's columns: `images` images of `channels` channels, `taps = k·k` taps
/// and `plane = Ho·Wo` outputs per tap.
#[derive(Clone, Copy, Debug)]
struct ColumnSizes {
    images: usize,
    channels: usize,
    taps: usize,
    plane: usize,
}

impl ColumnSizes {
    fn new(images: usize, channels: usize, g: ConvGeometry, (h, w): (usize, usize)) -> Self {
        ColumnSizes {
            images,
            channels,
            taps: g.kernel * g.kernel,
            plane: g.output(h) * g.output(w),
        }
    }

    /// The number of column values.
    fn len(self) -> usize {
        self.images * self.channels * self.taps * self.plane
    }
}

/// How a batch's columns are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Columns {
    /// `(B, C·k·k, Ho·Wo)`: one matrix per image; CPU and CUDA.
    PerImage,
    /// `(C·k·k, B·Ho·Wo)`: every image side by side, so that one product covers the batch; CPU
    /// and CUDA.
    Batch,
}

impl Columns {
    /// Which run of `plane = Ho·Wo` values holds image `b`, channel `c`, tap `tap`.
    fn run(self, s: ColumnSizes, (b, c, tap): (usize, usize, usize)) -> usize {
        match self {
            Columns::PerImage => (b * s.channels + c) * s.taps + tap,
            Columns::Batch => (c * s.taps + tap) * s.images + b,
        }
    }

    /// The image, channel and tap of run `run` (the inverse of [`Columns::run`]).
    fn source(self, s: ColumnSizes, run: usize) -> (usize, usize, usize) {
        match self {
            Columns::PerImage => (
                run / (s.channels * s.taps),
                run / s.taps % s.channels,
                run % s.taps,
            ),
            Columns::Batch => {
                let row = run / s.images;
                (run % s.images, row / s.taps, row % s.taps)
            }
        }
    }

    /// The shape of the columns of `b` images with `rows = C·k·k` taps and `plane = Ho·Wo`
    /// outputs per image.
    fn shape(self, b: usize, rows: usize, plane: usize) -> Shape {
        match self {
            Columns::PerImage => Shape::from((b, rows, plane)),
            Columns::Batch => Shape::from((rows, b * plane)),
        }
    }
}

/// `(B, C, H, W)` → the columns of the stored layout, as a graph node.
struct Im2Col(ConvGeometry, Columns);
/// The columns of the stored layout → `(B, C, H, W)` for the stored `(C, H, W)`, summing the
/// taps back (the adjoint of [`Im2Col`]), as a graph node.
struct Col2Im(ConvGeometry, Columns, usize, usize, usize);

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        match self.1 {
            Columns::PerImage => "im2col",
            Columns::Batch => "im2col-wide",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = dims4(self.name(), layout)?;
        let Im2Col(g, columns) = *self;
        check_window(g, h, w)?;
        let out = map_float!(self.name(), storage, layout, |x| im2col(
            x, columns, c, h, w, g
        ));
        let rows = c * g.kernel * g.kernel;
        Ok((out, columns.shape(b, rows, g.output(h) * g.output(w))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, c, h, w) = arg.dims4()?;
        let op = Col2Im(self.0, self.1, c, h, w);
        Ok(Some(grad.contiguous()?.apply_op1(op)?))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (b, c, h, w) = dims4(self.name(), layout)?;
        let Im2Col(g, columns) = *self;
        check_window(g, h, w)?;
        let out = cuda::run(
            cuda::Direction::ToColumns,
            g,
            columns,
            (b, c, h, w),
            storage,
            layout,
        )?;
        let rows = c * g.kernel * g.kernel;
        Ok((out, columns.shape(b, rows, g.output(h) * g.output(w))))
    }
}

/// An error when the `h × w` input is smaller than the window.
fn check_window(g: ConvGeometry, h: usize, w: usize) -> Result<()> {
    let span = g.dilation * (g.kernel - 1) + 1;
    if h + 2 * g.padding < span || w + 2 * g.padding < span {
        candle_core::bail!("im2col: input {h}x{w} is smaller than the window {g:?}");
    }
    Ok(())
}

/// The CUDA kernels (`scfnet-kernels`' `im2col.cu`): one thread per output position (writing its
/// k·k taps), and for the way back one per image element (a gather over the taps, no atomics);
/// both layouts.
#[cfg(feature = "cuda")]
pub(crate) mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView};
    use candle_core::{CudaDevice, CudaStorage, Layout, Result};
    use scfnet_kernels::ptx::IM2COL;

    use super::{Columns, ConvGeometry};
    use crate::gpu::{by_float, kernel, output, per_plane, view, wrap, GpuFloat};

    /// Image to columns, or columns back to the image.
    #[derive(Clone, Copy)]
    pub(super) enum Direction {
        ToColumns,
        ToImage,
    }

    impl Direction {
        fn kernel(self) -> &'static str {
            match self {
                Direction::ToColumns => "im2col",
                Direction::ToImage => "col2im",
            }
        }
    }

    /// Runs the kernel of `direction` for `(B, C, h, w)` images and columns in `layout`.
    pub(super) fn run(
        direction: Direction,
        g: ConvGeometry,
        layout: Columns,
        dims: (usize, usize, usize, usize),
        s: &CudaStorage,
        l: &Layout,
    ) -> Result<CudaStorage> {
        by_float!(
            direction.kernel(),
            s,
            run_typed(direction, g, layout, dims, s, l)
        )
    }

    fn run_typed<T: GpuFloat>(
        direction: Direction,
        g: ConvGeometry,
        layout: Columns,
        dims: (usize, usize, usize, usize),
        s: &CudaStorage,
        l: &Layout,
    ) -> Result<CudaStorage> {
        let src = view::<T>(direction.kernel(), s, l)?;
        let out = launch(direction, s.device(), &src, g, layout, dims)?;
        Ok(wrap(s, out))
    }

    /// The columns in `layout` of `(B, C, h, w)` images: `(B, C·k·k, Ho·Wo)` per image,
    /// `(C·k·k, B·Ho·Wo)` batch-wide. With [`ConvGeometry::POINTWISE`] and `h = 1` the batch-wide
    /// layout transposes `(B, C, w)` to `(C, B·w)`.
    pub(crate) fn columns<T: GpuFloat>(
        dev: &CudaDevice,
        src: &CudaView<'_, T>,
        g: ConvGeometry,
        layout: Columns,
        dims: (usize, usize, usize, usize),
    ) -> Result<CudaSlice<T>> {
        launch(Direction::ToColumns, dev, src, g, layout, dims)
    }

    /// The images `(B, C, h, w)` summed back from columns in `layout`.
    pub(crate) fn image<T: GpuFloat>(
        dev: &CudaDevice,
        cols: &CudaView<'_, T>,
        g: ConvGeometry,
        layout: Columns,
        dims: (usize, usize, usize, usize),
    ) -> Result<CudaSlice<T>> {
        launch(Direction::ToImage, dev, cols, g, layout, dims)
    }

    fn launch<T: GpuFloat>(
        direction: Direction,
        dev: &CudaDevice,
        src: &CudaView<'_, T>,
        g: ConvGeometry,
        layout: Columns,
        (images, channels, h, w): (usize, usize, usize, usize),
    ) -> Result<CudaSlice<T>> {
        let name = direction.kernel();
        let (oh, ow, k) = (g.output(h), g.output(w), g.kernel);
        let planes = images * channels;
        // Threads per plane (one per output position, or per image element) and the values
        // written per plane.
        let (threads, per) = match direction {
            Direction::ToColumns => (oh * ow, k * k * oh * ow),
            Direction::ToImage => (h * w, h * w),
        };
        // The kernels index an image plane and a plane of outputs in 32-bit arithmetic.
        per_plane(name, planes, (h * w).max(oh * ow))?;
        // The kernels' `images`: 0 for the per-image layout.
        let wide = match layout {
            Columns::PerImage => 0,
            Columns::Batch => images,
        };
        let mut out = output::<T>(dev, planes * per)?;
        let sizes = [
            planes, wide, h, w, oh, ow, k, g.stride, g.padding, g.dilation,
        ];
        let [planes, wide, h, w, oh, ow, k, st, p, d] = sizes;
        scfnet_kernels::launch!(dev, IM2COL, kernel::<T>(name), config: per_plane(name, planes, threads)?,
            args: [src, &mut out, &planes, &wide, &h, &w, &oh, &ow, &k, &st, &p, &d]);
        Ok(out)
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        match self.1 {
            Columns::PerImage => "col2im",
            Columns::Batch => "col2im-wide",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let Col2Im(g, columns, c, h, w) = *self;
        let b = self.batch(layout)?;
        let out = map_float!(self.name(), storage, layout, |x| col2im(
            x, columns, c, h, w, g
        ));
        Ok((out, Shape::from((b, c, h, w))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Im2Col(self.0, self.1))?))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let Col2Im(g, columns, c, h, w) = *self;
        let b = self.batch(layout)?;
        let out = cuda::run(
            cuda::Direction::ToImage,
            g,
            columns,
            (b, c, h, w),
            storage,
            layout,
        )?;
        Ok((out, Shape::from((b, c, h, w))))
    }
}

impl Col2Im {
    /// The batch size of the columns in `layout`, or an error when they do not fit the stored
    /// input and geometry.
    fn batch(&self, layout: &Layout) -> Result<usize> {
        let Col2Im(g, columns, c, h, w) = *self;
        let (rows, plane) = (c * g.kernel * g.kernel, g.output(h) * g.output(w));
        let dims = layout.shape().dims();
        let b = match (columns, dims) {
            (Columns::PerImage, &[b, r, p]) if r == rows && p == plane => Some(b),
            (Columns::Batch, &[r, n]) if r == rows && n % plane == 0 => Some(n / plane),
            _ => None,
        };
        match b {
            Some(b) if layout.is_contiguous() => Ok(b),
            _ => candle_core::bail!(
                "{}: columns {:?} do not fit a {c}×{h}×{w} input and {g:?}",
                self.name(),
                layout.shape()
            ),
        }
    }
}

/// 2-D convolution of `x` `(B, C, H, W)` with `weight` `(Co, C, k, k)` and an optional `bias`
/// `(Co)`, through explicit columns and a matrix product; differentiable in all inputs.
/// Same result as `Tensor::conv2d` (groups = 1), faster for few channels on the CPU; on other
/// devices the columns are strided views and the product one plain matrix product, so the
/// input gradient is a matrix product too (candle's own goes through a transposed convolution).
pub fn conv2d_im2col(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    g: ConvGeometry,
) -> Result<Tensor> {
    let (_, ci, kh, kw) = weight.dims4()?;
    if kh != g.kernel || kw != g.kernel {
        candle_core::bail!(
            "conv2d-im2col: weight {:?} does not match kernel {}",
            weight.dims(),
            g.kernel
        );
    }
    let y = conv_columns(x, weight, bias, g)?;
    macs::add_conv(y.elem_count(), ci * kh * kw, bias.is_some());
    Ok(y)
}

/// The convolution of [`conv2d_im2col`], uncounted: with this crate's kernels (CPU, CUDA) the
/// columns `(B, C·k·k, Ho·Wo)` of each image times the `(Co, C·k·k)` weights in one batched
/// product; elsewhere [`conv_generic`].
fn conv_columns(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    g: ConvGeometry,
) -> Result<Tensor> {
    if !uses_own_kernels(OpFamily::Convolution, x) {
        return conv_generic(x, weight, bias, g);
    }
    let (b, c, h, w) = x.dims4()?;
    let (co, ci, kh, kw) = weight.dims4()?;
    #[cfg(feature = "cuda")]
    if crate::dispatch::uses_cuda_kernels(OpFamily::Convolution, x) {
        if ci != c {
            candle_core::bail!(
                "conv2d: weight {:?} expects {ci} input channels, the input has {c}",
                weight.dims()
            );
        }
        check_window(g, h, w)?;
        let y = x
            .contiguous()?
            .apply_op2(&weight.contiguous()?, crate::columns_conv::ColumnsConv(g))?;
        return add_bias(y, bias);
    }
    let _ = c;
    let pointwise = kh == 1 && g.stride == 1 && g.padding == 0;
    let (oh, ow) = (g.output(h), g.output(w));
    if b > 1 && wide_product(oh * ow) {
        // One product for the whole batch: `(Co, C·k·k)` times `(C·k·k, B·Ho·Wo)`.
        let cols = if pointwise {
            x.transpose(0, 1)?.contiguous()?.reshape((ci, b * h * w))?
        } else {
            x.contiguous()?.apply_op1(Im2Col(g, Columns::Batch))?
        };
        let y = crate::profile::timed_on("conv matmul (forward)", x.device(), || {
            weight.reshape((co, ci * kh * kw))?.matmul(&cols)
        })?;
        let y = y.reshape((co, b, oh, ow))?.transpose(0, 1)?.contiguous()?;
        return add_bias(y, bias);
    }
    // A 1×1 convolution with stride 1 needs no columns: the input is the matrix.
    let cols = if pointwise {
        x.reshape((b, ci, h * w))?
    } else {
        x.contiguous()?.apply_op1(Im2Col(g, Columns::PerImage))?
    };
    let y = crate::profile::timed_on("conv matmul (forward)", x.device(), || {
        weight
            .reshape((1, co, ci * kh * kw))?
            .broadcast_matmul(&cols)
    })?;
    add_bias(y.reshape((b, co, oh, ow))?, bias)
}

/// Whether the CPU convolves a batch of `plane = Ho·Wo` outputs per image in one product over
/// `(C·k·k, B·Ho·Wo)` columns rather than one product per image. On small maps a product per
/// image is too narrow to run at speed, and its weight gradient is a sum of per-image products
/// (a `(Co, C·k·k)` matrix per image); on large maps the two run alike and the per-image product
/// spares the output's transposition. The limit was measured (docs/benchmarks.md): training the
/// student and ResNet-50 ran fastest with it at 1024, alike at 4096.
fn wide_product(plane: usize) -> bool {
    plane <= 1024
}

/// `y` `(B, Co, H, W)` plus an optional per-channel `bias` `(Co)`.
fn add_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(bias) => y.broadcast_add(&bias.reshape((1, bias.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

/// The device-generic convolution: columns `(C·k·k, B·Ho·Wo)` from strided views of the
/// zero-padded input (channel-major, so one plain matrix product with the `(Co, C·k·k)` weights
/// covers the whole batch).
fn conv_generic(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    g: ConvGeometry,
) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (co, ci, k, _) = weight.dims4()?;
    if ci != c {
        candle_core::bail!(
            "conv2d-im2col: weight {:?} expects {ci} input channels, the input has {c}",
            weight.dims()
        );
    }
    let span = g.dilation * (k - 1) + 1;
    if h + 2 * g.padding < span || w + 2 * g.padding < span {
        candle_core::bail!("conv2d-im2col: input {h}x{w} is smaller than the window {g:?}");
    }
    let (oh, ow) = (g.output(h), g.output(w));
    // (C, B, H, W): channels first, so each tap's view flattens to (C, B·Ho·Wo).
    let xc = x.transpose(0, 1)?;
    let cols = if k == 1 && g.stride == 1 && g.padding == 0 {
        xc.contiguous()?.reshape((c, b * h * w))?
    } else {
        let p = g.padding;
        let padded = pad2d(&xc, (p, p), (p, p), 0.0)?;
        let mut taps = Vec::with_capacity(k * k);
        for ky in 0..k {
            for kx in 0..k {
                taps.push(tap(
                    &padded,
                    (ky, kx),
                    (g.stride, g.stride),
                    g.dilation,
                    (oh, ow),
                )?);
            }
        }
        // (C, k·k, B, Ho, Wo) → (C·k·k, B·Ho·Wo), rows in the weights' (c, ky, kx) order.
        Tensor::stack(&taps, 1)?.reshape((c * k * k, b * oh * ow))?
    };
    let y = weight.reshape((co, c * k * k))?.matmul(&cols)?; // (Co, B·Ho·Wo)
    add_bias(
        y.reshape((co, b, oh, ow))?.transpose(0, 1)?.contiguous()?,
        bias,
    )
}

/// A `candle_nn::Conv2d` (groups = 1, square kernel) applied to `x` `(B, C, H, W)`: candle's own
/// convolution on the CPU (its tiled kernel is the fastest there for wide layers), the explicit
/// columns of [`conv2d_im2col`] on other devices (a matrix-product backward, and no dependence on
/// candle's conv2d backward, which takes the output padding from the height alone).
pub fn conv2d(x: &Tensor, conv: &candle_nn::Conv2d) -> Result<Tensor> {
    use candle_core::Module;
    let cfg = conv.config();
    let (_, ci, kh, kw) = conv.weight().dims4()?;
    let y = if uses_cpu_kernels(x) || cfg.groups != 1 || kh != kw {
        conv.forward(x)?
    } else {
        conv_columns(
            x,
            conv.weight(),
            conv.bias(),
            ConvGeometry {
                kernel: kh,
                stride: cfg.stride,
                padding: cfg.padding,
                dilation: cfg.dilation,
            },
        )?
    };
    macs::add_conv(y.elem_count(), ci * kh * kw, conv.bias().is_some());
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Odd sides, stride, dilation and padding larger than some taps' reach.
    const GEOMETRIES: [ConvGeometry; 3] = [
        ConvGeometry {
            kernel: 3,
            stride: 1,
            padding: 1,
            dilation: 1,
        },
        ConvGeometry {
            kernel: 3,
            stride: 2,
            padding: 2,
            dilation: 2,
        },
        ConvGeometry {
            kernel: 1,
            stride: 2,
            padding: 0,
            dilation: 1,
        },
    ];

    #[test]
    fn wide_columns_are_the_per_image_columns_side_by_side() {
        let (b, c, h, w) = (3, 2, 7, 6);
        let x: Vec<f64> = (0..b * c * h * w).map(|i| (i as f64).sin()).collect();
        for g in GEOMETRIES {
            let (plane, rows) = (g.output(h) * g.output(w), c * g.kernel * g.kernel);
            let narrow = im2col(&x, Columns::PerImage, c, h, w, g);
            let wide = im2col(&x, Columns::Batch, c, h, w, g);
            assert_eq!(wide.len(), narrow.len());
            for r in 0..rows {
                for i in 0..b {
                    assert_eq!(
                        wide[(r * b + i) * plane..(r * b + i + 1) * plane],
                        narrow[(i * rows + r) * plane..(i * rows + r + 1) * plane],
                        "{g:?} row {r} image {i}"
                    );
                }
            }
            // The adjoints: the same columns, laid out each way, sum back to the same image.
            let back = col2im(&narrow, Columns::PerImage, c, h, w, g);
            assert_eq!(col2im(&wide, Columns::Batch, c, h, w, g), back, "{g:?}");
            assert!(back.iter().any(|&v| v != 0.0));
        }
    }

    #[test]
    fn every_run_of_both_layouts_belongs_to_one_image_channel_and_tap() {
        let sizes = ColumnSizes::new(3, 4, GEOMETRIES[0], (7, 6));
        let runs = sizes.images * sizes.channels * sizes.taps;
        for layout in [Columns::PerImage, Columns::Batch] {
            let mut seen = vec![false; runs];
            for b in 0..3 {
                for c in 0..4 {
                    for tap in 0..9 {
                        let run = layout.run(sizes, (b, c, tap));
                        assert!(run < runs, "{layout:?} {b} {c} {tap}");
                        assert!(!std::mem::replace(&mut seen[run], true), "{layout:?} {run}");
                        assert_eq!(layout.source(sizes, run), (b, c, tap), "{layout:?}");
                    }
                }
            }
        }
        // The batch layout puts the images of one (channel, tap) row side by side.
        assert_eq!(Columns::Batch.run(sizes, (1, 0, 0)), 1);
        assert_eq!(Columns::PerImage.run(sizes, (1, 0, 0)), 4 * 9);
    }

    #[test]
    fn columns_that_do_not_fit_the_input_are_an_error() -> Result<()> {
        let (c, h, w, g) = (2, 7, 6, GEOMETRIES[0]);
        let (rows, plane) = (c * 9, g.output(h) * g.output(w));
        let cpu = &candle_core::Device::Cpu;
        let cases = [
            (Columns::PerImage, vec![3, rows, plane], true),
            (Columns::PerImage, vec![3, rows, plane - 1], false),
            (Columns::PerImage, vec![rows, 3 * plane], false),
            (Columns::Batch, vec![rows, 3 * plane], true),
            (Columns::Batch, vec![rows, 3 * plane + 1], false),
            (Columns::Batch, vec![rows + 1, 3 * plane], false),
        ];
        for (columns, dims, fits) in cases {
            let cols = Tensor::ones(dims.as_slice(), candle_core::DType::F32, cpu)?;
            match cols.apply_op1(Col2Im(g, columns, c, h, w)) {
                Ok(x) => {
                    assert!(fits, "{columns:?} {dims:?} was accepted");
                    assert_eq!(x.dims(), &[3, c, h, w]);
                }
                Err(e) => {
                    assert!(!fits, "{columns:?} {dims:?}: {e}");
                    assert!(e.to_string().contains("do not fit a 2×7×6 input"), "{e}");
                }
            }
        }
        Ok(())
    }
}
