//! Losses, optimiser and schedule against the authors' Paddle training code
//! (`tests/reference/train/authors_training.py`), in f64.

use candle_core::{DType, Device, Tensor, Var};
use scfnet_train::{distillation_loss, supervised_loss, ParamGroup, SgdMomentum, WarmupCosine};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    shape: Vec<usize>,
    logits: Vec<Vec<f64>>,
    mask: Vec<f64>,
    teacher: Vec<f64>,
    supervised: Vec<Supervised>,
    kd: Losses,
    momentum: Momentum,
    schedule: Schedule,
}

#[derive(Deserialize)]
struct Supervised {
    epoch: usize,
    #[serde(flatten)]
    losses: Losses,
}

#[derive(Deserialize)]
struct Losses {
    parts: Vec<f64>,
    total: f64,
    grads: Vec<Vec<f64>>,
}

#[derive(Deserialize)]
struct Momentum {
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    lr_mult: Vec<f64>,
    decay: Vec<bool>,
    init: Vec<Vec<f64>>,
    coeffs: Vec<Vec<f64>>,
    after: Vec<Vec<Vec<f64>>>,
}

#[derive(Deserialize)]
struct Schedule {
    samples: usize,
    batch: usize,
    epochs: usize,
    lr: Vec<(usize, f64)>,
}

fn reference() -> Reference {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/train/authors_training.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// Checks losses and gradients of `loss` on the reference logits.
fn check(
    what: &str,
    r: &Reference,
    want: &Losses,
    loss: impl Fn([&Tensor; 4]) -> candle_core::Result<(Tensor, [Tensor; 4])>,
) {
    let vars: Vec<Var> = r
        .logits
        .iter()
        .map(|l| Var::from_vec(l.clone(), r.shape.as_slice(), &Device::Cpu).unwrap())
        .collect();
    let (total, parts) = loss([
        vars[0].as_tensor(),
        vars[1].as_tensor(),
        vars[2].as_tensor(),
        vars[3].as_tensor(),
    ])
    .unwrap();
    let parts: Vec<f64> = parts
        .iter()
        .map(|p| p.to_scalar::<f64>().unwrap())
        .collect();
    close(&format!("{what} parts"), &parts, &want.parts, 1e-12);
    close(
        &format!("{what} total"),
        &[total.to_scalar::<f64>().unwrap()],
        &[want.total],
        1e-12,
    );
    let grads = total.backward().unwrap();
    for (i, v) in vars.iter().enumerate() {
        close(
            &format!("{what} grad p{}", i + 2),
            &to_vec(grads.get(v.as_tensor()).unwrap()),
            &want.grads[i],
            1e-10,
        );
    }
}

#[test]
fn supervised_losses_match_the_authors() {
    let r = reference();
    let mask = Tensor::from_vec(r.mask.clone(), r.shape.as_slice(), &Device::Cpu).unwrap();
    for s in &r.supervised {
        check(&format!("epoch {}", s.epoch), &r, &s.losses, |o| {
            supervised_loss(o, &mask, s.epoch)
        });
    }
}

#[test]
fn distillation_loss_matches_the_authors() {
    let r = reference();
    let teacher = Tensor::from_vec(r.teacher.clone(), r.shape.as_slice(), &Device::Cpu).unwrap();
    check("kd", &r, &r.kd, |o| distillation_loss(o, &teacher));
}

#[test]
fn momentum_matches_paddle() {
    let r = reference();
    let m = &r.momentum;
    let vars: Vec<Var> = m
        .init
        .iter()
        .map(|w| Var::from_vec(w.clone(), (3, 2), &Device::Cpu).unwrap())
        .collect();
    let groups = vars
        .iter()
        .zip(m.lr_mult.iter().zip(&m.decay))
        .map(|(v, (&lr_mult, &decay))| ParamGroup {
            vars: vec![v.clone()],
            lr_mult,
            // Paddle keeps the momentum and the weight-decay coefficient as float32 attributes
            // (0.9 → 0.89999998, 5e-4 → 5.0000002e-4); use the same values to compare in f64.
            weight_decay: if decay {
                m.weight_decay as f32 as f64
            } else {
                0.0
            },
        })
        .collect();
    let mut opt = SgdMomentum::new(groups, m.momentum as f32 as f64);
    for (step, after) in m.after.iter().enumerate() {
        let mut loss = Tensor::zeros((), DType::F64, &Device::Cpu).unwrap();
        for (v, c) in vars.iter().zip(&m.coeffs) {
            let c = Tensor::from_vec(c.clone(), (3, 2), &Device::Cpu).unwrap();
            let term = ((v.as_tensor() * &c).unwrap() * (step + 1) as f64).unwrap();
            let sq = (v.as_tensor().sqr().unwrap() * 0.5).unwrap();
            loss = (loss + (term + sq).unwrap().sum_all().unwrap()).unwrap();
        }
        opt.step(&loss.backward().unwrap(), m.lr).unwrap();
        for (i, v) in vars.iter().enumerate() {
            close(
                &format!("step {step} param {i}"),
                &to_vec(v.as_tensor()),
                &after[i],
                1e-12,
            );
        }
    }
}

#[test]
fn schedule_matches_the_authors_lr_decay() {
    let r = reference();
    let s = WarmupCosine::paper(r.schedule.samples, r.schedule.batch, r.schedule.epochs);
    for &(g, want) in &r.schedule.lr {
        close(&format!("lr at {g}"), &[s.lr(g)], &[want], 1e-9);
    }
}
