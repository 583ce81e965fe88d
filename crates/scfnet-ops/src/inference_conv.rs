//! The dense convolution of inference with its whole tail fused: `act(conv(x) + bias)`, then
//! optionally `then(· + residual)`, computed tile by tile.
//!
//! The output of each image is cut into column tiles (output pixels); a tile's explicit columns
//! are built in a per-thread scratch buffer that stays in cache (a 1×1 convolution reads the
//! input directly), one single-threaded matrix product writes the tile of every output channel,
//! and the bias, activation and residual are applied to it while it is still in cache. One
//! parallel loop over the tiles replaces the column op, the threaded product and the bias pass of
//! the training path, and nothing is zero-filled first. f32 on the CPU only; the weights are
//! packed once at load.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::activation::Activation;
use crate::bias_act::apply_plane;
use crate::elem::dims4;
use crate::im2col::ConvGeometry;
use crate::macs;
use crate::simd;

/// Target size, in values, of one tile's explicit columns (`C·k·k × tile`): well inside L2.
const COLUMN_VALUES: usize = 32_768;
/// Narrowest and widest tile, in output pixels.
const TILE_RANGE: (usize, usize) = (128, 2048);
/// Fewest output channels of one work item when the channels are split for parallelism.
const MIN_CHANNEL_BLOCK: usize = 32;

/// A residual added after the convolution's activation, followed by a second activation:
/// `then(act(conv(x) + bias) + residual)` (ResNet's `relu(bn3(conv3) + shortcut)`; MobileNetV3's
/// linear projection plus its input with `then` = [`Activation::None`]).
#[derive(Clone, Copy, Debug)]
pub struct Residual<'a> {
    /// The tensor added, shaped like the output `(B, C_out, H', W')`.
    pub tensor: &'a Tensor,
    /// The activation after the addition.
    pub then: Activation,
}

/// A dense (groups = 1) convolution with its bias and activation, weights packed for the CPU
/// kernel of this module: `(C_out, C_in·k·k)` row-major f32.
#[derive(Clone, Debug)]
pub struct InferenceConv {
    weight: Vec<f32>,
    bias: Vec<f32>,
    c_out: usize,
    c_in: usize,
    geometry: ConvGeometry,
    act: Activation,
    /// The weights for [`crate::direct_conv`], when the geometry allows it.
    direct: Option<Vec<f32>>,
    /// The weights for [`crate::pointwise_conv`], when the geometry allows it.
    pointwise: Option<Vec<f32>>,
    /// The transformed weights for [`crate::winograd`], when the geometry allows it.
    winograd: Option<Vec<f32>>,
}

impl InferenceConv {
    /// Packs `weight` `(C_out, C_in, k, k)` (any float dtype and device; read once) with the
    /// per-channel `bias` values (`C_out`) and the activation.
    pub fn new(
        weight: &Tensor,
        bias: &[f64],
        geometry: ConvGeometry,
        act: Activation,
    ) -> Result<Self> {
        let (c_out, c_in, kh, kw) = weight.dims4()?;
        if kh != geometry.kernel || kw != geometry.kernel {
            candle_core::bail!(
                "inference-conv: weight {:?} does not match kernel {}",
                weight.dims(),
                geometry.kernel
            );
        }
        if bias.len() != c_out {
            candle_core::bail!(
                "inference-conv: {} bias values for {c_out} output channels",
                bias.len()
            );
        }
        if geometry.stride == 0 || geometry.dilation == 0 {
            candle_core::bail!("inference-conv: stride and dilation must be positive");
        }
        let weight = weight
            .to_device(&candle_core::Device::Cpu)?
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let direct = crate::direct_conv::applies(&geometry, c_in, c_out)
            .then(|| crate::direct_conv::pack(&weight, c_out, c_in));
        let pointwise = crate::pointwise_conv::applies(&geometry, c_in)
            .then(|| crate::pointwise_conv::pack(&weight, c_out, c_in));
        let winograd = crate::winograd::applies(&geometry, c_in, c_out)
            .then(|| crate::winograd::pack(&weight, c_out, c_in));
        Ok(Self {
            direct,
            winograd,
            pointwise,
            weight,
            bias: bias.iter().map(|&b| b as f32).collect(),
            c_out,
            c_in,
            geometry,
            act,
        })
    }

    /// The same layer without the direct 3×3 and 1×1 kernels (tests compare the kernels).
    #[cfg(test)]
    fn tiled_only(&self) -> Self {
        Self {
            direct: None,
            pointwise: None,
            winograd: None,
            ..self.clone()
        }
    }

    /// Whether [`InferenceConv::forward`] runs on `x`: f32 on the CPU kernels' device.
    pub fn supports(x: &Tensor) -> bool {
        crate::dispatch::uses_cpu_kernels(x) && x.dtype() == candle_core::DType::F32
    }

    /// `(B, C_in, H, W)` → `(B, C_out, H', W')`: `act(conv(x) + bias)`, then the residual if
    /// given. `x` must satisfy [`InferenceConv::supports`]. Inference only (no backward).
    pub fn forward(&self, x: &Tensor, residual: Option<Residual>) -> Result<Tensor> {
        self.forward_scaled(x, None, residual)
    }

    /// [`InferenceConv::forward`] of `x · scale`, with `scale` one factor per image and input
    /// channel (`B·C_in` values, image-major: a squeeze-excite gate). The factors go into the
    /// image's copy of the weights, `W[o, c, ·] · scale[b, c]`, so `x` is never rescaled.
    pub fn forward_scaled(
        &self,
        x: &Tensor,
        scale: Option<&[f32]>,
        residual: Option<Residual>,
    ) -> Result<Tensor> {
        let x = x.contiguous()?;
        if let Some(s) = scale {
            let (b, c) = (x.dim(0)?, x.dim(1)?);
            if s.len() != b * c {
                candle_core::bail!(
                    "inference-conv: {} input scales for {b} images of {c} channels",
                    s.len()
                );
            }
        }
        let y = match residual {
            None => x.apply_op1_no_bwd(&Op {
                conv: self,
                scale,
                then: None,
            })?,
            Some(r) => x.apply_op2_no_bwd(
                &r.tensor.contiguous()?,
                &Op {
                    conv: self,
                    scale,
                    then: Some(r.then),
                },
            )?,
        };
        let k = self.geometry.kernel;
        macs::add_conv(y.elem_count(), self.c_in * k * k, true);
        Ok(y)
    }

    /// The weights of each image scaled by its input-channel factors, `(B, C_out, C_in·k·k)`.
    fn scaled_weights(&self, scale: &[f32]) -> Vec<f32> {
        let taps = self.geometry.kernel * self.geometry.kernel;
        let row_len = self.c_in * taps;
        let mut out = vec![0f32; scale.len() / self.c_in * self.weight.len()];
        let images = out.chunks_exact_mut(self.weight.len());
        for (factors, image) in scale.chunks_exact(self.c_in).zip(images) {
            let rows = image
                .chunks_exact_mut(row_len)
                .zip(self.weight.chunks_exact(row_len));
            for (dst, row) in rows {
                if taps == 1 {
                    // 1×1 (the squeeze-excite projections): one product per weight, vectorised.
                    for ((d, &w), &f) in dst.iter_mut().zip(row).zip(factors) {
                        *d = w * f;
                    }
                    continue;
                }
                let tap_rows = dst.chunks_exact_mut(taps).zip(row.chunks_exact(taps));
                for ((d, w), &f) in tap_rows.zip(factors) {
                    for (d, &w) in d.iter_mut().zip(w) {
                        *d = w * f;
                    }
                }
            }
        }
        out
    }

    /// Output shape for an input `(b, c, h, w)`, after checking the input.
    fn output_dims(&self, (b, c, h, w): (usize, usize, usize, usize)) -> Result<[usize; 4]> {
        let g = self.geometry;
        if c != self.c_in {
            candle_core::bail!(
                "inference-conv: the weights expect {} input channels, the input has {c}",
                self.c_in
            );
        }
        let span = g.dilation * (g.kernel - 1) + 1;
        if h + 2 * g.padding < span || w + 2 * g.padding < span {
            candle_core::bail!("inference-conv: input {h}x{w} is smaller than the window {g:?}");
        }
        Ok([b, self.c_out, g.output(h), g.output(w)])
    }
}

/// The custom op: the convolution, and `then` when a residual is the second input.
struct Op<'a> {
    conv: &'a InferenceConv,
    scale: Option<&'a [f32]>,
    then: Option<Activation>,
}

impl Op<'_> {
    fn input<'s>(&self, storage: &'s CpuStorage, layout: &Layout) -> Result<&'s [f32]> {
        let CpuStorage::F32(v) = storage else {
            candle_core::bail!("inference-conv: f32 only");
        };
        match layout.contiguous_offsets() {
            Some((a, b)) => Ok(&v[a..b]),
            None => candle_core::bail!("inference-conv: the input must be contiguous"),
        }
    }
}

impl CustomOp1 for Op<'_> {
    fn name(&self) -> &'static str {
        "inference-conv"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = dims4(CustomOp1::name(self), layout)?;
        let out = self.conv.output_dims(dims)?;
        let y = run(
            self.conv,
            self.scale,
            self.input(storage, layout)?,
            dims,
            None,
        );
        Ok((CpuStorage::F32(y), Shape::from(out.to_vec())))
    }
}

impl CustomOp2 for Op<'_> {
    fn name(&self) -> &'static str {
        "inference-conv-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = dims4(CustomOp2::name(self), l1)?;
        let out = self.conv.output_dims(dims)?;
        if l2.shape().dims() != out {
            candle_core::bail!(
                "inference-conv: residual {:?} does not match the output {out:?}",
                l2.shape().dims()
            );
        }
        let residual = self.input(s2, l2)?;
        let then = self.then.unwrap_or(Activation::None);
        let y = run(
            self.conv,
            self.scale,
            self.input(s1, l1)?,
            dims,
            Some((residual, then)),
        );
        Ok((CpuStorage::F32(y), Shape::from(out.to_vec())))
    }
}

/// A raw output pointer shared by the work items of a kernel, which write disjoint regions
/// (each user says which, where it writes).
pub(crate) struct OutPtr<T>(*mut T);
// SAFETY: the kernels' work items write disjoint regions of the output (`run`,
// `direct_conv::forward`, `depthwise_lanes::forward`).
unsafe impl<T> Send for OutPtr<T> {}
unsafe impl<T> Sync for OutPtr<T> {}

impl<T> Clone for OutPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for OutPtr<T> {}

impl<T> OutPtr<T> {
    /// The start of `out`'s spare capacity (values written through it become `out`'s with
    /// `set_len`).
    pub(crate) fn new(out: &mut Vec<T>) -> Self {
        Self(out.spare_capacity_mut().as_mut_ptr().cast::<T>())
    }

    /// The pointer (a method, so that closures capture the `Sync` wrapper, not the field).
    pub(crate) fn at(self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

/// The kernel: `x` `(B, C, H, W)` → `(B, C_out, H', W')`, tiled over images, output pixels and
/// (when there are too few tiles for the threads) output channels; with `scale`, each image's
/// weights are scaled by its input-channel factors first.
fn run(
    conv: &InferenceConv,
    scale: Option<&[f32]>,
    x: &[f32],
    (b, c, h, w): (usize, usize, usize, usize),
    residual: Option<(&[f32], Activation)>,
) -> Vec<f32> {
    let g = conv.geometry;
    let winograd = conv.winograd.as_ref().filter(|_| {
        scale.is_none() && crate::winograd::suits(h * w, conv.c_out, conv.direct.is_some())
    });
    if let Some(packed) = winograd {
        let layer = crate::winograd::Layer {
            packed,
            bias: &conv.bias,
            act: conv.act,
            c_out: conv.c_out,
        };
        return crate::winograd::forward(&layer, x, (b, c, h, w), residual);
    }
    if let (Some(packed), None) = (&conv.direct, scale) {
        let layer = crate::direct_conv::Layer {
            packed,
            bias: &conv.bias,
            act: conv.act,
            c_out: conv.c_out,
            geometry: g,
        };
        return crate::direct_conv::forward(&layer, x, (b, c, h, w), residual);
    }
    if let Some(packed) = conv
        .pointwise
        .as_ref()
        .filter(|_| crate::pointwise_conv::suits(c, h * w))
    {
        // Each image's scaled weights, packed.
        let scaled: Option<Vec<f32>> = scale.map(|s| {
            let image_weights = conv.c_out * c;
            conv.scaled_weights(s)
                .chunks_exact(image_weights)
                .flat_map(|w| crate::pointwise_conv::pack(w, conv.c_out, c))
                .collect()
        });
        let layer = crate::pointwise_conv::Layer {
            packed: scaled.as_deref().unwrap_or(packed),
            per_image: scaled.is_some(),
            bias: &conv.bias,
            act: conv.act,
            c_out: conv.c_out,
        };
        return crate::pointwise_conv::forward(&layer, x, (b, c, h, w), residual);
    }
    let (oh, ow) = (g.output(h), g.output(w));
    let (hwo, co, k) = (oh * ow, conv.c_out, g.kernel);
    let kdim = c * k * k;
    if b * hwo * co == 0 {
        return Vec::new(); // an empty batch
    }
    let direct = k == 1 && g.stride == 1 && g.padding == 0;
    let tile = (COLUMN_VALUES / kdim.max(1)).clamp(TILE_RANGE.0, TILE_RANGE.1);
    let tiles = hwo.div_ceil(tile);
    let wanted = 4 * rayon::current_num_threads();
    let blocks = wanted
        .div_ceil(b * tiles)
        .min(co.div_ceil(MIN_CHANNEL_BLOCK))
        .max(1);
    let block = co.div_ceil(blocks);
    let len = b * co * hwo;
    let scaled = scale.map(|s| conv.scaled_weights(s));
    let weights = |img: usize| match &scaled {
        Some(w) => &w[img * co * kdim..(img + 1) * co * kdim],
        None => &conv.weight[..],
    };
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let dst = OutPtr::new(&mut out);
    let wide = simd::wide();
    // With the channels split, the blocks of one tile share its columns: built once, up front.
    let per_tile = kdim * tile;
    let shared: Option<Vec<f32>> = (!direct && blocks > 1).then(|| {
        let mut cols = vec![0f32; b * tiles * per_tile];
        cols.par_chunks_mut(per_tile)
            .enumerate()
            .for_each(|(it, dst)| {
                let (img, t0) = (it / tiles, (it % tiles) * tile);
                let n = tile.min(hwo - t0);
                let image = &x[img * c * h * w..(img + 1) * c * h * w];
                fill_columns(&mut dst[..kdim * n], image, (c, h, w), g, ow, t0, n);
            });
        cols
    });
    (0..b * tiles * blocks)
        .into_par_iter()
        .for_each_init(Vec::<f32>::new, |columns, item| {
            let (img, rest) = (item / (tiles * blocks), item % (tiles * blocks));
            let (t, blk) = (rest / blocks, rest % blocks);
            let (t0, c0) = (t * tile, blk * block);
            let (n, m) = (tile.min(hwo - t0), block.min(co - c0.min(co)));
            if m == 0 {
                return;
            }
            let image = &x[img * c * h * w..(img + 1) * c * h * w];
            let (rhs, rhs_rs) = if direct {
                (image[t0..].as_ptr(), hwo)
            } else if let Some(cols) = &shared {
                (cols[(img * tiles + t) * per_tile..].as_ptr(), n)
            } else {
                columns.resize(kdim * n, 0.0);
                fill_columns(columns, image, (c, h, w), g, ow, t0, n);
                (columns.as_ptr(), n)
            };
            let first = img * co * hwo + c0 * hwo + t0;
            // SAFETY: `dst` has room for `len` values; this item writes rows c0..c0+m, columns
            // t0..t0+n of image `img`, which no other item touches. The product reads
            // `m × kdim` weights from row c0 and `kdim × n` values of `rhs` at row stride
            // `rhs_rs`, all in bounds; `read_dst = false` never reads the uninitialised output.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    kdim,
                    dst.at(first),
                    1,
                    hwo as isize,
                    false,
                    weights(img).as_ptr().add(c0 * kdim),
                    1,
                    kdim as isize,
                    rhs,
                    1,
                    rhs_rs as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            for r in 0..m {
                let at = first + r * hwo;
                // SAFETY: the row segment just written by the product (see above).
                let row = unsafe { std::slice::from_raw_parts_mut(dst.at(at), n) };
                let res = residual.map(|(v, then)| (&v[at..at + n], then));
                tail(row, conv.bias[c0 + r], conv.act, res, wide);
            }
        });
    // SAFETY: the items cover every (image, channel, column) of the output once, and each
    // wrote its region above.
    unsafe { out.set_len(len) };
    out
}

/// The epilogue of one row segment: `act(v + bias)`, then `then(v + residual)`.
fn tail(
    row: &mut [f32],
    bias: f32,
    act: Activation,
    residual: Option<(&[f32], Activation)>,
    wide: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `simd::wide` checked that the CPU has AVX2 and FMA.
        return unsafe { tail_wide(row, bias, act, residual) };
    }
    let _ = wide;
    tail_plain(row, bias, act, residual)
}

/// [`tail_plain`] compiled for AVX2 and FMA (same operations in the same order).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tail_wide(
    row: &mut [f32],
    bias: f32,
    act: Activation,
    residual: Option<(&[f32], Activation)>,
) {
    tail_plain(row, bias, act, residual)
}

#[inline(always)]
fn tail_plain(row: &mut [f32], bias: f32, act: Activation, residual: Option<(&[f32], Activation)>) {
    apply_plane(row, bias, act);
    if let Some((r, then)) = residual {
        row.iter_mut().zip(r).for_each(|(v, &r)| *v += r);
        apply_plane(row, 0.0, then);
    }
}

/// The explicit columns of output pixels `t0..t0 + n` of one image: row `(c, ky, kx)` holds
/// what that tap sees at each pixel (zero in the padding), `(C·k·k, n)` row-major.
fn fill_columns(
    dst: &mut [f32],
    image: &[f32],
    (c, h, w): (usize, usize, usize),
    g: ConvGeometry,
    ow: usize,
    t0: usize,
    n: usize,
) {
    let k = g.kernel;
    for (r, drow) in dst.chunks_exact_mut(n).enumerate().take(c * k * k) {
        let (ci, tap) = (r / (k * k), r % (k * k));
        let (ky, kx) = (tap / k, tap % k);
        let plane = &image[ci * h * w..(ci + 1) * h * w];
        // One segment per output row the tile crosses.
        let (mut j, mut p) = (0, t0);
        while j < n {
            let (oy, ox0) = (p / ow, p % ow);
            let len = (ow - ox0).min(n - j);
            let seg = &mut drow[j..j + len];
            match g.input(oy, ky, h) {
                None => seg.fill(0.0),
                Some(iy) => fill_segment(seg, &plane[iy * w..(iy + 1) * w], ox0, kx, g),
            }
            j += len;
            p += len;
        }
    }
}

/// Outputs `ox0..ox0 + seg.len()` of one output row for tap column `kx`, reading input `row`.
fn fill_segment(seg: &mut [f32], row: &[f32], ox0: usize, kx: usize, g: ConvGeometry) {
    let (w, s) = (row.len(), g.stride);
    // The outputs that see the row, `0 ≤ ox·s + kx·d − pad < w`, are one run.
    let end = ox0 + seg.len();
    let shift = kx * g.dilation;
    let lo = g.padding.saturating_sub(shift).div_ceil(s).clamp(ox0, end);
    let hi = (w + g.padding)
        .saturating_sub(shift)
        .div_ceil(s)
        .clamp(lo, end);
    if lo == hi {
        seg.fill(0.0); // only padding
        return;
    }
    let src = lo * s + shift - g.padding;
    seg[..lo - ox0].fill(0.0);
    let run = &mut seg[lo - ox0..hi - ox0];
    if s == 1 {
        run.copy_from_slice(&row[src..src + run.len()]);
    } else {
        let row = &row[src..src + (run.len() - 1) * s + 1];
        for (q, d) in run.iter_mut().enumerate() {
            *d = row[q * s];
        }
    }
    seg[hi - ox0..].fill(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn values(shape: &[usize], seed: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i as f32 * 0.618 + seed) * 1.7).sin())
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The largest absolute value of a tensor, in f64.
    fn max_abs(t: &Tensor) -> f64 {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// The largest absolute difference of two tensors of the same shape, in f64.
    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        let (a, b) = (
            a.to_dtype(DType::F64).unwrap(),
            b.to_dtype(DType::F64).unwrap(),
        );
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// The training path's arithmetic in f64: candle's convolution, bias, activation, residual.
    fn reference(
        x: &Tensor,
        w: &Tensor,
        bias: &[f64],
        g: ConvGeometry,
        act: Activation,
        residual: Option<(&Tensor, Activation)>,
    ) -> Tensor {
        let (x64, w64) = (
            x.to_dtype(DType::F64).unwrap(),
            w.to_dtype(DType::F64).unwrap(),
        );
        let y = x64
            .conv2d(&w64, g.padding, g.stride, g.dilation, 1)
            .unwrap();
        let b = Tensor::from_slice(bias, (1, bias.len(), 1, 1), &Device::Cpu).unwrap();
        let y = act.apply(&y.broadcast_add(&b).unwrap()).unwrap();
        match residual {
            None => y,
            Some((r, then)) => then
                .apply(&(y + r.to_dtype(DType::F64).unwrap()).unwrap())
                .unwrap(),
        }
    }

    #[test]
    fn matches_the_convolution_for_every_geometry() {
        let cases = [
            // (batch, c_in, c_out, h, w, kernel, stride, padding, dilation)
            (2, 8, 24, 9, 13, 1, 1, 0, 1),
            (1, 3, 8, 17, 15, 3, 2, 1, 1),
            (2, 16, 16, 11, 12, 3, 1, 1, 1),
            (1, 16, 16, 12, 10, 3, 1, 5, 5),
            (2, 16, 16, 2, 3, 3, 1, 5, 5),
            (1, 6, 8, 1, 1, 3, 1, 1, 1),
            (1, 16, 1, 8, 8, 3, 1, 1, 1),
            (3, 5, 70, 7, 6, 1, 2, 0, 1),
            (2, 3, 8, 16, 17, 3, 2, 1, 1),
            (1, 4, 8, 9, 10, 5, 3, 2, 2),
            (1, 4, 40, 60, 50, 3, 1, 1, 1),
            (2, 7, 6, 5, 20, 3, 1, 2, 2),
            (1, 5, 9, 10, 37, 3, 2, 2, 2),
            (1, 5, 10, 30, 31, 1, 1, 0, 1),
            (3, 40, 16, 3, 3, 1, 1, 0, 1),
            (1, 3, 6, 64, 64, 1, 1, 0, 1),
            (2, 130, 8, 4, 5, 1, 1, 0, 1),
            (1, 64, 8, 40, 40, 1, 1, 0, 1),
            // Wide input, narrow output: direct up to 512 inputs; 40 outputs, or more than 512
            // inputs: Winograd (a small input the direct kernel does not take).
            (1, 80, 16, 5, 6, 3, 1, 1, 1),
            (1, 96, 40, 4, 5, 3, 1, 1, 1),
            (1, 520, 8, 3, 4, 3, 1, 1, 1),
            // Winograd: at least 400 pixels; odd sides, partial groups, 8 and 16-tile blocks.
            (1, 16, 16, 23, 19, 3, 1, 1, 1),
            (2, 5, 10, 20, 20, 3, 1, 1, 1),
            (1, 9, 30, 21, 40, 3, 1, 1, 1),
            (1, 64, 64, 20, 21, 3, 1, 1, 1),
            (1, 130, 70, 20, 24, 3, 1, 1, 1),
            // A small input: Winograd only for what the direct kernel does not take.
            (1, 100, 40, 7, 9, 3, 1, 1, 1),
        ];
        let (mut direct_cases, mut pointwise_cases, mut winograd_cases) = (0, 0, 0);
        for (i, &(b, ci, co, h, w, k, s, p, d)) in cases.iter().enumerate() {
            let g = ConvGeometry {
                kernel: k,
                stride: s,
                padding: p,
                dilation: d,
            };
            let x = values(&[b, ci, h, w], i as f32);
            let wt = (values(&[co, ci, k, k], 0.5 + i as f32) * 0.3).unwrap();
            let bias: Vec<f64> = (0..co).map(|j| (j as f64 * 0.37).cos() * 0.2).collect();
            for act in [Activation::None, Activation::Relu, Activation::HardSwish] {
                let conv = InferenceConv::new(&wt, &bias, g, act).unwrap();
                direct_cases += usize::from(conv.direct.is_some());
                pointwise_cases += usize::from(conv.pointwise.is_some());
                winograd_cases += usize::from(
                    conv.winograd.is_some()
                        && crate::winograd::suits(h * w, co, conv.direct.is_some()),
                );
                // The direct 3×3 or 1×1 kernel where it applies, and the tiled one always.
                for conv in [conv.clone(), conv.tiled_only()] {
                    let got = conv.forward(&x, None).unwrap();
                    let want = reference(&x, &wt, &bias, g, act, None);
                    assert_eq!(got.dims(), want.dims(), "case {i}");
                    let diff = max_abs_diff(&got, &want);
                    // 2e-5, relative to outputs above 1 (sums of up to 900 f32 products).
                    let tol = 2e-5 * max_abs(&want).max(1.0);
                    assert!(diff < tol, "case {i} {act:?}: max diff {diff}");
                    let r = values(want.dims(), 9.0 + i as f32);
                    for then in [Activation::None, Activation::Relu] {
                        let got = conv
                            .forward(&x, Some(Residual { tensor: &r, then }))
                            .unwrap();
                        let want = reference(&x, &wt, &bias, g, act, Some((&r, then)));
                        let diff = max_abs_diff(&got, &want);
                        let tol = 2e-5 * max_abs(&want).max(1.0);
                        assert!(diff < tol, "case {i} {act:?} + residual {then:?}: {diff}");
                    }
                }
            }
        }
        if crate::simd::wide() {
            assert_eq!(
                direct_cases,
                3 * 15,
                "3×3 cases of stride 1 or 2 with padding = dilation, up to 64 inputs or \
                 up to 512 inputs and 32 outputs"
            );
            assert_eq!(
                winograd_cases,
                3 * 9,
                "3×3 cases of stride 1, padding 1, 8 to 512 outputs, at least 400 pixels or not direct"
            );
            assert_eq!(
                pointwise_cases,
                3 * 5,
                "1×1 cases of stride 1 with at most 128 input channels"
            );
        }
    }

    #[test]
    fn a_layer_after_a_wider_one_sees_zero_padding() {
        // Two 3×3 layers whose direct-kernel windows have the same layout except the input
        // width, on one thread: the narrower one's right padding is where the wider one wrote
        // input values into the thread's window (`crate::scratch`).
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let g = ConvGeometry {
            kernel: 3,
            stride: 1,
            padding: 1,
            dilation: 1,
        };
        let wt = (values(&[4, 4, 3, 3], 0.5) * 0.3).unwrap();
        let bias = [0.1, -0.2, 0.0, 0.3];
        let conv = InferenceConv::new(&wt, &bias, g, Activation::None).unwrap();
        assert!(conv.direct.is_some() || !crate::simd::wide());
        for w in [16, 14] {
            let x = (values(&[1, 4, 8, w], w as f32) + 3.0).unwrap();
            let got = pool.install(|| conv.forward(&x, None)).unwrap();
            let want = reference(&x, &wt, &bias, g, Activation::None, None);
            let diff = max_abs_diff(&got, &want);
            assert!(diff < 2e-5, "width {w}: max diff {diff}");
        }
    }

    #[test]
    fn an_input_scale_is_the_convolution_of_the_scaled_input() {
        let g = ConvGeometry {
            kernel: 1,
            stride: 1,
            padding: 0,
            dilation: 1,
        };
        let (b, ci, co) = (3, 12, 20);
        let x = values(&[b, ci, 9, 7], 1.0);
        let wt = (values(&[co, ci, 1, 1], 2.0) * 0.3).unwrap();
        let bias: Vec<f64> = (0..co).map(|j| j as f64 * 0.01).collect();
        let scale: Vec<f32> = (0..b * ci)
            .map(|i| 0.5 + (i as f32 * 0.37).sin() * 0.5)
            .collect();
        let s = Tensor::from_slice(&scale, (b, ci, 1, 1), &Device::Cpu).unwrap();
        let conv = InferenceConv::new(&wt, &bias, g, Activation::HardSwish).unwrap();
        let r = values(&[b, co, 9, 7], 3.0);
        let res = Residual {
            tensor: &r,
            then: Activation::None,
        };
        let got = conv.forward_scaled(&x, Some(&scale), Some(res)).unwrap();
        let want = conv
            .forward(&x.broadcast_mul(&s).unwrap(), Some(res))
            .unwrap();
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 1e-5, "max diff {diff}");
        // The 1×1 kernel (scaled packed weights) and the tiled one (scaled weights).
        assert!(conv.pointwise.is_some() || !crate::simd::wide());
        let tiled = conv
            .tiled_only()
            .forward_scaled(&x, Some(&scale), Some(res))
            .unwrap();
        let diff = max_abs_diff(&got, &tiled);
        assert!(diff < 1e-5, "1×1 vs tiled: max diff {diff}");
        let err = conv
            .forward_scaled(&x, Some(&scale[1..]), None)
            .unwrap_err();
        assert!(err.to_string().contains("input scales"), "{err}");
        // A 3×3 layer scales each tap of a channel by the channel's factor.
        let g3 = ConvGeometry {
            kernel: 3,
            padding: 1,
            ..g
        };
        let wt3 = (values(&[co, ci, 3, 3], 4.0) * 0.3).unwrap();
        let conv3 = InferenceConv::new(&wt3, &bias, g3, Activation::Relu).unwrap();
        let got = conv3.forward_scaled(&x, Some(&scale), None).unwrap();
        let want = conv3.forward(&x.broadcast_mul(&s).unwrap(), None).unwrap();
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 1e-5, "3×3: max diff {diff}");
    }

    #[test]
    fn refuses_what_it_cannot_compute() {
        let g = ConvGeometry {
            kernel: 3,
            stride: 1,
            padding: 0,
            dilation: 1,
        };
        let wt = values(&[4, 2, 3, 3], 0.0);
        let conv = InferenceConv::new(&wt, &[0.0; 4], g, Activation::None).unwrap();
        let err = conv.forward(&values(&[1, 3, 8, 8], 0.0), None).unwrap_err();
        assert!(err.to_string().contains("expect 2 input channels"), "{err}");
        let err = conv.forward(&values(&[1, 2, 2, 8], 0.0), None).unwrap_err();
        assert!(err.to_string().contains("smaller than the window"), "{err}");
        let r = values(&[1, 4, 5, 5], 0.0);
        let res = Residual {
            tensor: &r,
            then: Activation::None,
        };
        let err = conv
            .forward(&values(&[1, 2, 8, 8], 0.0), Some(res))
            .unwrap_err();
        assert!(
            err.to_string().contains("does not match the output"),
            "{err}"
        );
        let empty = conv.forward(&values(&[0, 2, 8, 8], 0.0), None).unwrap();
        assert_eq!(empty.dims(), &[0, 4, 6, 6]);
        let err = InferenceConv::new(&wt, &[0.0; 3], g, Activation::None).unwrap_err();
        assert!(err.to_string().contains("3 bias values"), "{err}");
    }
}
