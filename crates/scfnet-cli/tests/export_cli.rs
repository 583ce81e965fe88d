//! `scfnet export --onnx`: a weights file in, an ONNX file out (read back here); the network named
//! by the weights' own check; a clear refusal, with nothing written; Swin-B at its fixed size.

use std::process::Command;

use scfnet_model::ModelKind;
use scfnet_onnx::decode_model;

mod common;

fn scfnet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_weights_file_exports_to_an_onnx_model() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    common::synthetic_weights_file(ModelKind::Student, &weights, None);
    let onnx = dir.path().join("student.onnx");
    let o = scfnet(&[
        "export",
        "--onnx",
        onnx.to_str().unwrap(),
        "--model",
        "student",
        "--weights",
        weights.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = decode_model(&std::fs::read(&onnx).unwrap()).unwrap();
    let g = model.graph.unwrap();
    assert_eq!(g.input[0].name, "image");
    assert_eq!(g.output[0].name, "saliency");
    assert!(g.node.iter().filter(|n| n.op_type == "Conv").count() > 50);
}

#[test]
fn weights_of_another_network_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    common::synthetic_weights_file(ModelKind::Student, &weights, None);
    let onnx = dir.path().join("r50.onnx");
    let o = scfnet(&[
        "export",
        "--onnx",
        onnx.to_str().unwrap(),
        "--model",
        "r50",
        "--weights",
        weights.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("w.safetensors"), "{err}");
    assert!(!onnx.exists());
}

#[test]
fn the_swin_teacher_exports_at_its_fixed_size() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("swin.onnx");
    let o = scfnet(&[
        "export",
        "--onnx",
        onnx.to_str().unwrap(),
        "--model",
        "swinb",
        "--random-weights",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let log = String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
    assert!(log.contains("384x384 input only"), "{log}");
    let model = decode_model(&std::fs::read(&onnx).unwrap()).unwrap();
    let g = model.graph.unwrap();
    let dims: Vec<String> = g.input[0]
        .r#type
        .as_ref()
        .unwrap()
        .tensor_type
        .as_ref()
        .unwrap()
        .shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| format!("{:?}", d.value))
        .collect();
    assert!(
        dims[2].contains("384") && dims[3].contains("384"),
        "{dims:?}"
    );
    assert!(g.node.iter().any(|n| n.op_type == "Softmax"));
}
