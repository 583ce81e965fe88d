//! The fused BatchNorm against `candle_nn::BatchNorm` in f64: outputs in training and eval mode,
//! the running statistics after a training step, and the gradients of x, γ and β.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{ModuleT, VarBuilder, VarMap};

fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let scale = b.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / scale)
        .fold(0.0, f64::max)
}

/// Two BatchNorms with the same random γ, β and running statistics.
fn pair(c: usize) -> (VarMap, scfnet_ops::BatchNorm, VarMap, candle_nn::BatchNorm) {
    let dev = Device::Cpu;
    let ours_map = VarMap::new();
    let ours = scfnet_ops::batch_norm(
        c,
        1e-5,
        VarBuilder::from_varmap(&ours_map, DType::F64, &dev),
    )
    .unwrap();
    let theirs_map = VarMap::new();
    let theirs = candle_nn::batch_norm(
        c,
        1e-5,
        VarBuilder::from_varmap(&theirs_map, DType::F64, &dev),
    )
    .unwrap();
    for (i, name) in ["weight", "bias", "running_mean", "running_var"]
        .iter()
        .enumerate()
    {
        let v = Tensor::rand(0.5f64, 1.5, c, &dev).unwrap();
        let v = if i == 1 || i == 2 {
            (v - 1.0).unwrap()
        } else {
            v
        };
        for map in [&ours_map, &theirs_map] {
            map.data().lock().unwrap()[*name].set(&v).unwrap();
        }
    }
    (ours_map, ours, theirs_map, theirs)
}

#[test]
fn training_step_matches_candle_nn() {
    let dev = Device::Cpu;
    let (ours_map, ours, theirs_map, theirs) = pair(5);
    let x0 =
        ((Tensor::randn(0f64, 1.0, (3, 5, 7, 6), &dev).unwrap() * 3.0).unwrap() + 2.0).unwrap();
    let r = Tensor::randn(0f64, 1.0, (3, 5, 7, 6), &dev).unwrap();
    let mut grads = Vec::new();
    let mut outs = Vec::new();
    for (map, bn) in [
        (&ours_map, &ours as &dyn ModuleT),
        (&theirs_map, &theirs as &dyn ModuleT),
    ] {
        let x = Var::from_tensor(&x0).unwrap();
        let y = bn.forward_t(x.as_tensor(), true).unwrap();
        let loss = (&y * &r).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let vars = map.data().lock().unwrap();
        grads.push([
            g.get(x.as_tensor()).unwrap().clone(),
            g.get(vars["weight"].as_tensor()).unwrap().clone(),
            g.get(vars["bias"].as_tensor()).unwrap().clone(),
        ]);
        outs.push([
            y,
            vars["running_mean"].as_tensor().clone(),
            vars["running_var"].as_tensor().clone(),
        ]);
    }
    for (what, a, b) in [
        ("output", &outs[0][0], &outs[1][0]),
        ("running mean", &outs[0][1], &outs[1][1]),
        ("running var", &outs[0][2], &outs[1][2]),
        ("dx", &grads[0][0], &grads[1][0]),
        ("dgamma", &grads[0][1], &grads[1][1]),
        ("dbeta", &grads[0][2], &grads[1][2]),
    ] {
        let e = max_rel(a, b);
        assert!(e < 1e-10, "{what}: relative error {e:.2e}");
    }
    // The running statistics really moved.
    assert!(max_rel(&outs[0][1], &Tensor::zeros(5, DType::F64, &dev).unwrap()) > 0.0);
}

#[test]
fn eval_mode_matches_candle_nn_with_gradients_and_f32_works() {
    let dev = Device::Cpu;
    let (_, ours, _, theirs) = pair(4);
    let x0 = Tensor::randn(0f64, 2.0, (2, 4, 5, 3), &dev).unwrap();
    let r = Tensor::randn(0f64, 1.0, (2, 4, 5, 3), &dev).unwrap();
    let mut results = Vec::new();
    for bn in [&ours as &dyn ModuleT, &theirs as &dyn ModuleT] {
        let x = Var::from_tensor(&x0).unwrap();
        let y = bn.forward_t(x.as_tensor(), false).unwrap();
        let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        results.push((y, g.get(x.as_tensor()).unwrap().clone()));
    }
    let e = max_rel(&results[0].0, &results[1].0);
    assert!(e < 1e-12, "eval: {e:.2e}");
    let e = max_rel(&results[0].1, &results[1].1);
    assert!(e < 1e-12, "eval dx: {e:.2e}");
    // f32 training mode runs and normalises.
    let map = VarMap::new();
    let bn =
        scfnet_ops::batch_norm(4, 1e-5, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
    let x = (Tensor::randn(0f32, 1.0, (2, 4, 5, 3), &dev).unwrap() * 4.0).unwrap();
    let y = bn.forward_t(&x, true).unwrap();
    let mean = y.mean_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(mean.abs() < 1e-5, "{mean}");
}

/// A BatchNorm of ours on 5 channels in `dtype` with fixed non-trivial γ, β and running statistics.
fn fixed(dtype: DType) -> (VarMap, scfnet_ops::BatchNorm) {
    let dev = Device::Cpu;
    let map = VarMap::new();
    let bn = scfnet_ops::batch_norm(5, 1e-5, VarBuilder::from_varmap(&map, dtype, &dev)).unwrap();
    for (i, name) in ["weight", "bias", "running_mean", "running_var"]
        .iter()
        .enumerate()
    {
        let v: Vec<f64> = (0..5).map(|c| 0.5 + 0.3 * ((c + i) as f64).sin()).collect();
        let v = Tensor::from_vec(v, 5, &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        map.data().lock().unwrap()[*name].set(&v).unwrap();
    }
    (map, bn)
}

#[test]
fn the_residual_op_is_the_composition_of_its_parts() {
    use scfnet_ops::Activation;
    let dev = Device::Cpu;
    for dtype in [DType::F64, DType::F32] {
        let tolerance = if dtype == DType::F64 { 1e-12 } else { 1e-5 };
        let x0 = ((Tensor::randn(0f64, 1.0, (3, 5, 7, 6), &dev).unwrap() * 3.0).unwrap() + 2.0)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let r0 = Tensor::randn(0f64, 1.0, (3, 5, 7, 6), &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let w = Tensor::randn(0f64, 1.0, (3, 5, 7, 6), &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        for act in [Activation::None, Activation::Relu] {
            let (map, bn) = fixed(dtype);
            let mut runs = Vec::new();
            for fused in [true, false] {
                let (x, r) = (
                    Var::from_tensor(&x0).unwrap(),
                    Var::from_tensor(&r0).unwrap(),
                );
                let y = if fused {
                    bn.forward_t_residual(x.as_tensor(), r.as_tensor(), act, true)
                } else {
                    act.apply(
                        &(bn.forward_t(x.as_tensor(), true).unwrap() + r.as_tensor()).unwrap(),
                    )
                }
                .unwrap();
                let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                let vars = map.data().lock().unwrap();
                let grad = |t: &Tensor| g.get(t).unwrap().to_dtype(DType::F64).unwrap();
                runs.push([
                    y.to_dtype(DType::F64).unwrap(),
                    grad(x.as_tensor()),
                    grad(r.as_tensor()),
                    grad(vars["weight"].as_tensor()),
                    grad(vars["bias"].as_tensor()),
                ]);
            }
            // The same roundings in the same order: the output is bit for bit the composition's.
            let e = max_rel(&runs[0][0], &runs[1][0]);
            assert_eq!(e, 0.0, "{dtype:?} {act:?} output");
            for (i, what) in ["dx", "dresidual", "dgamma", "dbeta"].iter().enumerate() {
                let e = max_rel(&runs[0][i + 1], &runs[1][i + 1]);
                assert!(
                    e < tolerance,
                    "{dtype:?} {act:?} {what}: relative error {e:.2e}"
                );
            }
            if act == Activation::Relu {
                // The ReLU cut something off, so its slope was exercised.
                let zeros = runs[0][0].eq(0.0).unwrap().to_dtype(DType::F64).unwrap();
                assert!(zeros.sum_all().unwrap().to_scalar::<f64>().unwrap() > 10.0);
            }
        }
    }
}
