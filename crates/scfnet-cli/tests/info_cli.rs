//! `scfnet info` prints the paper's counts.

use std::process::Command;

#[test]
fn student_info_matches_the_paper() {
    let out = Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args(["info", "--model", "student", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "student");
    assert_eq!(v["size"], 352);
    assert_eq!(v["paddle_params"], 800_154);
    assert_eq!(v["trainable_params"], 788_298);
    assert_eq!(v["macs"], 252_431_859u64);
}

#[test]
fn bad_model_and_size_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args(["info", "--model", "vgg"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown model"));
    let out = Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args(["info", "--size", "100"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("multiple of 32"));
}

fn scfnet(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 29: the weights `train` and `convert` write describe themselves; `info --weights` reads
/// that from the header alone, and `predict` takes the network from it (refusing another).
#[test]
fn written_weights_describe_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (ok, _, err) = scfnet(&[
        "synth",
        "--out",
        &d(&data),
        "--n",
        "4",
        "--min-side",
        "64",
        "--max-side",
        "64",
        "--test-fraction",
        "0",
    ]);
    assert!(ok, "{err}");
    let run = dir.path().join("run");
    let (ok, _, err) = scfnet(&[
        "train",
        "--model",
        "student",
        "--data",
        &d(&data),
        "--out",
        &d(&run),
        "--max-steps",
        "1",
        "--batch",
        "2",
        "--sizes",
        "64",
        "--test-size",
        "64",
        "--quiet",
        "--no-augment",
    ]);
    assert!(ok, "{err}");
    let weights = run.join("model.safetensors");
    let (ok, out, err) = scfnet(&["info", "--weights", &d(&weights), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let meta = &v["metadata"];
    assert_eq!(meta["library"], "scfnet");
    assert_eq!(meta["network"], "student");
    assert_eq!(meta["input_size"], "64");
    assert_eq!(meta["mode"], "supervised");
    let recipe: serde_json::Value = serde_json::from_str(meta["recipe"].as_str().unwrap()).unwrap();
    assert_eq!(recipe["batch"], 2);
    assert!(v["tensors"].as_array().unwrap().len() > 100);
    let (ok, text, _) = scfnet(&["info", "--weights", &d(&weights)]);
    assert!(ok && text.contains("network         student"), "{text}");
    // predict without --model takes the network (and the tested side) from the file …
    let image = data.join("image/00000.jpg");
    let (ok, _, err) = scfnet(&[
        "predict",
        "--weights",
        &d(&weights),
        "--input",
        &d(&image),
        "--output",
        &d(&dir.path().join("maps")),
    ]);
    assert!(ok && err.contains("model student, input 64x64"), "{err}");
    // … and refuses to read it as another network.
    let (ok, _, err) = scfnet(&[
        "predict",
        "--model",
        "r50",
        "--weights",
        &d(&weights),
        "--input",
        &d(&image),
        "--output",
        &d(&dir.path().join("maps-r50")),
    ]);
    assert!(
        !ok && err.contains("student") && err.contains("r50"),
        "{err}"
    );

    // Converted weights name their source and its SHA-256.
    let pdparams = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/model/authors_student_f16.pdparams");
    let converted = dir.path().join("converted.safetensors");
    let (ok, _, err) = scfnet(&[
        "convert",
        "--model",
        "student",
        &d(&pdparams),
        &d(&converted),
    ]);
    assert!(ok, "{err}");
    let (ok, out, _) = scfnet(&["info", "--weights", &d(&converted), "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let source: serde_json::Value =
        serde_json::from_str(v["metadata"]["source"].as_str().unwrap()).unwrap();
    assert_eq!(source["file"], "authors_student_f16.pdparams");
    assert_eq!(source["sha256"].as_str().unwrap().len(), 64);
}
