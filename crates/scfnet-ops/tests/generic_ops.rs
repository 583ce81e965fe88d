//! `set_generic_ops`: a family turned off runs its composition of candle primitives (the
//! values of `force_generic_path`, bit for bit) while the other families keep their kernels.
//! One test in its own process: the setting is process-wide.

use candle_core::{DType, Device};
use scfnet_ops::check::{evaluate, op_cases, update_cases, OpCase};
use scfnet_ops::{force_generic_path, generic_ops, set_generic_ops, OpFamily};

fn run(case: &OpCase) -> Vec<Vec<f64>> {
    evaluate(case, &Device::Cpu, DType::F32).unwrap()
}

#[test]
fn a_generic_family_takes_its_composition_and_only_it() {
    let cases = op_cases();
    // Every family has its cases (SGD: the update case below); the ops without one are those
    // whose only kernel is the CPU's.
    for c in cases.iter().filter(|c| c.family.is_none()) {
        assert!(
            c.name.starts_with("resize") || c.name.starts_with("bce"),
            "{}",
            c.name
        );
    }
    let mut distinguished = Vec::new();
    for fam in OpFamily::ALL {
        // `conv2d` of a candle module is candle's own convolution on the CPU (not a kernel of
        // this crate, so no setting changes it there); `conv2d-im2col` is the family's path.
        let mine: Vec<&OpCase> = cases
            .iter()
            .filter(|c| c.family == Some(fam) && !c.name.starts_with("conv2d module"))
            .collect();
        if fam == OpFamily::Sgd {
            assert!(mine.is_empty());
            continue;
        }
        assert!(!mine.is_empty(), "{fam}: no op case");
        for case in mine {
            let kernels = run(case);
            let composed = {
                let _guard = force_generic_path();
                run(case)
            };
            set_generic_ops(&OpFamily::ALL);
            let all_off = run(case);
            set_generic_ops(&[fam]);
            let got = run(case);
            let others: Vec<OpFamily> = OpFamily::ALL.into_iter().filter(|&f| f != fam).collect();
            set_generic_ops(&others);
            let others_off = run(case);
            set_generic_ops(&[]);
            assert_eq!(all_off, composed, "{}: every family off", case.name);
            // A BatchNorm fused with an activation involves a second family (the activation's
            // kernel once the BatchNorm is composed): checked with every family off only.
            if !case.name.contains(" + ") {
                assert_eq!(got, composed, "{}: {fam} off is its composition", case.name);
                assert_eq!(
                    others_off, kernels,
                    "{}: the others off leave {fam}",
                    case.name
                );
            }
            if kernels != composed && !distinguished.contains(&fam) {
                distinguished.push(fam);
            }
        }
    }
    assert!(generic_ops().is_empty());
    // The families whose kernels round differently from their composition somewhere in the
    // cases: for them the test above tells the two paths apart. The heads and the windows are
    // copies of values, the same on both paths, so the setting cannot change their results.
    eprintln!("told apart: {distinguished:?}");
    for fam in [
        OpFamily::Activation,
        OpFamily::BatchNorm,
        OpFamily::Convolution,
        OpFamily::Depthwise,
        OpFamily::Gelu,
        OpFamily::LayerNorm,
        OpFamily::MaxPool,
        OpFamily::Softmax,
    ] {
        assert!(distinguished.contains(&fam), "{fam} not told apart");
    }

    // SGD: its kernel rounds as the composition, so both give the same weights; the setting
    // must not change them.
    let sgd = &update_cases()[0];
    assert_eq!(sgd.family, OpFamily::Sgd);
    let kernels = (sgd.run)(&Device::Cpu, DType::F32).unwrap();
    set_generic_ops(&[OpFamily::Sgd]);
    let composed = (sgd.run)(&Device::Cpu, DType::F32).unwrap();
    set_generic_ops(&[]);
    assert_eq!(kernels, composed);
}
