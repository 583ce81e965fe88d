//! Depthwise 2-D convolution (one filter per channel), forward and backward.
//!
//! candle 0.11 runs a grouped convolution as one convolution per group plus a concatenation,
//! which for MobileNet's depthwise layers is 20× slower than PyTorch. This op loops over the
//! channel planes in parallel and over the kernel taps with contiguous inner rows instead.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::activation::Activation;
use crate::dispatch::{uses_cpu_kernels_of, uses_own_kernels};
use crate::elem::{dims4, map_float2, Real};
use crate::generic_ops::OpFamily;
use crate::par_vec::par_filled;
use crate::simd;
use crate::views::{pad2d, tap};

/// Stride and zero padding of a depthwise convolution (square kernel taken from the weight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwiseConfig {
    /// Step in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

/// Geometry of one call: plane sizes and kernel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) k: usize,
    pub(crate) oh: usize,
    pub(crate) ow: usize,
    pub(crate) stride: usize,
    pub(crate) pad: usize,
}

impl Geometry {
    pub(crate) fn new(h: usize, w: usize, k: usize, cfg: DepthwiseConfig) -> Result<Self> {
        let (s, p) = (cfg.stride, cfg.padding);
        if s == 0 || k == 0 || h + 2 * p < k || w + 2 * p < k {
            candle_core::bail!(
                "depthwise-conv2d: input {h}x{w}, kernel {k}, {cfg:?} gives no output"
            );
        }
        Ok(Self {
            h,
            w,
            k,
            oh: (h + 2 * p - k) / s + 1,
            ow: (w + 2 * p - k) / s + 1,
            stride: s,
            pad: p,
        })
    }

    /// Output columns `x` whose input column `x·s + kx − p` lies inside the row.
    fn valid_x(&self, kx: usize) -> std::ops::Range<usize> {
        // x·s + kx ≥ p  and  x·s + kx − p ≤ w − 1
        let lo = self.pad.saturating_sub(kx).div_ceil(self.stride);
        let hi = if self.w + self.pad > kx {
            ((self.w + self.pad - kx - 1) / self.stride + 1).min(self.ow)
        } else {
            0
        };
        lo..hi.max(lo)
    }

    /// The input row of output row `y` and kernel row `ky`, if inside.
    fn input_row(&self, y: usize, ky: usize) -> Option<usize> {
        (y * self.stride + ky)
            .checked_sub(self.pad)
            .filter(|&r| r < self.h)
    }
}

/// Bias and activation applied to each output plane as soon as it is computed (inference, with
/// the BatchNorm folded into the weights): no second pass over the output.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tail<'a> {
    pub(crate) bias: &'a [f64],
    pub(crate) act: Activation,
}

/// `out[y][x] = Σ w[ky][kx] · in[y·s + ky − p][x·s + kx − p]` for every plane, summed over `ky`
/// then `kx` (padding taps add zero), then `tail` if any.
///
/// Small planes go to the kernel with eight channels side by side
/// ([`crate::depthwise_lanes`]), which gives the same values.
fn forward<T: Real>(x: &[T], wt: &[T], g: Geometry, channels: usize, tail: Option<Tail>) -> Vec<T> {
    if crate::depthwise_lanes::prefers_lanes::<T>(&g, channels) {
        crate::depthwise_lanes::forward(x, wt, g, channels, tail)
    } else {
        forward_planes(x, wt, g, channels, tail)
    }
}

/// [`forward`] plane by plane, with vector loops along the rows.
pub(crate) fn forward_planes<T: Real>(
    x: &[T],
    wt: &[T],
    g: Geometry,
    channels: usize,
    tail: Option<Tail>,
) -> Vec<T> {
    let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    let mut out = vec![T::ZERO; x.len() / plane_in * plane_out];
    let wide = simd::wide();
    out.par_chunks_mut(plane_out)
        .enumerate()
        .for_each_init(Vec::new, |buf, (i, dst)| {
            let src = &x[i * plane_in..(i + 1) * plane_in];
            let filt = &wt[(i % channels) * kk..(i % channels + 1) * kk];
            let bias = tail.map(|t| (T::from_f64(t.bias[i % channels]), t.act));
            #[cfg(target_arch = "x86_64")]
            if wide {
                // SAFETY: `simd::wide` checked that the CPU has AVX2 and FMA.
                unsafe { plane_wide(src, filt, dst, g, buf, bias) };
                return;
            }
            let _ = wide;
            plane(src, filt, dst, g, buf, bias);
        });
    out
}

/// [`plane`] compiled for AVX2 and FMA (the same arithmetic, eight lanes at a time).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn plane_wide<T: Real>(
    src: &[T],
    filt: &[T],
    dst: &mut [T],
    g: Geometry,
    buf: &mut Vec<T>,
    bias: Option<(T, Activation)>,
) {
    plane(src, filt, dst, g, buf, bias)
}

/// One output plane. The input plane is first copied, zero-padded, into `buf` with its columns
/// split by phase (`s` rows of every `s`-th column), so that every tap of every stride reads a
/// contiguous run and the inner loops vectorise.
#[inline(always)]
fn plane<T: Real>(
    src: &[T],
    filt: &[T],
    dst: &mut [T],
    g: Geometry,
    buf: &mut Vec<T>,
    bias: Option<(T, Activation)>,
) {
    let s = g.stride;
    let plen = (g.w + 2 * g.pad).div_ceil(s);
    let row_len = s * plen;
    buf.clear();
    buf.resize(g.h * row_len, T::ZERO);
    for (r, row) in src.chunks_exact(g.w).enumerate() {
        let prow = &mut buf[r * row_len..(r + 1) * row_len];
        if s == 1 {
            prow[g.pad..g.pad + g.w].copy_from_slice(row);
        } else if s == 2 {
            // Padded column q = c + p goes to phase q % 2 at q / 2, without a division.
            let (even, odd) = prow.split_at_mut(plen);
            let half = g.pad / 2;
            let (first, first_at, second, second_at) = if g.pad % 2 == 0 {
                (even, half, odd, half)
            } else {
                (odd, half, even, half + 1)
            };
            for (j, pair) in row.chunks(2).enumerate() {
                first[first_at + j] = pair[0];
                if let Some(&v) = pair.get(1) {
                    second[second_at + j] = v;
                }
            }
        } else {
            for (c, &v) in row.iter().enumerate() {
                let q = c + g.pad;
                prow[(q % s) * plen + q / s] = v;
            }
        }
    }
    for (y, drow) in dst.chunks_exact_mut(g.ow).enumerate() {
        for ky in 0..g.k {
            let Some(r) = g.input_row(y, ky) else {
                continue;
            };
            let prow = &buf[r * row_len..(r + 1) * row_len];
            for kx in 0..g.k {
                let wv = filt[ky * g.k + kx];
                let start = (kx % s) * plen + kx / s;
                for (d, &v) in drow.iter_mut().zip(&prow[start..start + g.ow]) {
                    *d += wv * v;
                }
            }
        }
    }
    if let Some((b, act)) = bias {
        crate::bias_act::apply_plane(dst, b, act);
    }
}

/// Gradient of the input: scatter of the output gradient through the taps.
fn grad_input<T: Real>(gout: &[T], wt: &[T], g: Geometry, channels: usize) -> Vec<T> {
    let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    let wide = simd::wide();
    par_filled(gout.len() / plane_out * plane_in, plane_in, |i, dst| {
        let go = &gout[i * plane_out..(i + 1) * plane_out];
        let filt = &wt[(i % channels) * kk..(i % channels + 1) * kk];
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: `simd::wide` checked that the CPU has AVX2 and FMA.
            unsafe { grad_input_plane_wide(go, filt, dst, g) };
            return;
        }
        let _ = wide;
        grad_input_plane(go, filt, dst, g);
    })
}

/// One plane of [`grad_input`]: `dst[r][x·s + kx − p] += w[ky][kx] · gout[y][x]`, by kernel
/// row, output row, kernel column, then output column (each input value receives its terms in
/// that order; `dst` starts at zero).
#[inline(always)]
fn grad_input_plane<T: Real>(go: &[T], filt: &[T], dst: &mut [T], g: Geometry) {
    for ky in 0..g.k {
        for y in 0..g.oh {
            let Some(r) = g.input_row(y, ky) else {
                continue;
            };
            let (grow, drow) = (
                &go[y * g.ow..(y + 1) * g.ow],
                &mut dst[r * g.w..(r + 1) * g.w],
            );
            for kx in 0..g.k {
                let wv = filt[ky * g.k + kx];
                let xs = g.valid_x(kx);
                if xs.is_empty() {
                    continue;
                }
                if g.stride == 1 {
                    // Contiguous on both sides: one vectorised pass.
                    let d = &mut drow[xs.start + kx - g.pad..xs.end + kx - g.pad];
                    for (d, &gv) in d.iter_mut().zip(&grow[xs]) {
                        *d += wv * gv;
                    }
                } else {
                    for xo in xs {
                        drow[xo * g.stride + kx - g.pad] += wv * grow[xo];
                    }
                }
            }
        }
    }
}

/// [`grad_input_plane`] compiled for AVX2 and FMA (the same arithmetic, eight lanes at a time).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn grad_input_plane_wide<T: Real>(go: &[T], filt: &[T], dst: &mut [T], g: Geometry) {
    grad_input_plane(go, filt, dst, g)
}

/// Gradient of the weights: per channel, the correlation of input and output gradient summed
/// over the batch (in batch order, so the result is deterministic). Each tap's sum runs over the
/// output rows, then columns, in order, as one chain of additions; the `k` taps of a kernel row
/// are carried side by side ([`tap_row_sums`]) so that their chains overlap in the CPU instead
/// of waiting on each other, each still in its own order (the same sums to the last bit).
fn grad_weight<T: Real>(x: &[T], gout: &[T], g: Geometry, channels: usize) -> Vec<T> {
    let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    let batch = x.len() / plane_in / channels;
    let mut out = vec![T::ZERO; channels * kk];
    out.par_chunks_mut(kk).enumerate().for_each(|(c, gw)| {
        let mut acc = vec![T::ZERO; g.k];
        for b in 0..batch {
            let i = b * channels + c;
            let (src, go) = (
                &x[i * plane_in..(i + 1) * plane_in],
                &gout[i * plane_out..(i + 1) * plane_out],
            );
            for ky in 0..g.k {
                acc.fill(T::ZERO);
                match g.k {
                    3 => tap_row_sums::<T, 3>(src, go, g, ky, (&mut acc[..]).try_into().unwrap()),
                    5 => tap_row_sums::<T, 5>(src, go, g, ky, (&mut acc[..]).try_into().unwrap()),
                    7 => tap_row_sums::<T, 7>(src, go, g, ky, (&mut acc[..]).try_into().unwrap()),
                    _ => {
                        for (kx, a) in acc.iter_mut().enumerate() {
                            tap_sum(src, go, g, ky, kx, a);
                        }
                    }
                }
                for (kx, a) in acc.iter().enumerate() {
                    gw[ky * g.k + kx] += *a;
                }
            }
        }
    });
    out
}

/// One tap's chain: `acc += gout[y][x] · in[y·s + ky − p][x·s + kx − p]` over the output rows,
/// then columns, in order (taps outside the input add nothing).
fn tap_sum<T: Real>(src: &[T], go: &[T], g: Geometry, ky: usize, kx: usize, acc: &mut T) {
    for y in 0..g.oh {
        let Some(r) = g.input_row(y, ky) else {
            continue;
        };
        let (row, grow) = (&src[r * g.w..(r + 1) * g.w], &go[y * g.ow..(y + 1) * g.ow]);
        for xo in g.valid_x(kx) {
            *acc += grow[xo] * row[xo * g.stride + kx - g.pad];
        }
    }
}

/// The `K` chains of kernel row `ky` ([`tap_sum`] for `kx = 0..K`) at once. Per output row,
/// each tap first takes its columns left of those every tap reaches, then all taps advance
/// together over the shared columns, then each takes its columns on the right: every chain
/// still adds its terms in the order of [`tap_sum`].
fn tap_row_sums<T: Real, const K: usize>(
    src: &[T],
    go: &[T],
    g: Geometry,
    ky: usize,
    acc: &mut [T; K],
) {
    // The shared columns: from the first one tap 0 reaches to the last one tap K − 1 reaches.
    let shared_lo = g.valid_x(0).start;
    let shared_hi = g.valid_x(K - 1).end.max(shared_lo);
    let ranges: [std::ops::Range<usize>; K] = std::array::from_fn(|kx| g.valid_x(kx));
    for y in 0..g.oh {
        let Some(r) = g.input_row(y, ky) else {
            continue;
        };
        let (row, grow) = (&src[r * g.w..(r + 1) * g.w], &go[y * g.ow..(y + 1) * g.ow]);
        for (kx, a) in acc.iter_mut().enumerate() {
            for xo in ranges[kx].start..ranges[kx].end.min(shared_lo) {
                *a += grow[xo] * row[xo * g.stride + kx - g.pad];
            }
        }
        for xo in shared_lo..shared_hi {
            let gv = grow[xo];
            // Tap 0 reaches column `xo`, so `xo·s ≥ p`.
            let taps = &row[xo * g.stride - g.pad..][..K];
            for (a, &v) in acc.iter_mut().zip(taps) {
                *a += gv * v;
            }
        }
        for (kx, a) in acc.iter_mut().enumerate() {
            for xo in ranges[kx].start.max(shared_hi)..ranges[kx].end {
                *a += grow[xo] * row[xo * g.stride + kx - g.pad];
            }
        }
    }
}

/// Checks shapes and returns the geometry and channel count.
fn geometry(
    op: &str,
    input: &Layout,
    weight: &Layout,
    cfg: DepthwiseConfig,
) -> Result<(Geometry, usize)> {
    let (_, c, h, w) = dims4(op, input)?;
    let (wc, one, kh, kw) = dims4(op, weight)?;
    if wc != c || one != 1 || kh != kw {
        candle_core::bail!(
            "{op}: weight must be (C, 1, k, k) with C = {c}, got {:?}",
            weight.shape().dims()
        );
    }
    Ok((Geometry::new(h, w, kh, cfg)?, c))
}

/// The forward op; with a [`Tail`] (inference) the bias and activation are applied per plane and
/// it is run without a backward.
struct DepthwiseConv<'a>(DepthwiseConfig, Option<Tail<'a>>);
/// Input gradient for an `h × w` input.
struct DepthwiseGradInput(DepthwiseConfig, usize, usize);
/// Weight gradient for a `k × k` kernel.
struct DepthwiseGradWeight(DepthwiseConfig, usize);

impl CustomOp2 for DepthwiseConv<'_> {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, c) = geometry(self.name(), l1, l2, self.0)?;
        if let Some(t) = self.1.filter(|t| t.bias.len() != c) {
            candle_core::bail!(
                "{}: {} bias values for {c} channels",
                self.name(),
                t.bias.len()
            );
        }
        let b = l1.shape().dims()[0];
        let out = map_float2!(self.name(), s1, l1, s2, l2, |x, w| forward(
            x, w, g, c, self.1
        ));
        Ok((out, Shape::from((b, c, g.oh, g.ow))))
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
        // An operand that records no graph (an input, a frozen weight) needs no gradient.
        let gx = x
            .track_op()
            .then(|| grad.apply_op2_no_bwd(w, &DepthwiseGradInput(self.0, h, wd)))
            .transpose()?;
        let gw = w
            .track_op()
            .then(|| x.apply_op2_no_bwd(&grad, &DepthwiseGradWeight(self.0, w.dim(2)?)))
            .transpose()?;
        Ok((gx, gw))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        if self.1.is_some() {
            candle_core::bail!(
                "{}: the fused bias and activation are CPU-only",
                self.name()
            );
        }
        let (g, c) = geometry(self.name(), l1, l2, self.0)?;
        let b = l1.shape().dims()[0];
        let out = cuda::run(cuda::Pass::Forward, g, b, c, (s1, l1), (s2, l2))?;
        Ok((out, Shape::from((b, c, g.oh, g.ow))))
    }
}

impl CustomOp2 for DepthwiseGradInput {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, _, _) = dims4(self.name(), l1)?;
        let (_, _, k, _) = dims4(self.name(), l2)?;
        let g = Geometry::new(self.1, self.2, k, self.0)?;
        let out = map_float2!(self.name(), s1, l1, s2, l2, |go, w| grad_input(go, w, g, c));
        Ok((out, Shape::from((b, c, self.1, self.2))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (b, c, _, _) = dims4(self.name(), l1)?;
        let (_, _, k, _) = dims4(self.name(), l2)?;
        let g = Geometry::new(self.1, self.2, k, self.0)?;
        let out = cuda::run(cuda::Pass::GradInput, g, b, c, (s1, l1), (s2, l2))?;
        Ok((out, Shape::from((b, c, self.1, self.2))))
    }
}

impl CustomOp2 for DepthwiseGradWeight {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-grad-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, h, w) = dims4(self.name(), l1)?;
        let k = self.1;
        let g = Geometry::new(h, w, k, self.0)?;
        let out = map_float2!(self.name(), s1, l1, s2, l2, |x, go| grad_weight(
            x, go, g, c
        ));
        Ok((out, Shape::from((c, 1, k, k))))
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
        let k = self.1;
        let g = Geometry::new(h, w, k, self.0)?;
        let out = cuda::run(cuda::Pass::GradWeight, g, b, c, (s1, l1), (s2, l2))?;
        Ok((out, Shape::from((c, 1, k, k))))
    }
}

/// The CUDA kernels (`scfnet-kernels`' `depthwise.cu`).
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::{CudaStorage, Layout, Result};
    use scfnet_kernels::ptx::DEPTHWISE;

    use super::Geometry;
    use crate::gpu::{by_float, kernel, output, per_element, per_plane, view, wrap, GpuFloat};

    /// The taps of one row a block of `dw_grad_weight_partials` sums at once (`DW_TAPS` in
    /// `depthwise.cu`).
    const DW_TAPS: usize = 8;

    /// Which of the three computations.
    #[derive(Clone, Copy)]
    pub(super) enum Pass {
        /// `(x, weight)` → the output, one thread per output.
        Forward,
        /// `(output gradient, weight)` → the input gradient, one thread per input.
        GradInput,
        /// `(x, output gradient)` → the weight gradient, block reductions (a block per tap row).
        GradWeight,
    }

    /// Runs `pass` on the two contiguous inputs of a batch of `b` with `c` channels.
    pub(super) fn run(
        pass: Pass,
        g: Geometry,
        b: usize,
        c: usize,
        a: (&CudaStorage, &Layout),
        z: (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        let op = match pass {
            Pass::Forward => "depthwise forward",
            Pass::GradInput => "depthwise grad-input",
            Pass::GradWeight => "depthwise grad-weight",
        };
        by_float!(op, a.0, run_typed(pass, g, b, c, a, z))
    }

    fn run_typed<T: GpuFloat>(
        pass: Pass,
        g: Geometry,
        b: usize,
        c: usize,
        (s1, l1): (&CudaStorage, &Layout),
        (s2, l2): (&CudaStorage, &Layout),
    ) -> Result<CudaStorage> {
        let op = "depthwise-conv2d";
        let dev = s1.device();
        let (first, second) = (view::<T>(op, s1, l1)?, view::<T>(op, s2, l2)?);
        let planes = b * c;
        let sizes = [g.h, g.w, g.oh, g.ow, g.k, g.stride, g.pad];
        let [h, w, oh, ow, k, s, p] = sizes;
        let out = match pass {
            Pass::Forward | Pass::GradInput => {
                let (per, name) = match pass {
                    Pass::Forward => (oh * ow, "dw_fwd"),
                    _ => (h * w, "dw_grad_input"),
                };
                let mut out = output::<T>(dev, planes * per)?;
                scfnet_kernels::launch!(dev, DEPTHWISE, kernel::<T>(name), config: per_plane(op, planes, per)?,
                    args: [&first, &second, &mut out, &planes, &c, &h, &w, &oh, &ow, &k, &s, &p]);
                out
            }
            Pass::GradWeight => {
                // One block per slice of the batch and per (channel, tap row, chunk of
                // `DW_TAPS` taps of the row).
                let rows = c * k * k;
                let blocks = c * k * k.div_ceil(DW_TAPS);
                if blocks > 65_535 {
                    candle_core::bail!(
                        "{op} (cuda): {c} channels of {k}x{k} taps exceed one grid column"
                    );
                }
                let splits = scfnet_kernels::batch_slices(b, oh * ow);
                per_plane(op, 1, (oh * ow).max(h * w))?; // the kernels index a plane in 32 bits
                let mut part = output::<f64>(dev, rows * splits)?;
                scfnet_kernels::launch!(dev, DEPTHWISE, kernel::<T>("dw_grad_weight_partials"),
                    config: scfnet_kernels::blocks((splits, blocks), 256),
                    args: [&first, &second, &mut part, &b, &c, &h, &w, &oh, &ow, &k, &s, &p, &splits]);
                let mut out = output::<T>(dev, rows)?;
                scfnet_kernels::launch!(dev, DEPTHWISE, kernel::<T>("dw_grad_weight_finish"),
                    config: per_element(rows), args: [&part, &mut out, &rows, &splits]);
                out
            }
        };
        Ok(wrap(s1, out))
    }
}

/// Depthwise convolution of `x` `(B, C, H, W)` with `weight` `(C, 1, k, k)`, no bias,
/// differentiable in both. Output `(B, C, (H + 2p − k)/s + 1, (W + 2p − k)/s + 1)`.
pub fn depthwise_conv2d(x: &Tensor, weight: &Tensor, cfg: DepthwiseConfig) -> Result<Tensor> {
    let y = if !uses_own_kernels(OpFamily::Depthwise, x) {
        depthwise_generic(x, weight, cfg)?
    } else {
        x.contiguous()?
            .apply_op2(&weight.contiguous()?, DepthwiseConv(cfg, None))?
    };
    let w = weight.dims();
    crate::macs::add_conv(y.elem_count(), w.iter().skip(1).product(), false);
    Ok(y)
}

/// `act(depthwise_conv2d(x, weight) + bias)` for inference (BatchNorm folded into `weight`):
/// on the CPU the bias and activation are applied to each output plane while it is in cache;
/// elsewhere (or with [`OpFamily::Depthwise`] composed) [`depthwise_conv2d`] then
/// [`crate::add_bias_activate`]. `bias` `(C)` and
/// `bias_values` hold the same numbers. No backward.
pub fn depthwise_conv2d_bias_act(
    x: &Tensor,
    weight: &Tensor,
    cfg: DepthwiseConfig,
    bias: &Tensor,
    bias_values: &[f64],
    act: Activation,
) -> Result<Tensor> {
    if !uses_cpu_kernels_of(OpFamily::Depthwise, x) {
        let y = depthwise_conv2d(x, weight, cfg)?;
        return crate::add_bias_activate(y, bias, bias_values, act);
    }
    let y = x.contiguous()?.apply_op2_no_bwd(
        &weight.contiguous()?,
        &DepthwiseConv(
            cfg,
            Some(Tail {
                bias: bias_values,
                act,
            }),
        ),
    )?;
    let w = weight.dims();
    crate::macs::add_conv(y.elem_count(), w.iter().skip(1).product(), true);
    Ok(y)
}

/// The device-generic depthwise convolution: the sum, over the kernel taps in row-major order,
/// of a strided view of the zero-padded input times that tap's per-channel weight.
fn depthwise_generic(x: &Tensor, weight: &Tensor, cfg: DepthwiseConfig) -> Result<Tensor> {
    let (g, c) = geometry("depthwise-conv2d", x.layout(), weight.layout(), cfg)?;
    let p = g.pad;
    let padded = pad2d(x, (p, p), (p, p), 0.0)?;
    let mut sum: Option<Tensor> = None;
    for ky in 0..g.k {
        for kx in 0..g.k {
            let view = tap(&padded, (ky, kx), (g.stride, g.stride), 1, (g.oh, g.ow))?;
            let wk = weight
                .narrow(2, ky, 1)?
                .narrow(3, kx, 1)?
                .reshape((1, c, 1, 1))?;
            let term = view.broadcast_mul(&wk)?;
            sum = Some(match sum {
                None => term,
                Some(s) => (s + term)?,
            });
        }
    }
    Ok(sum.expect("the kernel holds at least one tap"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weight gradient computed one tap's chain at a time ([`tap_sum`] alone), the order
    /// [`grad_weight`] promises to keep.
    fn grad_weight_tap_by_tap(x: &[f32], gout: &[f32], g: Geometry, channels: usize) -> Vec<f32> {
        let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
        let batch = x.len() / plane_in / channels;
        let mut out = vec![0f32; channels * kk];
        for c in 0..channels {
            for b in 0..batch {
                let i = b * channels + c;
                let src = &x[i * plane_in..(i + 1) * plane_in];
                let go = &gout[i * plane_out..(i + 1) * plane_out];
                for ky in 0..g.k {
                    for kx in 0..g.k {
                        let mut acc = 0f32;
                        tap_sum(src, go, g, ky, kx, &mut acc);
                        out[c * kk + ky * g.k + kx] += acc;
                    }
                }
            }
        }
        out
    }

    /// The input gradient one value at a time, in the order [`grad_input_plane`] promises.
    fn grad_input_one_by_one(gout: &[f32], wt: &[f32], g: Geometry, channels: usize) -> Vec<f32> {
        let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
        let planes = gout.len() / plane_out;
        let mut out = vec![0f32; planes * plane_in];
        for i in 0..planes {
            let filt = &wt[(i % channels) * kk..][..kk];
            for ky in 0..g.k {
                for y in 0..g.oh {
                    let Some(r) = g.input_row(y, ky) else {
                        continue;
                    };
                    for kx in 0..g.k {
                        for xo in g.valid_x(kx) {
                            out[i * plane_in + r * g.w + xo * g.stride + kx - g.pad] +=
                                filt[ky * g.k + kx] * gout[i * plane_out + y * g.ow + xo];
                        }
                    }
                }
            }
        }
        out
    }

    /// Values whose sums round differently in another order.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                let v = (i.wrapping_mul(2_654_435_761) ^ seed).wrapping_mul(40_503) >> 8;
                (v as f32 / (1 << 24) as f32 - 0.5) * (1.0 + (i % 7) as f32 * 1e3)
            })
            .collect()
    }

    #[test]
    fn the_gradients_keep_their_order_of_additions_to_the_last_bit() {
        let mut cases = 0;
        for k in [1, 2, 3, 4, 5, 7] {
            for stride in [1, 2] {
                for padding in 0..=k / 2 {
                    // Planes wider and narrower than the kernel (no shared columns at all).
                    for (h, w) in [(9, 13), (6, 3), (k.max(2), k.max(2))] {
                        let Ok(g) = Geometry::new(h, w, k, DepthwiseConfig { stride, padding })
                        else {
                            continue;
                        };
                        let (batch, channels) = (2, 3);
                        let x = values(batch * channels * h * w, 1);
                        let gout = values(batch * channels * g.oh * g.ow, 2);
                        let want = grad_weight_tap_by_tap(&x, &gout, g, channels);
                        let got = grad_weight(&x, &gout, g, channels);
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&got), bits(&want), "weights {g:?}");
                        let wt = values(channels * k * k, 3);
                        let want = grad_input_one_by_one(&gout, &wt, g, channels);
                        let got = grad_input(&gout, &wt, g, channels);
                        assert_eq!(bits(&got), bits(&want), "input {g:?}");
                        cases += 1;
                    }
                }
            }
        }
        assert!(cases > 60, "{cases} geometries");
    }
}
