//! The training loop on a tiny synthetic set: resuming gives bit-identical weights, a NaN loss
//! stops the run naming step and part and leaves the last checkpoint intact, the log has a line
//! per step, and distillation runs on unlabeled images.

use std::path::Path;

use candle_core::{DType, Device};
use scfnet_data::synth::{generate, SynthConfig};
use scfnet_data::SodDataset;
use scfnet_model::ModelKind;
use scfnet_train::{checkpoint, fit, FitOptions, Teacher, TrainConfig, TrainError, Trainer};

fn synth(dir: &Path) -> SodDataset {
    let cfg = SynthConfig {
        count: 6,
        seed: 5,
        side: (64, 80),
        test_fraction: 0.0,
        clutter: 0,
    };
    generate(dir, &cfg, || {}).unwrap();
    SodDataset::labeled(dir, None).unwrap()
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 2,
        batch: 3,
        sizes: vec![scfnet_model::InputSide::new(64).unwrap()],
        warmup_epochs: 1.0,
        test_size: scfnet_model::InputSide::new(64).unwrap(),
        seed: 17,
        ..TrainConfig::paper(ModelKind::Student)
    }
}

fn options(out: &Path) -> FitOptions {
    FitOptions {
        out: out.to_owned(),
        resume: false,
        validation: Vec::new(),
        validate_every: 1,
        stop_after_epochs: None,
        max_steps: None,
        progress: None,
        workers: 2,
        checkpoint_every: 0,
    }
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

#[test]
fn two_epochs_equal_one_plus_resume_bit_for_bit() {
    let data_dir = tempfile::tempdir().unwrap();
    let data = synth(data_dir.path());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dev = Device::Cpu;

    let mut straight = Trainer::fresh(config(), &dev, DType::F32).unwrap();
    let s = fit(&mut straight, data.clone(), None, &mut options(a.path())).unwrap();
    assert_eq!((s.steps, s.epochs_done), (4, 2));

    let mut first = Trainer::fresh(config(), &dev, DType::F32).unwrap();
    let mut half = FitOptions {
        stop_after_epochs: Some(1),
        max_steps: None,
        ..options(b.path())
    };
    let s1 = fit(&mut first, data.clone(), None, &mut half).unwrap();
    assert_eq!((s1.steps, s1.epochs_done), (2, 1));
    assert_ne!(weights(a.path()), weights(b.path()));
    // A new process would build a fresh trainer and resume.
    let mut second = Trainer::fresh(config(), &dev, DType::F32).unwrap();
    // Run-time settings may change on resume (they are not part of the recipe).
    let mut resume = FitOptions {
        resume: true,
        workers: 1,
        checkpoint_every: 1,
        ..options(b.path())
    };
    let s2 = fit(&mut second, data, None, &mut resume).unwrap();
    assert_eq!((s2.steps, s2.epochs_done), (4, 2));
    assert_eq!(
        weights(a.path()),
        weights(b.path()),
        "resumed weights differ"
    );

    // One JSON line per step, steps 0..4, in both logs.
    for dir in [a.path(), b.path()] {
        let log = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
        let steps: Vec<u64> = log
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter_map(|v| v["step"].as_u64().filter(|_| v.get("loss").is_some()))
            .collect();
        assert_eq!(steps, [0, 1, 2, 3]);
    }
    let state = checkpoint::read_state(&checkpoint::latest(b.path()).unwrap().unwrap()).unwrap();
    assert_eq!((state.epoch, state.step), (2, 4));
}

#[test]
fn a_nan_loss_stops_and_no_checkpoint_keeps_the_diverged_weights() {
    let data_dir = tempfile::tempdir().unwrap();
    let data = synth(data_dir.path());
    let out = tempfile::tempdir().unwrap();
    // One batch an epoch; an absurd learning rate wrecks the weights in the first update.
    let cfg = TrainConfig {
        batch: 6,
        epochs: 3,
        max_lr: 1e30,
        min_lr: 1e30,
        ..config()
    };
    let mut t = Trainer::fresh(cfg, &Device::Cpu, DType::F32).unwrap();
    let err = fit(&mut t, data, None, &mut options(out.path())).unwrap_err();
    match &err {
        // The loss of step 1, from the weights of the first update (the checkpoint written with
        // them at the end of epoch 0 is removed again) ...
        TrainError::NonFinite { step, part, .. } => {
            assert_eq!(*step, 1);
            assert!(part.starts_with('p') || part == "total", "{part}");
        }
        // ... or those weights themselves, refused before the checkpoint is written.
        TrainError::NonFiniteWeights { step, .. } => assert_eq!(*step, 1),
        other => panic!("expected a non-finite loss or weights, got {other}"),
    }
    assert!(err.to_string().contains("step 1"), "{err}");
    assert!(checkpoint::latest(out.path()).unwrap().is_none());
    assert!(!out.path().join("model.safetensors").exists());
}

#[test]
fn distillation_trains_the_student_on_unlabeled_images() {
    let data_dir = tempfile::tempdir().unwrap();
    synth(data_dir.path());
    let unlabeled = SodDataset::unlabeled(data_dir.path().join("image")).unwrap();
    let dev = Device::Cpu;
    // A (random) student as the frozen teacher: only the mechanics are under test here.
    let teacher_trainer = Trainer::fresh(
        TrainConfig {
            seed: 99,
            ..config()
        },
        &dev,
        DType::F32,
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let teacher_file = out.path().join("teacher.safetensors");
    teacher_trainer.varmap().save(&teacher_file).unwrap();
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(&[&teacher_file], DType::F32, &dev).unwrap()
    };
    let teacher = Teacher::new(scfnet_model::Scfnet::new(ModelKind::Student, vb).unwrap()).unwrap();
    let mut student = Trainer::fresh(
        TrainConfig {
            epochs: 1,
            ..config()
        },
        &dev,
        DType::F32,
    )
    .unwrap();
    let s = fit(
        &mut student,
        unlabeled.clone(),
        Some(&teacher),
        &mut options(out.path()),
    )
    .unwrap();
    assert_eq!(s.steps, 2);
    assert!(s.last_epoch_loss.is_finite() && s.last_epoch_loss > 0.0);
    // Full supervision refuses data without masks.
    let mut fs = Trainer::fresh(config(), &dev, DType::F32).unwrap();
    let other = tempfile::tempdir().unwrap();
    let e = fit(&mut fs, unlabeled, None, &mut options(other.path())).unwrap_err();
    assert!(e.to_string().contains("needs masks"), "{e}");
}

/// The frozen teacher runs folded (each BatchNorm inside its convolution): its `p2` equals the
/// unfolded network's eval-mode `p2` up to f32 rounding, with running statistics far from their
/// initial 0 and 1 so that the fold has something to fold.
#[test]
fn the_frozen_teacher_gives_the_unfolded_networks_map() {
    let dev = Device::Cpu;
    let trainer = Trainer::fresh(
        TrainConfig {
            seed: 7,
            ..config()
        },
        &dev,
        DType::F32,
    )
    .unwrap();
    let mut moved = 0;
    for (name, var) in trainer.varmap().data().lock().unwrap().iter() {
        let shape = var.as_tensor().shape().clone();
        let value = if name.ends_with("mean") {
            candle_core::Tensor::rand(-0.5f32, 0.5, shape, &dev)
        } else if name.ends_with("var") || name.ends_with("variance") {
            candle_core::Tensor::rand(0.3f32, 2.0, shape, &dev)
        } else {
            continue;
        };
        var.set(&value.unwrap()).unwrap();
        moved += 1;
    }
    assert!(moved > 40, "running statistics found: {moved}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("teacher.safetensors");
    trainer.varmap().save(&file).unwrap();
    let net = || {
        let vb =
            unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&[&file], DType::F32, &dev) };
        scfnet_model::Scfnet::new(ModelKind::Student, vb.unwrap()).unwrap()
    };
    let teacher = Teacher::new(net()).unwrap();
    let x = candle_core::Tensor::randn(0f32, 1.0, (2, 3, 64, 64), &dev).unwrap();
    let folded = teacher.p2(&x).unwrap();
    let unfolded = net().side_outputs(&x, false).unwrap().p2;
    let scale = unfolded.abs().unwrap().max_all().unwrap();
    let diff = (folded - &unfolded)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    let (scale, diff) = (
        scale.to_scalar::<f32>().unwrap(),
        diff.to_scalar::<f32>().unwrap(),
    );
    assert!(scale > 0.1, "a map to compare: largest logit {scale}");
    assert!(
        diff <= 1e-4 * scale,
        "folded vs unfolded: {diff} (largest logit {scale})"
    );
}

#[test]
fn validation_runs_every_nth_epoch_and_after_the_last() {
    let data_dir = tempfile::tempdir().unwrap();
    let data = synth(data_dir.path());
    let out = tempfile::tempdir().unwrap();
    let mut t = Trainer::fresh(
        TrainConfig {
            epochs: 5,
            batch: 6,
            ..config()
        },
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let mut opts = FitOptions {
        validation: vec![("held".into(), data.clone())],
        validate_every: 2,
        ..options(out.path())
    };
    let s = fit(&mut t, data, None, &mut opts).unwrap();
    let epochs: Vec<usize> = s.validation.iter().map(|v| v.epoch).collect();
    assert_eq!(epochs, [1, 3, 4]);
    let log = std::fs::read_to_string(out.path().join("log.jsonl")).unwrap();
    assert_eq!(log.matches("\"validation\"").count(), 3, "{log}");
}
