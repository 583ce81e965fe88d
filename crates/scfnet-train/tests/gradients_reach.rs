//! One training step's backward reaches every trainable tensor of each network: the
//! backbone included (Swin-B's attention softmax and LayerNorms must not cut the graph, as
//! candle's fused no-backward kernels would), on the CPU kernels and on the device-generic path.

use candle_core::{DType, Device, Tensor};
use scfnet_model::ModelKind;
use scfnet_train::params::{is_running_stat, sorted_vars};
use scfnet_train::{supervised_loss, TrainConfig, Trainer};

fn tensors_without_gradient(kind: ModelKind) -> (usize, Vec<String>) {
    let config = TrainConfig {
        batch: 2,
        sizes: vec![scfnet_model::InputSide::new(64).unwrap()],
        // Deterministic: no stochastic depth.
        drop_path: 0.0,
        ..TrainConfig::paper(kind)
    };
    let trainer = Trainer::fresh(config, &Device::Cpu, DType::F32).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 3, 64, 64), &Device::Cpu).unwrap();
    let mask = Tensor::rand(0f32, 1.0, (2, 1, 64, 64), &Device::Cpu)
        .unwrap()
        .ge(0.5)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let out = trainer.net().side_outputs(&x, true).unwrap();
    let (total, _) = supervised_loss(out.as_array(), &mask, 0).unwrap();
    let grads = total.backward().unwrap();
    let mut trainable = 0;
    let mut missing = Vec::new();
    for (name, var) in sorted_vars(trainer.varmap()) {
        if is_running_stat(&name) {
            continue;
        }
        trainable += 1;
        let reached = grads.get(var.as_tensor()).is_some_and(|g| {
            g.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        });
        if !reached {
            missing.push(name);
        }
    }
    (trainable, missing)
}

fn check(kind: ModelKind) {
    for generic in [false, true] {
        let _guard = generic.then(scfnet_ops::force_generic_path);
        let (trainable, missing) = tensors_without_gradient(kind);
        assert!(trainable > 50, "{kind:?}: {trainable} trainable tensors");
        assert!(
            missing.is_empty(),
            "{kind:?} (generic path: {generic}): {} of {trainable} trainable tensors get no gradient: {:?}",
            missing.len(),
            &missing[..missing.len().min(12)]
        );
    }
}

#[test]
fn student_gradients_reach_every_tensor() {
    check(ModelKind::Student);
}

#[test]
fn r50_gradients_reach_every_tensor() {
    check(ModelKind::R50);
}

#[test]
fn swinb_gradients_reach_every_tensor() {
    check(ModelKind::SwinB);
}
