//! Converting checkpoints in the authors' format (written by paddlepaddle from the authors' own
//! classes, `tests/reference/model/authors_checkpoints.py`).

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use scfnet_backbones::paddle::{convert_file, SWIN_PADDLE};
use scfnet_backbones::reference::{compare, read, Run};
use scfnet_backbones::{
    synthetic_image, synthetic_values, synthetic_var_builder, Backbone, SwinConfig, SwinTransformer,
};
use scfnet_model::{convert_paddle_checkpoint, expected_tensors, ModelKind, Scfnet};
use serde::Deserialize;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/model")
        .join(name)
}

/// A stand-in description of the checkpoint converted.
fn source() -> scfnet_model::WeightsSource {
    scfnet_model::WeightsSource {
        file: "authors_student_f16.pdparams".into(),
        sha256: "0".repeat(64),
        format: "paddle".into(),
    }
}

#[test]
fn the_students_checkpoint_converts_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("student.safetensors");
    let report = convert_paddle_checkpoint(
        ModelKind::Student,
        &data("authors_student_f16.pdparams"),
        &out,
        source(),
    )
    .unwrap();
    let expected = expected_tensors(ModelKind::Student).unwrap();
    assert_eq!(report.written, expected.len());
    assert!(report.dropped.is_empty() && report.transposed.is_empty());
    let tensors = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    for (name, shape) in &expected {
        // The file holds float16 values of the synthetic weights.
        let want = Tensor::from_vec(
            synthetic_values(name, shape),
            shape.as_slice(),
            &Device::Cpu,
        )
        .unwrap()
        .to_dtype(DType::F16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
        let diff = (&tensors[name] - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{name}");
    }
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&[&out], DType::F32, &Device::Cpu).unwrap() };
    let net = Scfnet::new(ModelKind::Student, vb).unwrap();
    let x = synthetic_image("input:1x3x64x64", &[1, 3, 64, 64], DType::F32, &Device::Cpu).unwrap();
    let p = net.side_outputs(&x, false).unwrap();
    assert_eq!(p.p2.dims4().unwrap(), (1, 1, 64, 64));
}

#[test]
fn a_checkpoint_of_another_network_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let err = convert_paddle_checkpoint(
        ModelKind::R50,
        &data("authors_student_f16.pdparams"),
        &dir.path().join("x.safetensors"),
        source(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("authors_student_f16.pdparams")
            && err.contains("mp.cv1.0.weight")
            && err.contains("shape"),
        "{err}"
    );
    assert!(
        !dir.path().join("x.safetensors").exists(),
        "nothing written on failure"
    );
}

#[derive(Deserialize)]
struct SwinRef {
    config: SwinTiny,
    runs: Vec<Run>,
}

#[derive(Deserialize)]
struct SwinTiny {
    embed_dim: usize,
    depths: [usize; 4],
    num_heads: [usize; 4],
    window_size: usize,
}

#[test]
fn the_authors_swin_converts_to_our_layout_and_matches_their_forward() {
    let r: SwinRef = read(env!("CARGO_MANIFEST_DIR"), "model/authors_swin_tiny.json");
    let config = SwinConfig {
        embed_dim: r.config.embed_dim,
        depths: r.config.depths,
        heads: r.config.num_heads,
        window: r.config.window_size,
        patch: 4,
        mlp_ratio: 4,
        drop_path_rate: 0.0,
    };
    let (vb, recorded) = synthetic_var_builder(DType::F32, &Device::Cpu);
    SwinTransformer::new(vb, config.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("swin.safetensors");
    let report = convert_file(
        &data("authors_swin_tiny.pdparams"),
        &out,
        &recorded.requested(),
        SWIN_PADDLE,
        None,
    )
    .unwrap();
    assert!(
        report
            .dropped
            .iter()
            .any(|n| n.ends_with("relative_position_index")),
        "{:?}",
        report.dropped
    );
    assert!(report.dropped.iter().any(|n| n == "norm.weight"));
    assert!(report
        .transposed
        .iter()
        .any(|n| n == "layers.1.downsample.reduction.weight"));
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&[&out], DType::F32, &Device::Cpu).unwrap() };
    let net = SwinTransformer::new(vb, config).unwrap();
    let run = &r.runs[0];
    let x = synthetic_image(&run.input, &run.shape, DType::F32, &Device::Cpu).unwrap();
    let f = net.features(&x, false).unwrap();
    let mut worst = 0.0f64;
    for (i, (got, want)) in f.as_array().into_iter().zip(&run.maps).enumerate() {
        worst = worst.max(compare(
            &format!("tiny Swin x{}", i + 1),
            got,
            want,
            run.tolerance(),
        ));
    }
    eprintln!("authors' Swin (tiny) via the converter: max relative error {worst:.2e}");
}
