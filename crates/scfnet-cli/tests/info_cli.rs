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
