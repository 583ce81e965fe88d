//! `scfnet train --init-weights W --no-augment --sizes S --batch 2 --max-steps 1` writes the
//! weights the authors' code writes after the same iteration (`tests/reference/train/cli_step.py`):
//! same synthetic weights (float32), same two PNG images and masks, their loader's
//! normalisation, their loss at epoch 0, their first warm-up learning rate and their `Momentum`.
//!
//! Every tensor of `model.safetensors` (BatchNorm running statistics included) is compared as the
//! change `w_after − w_before` with the authors' step computed in float64 from the same float32
//! weights. A float32 step cannot be closer to it than float32 allows, and with synthetic weights
//! that is far (the authors' own float32 step is up to ~40 % of a tensor's change away from their
//! float64 one, in R50's last stage; median 0.5 %), so the yardstick is the authors' float32 step:
//! per tensor, our largest error over the sampled elements may be at most three times theirs plus
//! 2 % of the tensor's largest change plus the float32 rounding of the written weights (2⁻²² of
//! the tensor's largest |w|; a change made of weight decay alone is ~3e-8), except in at most 1 %
//! of the tensors, where it may reach the authors' own worst float32 error (relative to the
//! tensor's largest change; a float32 step in another summation order lands a few ill-conditioned
//! tensors far from a reference that happened to be close); and over all tensors our median
//! error may be at most three times theirs. The summation order of the matrix products depends
//! on the CPU's cache sizes (the `gemm` crate's blocking): on an AVX-512 Xeon, R50's median was
//! 2.1 times the authors' (3.1e-3 against 1.5e-3) and one tensor of 357, `layer3.5.bn1.bias`,
//! 16 % of its change away (theirs 0.6 %, their worst 19 %). A wrong learning rate, decay, loss,
//! normalisation or weight file moves most tensors by far more; the exact arithmetic of the step
//! is checked in float64 to 1e-4 by `scfnet-train/tests/one_step_parity.rs`.
//!
//! In CI: the student and SCFNet-R50 at 64×64. By hand, after `cli_step.py --full`:
//! `cargo test --release -p scfnet-cli --test authors_step_cli -- --ignored` (Swin-B at 384×384,
//! with `--drop-path 0`).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device};
use scfnet_backbones::reference::{read, MapSummary};
use scfnet_backbones::synthetic_image;
use scfnet_model::ModelKind;
use serde::Deserialize;

mod common;

#[derive(Deserialize)]
struct Entry {
    /// The authors' float32 step.
    delta: MapSummary,
    /// The authors' float64 step at the same samples.
    delta_f64: Vec<f64>,
    absmax_f64: f64,
    /// Largest |w| before the step.
    absmax: f64,
}

#[derive(Deserialize)]
struct Network {
    size: usize,
    batch: usize,
    lr: f64,
    loss: f64,
    loss_f64: f64,
    tensors: HashMap<String, Entry>,
}

#[derive(Deserialize)]
struct Reference {
    networks: HashMap<String, Network>,
}

/// 8-bit pixels of the synthetic stream `name`: `min(255, floor((v + 1) · 128))`.
fn pixels(name: &str, dims: &[usize]) -> Vec<u8> {
    let v = synthetic_image(name, dims, DType::F64, &Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    // synthetic_image is 2v.
    v.iter()
        .map(|x| ((x / 2.0 + 1.0) * 128.0).floor().min(255.0) as u8)
        .collect()
}

/// Image `(S, S, 3)` and mask `(S, S)` of `stem`, integer arithmetic only (`sample` of
/// cli_step.py): a disc on two colour ramps plus synthetic noise; the mask is the disc.
fn sample(stem: &str, size: usize) -> (Vec<u8>, Vec<u8>) {
    let s = size as i64;
    let (cx, cy, r) = if stem == "a" {
        (3 * s / 8, s / 2, s / 4)
    } else {
        (5 * s / 8, 3 * s / 8, s / 3)
    };
    let noise = pixels(&format!("cli-image:{stem}:{size}"), &[size, size, 3]);
    let (mut rgb, mut mask) = (
        Vec::with_capacity(size * size * 3),
        Vec::with_capacity(size * size),
    );
    for y in 0..s {
        for x in 0..s {
            let inside = (x - cx).pow(2) + (y - cy).pow(2) < r * r;
            let base = [
                x * 255 / (s - 1),
                y * 255 / (s - 1),
                if inside { 220 } else { 40 },
            ];
            for (c, b) in base.into_iter().enumerate() {
                let n = noise[((y * s + x) * 3) as usize + c] as i64 / 8;
                rgb.push((b * 3 / 4 + n).clamp(0, 255) as u8);
            }
            mask.push(if inside { 255 } else { 0 });
        }
    }
    (rgb, mask)
}

/// The two images and masks of the reference, as PNG (lossless, so every decoder agrees).
fn write_data(root: &Path, size: usize) {
    std::fs::create_dir_all(root.join("image")).unwrap();
    std::fs::create_dir_all(root.join("mask")).unwrap();
    let s = size as u32;
    for stem in ["a", "b"] {
        let (rgb, grey) = sample(stem, size);
        image::RgbImage::from_raw(s, s, rgb)
            .unwrap()
            .save(root.join("image").join(format!("{stem}.png")))
            .unwrap();
        image::GrayImage::from_raw(s, s, grey)
            .unwrap()
            .save(root.join("mask").join(format!("{stem}.png")))
            .unwrap();
    }
}

fn run(file: &str, kind: ModelKind, extra: &[&str]) {
    let r: Reference = read(env!("CARGO_MANIFEST_DIR"), file);
    let want = &r.networks[kind.name()];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_data(&data, want.size);
    let init = dir.path().join("init.safetensors");
    let before = common::synthetic_weights_file(kind, &init, None);
    let out = dir.path().join("run");
    let size = want.size.to_string();
    let batch = want.batch.to_string();
    let mut args = vec![
        "train",
        "--model",
        kind.name(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--init-weights",
        init.to_str().unwrap(),
        "--no-augment",
        "--sizes",
        &size,
        "--batch",
        &batch,
        "--max-steps",
        "1",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args(&args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // The step's loss and learning rate, from the run's log.
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    let first: serde_json::Value = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v.get("loss").is_some())
        .unwrap();
    let (loss, lr) = (
        first["loss"].as_f64().unwrap(),
        first["lr"].as_f64().unwrap(),
    );
    assert!(
        (lr - want.lr).abs() <= 1e-12 * want.lr,
        "learning rate {lr} vs {}",
        want.lr
    );
    assert!(
        (loss - want.loss_f64).abs() <= 1e-5 * want.loss_f64.abs(),
        "loss {loss} vs the authors' {} (float64; float32: {})",
        want.loss_f64,
        want.loss
    );

    let after =
        candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(
        after.len(),
        want.tensors.len(),
        "tensors in model.safetensors"
    );
    // (our error, the authors' float32 error), both relative to the tensor's largest change.
    let mut ratios = Vec::new();
    // (name, our error, the bound), relative to the tensor's largest change, where ours is over.
    let mut over = Vec::new();
    for (name, entry) in &want.tensors {
        let got = after
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from model.safetensors"));
        let d = &entry.delta;
        assert_eq!(got.dims(), d.shape.as_slice(), "{name}: shape");
        let delta = (got.to_dtype(DType::F64).unwrap()
            - before[name].to_dtype(DType::F64).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
        let (mut ours, mut theirs) = (0.0f64, 0.0f64);
        for (k, (&f32_step, &exact)) in d.sample.iter().zip(&entry.delta_f64).enumerate() {
            ours = ours.max((delta[k * d.step] - exact).abs());
            theirs = theirs.max((f32_step - exact).abs());
        }
        let rounding = entry.absmax * 2f64.powi(-22);
        let bound = 3.0 * theirs + 2e-2 * entry.absmax_f64 + rounding;
        let scale = entry.absmax_f64.max(rounding);
        if ours > bound {
            over.push((name, ours / scale, bound / scale));
        }
        ratios.push((ours / scale, theirs / scale));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() - 1])
    };
    let (ours_med, ours_max) = median(ratios.iter().map(|r| r.0).collect());
    let (theirs_med, theirs_max) = median(ratios.iter().map(|r| r.1).collect());
    for (name, ours, bound) in &over {
        eprintln!(
            "{kind}: {name}: our change is {ours:.3e} of the tensor's largest change from the \
             authors' float64 step (bound {bound:.3e}; the authors' worst float32 error \
             {theirs_max:.3e})"
        );
    }
    assert!(
        over.len() * 100 <= ratios.len(),
        "{kind}: {} of {} tensors over their bound (see above)",
        over.len(),
        ratios.len()
    );
    for (name, ours, _) in &over {
        assert!(
            *ours <= theirs_max,
            "{kind}: {name}: our error {ours:.3e} beyond the authors' worst float32 error \
             {theirs_max:.3e}"
        );
    }
    eprintln!(
        "{kind}: loss {loss:.9} (authors: {:.9} float32, {:.9} float64), lr {lr}; {} tensors; \
         distance to the authors' float64 step, relative to each tensor's largest change: ours \
         median {ours_med:.1e} worst {ours_max:.1e}, the authors' float32 median {theirs_med:.1e} \
         worst {theirs_max:.1e}",
        want.loss,
        want.loss_f64,
        want.tensors.len()
    );
    assert!(
        ours_med <= 3.0 * theirs_med,
        "{kind}: median distance {ours_med:.2e} vs the authors' float32 {theirs_med:.2e}"
    );
}

#[test]
fn student_cli_step_writes_the_authors_weights() {
    run("train/cli_step.json", ModelKind::Student, &[]);
}

#[test]
fn r50_cli_step_writes_the_authors_weights() {
    run("train/cli_step.json", ModelKind::R50, &[]);
}

#[test]
#[ignore = "Swin-B at 384x384 (~1 min in release): run by hand after cli_step.py --full"]
fn swinb_cli_step_writes_the_authors_weights() {
    run(
        "train/cli_step_full.json",
        ModelKind::SwinB,
        &["--drop-path", "0"],
    );
}
