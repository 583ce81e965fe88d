//! The `.pdparams` reader and the Paddle → safetensors converter, on checkpoints written by
//! paddlepaddle 3.3.1 (`tests/reference/backbones/paddle_checkpoint.py`).

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use scfnet_backbones::paddle::{
    convert, convert_file, read_pdparams, Mapping, MOBILENETV3_PADDLECLAS,
};
use scfnet_backbones::{
    synthetic_image, synthetic_values, synthetic_var_builder, Backbone, MobileNetV3, WeightsError,
};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/backbones")
        .join(name)
}

fn f32_values(a: &scfnet_backbones::paddle::pickle::NdArray) -> Vec<f32> {
    a.data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn mixed_checkpoints_decode_in_both_pickle_protocols() {
    for file in ["paddle_mixed_p4.pdparams", "paddle_mixed_p2.pdparams"] {
        let arrays = read_pdparams(data(file)).unwrap();
        let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv.weight",
                "bn._mean",
                "bn._variance",
                "fc.weight",
                "big.bias",
                "scalar.bias",
                "double.weight",
                "half.weight",
                "steps"
            ],
            "{file}"
        );
        for (name, a) in &arrays {
            let want = synthetic_values(name, &a.shape);
            match a.dtype.as_str() {
                "f4" => {
                    let got = f32_values(a);
                    let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
                    assert_eq!(got, want, "{file} {name}");
                }
                "f8" => {
                    let got: Vec<f64> = a
                        .data
                        .chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                        .collect();
                    assert_eq!(got, want, "{file} {name}");
                }
                "f2" => {
                    // Compare with the same values rounded to f16 by candle.
                    let want = Tensor::new(want.as_slice(), &Device::Cpu)
                        .unwrap()
                        .to_dtype(DType::F16)
                        .unwrap()
                        .to_dtype(DType::F32)
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap();
                    assert_eq!(a.data.len(), 2 * want.len(), "{file} {name}");
                    let (map, _) = convert(
                        &data(file),
                        vec![(name.clone(), a.clone())],
                        &[(name.clone(), a.shape.clone())],
                        Mapping {
                            rename: |n| Some(n.to_owned()),
                            transpose: |_| false,
                        },
                    )
                    .unwrap();
                    let got = map[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    assert_eq!(got, want, "{file} {name}");
                }
                "i8" => {
                    let got: Vec<i64> = a
                        .data
                        .chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect();
                    assert_eq!(got, [7, 8], "{file} {name}");
                }
                other => panic!("{file} {name}: unexpected dtype {other}"),
            }
        }
        let scalar = &arrays.iter().find(|(n, _)| n == "scalar.bias").unwrap().1;
        assert!(scalar.shape.is_empty());
        assert_eq!(
            arrays
                .iter()
                .find(|(n, _)| n == "fc.weight")
                .unwrap()
                .1
                .shape,
            [6, 2]
        );
    }
}

#[test]
fn linear_weights_are_transposed() {
    let arrays: Vec<_> = read_pdparams(data("paddle_mixed_p4.pdparams"))
        .unwrap()
        .into_iter()
        .filter(|(n, _)| n == "fc.weight")
        .collect();
    let mapping = Mapping {
        rename: |n| Some(n.to_owned()),
        transpose: |n| n == "fc.weight",
    };
    let (map, report) = convert(
        &data("x"),
        arrays,
        &[("fc.weight".into(), vec![2, 6])],
        mapping,
    )
    .unwrap();
    assert_eq!(report.transposed, ["fc.weight"]);
    let paddle = Tensor::from_vec(
        synthetic_values("fc.weight", &[6, 2])
            .iter()
            .map(|&v| v as f32)
            .collect::<Vec<_>>(),
        (6, 2),
        &Device::Cpu,
    )
    .unwrap();
    let diff = (map["fc.weight"].clone() - paddle.t().unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
}

/// Our names and shapes of MobileNetV3-Large ×0.35.
fn expected_x0_35() -> Vec<(String, Vec<usize>)> {
    let (vb, weights) = synthetic_var_builder(DType::F32, &Device::Cpu);
    MobileNetV3::large(vb, 0.35).unwrap();
    weights.requested()
}

#[test]
fn paddleclas_mobilenetv3_converts_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mnv3.safetensors");
    let report = convert_file(
        &data("mobilenetv3_x0_35.pdparams"),
        &out,
        &expected_x0_35(),
        MOBILENETV3_PADDLECLAS,
        None,
    )
    .unwrap();
    assert_eq!(report.written, expected_x0_35().len());
    assert!(
        report
            .dropped
            .iter()
            .all(|n| n.starts_with("last_second_conv."))
            && !report.dropped.is_empty()
    );
    // Every converted tensor equals the synthetic value of its (our) name.
    let tensors = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    for (name, shape) in expected_x0_35() {
        let got = tensors[&name]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let want: Vec<f32> = synthetic_values(&name, &shape)
            .iter()
            .map(|&v| v as f32)
            .collect();
        assert_eq!(got, want, "{name}");
    }
    // The converted file drives the network exactly like the synthetic weights.
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&[&out], DType::F32, &Device::Cpu).unwrap() };
    let loaded = MobileNetV3::large(vb, 0.35).unwrap();
    let reference =
        MobileNetV3::large(synthetic_var_builder(DType::F32, &Device::Cpu).0, 0.35).unwrap();
    let x = synthetic_image("input:1x3x64x64", &[1, 3, 64, 64], DType::F32, &Device::Cpu).unwrap();
    let a = loaded.features(&x, false).unwrap().x5;
    let b = reference.features(&x, false).unwrap().x5;
    let diff = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0);
}

#[test]
fn bad_checkpoints_are_reported_by_name() {
    let path = data("mobilenetv3_x0_35.pdparams");
    let arrays = read_pdparams(&path).unwrap();

    let without: Vec<_> = arrays
        .iter()
        .filter(|(n, _)| n != "blocks.4.mid_se.conv2.bias")
        .cloned()
        .collect();
    match convert(&path, without, &expected_x0_35(), MOBILENETV3_PADDLECLAS) {
        Err(e @ WeightsError::Missing { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("blocks.4.mid_se.conv2.bias")
                    && msg.contains("mobilenetv3_x0_35.pdparams"),
                "{msg}"
            );
        }
        other => panic!("expected a missing-tensor error, got {other:?}"),
    }

    let mut extra = arrays.clone();
    extra.push(("head.weight".into(), arrays[0].1.clone()));
    let msg = convert(&path, extra, &expected_x0_35(), MOBILENETV3_PADDLECLAS)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("unexpected") && msg.contains("head.weight"),
        "{msg}"
    );

    let mut reshaped = arrays.clone();
    let (name, a) = reshaped
        .iter_mut()
        .find(|(n, _)| n == "conv.conv.weight")
        .unwrap();
    a.shape = vec![a.shape.iter().product()];
    let name = name.clone();
    let msg = convert(&path, reshaped, &expected_x0_35(), MOBILENETV3_PADDLECLAS)
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&name) && msg.contains("shape"), "{msg}");

    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.path().join("truncated.pdparams");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let msg = read_pdparams(&truncated).unwrap_err().to_string();
    assert!(
        msg.contains("truncated.pdparams") && msg.contains("truncated file"),
        "{msg}"
    );
    let text = dir.path().join("notes.pdparams");
    std::fs::write(&text, b"hello").unwrap();
    assert!(read_pdparams(&text)
        .unwrap_err()
        .to_string()
        .contains("notes.pdparams"));
    let missing = read_pdparams(dir.path().join("absent.pdparams"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("absent.pdparams"), "{missing}");
}

#[test]
fn safetensors_are_written_atomically_into_new_folders() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a/b/w.safetensors");
    let mut map = std::collections::HashMap::new();
    map.insert(
        "x".to_owned(),
        Tensor::ones(3, DType::F32, &Device::Cpu).unwrap(),
    );
    scfnet_backbones::write_safetensors(&out, &map, None).unwrap();
    assert!(out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
}
