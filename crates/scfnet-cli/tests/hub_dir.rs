//! `scfnet convert --hub-dir` writes a folder that works as a Hugging Face model repository as it
//! is: `scfnet predict --weights DIR` and `--hub ORG/REPO` (served by a loopback hub) read its
//! config.json and need no `--model`; the maps equal those of the plain safetensors file.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

#[path = "../../scfnet-backbones/tests/common/fake_hub.rs"]
mod fake_hub;

fn scfnet(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{t}");
    t
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn maps(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| image::open(p).unwrap().to_luma8().into_raw())
        .collect()
}

#[test]
fn a_hub_folder_predicts_without_model_locally_and_from_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/model/authors_student_f16.pdparams");
    let hub_dir = dir.path().join("repo");
    let file = dir.path().join("student.safetensors");
    let t = ok(&scfnet(
        &[
            "convert",
            "--from",
            "paddle",
            "--model",
            "student",
            s(&checkpoint),
            s(&file),
            "--hub-dir",
            s(&hub_dir),
        ],
        &[],
    ));
    assert!(t.contains("upload it as it is"), "{t}");
    for f in ["model.safetensors", "config.json", "README.md"] {
        assert!(hub_dir.join(f).is_file(), "{f}");
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(hub_dir.join("model.safetensors")).unwrap()
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(hub_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["network"], "student");
    assert_eq!(config["input_size"], 352);
    assert_eq!(config["source"]["file"], "authors_student_f16.pdparams");
    assert_eq!(config["source"]["sha256"].as_str().unwrap().len(), 64);
    let card = std::fs::read_to_string(hub_dir.join("README.md")).unwrap();
    assert!(
        card.contains("FS-SCFNet") && card.contains("0.041"),
        "{card}"
    );

    // Images to predict.
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for (i, (w, h)) in [(48u32, 40u32), (33, 50)].into_iter().enumerate() {
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 5) as u8, (y * 3) as u8, 60]))
            .save(input.join(format!("{i}.png")))
            .unwrap();
    }
    let predict = |out: &Path, weights: &[&str], envs: &[(&str, &str)]| {
        let mut a = vec!["predict", "--input", s(&input), "--output", s(out)];
        a.extend_from_slice(weights);
        ok(&scfnet(&a, envs));
        maps(out)
    };
    let from_file = predict(
        &dir.path().join("a"),
        &["--model", "student", "--size", "352", "--weights", s(&file)],
        &[],
    );
    let from_dir = predict(&dir.path().join("b"), &["--weights", s(&hub_dir)], &[]);
    assert_eq!(from_file, from_dir);
    // A --model that contradicts the config is refused.
    let o = scfnet(
        &[
            "predict",
            "--model",
            "r50",
            "--weights",
            s(&hub_dir),
            "--input",
            s(&input),
            "--output",
            s(&dir.path().join("c")),
        ],
        &[],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("config.json"));

    // The same folder served by a (loopback) hub.
    let mut files = HashMap::new();
    for f in ["model.safetensors", "config.json", "README.md"] {
        let body = std::fs::read(hub_dir.join(f)).unwrap();
        files.insert(
            format!("org/scfnet-student/resolve/main/{f}"),
            fake_hub::Served {
                send: body.len(),
                body,
            },
        );
    }
    let (url, _log) = fake_hub::fake_hub(files, 40);
    let cache = dir.path().join("cache");
    let from_hub = predict(
        &dir.path().join("d"),
        &["--hub", "org/scfnet-student"],
        &[("HF_ENDPOINT", &url), ("HF_HUB_CACHE", s(&cache))],
    );
    assert_eq!(from_file, from_hub);
}
