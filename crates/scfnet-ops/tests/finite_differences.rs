//! Every backward of scfnet-ops against central finite differences, in f64.

mod common;

use candle_core::{Device, Result, Tensor};
use common::{assert_close, autograd, numeric, values};
use scfnet_ops::{
    bce_with_logits, hard_sigmoid_paddle, hard_swish, max_pool2d, max_pool2d_same, resize_bilinear,
    Pool2d,
};

/// Checks autograd against finite differences for `f` at a random input of `shape`.
fn check(
    what: &str,
    shape: &[usize],
    seed: u64,
    scale: f64,
    f: &dyn Fn(&Tensor) -> Result<Tensor>,
) {
    let n: usize = shape.iter().product();
    let x = values(n, seed, scale);
    let probe = f(&Tensor::from_vec(x.clone(), shape, &Device::Cpu).unwrap()).unwrap();
    let weight = Tensor::from_vec(
        values(probe.elem_count(), seed + 1, 1.0),
        probe.shape(),
        &Device::Cpu,
    )
    .unwrap();
    let got = autograd(&x, shape, &weight, f);
    let want = numeric(&x, shape, &weight, 1e-6, f);
    assert_close(what, &got, &want, 1e-7);
}

#[test]
fn bilinear_resize_backward() {
    for (i, &(h, w, oh, ow)) in [
        (5, 7, 11, 9),
        (9, 8, 4, 5),
        (6, 6, 12, 12),
        (3, 5, 1, 7),
        (4, 4, 3, 3),
    ]
    .iter()
    .enumerate()
    {
        for ac in [false, true] {
            check(
                &format!("resize {h}x{w}->{oh}x{ow} ac={ac}"),
                &[2, 2, h, w],
                i as u64,
                2.0,
                &|x| resize_bilinear(x, (oh, ow), ac),
            );
        }
    }
}

#[test]
fn bilinear_resize_double_backward_is_the_forward() {
    // The adjoint's own backward is the forward resize: d/dg <adjoint(g), v> = resize(v).
    check("resize of resize", &[1, 2, 5, 6], 7, 1.0, &|x| {
        let up = resize_bilinear(x, (9, 4), false)?;
        resize_bilinear(&up, (5, 6), true)
    });
}

#[test]
fn max_pool_backward() {
    let pools = [
        Pool2d {
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
        },
        Pool2d {
            kernel: (2, 3),
            stride: (1, 2),
            padding: (1, 1),
        },
        Pool2d {
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
        },
    ];
    for (i, pool) in pools.into_iter().enumerate() {
        check(
            &format!("max-pool {pool:?}"),
            &[2, 2, 7, 8],
            20 + i as u64,
            3.0,
            &|x| max_pool2d(x, pool),
        );
    }
    check("max-pool same 5", &[1, 3, 6, 5], 30, 3.0, &|x| {
        max_pool2d_same(x, 5)
    });
}

#[test]
fn activation_backward() {
    // Random values in [-6, 6): the kinks (±3, ±2.5) are hit with probability zero.
    check("hard-swish", &[3, 40], 40, 6.0, &hard_swish);
    check("hard-sigmoid", &[3, 40], 41, 6.0, &hard_sigmoid_paddle);
}

#[test]
fn bce_backward_in_logits_and_targets() {
    let t = Tensor::from_vec(
        values(50, 51, 0.5)
            .iter()
            .map(|v| v + 0.5)
            .collect::<Vec<_>>(),
        50,
        &Device::Cpu,
    )
    .unwrap();
    check("bce d/dx", &[50], 50, 8.0, &|x| bce_with_logits(x, &t));
    let x = Tensor::from_vec(values(50, 52, 8.0), 50, &Device::Cpu).unwrap();
    check("bce d/dt", &[50], 53, 0.5, &|t| bce_with_logits(&x, t));
}

#[test]
fn depthwise_conv_backward() {
    use scfnet_ops::{depthwise_conv2d, DepthwiseConfig};
    for (i, &(k, stride, padding, h, w)) in [
        (3, 1, 1, 6, 7),
        (5, 2, 2, 9, 8),
        (3, 2, 1, 7, 7),
        (3, 1, 0, 5, 6),
    ]
    .iter()
    .enumerate()
    {
        let cfg = DepthwiseConfig { stride, padding };
        let wt = Tensor::from_vec(
            values(3 * k * k, 60 + i as u64, 1.0),
            (3, 1, k, k),
            &Device::Cpu,
        )
        .unwrap();
        check(
            &format!("depthwise d/dx k{k} s{stride} p{padding}"),
            &[2, 3, h, w],
            70 + i as u64,
            2.0,
            &|x| depthwise_conv2d(x, &wt, cfg),
        );
        let x = Tensor::from_vec(
            values(2 * 3 * h * w, 80 + i as u64, 2.0),
            (2, 3, h, w),
            &Device::Cpu,
        )
        .unwrap();
        check(
            &format!("depthwise d/dw k{k} s{stride} p{padding}"),
            &[3, 1, k, k],
            90 + i as u64,
            1.0,
            &|wt| depthwise_conv2d(&x, wt, cfg),
        );
    }
}

#[test]
fn im2col_backward() {
    use scfnet_ops::{conv2d_im2col, ConvGeometry};
    let g = ConvGeometry {
        kernel: 3,
        stride: 2,
        padding: 2,
        dilation: 2,
    };
    let w = Tensor::from_vec(values(2 * 3 * 9, 100, 1.0), (2, 3, 3, 3), &Device::Cpu).unwrap();
    check("im2col conv d/dx", &[1, 3, 7, 8], 101, 2.0, &|x| {
        conv2d_im2col(x, &w, None, g)
    });
}

#[test]
fn layer_norm_backward_in_input_weight_and_bias() {
    use scfnet_ops::layer_norm;
    let c = 37;
    let fixed = |seed: u64, shift: f64| {
        let v: Vec<f64> = values(c, seed, 1.0).iter().map(|x| x + shift).collect();
        Tensor::from_vec(v, c, &Device::Cpu).unwrap()
    };
    let (w, b) = (fixed(110, 1.0), fixed(111, 0.0));
    check("layer-norm d/dx", &[3, 2, c], 112, 2.0, &|x| {
        layer_norm(x, &w, Some(&b), 1e-5)
    });
    let x = Tensor::from_vec(values(4 * c, 113, 3.0), (4, c), &Device::Cpu).unwrap();
    check("layer-norm d/dweight", &[c], 114, 1.0, &|w| {
        layer_norm(&x, w, Some(&b), 1e-5)
    });
    check("layer-norm d/dbias", &[c], 115, 1.0, &|b| {
        layer_norm(&x, &w, Some(b), 1e-5)
    });
    check("layer-norm without bias d/dx", &[2, c], 116, 2.0, &|x| {
        layer_norm(x, &w, None, 1e-5)
    });
}

#[test]
fn softmax_backward() {
    use scfnet_ops::softmax_last_dim;
    for (i, &(n, scale)) in [(1, 1.0), (5, 2.0), (49, 6.0), (70, 20.0)]
        .iter()
        .enumerate()
    {
        check(
            &format!("softmax N={n}"),
            &[2, 3, n],
            120 + i as u64,
            scale,
            &softmax_last_dim,
        );
    }
}

#[test]
fn gelu_backward() {
    check("gelu", &[2, 3, 17], 130, 4.0, &scfnet_ops::gelu_erf);
}
