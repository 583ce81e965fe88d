//! One whole training step against the authors' Paddle code (`tests/reference/train/one_step.py`):
//! each network with the same synthetic weights, batch and mask, the authors' loss, backward and
//! one Paddle `Momentum` step with their parameter groups (backbone lr × 0.1, MobileNetV3
//! BatchNorm without decay), in f64. Every trainable tensor's update and every BatchNorm running
//! statistic's change are compared (1e-4 of the tensor's largest change), the losses to 1e-10.
//!
//! In CI: the student (full supervision, and distillation from the R50 teacher) and SCFNet-R50 on
//! 2×3×64×64. By hand (`cargo test --release -p scfnet-train --test one_step_parity -- --ignored`,
//! after `one_step.py --full`): SCFNet-R50 on 2×3×352×352 and SCFNet-Swin-B on 1×3×384×384
//! (stochastic depth off on both sides).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use scfnet_backbones::reference::{compare, read, MapSummary};
use scfnet_backbones::{synthetic_image, synthetic_values, synthetic_var_builder};
use scfnet_model::{ModelKind, Scfnet};
use scfnet_train::params::sorted_vars;
use scfnet_train::{Target, Teacher, TrainConfig, Trainer};
use serde::Deserialize;

#[derive(Deserialize)]
struct Param {
    lr_mult: f64,
    weight_decay: f64,
    delta: MapSummary,
}

#[derive(Deserialize)]
struct Case {
    input: String,
    shape: Vec<usize>,
    mask: Option<String>,
    epoch: Option<usize>,
    loss: f64,
    parts: Vec<f64>,
    params: HashMap<String, Param>,
    running_stats: HashMap<String, MapSummary>,
    teacher_p2: Option<MapSummary>,
}

#[derive(Deserialize)]
struct Reference {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    cases: HashMap<String, Case>,
}

/// `kind` on a var map holding the synthetic weights, in f64, without stochastic depth.
fn synthetic_trainer(config: TrainConfig) -> Trainer {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let net = Scfnet::new(
        config.model,
        VarBuilder::from_varmap(&varmap, DType::F64, &dev),
    )
    .unwrap();
    for (name, var) in sorted_vars(&varmap) {
        let v = synthetic_values(&name, var.dims());
        var.set(&Tensor::from_vec(v, var.dims(), &dev).unwrap())
            .unwrap();
    }
    Trainer::from_parts(config, varmap, net, &dev)
}

fn run(file: &str, case_name: &str, kind: ModelKind) {
    let r: Reference = read(env!("CARGO_MANIFEST_DIR"), file);
    let case = &r.cases[case_name];
    let config = TrainConfig {
        momentum: r.momentum,
        weight_decay: r.weight_decay,
        drop_path: 0.0,
        ..TrainConfig::paper(kind)
    };
    let mut trainer = synthetic_trainer(config);
    // The groups: every trainable tensor with the reference's multiplier and decay.
    let groups = trainer.optimizer().groups();
    let mut seen = 0;
    for (names, group) in trainer.param_names().iter().zip(groups) {
        for name in names {
            let p = case
                .params
                .get(name)
                .unwrap_or_else(|| panic!("{name} is not a parameter of the authors' network"));
            assert_eq!(group.lr_mult, p.lr_mult, "{name}: lr multiplier");
            assert_eq!(
                group.weight_decay, p.weight_decay as f32 as f64,
                "{name}: weight decay"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, case.params.len(), "trainable tensors");

    let dev = Device::Cpu;
    let x = synthetic_image(&case.input, &case.shape, DType::F64, &dev).unwrap();
    let before: HashMap<String, Tensor> = sorted_vars(trainer.varmap())
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().copy().unwrap()))
        .collect();
    let outcome = match (&case.mask, &case.teacher_p2) {
        (Some(mask), _) => {
            let m_shape = [case.shape[0], 1, case.shape[2], case.shape[3]];
            let m = ((synthetic_image(mask, &m_shape, DType::F64, &dev).unwrap() + 2.0).unwrap()
                / 4.0)
                .unwrap();
            let epoch = case.epoch.unwrap_or(0);
            trainer.step(&x, Target::Mask(&m), epoch, 0, r.lr).unwrap()
        }
        (None, Some(want_p2)) => {
            let (vb, _) = synthetic_var_builder(DType::F64, &dev);
            let teacher = Teacher::new(Scfnet::new(ModelKind::R50, vb).unwrap()).unwrap();
            let p2 = teacher.p2(&x).unwrap();
            compare("teacher p2", &p2, want_p2, 1e-10);
            trainer.step(&x, Target::Teacher(&p2), 0, 0, r.lr).unwrap()
        }
        _ => panic!("case {case_name} has neither mask nor teacher"),
    };
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
    assert!(
        rel(outcome.loss, case.loss) < 1e-10,
        "{case_name} loss {} vs {}",
        outcome.loss,
        case.loss
    );
    for (got, want) in outcome.parts.iter().zip(&case.parts) {
        assert!(rel(*got, *want) < 1e-10, "{case_name} part {got} vs {want}");
    }
    let (mut worst, mut worst_stat, mut stats) = (0.0f64, 0.0f64, 0);
    for (name, var) in sorted_vars(trainer.varmap()) {
        let delta = (var.as_tensor() - &before[&name]).unwrap();
        if let Some(p) = case.params.get(&name) {
            worst = worst.max(compare(
                &format!("{case_name} {name} update"),
                &delta,
                &p.delta,
                1e-4,
            ));
        } else {
            let want = case
                .running_stats
                .get(&name)
                .unwrap_or_else(|| panic!("{case_name}: {name} is not in the authors' network"));
            worst_stat = worst_stat.max(compare(
                &format!("{case_name} {name} change"),
                &delta,
                want,
                1e-4,
            ));
            stats += 1;
        }
    }
    assert_eq!(
        stats,
        case.running_stats.len(),
        "{case_name}: running statistics"
    );
    eprintln!(
        "{case_name}: loss {:.12} (authors {:.12}); {} parameter updates: max relative error \
         {worst:.2e}; {stats} running statistics: {worst_stat:.2e}",
        outcome.loss,
        case.loss,
        case.params.len()
    );
}

#[test]
fn full_supervision_step_matches_the_authors() {
    run("train/one_step.json", "fs", ModelKind::Student);
}

#[test]
fn distillation_step_matches_the_authors() {
    run("train/one_step.json", "kd", ModelKind::Student);
}

#[test]
fn r50_step_matches_the_authors() {
    run("train/one_step.json", "fs_r50_small", ModelKind::R50);
}

#[test]
#[ignore = "full size (~1 min in release): run by hand after one_step.py --full"]
fn r50_full_size_step_matches_the_authors() {
    run("train/one_step_full.json", "fs_r50", ModelKind::R50);
}

#[test]
#[ignore = "full size (~1 min and ~20 GB in release): run by hand after one_step.py --full"]
fn swinb_full_size_step_matches_the_authors() {
    run("train/one_step_full.json", "fs_swinb", ModelKind::SwinB);
}
