//! Cross-implementation checks: a fixed list of cases covering every op of this crate (odd
//! sizes, non-square inputs, strides, dilations, ties for the max-pool), and a harness that
//! evaluates a case's output and input gradients on any device; and the in-place updates
//! ([`update_cases`]: the optimiser), compared by the values they leave. The tests compare the
//! CPU kernels with the device-generic path; `scfnet check-device` compares the CPU with a GPU.

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{Conv2d, Conv2dConfig, ModuleT, VarBuilder, VarMap};

use crate::{
    bce_with_logits, conv2d, conv2d_im2col, depthwise_conv2d, gelu_erf, hard_sigmoid_paddle,
    hard_swish, layer_norm, max_pool2d, max_pool2d_same, qkv_heads, resize_bilinear,
    sgd_momentum_update_all, softmax_last_dim, window_merge, window_partition, Activation,
    ConvGeometry, DepthwiseConfig, OpFamily, Pool2d, SgdParam, SgdSettings,
};

/// The function a case evaluates on its inputs (tensors on the device under test).
pub type CaseFn = Box<dyn Fn(&[Tensor]) -> Result<Tensor> + Send + Sync>;

/// One op call with fixed inputs.
pub struct OpCase {
    /// What it is, e.g. `max-pool 3x3/2 pad 1 (ties)`.
    pub name: String,
    /// The family of kernels it runs (what `SCFNET_GENERIC_OPS` would take off them); `None`
    /// for an op whose only kernel is the CPU's (the resize, the BCE).
    pub family: Option<OpFamily>,
    /// The inputs as host values and shapes (converted to the device and dtype under test).
    pub inputs: Vec<(Vec<f64>, Vec<usize>)>,
    /// The call.
    pub f: CaseFn,
}

/// `n` deterministic values in `[-scale, scale)` (xorshift64*), distinct almost surely.
pub fn values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let u = (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
            (2.0 * u - 1.0) * scale
        })
        .collect()
}

fn input(shape: &[usize], seed: u64, scale: f64) -> (Vec<f64>, Vec<usize>) {
    (values(shape.iter().product(), seed, scale), shape.to_vec())
}

/// Values on a grid of 0.5, so that pooling windows hold ties.
fn tied(shape: &[usize], seed: u64) -> (Vec<f64>, Vec<usize>) {
    let (v, s) = input(shape, seed, 2.0);
    (v.iter().map(|x| (x * 2.0).round() / 2.0).collect(), s)
}

fn case(
    family: Option<OpFamily>,
    name: String,
    inputs: Vec<(Vec<f64>, Vec<usize>)>,
    f: impl Fn(&[Tensor]) -> Result<Tensor> + Send + Sync + 'static,
) -> OpCase {
    OpCase {
        name,
        family,
        inputs,
        f: Box::new(f),
    }
}

/// A BatchNorm on `c` channels with fixed γ, β and running statistics, on `device` in `dtype`.
fn fixed_batch_norm(c: usize, dtype: DType, device: &Device) -> Result<crate::BatchNorm> {
    let map = VarMap::new();
    let bn = crate::batch_norm(c, 1e-5, VarBuilder::from_varmap(&map, dtype, device))?;
    let data = map.data().lock().expect("not poisoned");
    for (i, name) in ["weight", "bias", "running_mean", "running_var"]
        .iter()
        .enumerate()
    {
        let offset = if i == 0 || i == 3 { 1.0 } else { 0.0 };
        let v: Vec<f64> = values(c, 20 + i as u64, 0.5)
            .iter()
            .map(|x| x + offset)
            .collect();
        data[*name].set(&Tensor::from_vec(v, c, device)?.to_dtype(dtype)?)?;
    }
    Ok(bn)
}

/// Every op of the crate in the configurations the networks and losses use, and more.
pub fn op_cases() -> Vec<OpCase> {
    let mut cases = Vec::new();
    for &(h, w, oh, ow) in &[
        (5, 7, 11, 9),
        (9, 8, 4, 5),
        (6, 6, 12, 12),
        (3, 5, 1, 7),
        (8, 8, 2, 2),
    ] {
        for ac in [false, true] {
            cases.push(case(
                None,
                format!("resize {h}x{w}->{oh}x{ow} align_corners={ac}"),
                vec![input(&[2, 3, h, w], 1, 2.0)],
                move |t| resize_bilinear(&t[0], (oh, ow), ac),
            ));
        }
    }
    let pool = |k: (usize, usize), s: (usize, usize), p: (usize, usize)| Pool2d {
        kernel: k,
        stride: s,
        padding: p,
    };
    for (i, p) in [
        pool((3, 3), (2, 2), (1, 1)),
        pool((2, 2), (2, 2), (0, 0)),
        pool((3, 2), (1, 2), (1, 0)),
        pool((1, 5), (1, 1), (0, 2)),
        pool((5, 1), (1, 1), (2, 0)),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 30 + i as u64;
        cases.push(case(
            Some(OpFamily::MaxPool),
            format!("max-pool {p:?}"),
            vec![input(&[2, 2, 9, 7], seed, 3.0)],
            move |t| max_pool2d(&t[0], p),
        ));
        cases.push(case(
            Some(OpFamily::MaxPool),
            format!("max-pool {p:?} (ties)"),
            vec![tied(&[2, 2, 9, 7], seed)],
            move |t| max_pool2d(&t[0], p),
        ));
    }
    for k in [3, 5] {
        cases.push(case(
            Some(OpFamily::MaxPool),
            format!("same-size max-pool k={k} (ties)"),
            vec![tied(&[2, 3, 8, 10], 7)],
            move |t| max_pool2d_same(&t[0], k),
        ));
    }
    for &(k, stride, padding) in &[(3, 1, 1), (3, 2, 1), (5, 2, 2), (5, 1, 2), (3, 1, 0)] {
        cases.push(case(
            Some(OpFamily::Depthwise),
            format!("depthwise k={k} stride={stride} padding={padding}"),
            vec![input(&[2, 4, 9, 11], 3, 2.0), input(&[4, 1, k, k], 4, 1.0)],
            move |t| depthwise_conv2d(&t[0], &t[1], DepthwiseConfig { stride, padding }),
        ));
    }
    for &(kernel, stride, padding, dilation) in &[
        (3, 1, 1, 1),
        (3, 2, 1, 1),
        (3, 1, 2, 2),
        (3, 1, 5, 5),
        (1, 1, 0, 1),
        (1, 2, 0, 1),
        (7, 2, 3, 1),
    ] {
        let g = ConvGeometry {
            kernel,
            stride,
            padding,
            dilation,
        };
        cases.push(case(
            Some(OpFamily::Convolution),
            format!("conv2d-im2col {g:?}"),
            vec![
                input(&[2, 3, 10, 13], 5, 2.0),
                input(&[4, 3, kernel, kernel], 6, 0.5),
                input(&[4], 8, 1.0),
            ],
            move |t| conv2d_im2col(&t[0], &t[1], Some(&t[2]), g),
        ));
    }
    for &(k, stride, padding) in &[(7, 2, 3), (1, 2, 0), (3, 1, 1), (4, 4, 0)] {
        cases.push(case(
            Some(OpFamily::Convolution),
            format!("conv2d module k={k} stride={stride} padding={padding}"),
            vec![
                input(&[2, 3, 16, 12], 9, 2.0),
                input(&[5, 3, k, k], 10, 0.5),
                input(&[5], 11, 1.0),
            ],
            move |t| {
                let cfg = Conv2dConfig {
                    padding,
                    stride,
                    ..Default::default()
                };
                conv2d(&t[0], &Conv2d::new(t[1].clone(), Some(t[2].clone()), cfg))
            },
        ));
    }
    let x = input(&[2, 3, 5, 7], 12, 5.0);
    cases.push(case(
        Some(OpFamily::Activation),
        "hard-swish".into(),
        vec![x.clone()],
        |t| hard_swish(&t[0]),
    ));
    cases.push(case(
        Some(OpFamily::Activation),
        "hard-sigmoid (Paddle)".into(),
        vec![x.clone()],
        |t| hard_sigmoid_paddle(&t[0]),
    ));
    cases.push(case(
        Some(OpFamily::Gelu),
        "gelu (erf)".into(),
        vec![x],
        |t| gelu_erf(&t[0]),
    ));
    let (t, s) = input(&[2, 1, 6, 6], 14, 0.5);
    cases.push(case(
        None,
        "bce-with-logits (logits up to ±60)".into(),
        vec![
            input(&[2, 1, 6, 6], 13, 60.0),
            (t.iter().map(|v| v + 0.5).collect(), s),
        ],
        |t| bce_with_logits(&t[0], &t[1]),
    ));
    for train in [true, false] {
        cases.push(case(
            Some(OpFamily::BatchNorm),
            format!("batch-norm train={train}"),
            vec![input(&[3, 4, 5, 6], 15, 3.0)],
            move |t| {
                let bn = fixed_batch_norm(4, t[0].dtype(), t[0].device())?;
                bn.forward_t(&(&t[0] + 1.0)?, train)
            },
        ));
    }
    // BatchNorm fused with its activation in training, and with a block's shortcut.
    for act in [Activation::Relu, Activation::HardSwish] {
        cases.push(case(
            Some(OpFamily::BatchNorm),
            format!("batch-norm train + {act:?}"),
            vec![input(&[3, 4, 5, 6], 16, 3.0)],
            move |t| {
                let bn = fixed_batch_norm(4, t[0].dtype(), t[0].device())?;
                bn.forward_t_act(&(&t[0] + 1.0)?, act, true)
            },
        ));
    }
    for act in [Activation::None, Activation::Relu] {
        cases.push(case(
            Some(OpFamily::BatchNorm),
            format!("batch-norm train + residual + {act:?}"),
            vec![input(&[3, 4, 5, 6], 17, 3.0), input(&[3, 4, 5, 6], 18, 1.0)],
            move |t| {
                let bn = fixed_batch_norm(4, t[0].dtype(), t[0].device())?;
                bn.forward_t_residual(&(&t[0] + 1.0)?, &t[1], act, true)
            },
        ));
    }
    // Rows shorter than a warp, several warps long, and not a multiple of 32; an offset mean.
    for (i, &(rows, c)) in [(6, 7), (4, 40), (3, 70)].iter().enumerate() {
        let seed = 40 + 3 * i as u64;
        let (x, s) = input(&[rows, 2, c], seed, 2.0);
        cases.push(case(
            Some(OpFamily::LayerNorm),
            format!("layer-norm C={c}"),
            vec![
                (x.iter().map(|v| v + 3.0).collect(), s),
                input(&[c], seed + 1, 1.0),
                input(&[c], seed + 2, 1.0),
            ],
            |t| layer_norm(&t[0], &t[1], Some(&t[2]), 1e-5),
        ));
    }
    for &(n, scale) in &[(5, 3.0), (49, 8.0), (70, 30.0)] {
        cases.push(case(
            Some(OpFamily::Softmax),
            format!("softmax N={n} (logits up to ±{scale})"),
            vec![input(&[2, 3, n], 50 + n as u64, scale)],
            |t| softmax_last_dim(&t[0]),
        ));
    }
    // Swin's windows: exact multiples without a shift; padding on both sides with a shift on
    // both axes (the windows of a 5×7 map in 3×3 windows: 2×3 per image).
    cases.push(case(
        Some(OpFamily::Windows),
        "window partition 2x2".into(),
        vec![input(&[2, 4, 6, 3], 60, 1.0)],
        |t| window_partition(&t[0], 2, (0, 0)),
    ));
    cases.push(case(
        Some(OpFamily::Windows),
        "window partition 3x3 shift (1, 2), padded".into(),
        vec![input(&[2, 5, 7, 3], 61, 1.0)],
        |t| window_partition(&t[0], 3, (1, 2)),
    ));
    cases.push(case(
        Some(OpFamily::Windows),
        "window merge 3x3 shift (1, 2), padded".into(),
        vec![input(&[12, 9, 3], 62, 1.0)],
        |t| window_merge(&t[0], 3, (1, 2), (2, 5, 7)),
    ));
    // The three parts of a fused attention projection (2 images, 5 tokens, 3 heads of 2).
    for part in 0..3 {
        let scale = if part == 0 { 0.7 } else { 1.0 };
        cases.push(case(
            Some(OpFamily::Heads),
            format!("qkv heads part {part} (scale {scale})"),
            vec![input(&[2, 5, 18], 63 + part as u64, 1.0)],
            move |t| qkv_heads(&t[0], part, 3, scale),
        ));
    }
    cases
}

/// An in-place update with fixed inputs, run on a device in a type: the values it leaves, as
/// host f64 vectors, labelled.
pub struct UpdateCase {
    /// What it is.
    pub name: String,
    /// The family of kernels it runs.
    pub family: OpFamily,
    /// The run: `(label, values)` pairs.
    pub run: UpdateFn,
}

/// The function an [`UpdateCase`] runs.
pub type UpdateFn = Box<dyn Fn(&Device, DType) -> Result<Vec<(String, Vec<f64>)>> + Send + Sync>;

/// The optimiser's in-place updates: SGD with momentum over 70 parameters (more than one CUDA
/// launch's 64; 1 to 300,000 values; two weight decays, three steps), three updates (the first
/// makes the velocities, the others update them in place).
pub fn update_cases() -> Vec<UpdateCase> {
    vec![UpdateCase {
        name: "sgd momentum (70 parameters, 3 updates)".into(),
        family: OpFamily::Sgd,
        run: Box::new(sgd_updates),
    }]
}

fn sgd_updates(device: &Device, dtype: DType) -> Result<Vec<(String, Vec<f64>)>> {
    let lengths: Vec<usize> = (0..70)
        .map(|i| if i == 5 { 300_000 } else { 1 + (i * 37) % 301 })
        .collect();
    let on_device = |v: Vec<f64>| -> Result<Tensor> {
        let n = v.len();
        Tensor::from_vec(v, n, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)
    };
    let weights: Vec<Var> = lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| Var::from_tensor(&on_device(values(n, 500 + i as u64, 1.0))?))
        .collect::<Result<_>>()?;
    let mut velocities: Vec<Option<Tensor>> = vec![None; lengths.len()];
    for update in 0..3u64 {
        let grads: Vec<Tensor> = lengths
            .iter()
            .enumerate()
            .map(|(i, &n)| on_device(values(n, 1000 + 100 * update + i as u64, 1.0)))
            .collect::<Result<_>>()?;
        let mut params: Vec<SgdParam<'_>> = weights
            .iter()
            .zip(velocities.iter_mut())
            .zip(&grads)
            .enumerate()
            .map(|(i, ((weight, velocity), grad))| SgdParam {
                weight,
                velocity,
                grad,
                settings: SgdSettings {
                    momentum: 0.9,
                    weight_decay: if i % 2 == 0 { 5e-4 } else { 0.0 },
                    step: 0.01 * (1 + i % 3) as f64 * (1 + update) as f64,
                },
            })
            .collect();
        sgd_momentum_update_all(&mut params)?;
    }
    let host = |t: &Tensor| -> Result<Vec<f64>> {
        t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.to_vec1()
    };
    let mut w = Vec::new();
    let mut v = Vec::new();
    for (weight, velocity) in weights.iter().zip(&velocities) {
        w.extend(host(weight.as_tensor())?);
        match velocity {
            Some(t) => v.extend(host(t)?),
            None => candle_core::bail!("sgd: a parameter was left without a velocity"),
        }
    }
    Ok(vec![("weights".into(), w), ("velocities".into(), v)])
}

/// The output of `case` and the gradient of `sum(output · w)` (fixed random `w`) for each input,
/// on `device` in `dtype`, as host f64 vectors: `[output, d input 0, d input 1, …]`.
pub fn evaluate(case: &OpCase, device: &Device, dtype: DType) -> Result<Vec<Vec<f64>>> {
    let vars: Vec<Var> = case
        .inputs
        .iter()
        .map(|(v, s)| {
            let t = Tensor::from_vec(v.clone(), s.as_slice(), &Device::Cpu)?
                .to_dtype(dtype)?
                .to_device(device)?;
            Var::from_tensor(&t)
        })
        .collect::<Result<_>>()?;
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = (case.f)(&tensors)?;
    let w = Tensor::from_vec(values(y.elem_count(), 99, 1.0), y.shape(), &Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(device)?;
    let grads = (&y * &w)?.sum_all()?.backward()?;
    let host = |t: &Tensor| -> Result<Vec<f64>> {
        t.to_device(&Device::Cpu)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()
    };
    let mut out = vec![host(&y)?];
    for t in &tensors {
        match grads.get(t) {
            Some(g) => out.push(host(g)?),
            None => candle_core::bail!("{}: an input received no gradient", case.name),
        }
    }
    Ok(out)
}

/// The largest difference between two [`evaluate`] results, each vector's differences relative
/// to its largest magnitude (at least 1), and where it is (`"output"` or `"gradient N"`).
pub fn max_relative_difference(a: &[Vec<f64>], b: &[Vec<f64>]) -> (f64, String) {
    if a.len() != b.len() {
        return (f64::INFINITY, "number of gradients".into());
    }
    let label = |i: usize| {
        if i == 0 {
            "output".to_string()
        } else {
            format!("gradient {}", i - 1)
        }
    };
    let labelled = |v: &[Vec<f64>]| -> Vec<(String, Vec<f64>)> {
        v.iter()
            .enumerate()
            .map(|(i, x)| (label(i), x.clone()))
            .collect()
    };
    max_labelled_difference(&labelled(a), &labelled(b))
}

/// The largest difference between two labelled lists of vectors (an [`UpdateCase`]'s runs),
/// relative to each vector's largest magnitude (at least 1), and the label where it is.
pub fn max_labelled_difference(
    a: &[(String, Vec<f64>)],
    b: &[(String, Vec<f64>)],
) -> (f64, String) {
    let mut worst = (0.0, a.first().map_or_else(String::new, |(l, _)| l.clone()));
    if a.len() != b.len() {
        return (f64::INFINITY, "number of vectors".into());
    }
    for ((label, x), (_, y)) in a.iter().zip(b) {
        if x.len() != y.len() {
            return (f64::INFINITY, format!("{label}: length"));
        }
        let scale = x.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (p, q) in x.iter().zip(y) {
            let d = (p - q).abs() / scale;
            // A NaN on one side only is the largest difference there is.
            let d = if d.is_nan() && !(p.is_nan() && q.is_nan()) {
                f64::INFINITY
            } else if d.is_nan() {
                0.0
            } else {
                d
            };
            if d > worst.0 {
                worst = (d, label.clone());
            }
        }
    }
    worst
}
