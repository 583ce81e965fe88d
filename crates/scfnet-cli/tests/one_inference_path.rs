//! `scfnet predict`, validation during training and the demo (which scores through the same
//! `scfnet_train::evaluate` as validation) make their maps with one implementation,
//! `scfnet_model::predict_maps`: the maps `scfnet predict` writes are the bytes `evaluate` scores.

use std::process::Command;

use candle_core::{DType, Device};
use scfnet_data::SodDataset;
use scfnet_model::{ModelKind, Scfnet};

mod common;

#[test]
fn predict_and_validation_give_byte_identical_maps() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Three images of different sizes and aspect ratios.
    let o = Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args(["synth", "--out", data.to_str().unwrap(), "--n", "3"])
        .args([
            "--min-side",
            "48",
            "--max-side",
            "120",
            "--test-fraction",
            "0",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Synthetic student weights, as a file for the command line.
    let weights = dir.path().join("w.safetensors");
    common::synthetic_weights_file(ModelKind::Student, &weights, None);

    let maps = dir.path().join("maps");
    let o = Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args([
            "predict", "--model", "student", "--size", "64", "--batch", "2",
        ])
        .args(["--weights", weights.to_str().unwrap()])
        .args(["--input", data.join("image").to_str().unwrap()])
        .args(["--output", maps.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Validation's path, in this process, with the same file.
    let vb = scfnet_model::load_weights(ModelKind::Student, &weights, "w", &Device::Cpu).unwrap();
    let net = Scfnet::new(ModelKind::Student, vb).unwrap();
    let dataset = SodDataset::labeled(&data, None).unwrap();
    let mut compared = 0;
    let side = scfnet_model::InputSide::new(64).unwrap();
    scfnet_train::evaluate(
        &net,
        &dataset,
        side,
        &Device::Cpu,
        DType::F32,
        |stem, map| {
            let written = image::open(maps.join(format!("{stem}.png")))
                .unwrap()
                .to_luma8();
            assert_eq!(
                (written.width() as usize, written.height() as usize),
                (map.width(), map.height())
            );
            assert!(
                written.as_raw() == map.data(),
                "{stem}: the map of scfnet predict differs from validation's"
            );
            compared += 1;
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(compared, 3);
}
