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

/// The trainable tensors (no BatchNorm statistics) of a safetensors file.
fn trainable(path: &Path) -> Vec<(String, Vec<f32>)> {
    let mut t: Vec<(String, Vec<f32>)> =
        candle_core::safetensors::load(path, &candle_core::Device::Cpu)
            .unwrap()
            .into_iter()
            .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
            .map(|(n, v)| (n, v.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
            .collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

#[test]
fn max_steps_and_init_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(scfnet(&[
        "synth",
        "--out",
        s(&data),
        "--n",
        "6",
        "--min-side",
        "64",
        "--max-side",
        "72",
    ]));
    let common = [
        "--batch",
        "2",
        "--sizes",
        "64",
        "--no-augment",
        "--epochs",
        "3",
        "--quiet",
        "--test-size",
        "64",
    ];
    // One step, then stop inside the first epoch: a checkpoint, model.safetensors, one log line.
    let first = dir.path().join("first");
    let mut args = vec![
        "train",
        "--data",
        s(&data),
        "--out",
        s(&first),
        "--max-steps",
        "1",
    ];
    args.extend(common);
    ok(scfnet(&args));
    assert!(first.join("model.safetensors").is_file());
    let log = std::fs::read_to_string(first.join("log.jsonl")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains("\"loss\"")).count(),
        1,
        "{log}"
    );
    assert!(
        std::fs::read_dir(first.join("checkpoints"))
            .unwrap()
            .count()
            >= 1
    );

    // A second run from those weights at a negligible learning rate (1e-30): its trainable
    // tensors are the first run's (a zero may become a denormal), so the whole network was
    // loaded; a fresh start would differ everywhere.
    let second = dir.path().join("second");
    let init = first.join("model.safetensors");
    let mut args = vec![
        "train",
        "--data",
        s(&data),
        "--out",
        s(&second),
        "--max-steps",
        "1",
        "--init-weights",
        s(&init),
        "--lr",
        "1e-30",
        "--min-lr",
        "1e-30",
    ];
    args.extend(common);
    ok(scfnet(&args));
    let (a, b) = (
        trainable(&init),
        trainable(&second.join("model.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        for (x, y) in va.iter().zip(vb) {
            assert!(
                (x - y).abs() <= 1e-30 + 1e-6 * x.abs(),
                "{na} changed: {x} -> {y}"
            );
        }
    }

    // The student's weights do not fit the R50 teacher: a named error, nothing trained.
    let third = dir.path().join("third");
    let mut args = vec![
        "train",
        "--model",
        "r50",
        "--data",
        s(&data),
        "--out",
        s(&third),
        "--max-steps",
        "1",
        "--init-weights",
        s(&init),
    ];
    args.extend(common);
    let o = scfnet(&args);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("model.safetensors") && err.contains("missing tensor"),
        "{err}"
    );
    assert!(!third.join("model.safetensors").exists());
    // --max-steps 0 is refused.
    let mut args = vec![
        "train",
        "--data",
        s(&data),
        "--out",
        s(&third),
        "--max-steps",
        "0",
    ];
    args.extend(common);
    assert!(!scfnet(&args).status.success());
}

/// `scfnet demo` in miniature: the table, the setting it names, and its pictures, linked from
/// `results.md` (the defaults run for minutes; their numbers are in docs/training.md).
#[test]
fn the_demo_in_miniature_writes_its_table_curves_and_examples() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let text = ok(scfnet(&[
        "demo",
        "--out",
        s(&out),
        "--images",
        "40",
        "--unlabeled",
        "16",
        "--student-labels",
        "8",
        "--teacher-epochs",
        "1",
        "--student-steps",
        "4",
    ]));
    assert!(
        text.contains("the FS student from 8 of them")
            && text.contains("teacher's maps of 48 images")
            && text.contains("each student made 4 steps"),
        "{text}"
    );
    let results = std::fs::read_to_string(out.join("results.md")).unwrap();
    for picture in ["curves.png", "examples.png"] {
        assert!(results.contains(&format!("({picture})")), "{results}");
        image::open(out.join(picture)).unwrap();
    }
    // Held-out MAE on every run's curve: the validations are in each log.
    for run in ["teacher", "student", "kd-student"] {
        let log = std::fs::read_to_string(out.join(run).join("log.jsonl")).unwrap();
        assert!(
            log.contains("\"validation\":\"synthetic-test\""),
            "{run}: {log}"
        );
    }
    // 8 held-out maps per network.
    for net in ["SCFNet-R50", "FS-SCFNet", "KD-SCFNet"] {
        assert_eq!(
            std::fs::read_dir(out.join("maps").join(net))
                .unwrap()
                .count(),
            8
        );
    }
    // More labels for the student than the teacher has: refused before anything trains.
    let o = scfnet(&[
        "demo",
        "--out",
        s(&dir.path().join("other")),
        "--images",
        "10",
        "--student-labels",
        "9",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("between 1 and the 8 training images"),
        "{err}"
    );
    assert!(!dir.path().join("other/teacher").exists());
    // Reduced precision on the CPU: refused, naming the option, before the folder is made.
    let o = scfnet(&[
        "demo",
        "--out",
        s(&dir.path().join("bf16")),
        "--precision",
        "bf16",
        "--images",
        "10",
        "--unlabeled",
        "2",
        "--student-labels",
        "2",
        "--teacher-epochs",
        "1",
        "--student-steps",
        "1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--precision bf16") && err.contains("CUDA"),
        "{err}"
    );
    assert!(!dir.path().join("bf16").exists());
}
