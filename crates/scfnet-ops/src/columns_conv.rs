//! The convolution on CUDA as one graph node: columns (`im2col.cu`) and a cuBLAS product inside
//! a custom op, with a backward of two more (input gradient: product then `col2im`; weight
//! gradient: per-image products summed over the batch). Against the composition (columns op,
//! broadcast, matrix product, reshapes) it keeps the large column tensor out of the graph, so the
//! backward pass neither zero-fills nor accumulates gradients for it, and the columns are not
//! kept alive between the forward and the backward pass (they are rebuilt for the weight
//! gradient). Products use TF32 or bf16 tensor cores as [`crate::set_convolution_products`] says.
//! With [`crate::set_cudnn_convolutions`] the three passes run through cuDNN instead; with
//! [`crate::set_batch_columns`] some or all of them as one product over the batch (columns laid
//! out `(C·k·k, B·Ho·Wo)`).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use crate::elem::dims4;
use crate::im2col::ConvGeometry;

/// `(x, weight)` → `(B, Co, Ho, Wo)`.
pub(crate) struct ColumnsConv(pub(crate) ConvGeometry);
/// `(output gradient, weight)` → the input gradient of an `(h, w)` input.
struct ColumnsConvGradInput(ConvGeometry, usize, usize);
/// `(x, output gradient)` → the weight gradient.
struct ColumnsConvGradWeight(ConvGeometry);

fn cpu_only(op: &str) -> Result<(CpuStorage, Shape)> {
    candle_core::bail!("{op}: a CUDA op; the CPU takes the columns op and candle's matmul")
}

/// Whether the convolution needs no columns: its input is the matrix.
fn is_pointwise(g: ConvGeometry) -> bool {
    g.kernel == 1 && g.stride == 1 && g.padding == 0
}

impl CustomOp2 for ColumnsConv {
    fn name(&self) -> &'static str {
        "columns-conv2d"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        cpu_only(self.name())
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (_, _, h, wd) = x.dims4()?;
        // An operand that records no graph (a network's input image) needs no gradient.
        let gx = x
            .track_op()
            .then(|| grad.apply_op2_no_bwd(w, &ColumnsConvGradInput(self.0, h, wd)))
            .transpose()?;
        let gw = w
            .track_op()
            .then(|| x.apply_op2_no_bwd(&grad, &ColumnsConvGradWeight(self.0)))
            .transpose()?;
        Ok((gx, gw))
    }

    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::gpu::by_float;
        let (b, c, h, w) = dims4(self.name(), l1)?;
        let (co, ci, k, k2) = dims4(self.name(), l2)?;
        if ci != c || k != self.0.kernel || k2 != k {
            candle_core::bail!(
                "{}: weight {:?} for input {:?}",
                self.name(),
                l2.shape(),
                l1.shape()
            );
        }
        let g = self.0;
        let out = by_float!(
            "conv forward",
            s1,
            cuda::forward(g, (b, c, h, w), co, (s1, l1), (s2, l2))
        )?;
        Ok((out, Shape::from((b, co, g.output(h), g.output(w)))))
    }
}

impl CustomOp2 for ColumnsConvGradInput {
    fn name(&self) -> &'static str {
        "columns-conv2d-grad-input"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        cpu_only(self.name())
    }

    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::gpu::by_float;
        let ColumnsConvGradInput(g, h, w) = *self;
        let (b, co, _, _) = dims4(self.name(), l1)?;
        let (_, c, _, _) = dims4(self.name(), l2)?;
        let out = by_float!(
            "conv grad-input",
            s1,
            cuda::grad_input(g, (b, c, h, w), co, (s1, l1), (s2, l2))
        )?;
        Ok((out, Shape::from((b, c, h, w))))
    }
}

impl CustomOp2 for ColumnsConvGradWeight {
    fn name(&self) -> &'static str {
        "columns-conv2d-grad-weight"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        cpu_only(self.name())
    }

    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::gpu::by_float;
        let g = self.0;
        let (b, c, h, w) = dims4(self.name(), l1)?;
        let (_, co, _, _) = dims4(self.name(), l2)?;
        let out = by_float!(
            "conv grad-weight",
            s1,
            cuda::grad_weight(g, (b, c, h, w), co, (s1, l1), (s2, l2))
        )?;
        Ok((out, Shape::from((co, c, g.kernel, g.kernel))))
    }
}

mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView};
    use candle_core::{CudaDevice, CudaStorage, Layout, Result};
    use scfnet_kernels::ptx::REDUCE;

    use super::is_pointwise;
    use crate::gpu::{gemm, kernel, output, per_element, view, wrap, GpuFloat, Operand};
    use crate::im2col::{cuda as columns, Columns, ConvGeometry};
    use crate::precision::{
        batch_columns, convolution_products, cudnn_convolutions, BatchColumns, ProductPrecision,
    };

    const OP: &str = "columns-conv2d";

    /// The columns of `x`, or `None` when `x` itself is the matrix ([`is_pointwise`]).
    fn columns_of<T: GpuFloat>(
        dev: &CudaDevice,
        x: &CudaView<'_, T>,
        g: ConvGeometry,
        dims: (usize, usize, usize, usize),
    ) -> Result<Option<CudaSlice<T>>> {
        if is_pointwise(g) {
            return Ok(None);
        }
        columns::columns(dev, x, g, Columns::PerImage, dims).map(Some)
    }

    /// `(B, C, P)` → `(C, B·P)` (or back, with `b` and `c` swapped): the batch layout's
    /// transposition of a matrix per image.
    fn transposed<T: GpuFloat>(
        dev: &CudaDevice,
        v: &CudaView<'_, T>,
        (b, c, p): (usize, usize, usize),
    ) -> Result<CudaSlice<T>> {
        columns::columns(
            dev,
            v,
            ConvGeometry::POINTWISE,
            Columns::Batch,
            (b, c, 1, p),
        )
    }

    /// Whether this pass of a batch of `b` runs as one product over the batch.
    fn one_product(b: usize, pass: BatchColumns) -> bool {
        let setting = batch_columns();
        b > 1 && (setting == BatchColumns::Every || setting == pass)
    }

    /// The cuDNN description of a convolution of `g` on `(b, c, h, w)` with `co` filters.
    fn cudnn_shape(
        g: ConvGeometry,
        input: (usize, usize, usize, usize),
        co: usize,
    ) -> scfnet_kernels::cudnn::ConvShape {
        scfnet_kernels::cudnn::ConvShape {
            input,
            out_channels: co,
            kernel: g.kernel,
            stride: g.stride,
            padding: g.padding,
            dilation: g.dilation,
        }
    }

    /// cuDNN's element type for `T`.
    fn element<T: GpuFloat>() -> scfnet_kernels::cudnn::Element {
        if T::SUFFIX == "f32" {
            scfnet_kernels::cudnn::Element::F32
        } else {
            scfnet_kernels::cudnn::Element::F64
        }
    }

    /// The device address of a view (on candle's stream).
    fn address<T>(dev: &CudaDevice, v: &CudaView<'_, T>) -> u64 {
        use candle_core::cuda_backend::cudarc::driver::DevicePtr;
        let stream = dev.cuda_stream();
        let (ptr, _guard) = v.device_ptr(&stream);
        ptr
    }

    /// One pass through cuDNN: `a`, `b` its inputs, a new buffer of `n` values its output.
    fn cudnn_pass<T: GpuFloat>(
        dev: &CudaDevice,
        pass: unsafe fn(
            &CudaDevice,
            &scfnet_kernels::cudnn::ConvShape,
            scfnet_kernels::cudnn::Element,
            bool,
            (u64, u64, u64),
        ) -> Result<()>,
        shape: scfnet_kernels::cudnn::ConvShape,
        (a, b): (&CudaView<'_, T>, &CudaView<'_, T>),
        n: usize,
    ) -> Result<CudaSlice<T>> {
        let out = output::<T>(dev, n)?;
        let o = address(dev, &out.slice(..));
        // SAFETY: `a` and `b` hold the pass's inputs of `shape` (checked by the ops' shape
        // checks), `out` is a new buffer of the output's size.
        unsafe {
            pass(
                dev,
                &shape,
                element::<T>(),
                // cuDNN's f32 convolutions have no bf16 mode: TF32 stands in for it.
                convolution_products() != ProductPrecision::F32,
                (address(dev, a), address(dev, b), o),
            )?;
        }
        Ok(out)
    }

    /// `y_i = W · cols(x_i)` for every image.
    pub(super) fn forward<T: GpuFloat>(
        g: ConvGeometry,
        (b, c, h, w): (usize, usize, usize, usize),
        co: usize,
        (xs, xl): (&CudaStorage, &Layout),
        (ws, wl): (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        let dev = xs.device();
        let x = view::<T>(OP, xs, xl)?;
        let wt = view::<T>(OP, ws, wl)?;
        if cudnn_convolutions() {
            let shape = cudnn_shape(g, (b, c, h, w), co);
            let n = b * co * g.output(h) * g.output(w);
            let y = cudnn_pass(dev, scfnet_kernels::cudnn::forward, shape, (&x, &wt), n)?;
            return Ok(wrap(xs, y));
        }
        let (kk, p) = (c * g.kernel * g.kernel, g.output(h) * g.output(w));
        if one_product(b, BatchColumns::Every) {
            // (Co, C·k·k) · (C·k·k, B·P) = (Co, B·P), then (Co, B, P) → (B, Co, P).
            let cols = columns::columns(dev, &x, g, Columns::Batch, (b, c, h, w))?;
            let mut y = output::<T>(dev, co * b * p)?;
            gemm(
                dev,
                (1, co, b * p, kk),
                Operand::same(&wt, false),
                Operand::same(&cols.slice(..), false),
                &mut y,
                convolution_products(),
            )?;
            return Ok(wrap(xs, transposed(dev, &y.slice(..), (co, b, p))?));
        }
        let built = columns_of(dev, &x, g, (b, c, h, w))?;
        let built = built.as_ref().map(|cols| cols.slice(..));
        let cols = built.as_ref().unwrap_or(&x);
        let mut y = output::<T>(dev, b * co * p)?;
        gemm(
            dev,
            (b, co, p, kk),
            Operand::same(&wt, false),
            Operand {
                data: cols,
                transposed: false,
                stride: kk * p,
            },
            &mut y,
            convolution_products(),
        )?;
        Ok(wrap(xs, y))
    }

    /// `dx = col2im(Wᵀ · dy_i)` for every image.
    pub(super) fn grad_input<T: GpuFloat>(
        g: ConvGeometry,
        (b, c, h, w): (usize, usize, usize, usize),
        co: usize,
        (gs, gl): (&CudaStorage, &Layout),
        (ws, wl): (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        let dev = gs.device();
        let dy = view::<T>(OP, gs, gl)?;
        let wt = view::<T>(OP, ws, wl)?;
        if cudnn_convolutions() {
            let shape = cudnn_shape(g, (b, c, h, w), co);
            let dx = cudnn_pass(
                dev,
                scfnet_kernels::cudnn::backward_data,
                shape,
                (&wt, &dy),
                b * c * h * w,
            )?;
            return Ok(wrap(gs, dx));
        }
        let (kk, p) = (c * g.kernel * g.kernel, g.output(h) * g.output(w));
        if one_product(b, BatchColumns::Every) {
            // (C·k·k, Co) · (Co, B·P) = the batch-wide columns' gradient, summed back.
            let dy_t = transposed(dev, &dy, (b, co, p))?;
            let mut dcols = output::<T>(dev, kk * b * p)?;
            gemm(
                dev,
                (1, kk, b * p, co),
                Operand::same(&wt, true),
                Operand::same(&dy_t.slice(..), false),
                &mut dcols,
                convolution_products(),
            )?;
            let dx = columns::image(dev, &dcols.slice(..), g, Columns::Batch, (b, c, h, w))?;
            return Ok(wrap(gs, dx));
        }
        let mut dcols = output::<T>(dev, b * kk * p)?;
        gemm(
            dev,
            (b, kk, p, co),
            Operand::same(&wt, true),
            Operand {
                data: &dy,
                transposed: false,
                stride: co * p,
            },
            &mut dcols,
            convolution_products(),
        )?;
        if is_pointwise(g) {
            return Ok(wrap(gs, dcols));
        }
        let dx = columns::image::<T>(dev, &dcols.slice(..), g, Columns::PerImage, (b, c, h, w))?;
        Ok(wrap(gs, dx))
    }

    /// `dW = Σ_i dy_i · cols(x_i)ᵀ`: the per-image products, then their sum in batch order.
    pub(super) fn grad_weight<T: GpuFloat>(
        g: ConvGeometry,
        (b, c, h, w): (usize, usize, usize, usize),
        co: usize,
        (xs, xl): (&CudaStorage, &Layout),
        (gs, gl): (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        let dev = xs.device();
        let x = view::<T>(OP, xs, xl)?;
        let dy = view::<T>(OP, gs, gl)?;
        if cudnn_convolutions() {
            let shape = cudnn_shape(g, (b, c, h, w), co);
            let k = g.kernel;
            let dw = cudnn_pass(
                dev,
                scfnet_kernels::cudnn::backward_filter,
                shape,
                (&x, &dy),
                co * c * k * k,
            )?;
            return Ok(wrap(xs, dw));
        }
        if one_product(b, BatchColumns::WeightGradient) {
            return Ok(wrap(xs, batch_product(dev, g, (b, c, h, w), co, &x, &dy)?));
        }
        let (kk, p) = (c * g.kernel * g.kernel, g.output(h) * g.output(w));
        let built = columns_of(dev, &x, g, (b, c, h, w))?;
        let built = built.as_ref().map(|cols| cols.slice(..));
        let cols = built.as_ref().unwrap_or(&x);
        let mut per_image = output::<T>(dev, b * co * kk)?;
        gemm(
            dev,
            (b, co, kk, p),
            Operand {
                data: &dy,
                transposed: false,
                stride: co * p,
            },
            Operand {
                data: cols,
                transposed: true,
                stride: kk * p,
            },
            &mut per_image,
            convolution_products(),
        )?;
        if b == 1 {
            return Ok(wrap(xs, per_image));
        }
        let n = co * kk;
        let mut dw = output::<T>(dev, n)?;
        scfnet_kernels::launch!(dev, REDUCE, kernel::<T>("sum_batch"), config: per_element(n),
            args: [&per_image, &mut dw, &b, &n]);
        Ok(wrap(xs, dw))
    }

    /// `dW = dY · colsᵀ` in one product over the batch: `dY` `(B, Co, P)` transposed to
    /// `(Co, B·P)` and the columns laid out `(C·k·k, B·P)` (both by the `im2col` kernel's batch
    /// layout, `dY` as a 1×1 window over `(B, Co, 1, P)`), inner dimension `B·P`. No per-image
    /// `(B, Co, C·k·k)` buffer and no batch sum.
    fn batch_product<T: GpuFloat>(
        dev: &CudaDevice,
        g: ConvGeometry,
        (b, c, h, w): (usize, usize, usize, usize),
        co: usize,
        x: &CudaView<'_, T>,
        dy: &CudaView<'_, T>,
    ) -> Result<CudaSlice<T>> {
        let (kk, p) = (c * g.kernel * g.kernel, g.output(h) * g.output(w));
        let cols = columns::columns(dev, x, g, Columns::Batch, (b, c, h, w))?;
        let dy_t = transposed(dev, dy, (b, co, p))?;
        let mut dw = output::<T>(dev, co * kk)?;
        gemm(
            dev,
            (1, co, kk, b * p),
            Operand::same(&dy_t.slice(..), false),
            Operand::same(&cols.slice(..), true),
            &mut dw,
            convolution_products(),
        )?;
        Ok(dw)
    }
}
