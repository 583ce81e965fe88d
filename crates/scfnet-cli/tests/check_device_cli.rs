//! `scfnet check-device` on the CPU (the harness that `tests/gpu/check.sh` runs on a GPU): the op
//! comparisons, and the timings with their per-op profiles and `MODEL:BATCH@SIDE` specs.

use std::process::Command;

fn scfnet(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args(args)
        .output()
        .unwrap()
}

fn report(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn every_op_case_is_compared_and_passes_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ops.json");
    let out = scfnet(&[
        "check-device",
        "--device",
        "cpu",
        "--ops-only",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = report(&json);
    let ops = v["ops"].as_array().unwrap();
    assert!(ops.len() >= 40, "{} op cases", ops.len());
    assert!(ops
        .iter()
        .all(|o| o["ok"] == true && o["max_rel_diff"] == 0.0));
    assert!(v["failures"].as_array().unwrap().is_empty());
    assert!(v["bench"].is_null());
    assert_eq!(v["generic_ops"], serde_json::json!([]));
    // Each comparison names the family of kernels it runs (SCFNET_GENERIC_OPS's names).
    let family_of = |prefix: &str| {
        ops.iter()
            .find(|o| o["op"].as_str().unwrap().starts_with(prefix))
            .map(|o| o["family"].clone())
            .unwrap()
    };
    assert_eq!(family_of("depthwise"), "depthwise");
    assert_eq!(family_of("sgd"), "sgd");
    assert!(family_of("resize").is_null());
}

#[test]
fn generic_ops_come_from_the_environment_and_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ops.json");
    let run = |value: &str| {
        Command::new(env!("CARGO_BIN_EXE_scfnet"))
            .args(["check-device", "--device", "cpu", "--ops-only", "--json"])
            .arg(&json)
            .env("SCFNET_GENERIC_OPS", value)
            .output()
            .unwrap()
    };
    let out = run("depthwise, Batch-Norm");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("SCFNET_GENERIC_OPS: batch_norm, depthwise composed"),
        "{stderr}"
    );
    let v = report(&json);
    assert_eq!(
        v["generic_ops"],
        serde_json::json!(["batch_norm", "depthwise"])
    );
    // Both sides composed for those families: the comparisons still pass.
    assert!(v["failures"].as_array().unwrap().is_empty());

    std::fs::remove_file(&json).unwrap();
    let out = run("batchnorm");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("SCFNET_GENERIC_OPS=batchnorm: unknown op family `batchnorm`")
            && stderr.contains("batch_norm, convolution"),
        "{stderr}"
    );
    assert!(!json.exists(), "nothing written");
}

#[test]
fn timings_take_a_side_per_spec_and_report_each_mode() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = scfnet(&[
        "check-device",
        "--device",
        "cpu",
        "--bench-only",
        "--bench-modes",
        "f32,f32-generic",
        "--infer-batches",
        "0",
        "--train",
        "student:2@64",
        "--repeat",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = report(&json);
    assert!(
        v["ops"].as_array().unwrap().is_empty(),
        "--bench-only skips the comparisons"
    );
    for mode in ["f32", "f32-generic"] {
        let step = &v["bench"][mode]["train_step"][0];
        assert_eq!(step["model"], "student");
        assert_eq!(step["size"], 64);
        assert!(step["seconds"].as_f64().unwrap() > 0.0);
        // On the CPU no native CUDA op is timed: the whole run is "unlisted".
        let profile = &step["profile"];
        assert!(profile["ops"].as_array().unwrap().is_empty());
        assert_eq!(profile["total_ms"], profile["unlisted_ms"]);
    }
    assert!(v["bench"]["f32"]["inference"]
        .as_array()
        .unwrap()
        .is_empty());

    let bad = scfnet(&[
        "check-device",
        "--device",
        "cpu",
        "--bench-only",
        "--train",
        "student:2@63",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("student:2@63"));
}
