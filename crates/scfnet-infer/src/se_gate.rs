//! A squeeze-excite gate computed on the host for eval mode: global average pool, `fc1` + ReLU,
//! `fc2`, hard sigmoid. The result is one factor per image and channel, which the following
//! convolution folds into its weights ([`crate::InferenceConv::forward_scaled`]) instead of
//! scaling the map.

use candle_core::{bail, CpuStorage, DType, Result, Storage, Tensor};

use scfnet_ops::cpu::wide;

/// The weights of a squeeze-excite gate as plain values, copied once (at load or fold time)
/// so that each call only reads the map and does two small matrix-vector products per image.
#[derive(Clone, Debug)]
pub struct SqueezeExciteGate {
    channels: usize,
    hidden: usize,
    /// `fc1`, `(hidden, channels)` row-major.
    w1: Vec<f32>,
    b1: Vec<f32>,
    /// `fc2`, `(channels, hidden)` row-major.
    w2: Vec<f32>,
    b2: Vec<f32>,
    slope: f32,
    offset: f32,
}

impl SqueezeExciteGate {
    /// The gate `clamp(slope · (fc2(relu(fc1(mean(x)))) + offset, 0, 1)` with `fc1`
    /// `(hidden, C[, 1, 1])`, `fc2` `(C, hidden[, 1, 1])` and optional biases (`(hidden,)`,
    /// `(C,)`; absent means zero). The weights are copied to the host as f32.
    pub fn new(
        (w1, b1): (&Tensor, Option<&Tensor>),
        (w2, b2): (&Tensor, Option<&Tensor>),
        slope: f64,
        offset: f64,
    ) -> Result<Self> {
        let (hidden, channels) = (w1.dim(0)?, w1.elem_count() / w1.dim(0)?.max(1));
        if w2.dims().first() != Some(&channels) || w2.elem_count() != channels * hidden {
            bail!(
                "squeeze-excite: fc2 {:?} does not map {hidden} back to {channels} channels \
                 (fc1 {:?})",
                w2.dims(),
                w1.dims()
            );
        }
        let values = |t: &Tensor| t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>();
        let bias = |b: Option<&Tensor>, n: usize, part: &str| -> Result<Vec<f32>> {
            let Some(b) = b else {
                return Ok(vec![0.0; n]);
            };
            if b.elem_count() != n {
                bail!(
                    "squeeze-excite: {part} bias {:?}, want {n} values",
                    b.dims()
                );
            }
            values(b)
        };
        Ok(Self {
            channels,
            hidden,
            w1: values(w1)?,
            b1: bias(b1, hidden, "fc1")?,
            w2: values(w2)?,
            b2: bias(b2, channels, "fc2")?,
            slope: slope as f32,
            offset: offset as f32,
        })
    }

    /// The gate of `x` `(B, C, H, W)` (f32 on the CPU): `B·C` factors in `[0, 1]`, image-major.
    pub fn factors(&self, x: &Tensor) -> Result<Vec<f32>> {
        let (b, c, h, w) = x.dims4()?;
        if c != self.channels {
            bail!(
                "squeeze-excite: input {:?} has {c} channels, the gate {}",
                x.dims(),
                self.channels
            );
        }
        let x = x.contiguous()?;
        let (storage, layout) = x.storage_and_layout();
        let data = match &*storage {
            Storage::Cpu(CpuStorage::F32(all)) => match layout.contiguous_offsets() {
                Some((start, end)) => &all[start..end],
                None => bail!("squeeze-excite: input must be contiguous"),
            },
            _ => bail!(
                "squeeze-excite: the host gate takes f32 on the CPU, got {:?} on {:?}",
                x.dtype(),
                x.device().location()
            ),
        };
        let mut out = vec![0f32; b * c];
        if b * c * h * w == 0 {
            return Ok(out);
        }
        #[cfg(target_arch = "x86_64")]
        if wide() {
            // SAFETY: `simd::wide` checked that the CPU has AVX2 and FMA.
            unsafe { self.factors_wide(data, h * w, &mut out) };
            return Ok(out);
        }
        self.factors_plain(data, h * w, &mut out);
        Ok(out)
    }

    /// [`SqueezeExciteGate::factors_plain`] compiled for AVX2 and FMA (the same operations).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn factors_wide(&self, x: &[f32], plane: usize, out: &mut [f32]) {
        self.factors_plain(x, plane, out)
    }

    #[inline(always)]
    fn factors_plain(&self, x: &[f32], plane: usize, out: &mut [f32]) {
        let (c, hidden) = (self.channels, self.hidden);
        let mut pooled = vec![0f32; c];
        let mut mid = vec![0f32; hidden];
        for (image, gate) in x.chunks_exact(c * plane).zip(out.chunks_exact_mut(c)) {
            for (p, values) in pooled.iter_mut().zip(image.chunks_exact(plane)) {
                *p = sum(values) / plane as f32;
            }
            for ((m, row), &b) in mid.iter_mut().zip(self.w1.chunks_exact(c)).zip(&self.b1) {
                *m = (b + dot(row, &pooled)).max(0.0);
            }
            for ((g, row), &b) in gate
                .iter_mut()
                .zip(self.w2.chunks_exact(hidden))
                .zip(&self.b2)
            {
                *g = (self.slope * (b + dot(row, &mid)) + self.offset).clamp(0.0, 1.0);
            }
        }
    }
}

/// Lanes of the partial sums (independent accumulators, so that the loops vectorise).
const LANES: usize = 8;

/// `Σ a[i]·b[i]` over the common length, in [`LANES`] partial sums.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ a[i]` in [`LANES`] partial sums.
#[inline(always)]
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = a.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for x in chunks {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The gate through candle's own ops, in f64.
    fn reference(x: &Tensor, w1: &Tensor, b1: &Tensor, w2: &Tensor, b2: &Tensor) -> Vec<f32> {
        let f = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        let pooled = f(x).flatten_from(2).unwrap().mean(2).unwrap(); // (B, C)
        let mid = pooled
            .matmul(&f(w1).t().unwrap())
            .unwrap()
            .broadcast_add(&f(b1))
            .unwrap()
            .relu()
            .unwrap();
        let s = mid
            .matmul(&f(w2).t().unwrap())
            .unwrap()
            .broadcast_add(&f(b2))
            .unwrap();
        let g = ((s * 0.2).unwrap() + 0.5).unwrap().clamp(0.0, 1.0).unwrap();
        g.flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// Fixed values in `[-scale, scale]`, different for each `seed` (the test must not depend
    /// on an unseeded generator: a draw that saturated half the gates once failed it).
    fn values(shape: &[usize], seed: f32, scale: f64) -> Tensor {
        (crate::test_values::values(shape, seed) * scale).unwrap()
    }

    #[test]
    fn matches_the_composed_gate() {
        // Channel and hidden counts that are not multiples of the lanes, and a plane of 121.
        for (b, c, hidden, side) in [(1, 36, 9, 11), (3, 40, 10, 5), (2, 8, 2, 1)] {
            let seed = (b * c + side) as f32;
            let x = values(&[b, c, side, side], seed, 1.5);
            let w1 = values(&[hidden, c, 1, 1], seed + 1.0, 0.5);
            let b1 = values(&[hidden], seed + 2.0, 0.5);
            let w2 = values(&[c, hidden, 1, 1], seed + 3.0, 0.5);
            let b2 = values(&[c], seed + 4.0, 0.5);
            let gate =
                SqueezeExciteGate::new((&w1, Some(&b1)), (&w2, Some(&b2)), 0.2, 0.5).unwrap();
            let got = gate.factors(&x).unwrap();
            let want = reference(
                &x,
                &w1.flatten_from(1).unwrap(),
                &b1,
                &w2.flatten_from(1).unwrap(),
                &b2,
            );
            assert_eq!(got.len(), b * c);
            let saturated = want.iter().filter(|v| **v == 0.0 || **v == 1.0).count();
            assert!(saturated < want.len() / 2, "inputs too large: {want:?}");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 1e-5, "{b}x{c}x{side}² #{i}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn mismatched_shapes_are_named() {
        let dev = Device::Cpu;
        let w1 = Tensor::zeros((4, 16, 1, 1), DType::F32, &dev).unwrap();
        let w2 = Tensor::zeros((12, 4, 1, 1), DType::F32, &dev).unwrap();
        let err = SqueezeExciteGate::new((&w1, None), (&w2, None), 0.2, 0.5).unwrap_err();
        assert!(err.to_string().contains("16 channels"), "{err}");
        let w2 = Tensor::zeros((16, 4, 1, 1), DType::F32, &dev).unwrap();
        let gate = SqueezeExciteGate::new((&w1, None), (&w2, None), 0.2, 0.5).unwrap();
        let x = Tensor::zeros((1, 8, 4, 4), DType::F32, &dev).unwrap();
        let err = gate.factors(&x).unwrap_err();
        assert!(err.to_string().contains("8 channels"), "{err}");
        // Zero weights and biases: every factor is the offset.
        let x = Tensor::ones((2, 16, 3, 3), DType::F32, &dev).unwrap();
        assert_eq!(gate.factors(&x).unwrap(), vec![0.5; 32]);
    }
}
