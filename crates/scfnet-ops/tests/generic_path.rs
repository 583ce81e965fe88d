//! The device-generic path of every op (what runs on CUDA) against the CPU kernels, forced on
//! the CPU with `force_generic_path`: forward values and the gradients of every input, in f64
//! (to 1e-10) and f32 (to 1e-5), over the cases of `scfnet_ops::check` (ties for the max-pool's
//! first-maximum rule, non-square inputs, strides and dilations).

use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use scfnet_ops::check::{
    evaluate, max_labelled_difference, max_relative_difference, op_cases, update_cases,
};
use scfnet_ops::{force_generic_path, uses_cpu_kernels};

#[test]
fn every_op_generic_equals_kernels() {
    let cases = op_cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let probe = Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap();
    for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-5)] {
        for case in &cases {
            assert!(uses_cpu_kernels(&probe));
            let kernels = evaluate(case, &Device::Cpu, dtype).unwrap();
            let generic = {
                let _guard = force_generic_path();
                assert!(!uses_cpu_kernels(&probe));
                evaluate(case, &Device::Cpu, dtype).unwrap()
            };
            let (err, at) = max_relative_difference(&kernels, &generic);
            assert!(
                err <= tol,
                "{} {dtype:?}: {at} differs by {err:.1e} (> {tol:.0e})",
                case.name
            );
        }
    }
    assert!(uses_cpu_kernels(&probe), "the guard restores the setting");
}

#[test]
fn every_update_generic_equals_kernels_bit_for_bit() {
    let cases = update_cases();
    assert!(!cases.is_empty());
    for dtype in [DType::F64, DType::F32] {
        for case in &cases {
            let kernels = (case.run)(&Device::Cpu, dtype).unwrap();
            let generic = {
                let _guard = force_generic_path();
                (case.run)(&Device::Cpu, dtype).unwrap()
            };
            let (err, at) = max_labelled_difference(&kernels, &generic);
            assert!(
                err == 0.0,
                "{} {dtype:?}: {at} differs by {err:.1e}",
                case.name
            );
            // The updates moved the weights and made velocities.
            let moved = kernels.iter().all(|(_, v)| v.iter().any(|x| *x != 0.0));
            assert!(moved && kernels.len() == 2, "{}", case.name);
            let mut wrong = kernels.clone();
            wrong[1].1[7] += 1e-9;
            assert!(max_labelled_difference(&kernels, &wrong).1 == "velocities");
        }
    }
}

#[test]
fn a_wrong_generic_path_would_be_caught() {
    // The harness is sensitive: a 1e-6 change of one gradient value is reported.
    let case = &op_cases()[0];
    let a = evaluate(case, &Device::Cpu, DType::F64).unwrap();
    let mut b = a.clone();
    b[1][3] += 1e-6;
    let (err, at) = max_relative_difference(&a, &b);
    assert!(err > 1e-7 && at == "gradient 0", "{err} at {at}");
}

#[test]
fn batch_norm_running_statistics_agree() {
    let x = Tensor::rand(-2f64, 2.0, (3, 4, 5, 6), &Device::Cpu).unwrap();
    let stats = |generic: bool| -> Vec<f64> {
        let _guard = generic.then(force_generic_path);
        let map = VarMap::new();
        let bn = scfnet_ops::batch_norm(
            4,
            1e-5,
            VarBuilder::from_varmap(&map, DType::F64, &Device::Cpu),
        )
        .unwrap();
        bn.forward_t(&x, true).unwrap();
        let data = map.data().lock().unwrap();
        ["running_mean", "running_var"]
            .iter()
            .flat_map(|n| data[*n].as_tensor().to_vec1::<f64>().unwrap())
            .collect()
    };
    let (a, b) = (stats(false), stats(true));
    assert!(
        a.iter().any(|v| (v - 1.0).abs() > 1e-3 && *v != 0.0),
        "statistics moved"
    );
    for (x, y) in a.iter().zip(&b) {
        assert!(
            (x - y).abs() <= 1e-12 * x.abs().max(1.0),
            "running statistics {x} vs {y}"
        );
    }
}
