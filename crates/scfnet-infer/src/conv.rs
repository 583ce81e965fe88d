//! The dense convolution of inference with its whole tail fused: `act(conv(x) + bias)`, then
//! optionally `then(· + residual)`, computed by the first kernel of [`crate::kernel::KERNELS`]
//! that was packed for the layer and suits the input. One parallel loop per layer replaces the
//! column op, the threaded product and the bias pass of the training path, and nothing is
//! zero-filled first. f32 on the CPU only; the weights are packed once at load.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use scfnet_ops::cpu::dims4;
use scfnet_ops::{macs, Activation, ConvGeometry};

use crate::kernel::{CallShape, Layer, LayerShape, ResidualValues, KERNELS};

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

/// A dense (groups = 1) convolution with its bias and activation, its weights `(C_out, C_in·k·k)`
/// (row-major f32) packed for every CPU kernel that computes its geometry.
#[derive(Clone, Debug)]
pub struct InferenceConv {
    weight: Vec<f32>,
    bias: Vec<f32>,
    shape: LayerShape,
    act: Activation,
    /// Each kernel's packed weights, index by index with [`KERNELS`]; `None` where the kernel
    /// does not compute this layer.
    packed: Vec<Option<Vec<f32>>>,
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
        let shape = LayerShape {
            geometry,
            c_in,
            c_out,
        };
        let packed = KERNELS
            .iter()
            .map(|k| k.applies(&shape).then(|| k.pack(&weight, &shape)))
            .collect();
        Ok(Self {
            weight,
            bias: bias.iter().map(|&b| b as f32).collect(),
            shape,
            act,
            packed,
        })
    }

    /// Whether [`InferenceConv::forward`] runs on `x`: f32 on the CPU kernels' device.
    pub fn supports(x: &Tensor) -> bool {
        scfnet_ops::uses_cpu_kernels(x) && x.dtype() == candle_core::DType::F32
    }

    /// The name of the kernel that computes an input `(B, C_in, H, W)` (`scaled`: with input
    /// factors, [`InferenceConv::forward_scaled`]): `winograd`, `direct-3x3`, `direct-1x1` or
    /// `tiled`.
    pub fn kernel_for(&self, dims: (usize, usize, usize, usize), scaled: bool) -> &'static str {
        KERNELS[choose(self, &CallShape { dims, scaled })].name()
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
        let k = self.shape.geometry.kernel;
        macs::add_conv(y.elem_count(), self.shape.c_in * k * k, true);
        Ok(y)
    }

    /// The same layer with only the kernel named `name` and the tiled one (tests compare the
    /// kernels).
    #[cfg(test)]
    fn only(&self, name: &str) -> Self {
        let packed = KERNELS
            .iter()
            .zip(&self.packed)
            .map(|(k, p)| {
                p.clone()
                    .filter(|_| k.name() == name || k.name() == "tiled")
            })
            .collect();
        Self {
            packed,
            ..self.clone()
        }
    }

    /// Whether the kernel named `name` was packed for this layer.
    #[cfg(test)]
    fn packs(&self, name: &str) -> bool {
        KERNELS
            .iter()
            .zip(&self.packed)
            .any(|(k, p)| k.name() == name && p.is_some())
    }

    /// Output shape for an input `(b, c, h, w)`, after checking the input.
    fn output_dims(&self, (b, c, h, w): (usize, usize, usize, usize)) -> Result<[usize; 4]> {
        let g = self.shape.geometry;
        if c != self.shape.c_in {
            candle_core::bail!(
                "inference-conv: the weights expect {} input channels, the input has {c}",
                self.shape.c_in
            );
        }
        let span = g.dilation * (g.kernel - 1) + 1;
        if h + 2 * g.padding < span || w + 2 * g.padding < span {
            candle_core::bail!("inference-conv: input {h}x{w} is smaller than the window {g:?}");
        }
        Ok([b, self.shape.c_out, g.output(h), g.output(w)])
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

/// The first kernel of the table packed for `conv` that suits this call.
fn choose(conv: &InferenceConv, call: &CallShape) -> usize {
    KERNELS
        .iter()
        .zip(&conv.packed)
        .position(|(k, p)| p.is_some() && k.suits(&conv.shape, call))
        .expect("the tiled kernel computes every layer")
}

/// The layer computed by the first kernel of the table that was packed for it and suits the
/// input.
fn run(
    conv: &InferenceConv,
    scale: Option<&[f32]>,
    x: &[f32],
    dims: (usize, usize, usize, usize),
    residual: ResidualValues,
) -> Vec<f32> {
    let call = CallShape {
        dims,
        scaled: scale.is_some(),
    };
    let i = choose(conv, &call);
    let layer = Layer {
        shape: conv.shape,
        weight: &conv.weight,
        packed: conv.packed[i].as_deref().unwrap_or_default(),
        bias: &conv.bias,
        act: conv.act,
    };
    KERNELS[i].forward(&layer, x, dims, scale, residual)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_values::values;
    use candle_core::{DType, Device};

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
                direct_cases += usize::from(conv.packs("direct-3x3"));
                pointwise_cases += usize::from(conv.packs("direct-1x1"));
                winograd_cases += usize::from(conv.kernel_for((b, ci, h, w), false) == "winograd");
                // The chosen kernel, the direct 3×3 kernel where it applies (Winograd may win
                // over it), and the tiled one always.
                for conv in [conv.clone(), conv.only("direct-3x3"), conv.only("tiled")] {
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
        if scfnet_ops::cpu::wide() {
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
        // input values into the thread's window (`scfnet_ops::cpu::with_scratch`).
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
        assert!(conv.packs("direct-3x3") || !scfnet_ops::cpu::wide());
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
        assert!(conv.packs("direct-1x1") || !scfnet_ops::cpu::wide());
        let tiled = conv
            .only("tiled")
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
