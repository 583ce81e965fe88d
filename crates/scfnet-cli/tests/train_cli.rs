//! End to end on the command line: `scfnet synth`, `scfnet train` (with validation and resume),
//! `scfnet distill` from the trained network, and `scfnet predict` with the trained weights —
//! tiny sizes, so it runs in seconds; plus the errors a user meets first.

use std::path::Path;
use std::process::{Command, Output};

fn scfnet(args: &[&str]) -> Output {
    let mut o = Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    if !o.status.success() {
        o.stderr.extend(format!("\n(arguments: {args:?})").bytes());
    }
    o
}

fn ok(o: Output) -> String {
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

#[test]
fn synth_train_resume_distill_predict() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(scfnet(&[
        "synth",
        "--out",
        s(&data),
        "--n",
        "8",
        "--min-side",
        "64",
        "--max-side",
        "80",
        "--test-fraction",
        "0.25",
    ]));
    assert_eq!(
        std::fs::read_to_string(data.join("train.txt"))
            .unwrap()
            .lines()
            .count(),
        6
    );
    let run = dir.path().join("fs");
    let common = [
        "--batch",
        "3",
        "--sizes",
        "64",
        "--test-size",
        "64",
        "--warmup-epochs",
        "1",
        "--quiet",
    ];
    let val = format!("synth={}", data.display());
    let mut train = vec![
        "train",
        "--model",
        "student",
        "--data",
        s(&data),
        "--out",
        s(&run),
    ];
    train.extend(common);
    train.extend(["--epochs", "2", "--val", &val]);
    let mut first = train.clone();
    first.extend(["--stop-after-epochs", "1"]);
    let t = ok(scfnet(&first));
    assert!(
        t.contains("random weights"),
        "warns about the missing backbone weights: {t}"
    );
    assert!(t.contains("MAE"), "validation is printed: {t}");
    let mut resume = train.clone();
    resume.push("--resume");
    ok(scfnet(&resume));
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains("\"loss\"")).count(),
        4,
        "{log}"
    );
    assert_eq!(
        log.lines().filter(|l| l.contains("\"validation\"")).count(),
        2,
        "{log}"
    );

    let kd = dir.path().join("kd");
    let weights = run.join("model.safetensors");
    let mut distill = vec![
        "distill",
        "--teacher",
        "student",
        "--teacher-weights",
        s(&weights),
        "--data",
    ];
    let images = data.join("image");
    distill.extend([s(&images), "--out", s(&kd), "--epochs", "1"]);
    distill.extend(common);
    ok(scfnet(&distill));
    assert!(kd.join("model.safetensors").is_file());

    let maps = dir.path().join("maps");
    ok(scfnet(&[
        "predict",
        "--model",
        "student",
        "--weights",
        s(&kd.join("model.safetensors")),
        "--input",
        s(&images),
        "--output",
        s(&maps),
        "--size",
        "64",
    ]));
    let map = image::open(maps.join("00000.png")).unwrap();
    let img = image::open(images.join("00000.jpg")).unwrap();
    assert_eq!((map.width(), map.height()), (img.width(), img.height()));
}

#[test]
fn clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = scfnet(&["train", "--data", s(dir.path()), "--out", s(&out)]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("not a dataset folder"), "{e}");
    let o = scfnet(&[
        "distill",
        "--teacher-weights",
        s(&dir.path().join("none.safetensors")),
        "--data",
        s(dir.path()),
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("none.safetensors") || e.contains("no images"),
        "{e}"
    );
}
