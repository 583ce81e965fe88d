//! scfnet-ops against PyTorch: outputs and gradients of `sum(op(x) * weight)`.
//!
//! `tests/reference/ops/make_reference.py` (run by hand) computed the expected values in float64
//! with PyTorch 2.15; they are in `tests/data/ops/expected.json`. Checked in f64 (≤ 1e-12) and in
//! f32 (≤ 1e-5 relative), the precision the networks run at.

mod common;

use candle_core::{DType, Device, Result, Tensor};
use common::{assert_close, autograd};
use scfnet_ops::{bce_with_logits, hard_sigmoid, hard_swish, max_pool2d, resize_bilinear, Pool2d};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    op: String,
    params: serde_json::Value,
    shape: Vec<usize>,
    x: Vec<f64>,
    out_shape: Vec<usize>,
    out: Vec<f64>,
    weight: Vec<f64>,
    grad_x: Vec<f64>,
    t: Option<Vec<f64>>,
    grad_t: Option<Vec<f64>>,
}

fn expected() -> Expected {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/ops/expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A unary op under test.
type Op<'a> = Box<dyn Fn(&Tensor) -> Result<Tensor> + 'a>;

/// The op of a case as a function of its first input.
fn op_of<'a>(case: &'a Case, t: Option<&'a Tensor>) -> Op<'a> {
    let p = &case.params;
    match case.op.as_str() {
        "resize" => {
            let size = (
                p["size"][0].as_u64().unwrap() as usize,
                p["size"][1].as_u64().unwrap() as usize,
            );
            let ac = p["align_corners"].as_bool().unwrap();
            Box::new(move |x| resize_bilinear(x, size, ac))
        }
        "maxpool" => {
            let (k, s, pad) = (
                p["kernel"].as_u64().unwrap() as usize,
                p["stride"].as_u64().unwrap() as usize,
                p["padding"].as_u64().unwrap() as usize,
            );
            Box::new(move |x| {
                max_pool2d(
                    x,
                    Pool2d {
                        kernel: (k, k),
                        stride: (s, s),
                        padding: (pad, pad),
                    },
                )
            })
        }
        "hardswish" => Box::new(hard_swish),
        "hardsigmoid" => {
            let (slope, offset) = (p["slope"].as_f64().unwrap(), p["offset"].as_f64().unwrap());
            Box::new(move |x| hard_sigmoid(x, slope, offset))
        }
        "bce" => {
            let t = t.expect("bce cases have targets");
            Box::new(move |x| bce_with_logits(x, t))
        }
        other => panic!("unknown op {other}"),
    }
}

#[test]
fn outputs_and_gradients_match_pytorch_in_f64() {
    let exp = expected();
    assert!(exp.cases.len() >= 15);
    let dev = Device::Cpu;
    for case in &exp.cases {
        let t = case
            .t
            .as_ref()
            .map(|t| Tensor::from_vec(t.clone(), case.shape.as_slice(), &dev).unwrap());
        let f = op_of(case, t.as_ref());
        let x = Tensor::from_vec(case.x.clone(), case.shape.as_slice(), &dev).unwrap();
        let y = f(&x).unwrap();
        assert_eq!(
            y.dims(),
            case.out_shape.as_slice(),
            "{}: output shape",
            case.name
        );
        assert_close(
            &format!("{} out", case.name),
            &y.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            &case.out,
            1e-12,
        );
        let w = Tensor::from_vec(case.weight.clone(), case.out_shape.as_slice(), &dev).unwrap();
        let g = autograd(&case.x, &case.shape, &w, &*f);
        assert_close(&format!("{} grad", case.name), &g, &case.grad_x, 1e-12);
        if let (Some(tv), Some(grad_t)) = (&case.t, &case.grad_t) {
            // Gradient with respect to the targets, logits fixed.
            let g = autograd(tv, &case.shape, &w, &|t| bce_with_logits(&x, t));
            assert_close(&format!("{} grad_t", case.name), &g, grad_t, 1e-12);
        }
    }
}

#[test]
fn outputs_and_gradients_match_pytorch_in_f32() {
    let exp = expected();
    let dev = Device::Cpu;
    for case in exp.cases.iter().filter(|c| c.op != "bce") {
        let f = op_of(case, None);
        let x = Tensor::from_vec(case.x.clone(), case.shape.as_slice(), &dev)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let var = candle_core::Var::from_tensor(&x).unwrap();
        let y = f(var.as_tensor()).unwrap();
        let w = Tensor::from_vec(case.weight.clone(), case.out_shape.as_slice(), &dev)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let grads = y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
        let to64 = |t: &Tensor| {
            t.flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        };
        assert_close(
            &format!("{} out f32", case.name),
            &to64(&y),
            &case.out,
            1e-5,
        );
        assert_close(
            &format!("{} grad f32", case.name),
            &to64(grads.get(var.as_tensor()).unwrap()),
            &case.grad_x,
            1e-5,
        );
    }
}
