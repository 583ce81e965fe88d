//! Properties of scfnet-ops that need no reference values.

use candle_core::{DType, Device, Tensor, Var};
use scfnet_ops::{
    bce_with_logits, max_pool2d, max_pool2d_same, resize_bilinear, resize_bilinear_planes, Pool2d,
};

fn ramp(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::arange(0f32, n as f32, &Device::Cpu)
        .unwrap()
        .reshape(shape)
        .unwrap()
}

/// All values of `t`, flattened, as f64.
fn values_f64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// The largest absolute difference of two tensors of the same shape, in f64.
fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    d.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

#[test]
fn resize_forward_matches_candles_own_forward() {
    // candle's upsample_bilinear2d has a forward (no backward): ours must agree with it.
    let x = (ramp(&[2, 3, 5, 7]).sin().unwrap() * 3.0).unwrap();
    for (oh, ow) in [(11, 9), (3, 4), (10, 14)] {
        for ac in [false, true] {
            let ours = resize_bilinear(&x, (oh, ow), ac).unwrap();
            let theirs = x.upsample_bilinear2d(oh, ow, ac).unwrap();
            let diff = max_diff(&ours, &theirs);
            assert!(diff < 1e-5, "{oh}x{ow} ac={ac}: max diff {diff}");
        }
    }
}

#[test]
fn resize_on_slices_is_the_tensor_resize_bit_for_bit() {
    // The pre- and post-processing of inference resize plain slices on their own thread; the
    // bytes must be those of the tensor op (sizes of a 400x300 photo and the 352 input, both
    // directions, and odd ones).
    let cases = [
        (300, 400, 352, 352),
        (352, 352, 300, 400),
        (88, 88, 352, 352),
        (5, 7, 11, 3),
        (1, 9, 4, 1),
        (6, 6, 6, 6),
    ];
    for (h, w, oh, ow) in cases {
        let x = (ramp(&[1, 2, h, w]) * 0.37).unwrap().sin().unwrap();
        let values = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for ac in [false, true] {
            let want = resize_bilinear(&x, (oh, ow), ac)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let got = resize_bilinear_planes(&values, (h, w), (oh, ow), ac).unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{h}x{w} -> {oh}x{ow} ac={ac}");
        }
    }
    let err = resize_bilinear_planes(&[0.0; 10], (3, 3), (2, 2), false).unwrap_err();
    assert!(err.to_string().contains("3x3 planes"), "{err}");
}

#[test]
fn align_corners_keeps_the_corners() {
    let x = ramp(&[1, 1, 4, 6]);
    let y = resize_bilinear(&x, (7, 11), true)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    let y = &y[0];
    assert_eq!(
        (y[0][0], y[0][10], y[6][0], y[6][10]),
        (0.0, 5.0, 18.0, 23.0)
    );
}

#[test]
fn max_pool_matches_candle_when_kernel_equals_stride() {
    let x = (ramp(&[2, 2, 8, 6]).cos().unwrap() * 5.0).unwrap();
    let ours = max_pool2d(
        &x,
        Pool2d {
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
        },
    )
    .unwrap();
    let theirs = x.max_pool2d(2).unwrap();
    let diff = (ours - theirs)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0);
}

#[test]
fn same_pooling_keeps_the_size_and_stem_pooling_halves_it() {
    let x = ramp(&[1, 2, 9, 7]);
    assert_eq!(
        max_pool2d_same(&x, 3).unwrap().dims4().unwrap(),
        (1, 2, 9, 7)
    );
    let stem = Pool2d {
        kernel: (3, 3),
        stride: (2, 2),
        padding: (1, 1),
    };
    assert_eq!(max_pool2d(&x, stem).unwrap().dims4().unwrap(), (1, 2, 5, 4));
}

#[test]
fn max_pool_gradient_goes_to_the_first_maximum() {
    // A plateau: all equal, so the first pixel of each window receives the gradient.
    let x =
        Var::from_tensor(&Tensor::ones((1, 1, 2, 2), DType::F64, &Device::Cpu).unwrap()).unwrap();
    let y = max_pool2d(
        x.as_tensor(),
        Pool2d {
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
        },
    )
    .unwrap();
    let g = y.sum_all().unwrap().backward().unwrap();
    let g = g
        .get(x.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(g, [1.0, 0.0, 0.0, 0.0]);
}

/// Output values (NaN as `None`) and the input gradient of `pool` on `x` with a gradient of
/// ones flowing back.
fn pooled_and_gradient(
    x: &Tensor,
    pool: impl Fn(&Tensor) -> Tensor,
) -> (Vec<Option<f64>>, Vec<f64>) {
    let x = Var::from_tensor(x).unwrap();
    let y = pool(x.as_tensor());
    let values = values_f64(&y)
        .into_iter()
        .map(|v| (!v.is_nan()).then_some(v))
        .collect();
    // The gradient of a sum of NaNs is still ones: backward never reads the values.
    let g = y.sum_all().unwrap().backward().unwrap();
    (values, values_f64(g.get(x.as_tensor()).unwrap()))
}

#[test]
fn max_pool_nan_wins_and_the_first_nan_takes_the_gradient() {
    let nan = f32::NAN;
    let row = [1.0, nan, 3.0, nan, 2.0, 0.0];
    // Windows of 3 with one -inf padding each side, along a row and down a column.
    let along_row = Pool2d {
        kernel: (1, 3),
        stride: (1, 1),
        padding: (0, 1),
    };
    let down_column = Pool2d {
        kernel: (3, 1),
        stride: (1, 1),
        padding: (1, 0),
    };
    // Windows [pad 1 NaN] [1 NaN 3] [NaN 3 NaN] [3 NaN 2] [NaN 2 0] [2 0 pad]: the first NaN of
    // a window wins, so position 1 collects three gradients, position 3 two, position 4 one.
    let want_values = vec![None, None, None, None, None, Some(2.0)];
    let want_grad = vec![0.0, 3.0, 0.0, 2.0, 1.0, 0.0];
    for (shape, pool) in [((1, 1, 1, 6), along_row), ((1, 1, 6, 1), down_column)] {
        let x = Tensor::new(&row, &Device::Cpu)
            .unwrap()
            .reshape(shape)
            .unwrap();
        let (values, grad) = pooled_and_gradient(&x, |t| max_pool2d(t, pool).unwrap());
        assert_eq!(values, want_values, "{pool:?}");
        assert_eq!(grad, want_grad, "{pool:?}");
    }
}

#[test]
fn separable_same_pooling_picks_the_window_pixel_of_a_square_pool_nans_and_ties_included() {
    // Values on a coarse grid (many ties) with NaNs sprinkled in; a 13-wide plane, as the
    // boundary loss's widest band.
    let (h, w) = (11, 13);
    let data: Vec<f32> = (0..2 * h * w)
        .map(|i| match (i * 37) % 29 {
            0 => f32::NAN,
            r => (r % 4) as f32,
        })
        .collect();
    let x = Tensor::from_vec(data, (1, 2, h, w), &Device::Cpu).unwrap();
    for k in [3, 5, 13] {
        let square = Pool2d {
            kernel: (k, k),
            stride: (1, 1),
            padding: (k / 2, k / 2),
        };
        let separable = pooled_and_gradient(&x, |t| max_pool2d_same(t, k).unwrap());
        let direct = pooled_and_gradient(&x, |t| max_pool2d(t, square).unwrap());
        assert!(
            separable.0.iter().any(Option::is_none),
            "k={k}: some window holds a NaN"
        );
        assert_eq!(separable, direct, "k={k}");
    }
}

#[test]
fn bce_stays_finite_for_extreme_logits() {
    let x = Var::new(&[1000f32, -1000.0, 20.0, -110.0, 0.0], &Device::Cpu).unwrap();
    let t = Tensor::new(&[0f32, 1.0, 0.0, 0.0, 1.0], &Device::Cpu).unwrap();
    let loss = bce_with_logits(x.as_tensor(), &t).unwrap();
    let values = loss.to_vec1::<f32>().unwrap();
    assert_eq!(values[0], 1000.0);
    assert_eq!(values[1], 1000.0);
    assert!((values[2] - 20.0).abs() < 1e-5 && values[3].abs() < 1e-30);
    assert!((values[4] - std::f32::consts::LN_2).abs() < 1e-6);
    let grads = loss.sum_all().unwrap().backward().unwrap();
    let g = grads.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    assert_eq!(g[0], 1.0);
    assert_eq!(g[1], -1.0);
}

#[test]
fn bad_inputs_are_refused_with_a_message() {
    let x = ramp(&[1, 1, 2, 2]);
    let err = max_pool2d(
        &x,
        Pool2d {
            kernel: (5, 5),
            stride: (1, 1),
            padding: (0, 0),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("smaller than the window"), "{err}");
    let ints = Tensor::new(&[[[[1u32]]]], &Device::Cpu).unwrap();
    let err = resize_bilinear(&ints, (2, 2), false).unwrap_err();
    assert!(err.to_string().contains("unsupported dtype"), "{err}");
    let err = resize_bilinear(&ramp(&[4, 4]), (2, 2), false).unwrap_err();
    assert!(
        err.to_string().contains("rank") || err.to_string().contains("dims"),
        "{err}"
    );
}

#[test]
fn depthwise_conv_matches_candles_grouped_conv_and_its_gradients() {
    use candle_core::Var;
    use scfnet_ops::{depthwise_conv2d, DepthwiseConfig};
    for (k, stride, padding) in [(3, 1, 1), (5, 2, 2), (3, 2, 1), (5, 2, 1)] {
        let x = Var::from_tensor(
            &(ramp(&[2, 4, 9, 11])
                .sin()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()),
        )
        .unwrap();
        let w = Var::from_tensor(
            &(ramp(&[4, 1, k, k])
                .cos()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()),
        )
        .unwrap();
        let cfg = DepthwiseConfig { stride, padding };
        let ours = depthwise_conv2d(x.as_tensor(), w.as_tensor(), cfg).unwrap();
        let theirs = x
            .as_tensor()
            .conv2d(w.as_tensor(), padding, stride, 1, 4)
            .unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-12, "forward k{k} s{stride}");
        let weight = ramp(ours.dims()).to_dtype(DType::F64).unwrap();
        let ga = ours
            .mul(&weight)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb = theirs
            .mul(&weight)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(
            max_diff(
                ga.get(x.as_tensor()).unwrap(),
                gb.get(x.as_tensor()).unwrap()
            ) < 1e-9,
            "dx k{k} s{stride}"
        );
        assert!(
            max_diff(
                ga.get(w.as_tensor()).unwrap(),
                gb.get(w.as_tensor()).unwrap()
            ) < 1e-9,
            "dw k{k} s{stride}"
        );
    }
}

#[test]
fn im2col_conv_matches_candles_conv_and_its_gradients() {
    use candle_core::Var;
    use scfnet_ops::{conv2d_im2col, ConvGeometry};
    for (geometry, side) in [
        (3, 1, 1, 1, 4),
        (3, 1, 5, 5, 3),
        (3, 2, 1, 1, 2),
        (1, 1, 0, 1, 5),
        (3, 1, 1, 1, 1),
        (3, 1, 9, 9, 2), // dilation larger than the input: some taps see only padding
    ]
    .into_iter()
    // The CPU multiplies small maps for the whole batch at once and large ones image by image
    // (34×36 is above that limit for stride 1): both ways against candle.
    .flat_map(|geometry| [(12, 14), (34, 36)].map(|side| (geometry, side)))
    {
        let ((k, stride, padding, dilation, co), (h, w)) = (geometry, side);
        // Even sides: candle's own conv2d backward mis-sizes the input gradient for stride 2 on
        // odd sides (our op is checked there by finite differences).
        let x = Var::from_tensor(
            &ramp(&[2, 3, h, w])
                .sin()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap(),
        )
        .unwrap();
        let w = Var::from_tensor(
            &ramp(&[co, 3, k, k])
                .cos()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap(),
        )
        .unwrap();
        let b = Var::from_tensor(&ramp(&[co]).to_dtype(DType::F64).unwrap()).unwrap();
        let g = ConvGeometry {
            kernel: k,
            stride,
            padding,
            dilation,
        };
        let ours = conv2d_im2col(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), g).unwrap();
        let theirs = x
            .as_tensor()
            .conv2d(w.as_tensor(), padding, stride, dilation, 1)
            .unwrap()
            .broadcast_add(&b.as_tensor().reshape((1, co, 1, 1)).unwrap())
            .unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-12, "forward {g:?}");
        let weight = ramp(ours.dims())
            .sin()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap();
        let ga = ours
            .mul(&weight)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb = theirs
            .mul(&weight)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &w, &b] {
            assert!(
                max_diff(
                    ga.get(v.as_tensor()).unwrap(),
                    gb.get(v.as_tensor()).unwrap()
                ) < 1e-9,
                "grad {g:?}"
            );
        }
    }
}

#[test]
fn im2col_conv_on_maps_smaller_than_the_dilation() {
    // The student's context conv at stride 32 of a 64×64 input: 2×2 maps, dilation 5, padding 5.
    use scfnet_ops::{conv2d_im2col, ConvGeometry};
    let x = ramp(&[1, 2, 2, 2]).sin().unwrap();
    let w = ramp(&[3, 2, 3, 3]).cos().unwrap();
    let g = ConvGeometry {
        kernel: 3,
        stride: 1,
        padding: 5,
        dilation: 5,
    };
    let ours = conv2d_im2col(&x, &w, None, g).unwrap();
    let theirs = x.conv2d(&w, 5, 1, 5, 1).unwrap();
    let diff = (ours - theirs)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-6, "{diff}");
}

#[test]
fn depthwise_conv_with_stride_three_matches_candles_grouped_conv() {
    // The general column-phase split (strides 1 and 2 have their own); forward only, since
    // candle's grouped-convolution backward mis-sizes this case.
    use scfnet_ops::{depthwise_conv2d, DepthwiseConfig};
    let x = ramp(&[2, 4, 10, 11]).sin().unwrap();
    let w = ramp(&[4, 1, 3, 3]).cos().unwrap();
    for padding in [0, 1, 2] {
        let cfg = DepthwiseConfig { stride: 3, padding };
        let ours = depthwise_conv2d(&x, &w, cfg).unwrap();
        let theirs = x.conv2d(&w, padding, 3, 1, 4).unwrap();
        let diff = max_diff(&ours, &theirs);
        assert!(diff < 1e-5, "padding {padding}: {diff}");
    }
}

#[test]
fn depthwise_conv_on_wide_rows_matches_candles_grouped_conv() {
    // Rows wider than the unit tests above (45 columns; 23 at stride 2): long vector runs.
    use scfnet_ops::{depthwise_conv2d, DepthwiseConfig};
    let x = ramp(&[2, 3, 21, 45])
        .affine(0.01, 0.0)
        .unwrap()
        .sin()
        .unwrap();
    for (k, stride, padding) in [(3, 1, 1), (5, 1, 2), (3, 2, 1), (5, 2, 2)] {
        let w = ramp(&[3, 1, k, k]).cos().unwrap();
        let cfg = DepthwiseConfig { stride, padding };
        let ours = depthwise_conv2d(&x, &w, cfg).unwrap();
        let theirs = x.conv2d(&w, padding, stride, 1, 3).unwrap();
        assert_eq!(ours.dims(), theirs.dims());
        let diff = max_diff(&ours, &theirs);
        assert!(diff < 1e-5, "k{k} s{stride}: {diff}");
    }
}

#[test]
fn sgd_update_in_place_is_the_composition_bit_for_bit() {
    use scfnet_ops::{force_generic_path, sgd_momentum_update, SgdSettings};
    let run = |dtype: DType, weight_decay: f64, generic: bool| -> (Vec<f64>, Vec<f64>) {
        let _guard = generic.then(force_generic_path);
        let w0 = (ramp(&[3, 5, 7]).sin().unwrap() * 0.7).unwrap();
        let w = Var::from_tensor(&w0.to_dtype(dtype).unwrap()).unwrap();
        let mut v: Option<Tensor> = None;
        for step in 0..4 {
            let g = (ramp(&[3, 5, 7]) * (0.31 + step as f64))
                .unwrap()
                .cos()
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let settings = SgdSettings {
                momentum: 0.9,
                weight_decay,
                step: 0.064 * (1.0 + step as f64) * 0.1,
            };
            v = Some(sgd_momentum_update(&w, v.as_ref(), &g, settings).unwrap());
        }
        (values_f64(w.as_tensor()), values_f64(&v.unwrap()))
    };
    for dtype in [DType::F32, DType::F64] {
        for wd in [0.0, 5e-4] {
            let fused = run(dtype, wd, false);
            let composed = run(dtype, wd, true);
            assert_eq!(fused, composed, "{dtype:?} weight decay {wd}");
            assert!(fused.0.iter().all(|x| x.is_finite()));
        }
    }
}

/// Whether two tensors are views of one storage.
fn same_storage(a: &Tensor, b: &Tensor) -> bool {
    let (sa, _) = a.storage_and_layout();
    let (sb, _) = b.storage_and_layout();
    std::ptr::eq(&*sa, &*sb)
}

#[test]
fn candle_stores_a_first_gradient_without_a_zero_fill() {
    // Our candle-core patch (vendor/README.md): both operands of an addition receive the sum's
    // gradient itself, not each a copy made by adding it to zeros. Fails if the patch is lost.
    let a = Var::from_tensor(&ramp(&[3, 5])).unwrap();
    let b = Var::from_tensor(&ramp(&[3, 5]).cos().unwrap()).unwrap();
    let c = ramp(&[3, 5]).sin().unwrap();
    let loss = ((a.as_tensor() + b.as_tensor()).unwrap() * &c)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let (ga, gb) = (grads.get(&a).unwrap(), grads.get(&b).unwrap());
    assert!(same_storage(ga, gb));
    assert_eq!(max_diff(ga, &c), 0.0);
    // A strided first contribution (the gradient of a transpose) is stored contiguous, as before.
    let t = Var::from_tensor(&ramp(&[5, 3])).unwrap();
    let loss = (t.as_tensor().t().unwrap() * &c)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let gt = grads.get(&t).unwrap();
    assert!(gt.is_contiguous() && gt.layout().start_offset() == 0);
    assert_eq!(max_diff(gt, &c.t().unwrap()), 0.0);
}

/// `lhs · rhs` written out in f64, for `(B, M, K)` by `(B, K, N)` (a batch of 1 in `rhs` is
/// shared by every batch of `lhs`).
fn naive_matmul(lhs: &Tensor, rhs: &Tensor) -> Vec<f64> {
    let (rb, _, n) = rhs.dims3().unwrap();
    let l = lhs.to_dtype(DType::F64).unwrap().to_vec3::<f64>().unwrap();
    let r = rhs.to_dtype(DType::F64).unwrap().to_vec3::<f64>().unwrap();
    let mut out = Vec::new();
    for (bi, rows) in l.iter().enumerate() {
        let rr = &r[if rb == 1 { 0 } else { bi }];
        for row in rows {
            for j in 0..n {
                out.push(row.iter().zip(rr).map(|(a, rt)| a * rt[j]).sum());
            }
        }
    }
    out
}

#[test]
fn candle_matmul_writes_every_value_of_its_unfilled_output() {
    // Our candle-core patch, part 5 (vendor/README.md): the CPU matrix product's output is not
    // filled with zeros before gemm writes it. Every value must still be written: an empty inner
    // dimension (K = 0) gives zeros, a batch folded into the rows (a shared right operand), a
    // batched and a transposed operand give the product. Before each product a buffer of NaN of
    // the output's size is freed, so that a value gemm failed to write would likely be NaN.
    let cases: [(&[usize], &[usize], bool); 6] = [
        (&[1, 5, 0], &[1, 0, 7], false),
        (&[3, 4, 0], &[3, 0, 2], false),
        (&[1, 9, 6], &[1, 6, 11], false),
        (&[4, 9, 6], &[1, 6, 11], false),
        (&[4, 33, 17], &[4, 17, 65], false),
        (&[2, 8, 5], &[2, 12, 5], true),
    ];
    for (ls, rs, transpose) in cases {
        let lhs = ramp(ls).sin().unwrap();
        let rhs = ramp(rs).cos().unwrap();
        let rhs = if transpose {
            rhs.transpose(1, 2).unwrap()
        } else {
            rhs
        };
        let (b, m, _) = lhs.dims3().unwrap();
        let n = rhs.dim(2).unwrap();
        drop(Tensor::full(f32::NAN, (b, m, n), &Device::Cpu).unwrap());
        let got = if rs[0] == 1 && ls[0] > 1 {
            lhs.broadcast_matmul(&rhs.squeeze(0).unwrap()).unwrap()
        } else {
            lhs.matmul(&rhs).unwrap()
        };
        let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = naive_matmul(&lhs, &rhs);
        assert_eq!(got.len(), want.len(), "{ls:?} x {rs:?}");
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{ls:?} x {rs:?} (transposed: {transpose}): value {i} is {g}, not {w}"
            );
        }
    }
}

#[test]
fn candle_computes_no_gradient_for_operands_that_need_none() {
    // Our candle-core patch, part 3 (vendor/README.md): the contributions of a product, a matrix
    // product, a convolution and a concatenation to operands that lead to no variable (inputs,
    // constants, masks) are not computed; the variables' gradients are unchanged. Fails if the
    // patch is lost (unpatched candle stores a gradient for every operand).
    let w = Var::from_tensor(&ramp(&[4, 3, 3, 3])).unwrap();
    let image = ramp(&[2, 3, 6, 6]).sin().unwrap();
    let mask = ramp(&[2, 4, 6, 6]).cos().unwrap();
    let m = Var::from_tensor(&ramp(&[6, 6])).unwrap();
    let constant = ramp(&[6, 6]).sin().unwrap();
    let features = image.conv2d(w.as_tensor(), 1, 1, 1, 1).unwrap();
    let gated = (&features * &mask).unwrap();
    let projected = gated.broadcast_matmul(&constant).unwrap();
    let joined = Tensor::cat(&[&projected, &mask], 1).unwrap();
    let loss =
        (joined.sum_all().unwrap() + m.as_tensor().matmul(&constant).unwrap().sum_all()).unwrap();
    let grads = loss.backward().unwrap();
    for (name, t) in [("image", &image), ("mask", &mask), ("constant", &constant)] {
        assert!(grads.get(t).is_none(), "a gradient was computed for {name}");
    }
    // The variables' gradients, against sums written out: ∂/∂m = 1·constantᵀ (row sums of
    // constant, the same in every row), ∂/∂w from the convolution of the image with the gate.
    let ones = Tensor::ones((6, 6), DType::F32, &Device::Cpu).unwrap();
    let gm = ones.matmul(&constant.t().unwrap()).unwrap();
    assert!(max_diff(grads.get(&m).unwrap(), &gm) < 1e-5);
    let upstream = ones
        .matmul(&constant.t().unwrap())
        .unwrap()
        .broadcast_as((2, 4, 6, 6))
        .unwrap();
    let dy = (upstream * &mask).unwrap();
    let w_probe = Var::from_tensor(w.as_tensor()).unwrap();
    let probe = (image.conv2d(w_probe.as_tensor(), 1, 1, 1, 1).unwrap() * &dy)
        .unwrap()
        .sum_all()
        .unwrap();
    let expected = probe.backward().unwrap().get(&w_probe).unwrap().clone();
    let scale = expected
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    assert!(scale > 1.0 && max_diff(grads.get(&w).unwrap(), &expected) <= 1e-6 * scale);
}

#[test]
fn sgd_in_place_is_right_for_parameters_whose_gradients_share_storage() {
    // `a + b`: the two gradients are one tensor (above); the first velocities must still be
    // separate buffers, since the following updates write them in place.
    use scfnet_ops::{force_generic_path, sgd_momentum_update, SgdSettings};
    let run = |generic: bool| -> Vec<f64> {
        let _guard = generic.then(force_generic_path);
        let a = Var::from_tensor(&ramp(&[3, 5])).unwrap();
        let b = Var::from_tensor(&ramp(&[3, 5]).cos().unwrap()).unwrap();
        let (mut va, mut vb): (Option<Tensor>, Option<Tensor>) = (None, None);
        for step in 0..3 {
            let c = (ramp(&[3, 5]) * (0.3 + step as f64))
                .unwrap()
                .sin()
                .unwrap();
            let loss = ((a.as_tensor() + b.as_tensor()).unwrap() * &c)
                .unwrap()
                .sum_all()
                .unwrap();
            let grads = loss.backward().unwrap();
            let settings = SgdSettings {
                momentum: 0.9,
                weight_decay: 0.0,
                step: 0.1,
            };
            let ga = grads.get(&a).unwrap();
            let gb = grads.get(&b).unwrap();
            va = Some(sgd_momentum_update(&a, va.as_ref(), ga, settings).unwrap());
            vb = Some(sgd_momentum_update(&b, vb.as_ref(), gb, settings).unwrap());
        }
        [values_f64(a.as_tensor()), values_f64(b.as_tensor())].concat()
    };
    assert_eq!(run(false), run(true));
}

#[test]
fn gelu_forward_is_candles_gelu_erf_and_the_gradient_is_exact() {
    let x = ((ramp(&[4, 50]) * 0.037).unwrap().sin().unwrap() * 6.0).unwrap();
    for dtype in [DType::F32, DType::F64] {
        let x = x.to_dtype(dtype).unwrap();
        let ours = scfnet_ops::gelu_erf(&x).unwrap();
        let theirs = x.gelu_erf().unwrap();
        let tol = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
        assert!(max_diff(&ours, &theirs) <= tol, "{dtype:?}");
    }
    // d/dx at 0 is 1/2; at 1 it is Φ(1) + φ(1) = 0.8413447460685429 + 0.24197072451914337.
    let x = Var::from_tensor(&Tensor::new(&[0.0f64, 1.0], &Device::Cpu).unwrap()).unwrap();
    let g = scfnet_ops::gelu_erf(x.as_tensor())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let d = g.get(x.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
    assert!((d[0] - 0.5).abs() < 1e-15, "{d:?}");
    assert!(
        (d[1] - (0.841_344_746_068_542_9 + 0.241_970_724_519_143_37)).abs() < 1e-14,
        "{d:?}"
    );
}
