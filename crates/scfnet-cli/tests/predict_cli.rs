//! End-to-end tests of `scfnet predict` on the demo images.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device, Tensor};
use scfnet_backbones::{synthetic_values, synthetic_var_builder};
use scfnet_model::{ModelKind, Scfnet};

fn scfnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn demo(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/demo/image")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A nested input tree: a/0000.jpg, a/b/0001.jpg, a/b/0002.jpg and a corrupt a/b/broken.png.
fn input_tree(root: &Path) -> PathBuf {
    let a = root.join("a");
    std::fs::create_dir_all(a.join("b")).unwrap();
    std::fs::copy(demo("0000.jpg"), a.join("0000.jpg")).unwrap();
    std::fs::copy(demo("0001.jpg"), a.join("b/0001.jpg")).unwrap();
    std::fs::copy(demo("0002.jpg"), a.join("b/0002.jpg")).unwrap();
    std::fs::write(a.join("b/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    a
}

#[test]
fn maps_keep_the_tree_and_size_and_a_bad_image_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let input = input_tree(tmp.path());
    let out = tmp.path().join("out");
    let o = scfnet(&[
        "predict",
        "--random-weights",
        "--input",
        s(&input),
        "--output",
        s(&out),
        "--batch",
        "2",
        "--cutout",
    ]);
    assert!(
        !o.status.success(),
        "a failed image must make the exit code non-zero"
    );
    let t = text(&o);
    assert!(
        t.contains("broken.png") && t.contains("1 images failed"),
        "{t}"
    );
    for (rel, src) in [
        ("0000", "0000.jpg"),
        ("b/0001", "0001.jpg"),
        ("b/0002", "0002.jpg"),
    ] {
        let map = image::open(out.join(format!("{rel}.png"))).unwrap();
        let orig = image::open(demo(src)).unwrap();
        assert_eq!(
            (map.width(), map.height()),
            (orig.width(), orig.height()),
            "{rel}"
        );
        assert!(
            matches!(map, image::DynamicImage::ImageLuma8(_)),
            "{rel}: 8-bit grey"
        );
        let cut = image::open(out.join(format!("{rel}_cutout.png"))).unwrap();
        assert!(
            matches!(cut, image::DynamicImage::ImageRgba8(_)),
            "{rel}: RGBA cutout"
        );
    }
    assert!(!out.join("b/broken.png").exists());
}

#[test]
fn a_folder_larger_than_a_write_group_is_written_whole() {
    // 40 images (more than one group of 32 written together), batches of 3, two broken files
    // in different batches, at --size 64 to keep the test short.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..40 {
        let name = input.join(format!("{i:03}.jpg"));
        if i == 7 || i == 31 {
            std::fs::write(&name, b"\xff\xd8 not a jpeg").unwrap();
        } else {
            std::fs::copy(demo(&format!("{:04}.jpg", i % 3)), &name).unwrap();
        }
    }
    let out = tmp.path().join("out");
    let o = scfnet(&[
        "predict",
        "--random-weights",
        "--size",
        "64",
        "--batch",
        "3",
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("2 images failed") && t.contains("007.jpg") && t.contains("031.jpg"),
        "{t}"
    );
    for i in (0..40).filter(|&i| i != 7 && i != 31) {
        let map = image::open(out.join(format!("{i:03}.png"))).unwrap();
        let orig = image::open(demo(&format!("{:04}.jpg", i % 3))).unwrap();
        assert_eq!(
            (map.width(), map.height()),
            (orig.width(), orig.height()),
            "{i}"
        );
    }
    let written = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(written, 38, "only the maps, no temporaries");
}

#[test]
fn network_only_times_the_network_and_writes_nothing() {
    // The benchmarks' baseline (`cargo xtask bench-predict`): a hidden flag.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for i in 0..3 {
        std::fs::copy(demo(&format!("{i:04}.jpg")), input.join(format!("{i}.jpg"))).unwrap();
    }
    let out = tmp.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args([
            "predict",
            "--random-weights",
            "--size",
            "64",
            "--batch",
            "2",
        ])
        .args(["--network-only", "--input", s(&input), "--output", s(&out)])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("network alone: 3 images in"), "{t}");
    assert!(!out.exists(), "nothing written");
    // A file that does not decode is an error there (the baseline needs every image).
    std::fs::write(input.join("3.jpg"), b"\xff\xd8 not a jpeg").unwrap();
    let o = scfnet(&[
        "predict",
        "--random-weights",
        "--size",
        "64",
        "--network-only",
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    let t = text(&o);
    assert!(!o.status.success() && t.contains("3.jpg"), "{t}");
}

/// Saves the student's synthetic weights as safetensors (what a converted checkpoint looks like).
fn student_weights(path: &Path) {
    let (vb, recorded) = synthetic_var_builder(DType::F32, &Device::Cpu);
    Scfnet::new(ModelKind::Student, vb).unwrap();
    let mut map = HashMap::new();
    for (name, shape) in recorded.requested() {
        let v: Vec<f32> = synthetic_values(&name, &shape)
            .iter()
            .map(|&x| x as f32)
            .collect();
        map.insert(name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap());
    }
    candle_core::safetensors::save(&map, path).unwrap();
}

#[test]
fn weights_from_a_file_give_the_same_maps_and_bad_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("student.safetensors");
    student_weights(&weights);
    let img = demo("0003.jpg");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let o = scfnet(&[
        "predict",
        "--weights",
        s(&weights),
        "--input",
        s(&img),
        "--output",
        s(&a),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = scfnet(&[
        "predict",
        "--random-weights",
        "--input",
        s(&img),
        "--output",
        s(&b),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(a.join("0003.png")).unwrap(),
        std::fs::read(b.join("0003.png")).unwrap()
    );

    let o = scfnet(&[
        "predict",
        "--weights",
        s(&tmp.path().join("none.safetensors")),
        "--input",
        s(&img),
        "--output",
        s(&a),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("none.safetensors"),
        "{}",
        text(&o)
    );
    // A checkpoint of the wrong network: the first missing tensor is named.
    let o = scfnet(&[
        "predict",
        "--model",
        "r50",
        "--weights",
        s(&weights),
        "--input",
        s(&img),
        "--output",
        s(&a),
    ]);
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("missing") && t.contains("bkbone.conv1.weight"),
        "{t}"
    );
}

#[test]
fn cuda_without_the_feature_and_bad_arguments_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let img = demo("0000.jpg");
    let out = tmp.path().join("o");
    if !cfg!(feature = "cuda") {
        let o = scfnet(&[
            "predict",
            "--random-weights",
            "--device",
            "cuda",
            "--input",
            s(&img),
            "--output",
            s(&out),
        ]);
        assert!(
            !o.status.success() && text(&o).contains("without CUDA support"),
            "{}",
            text(&o)
        );
    }
    let o = scfnet(&["predict", "--input", s(&img), "--output", s(&out)]);
    assert!(
        !o.status.success() && text(&o).contains("no weights"),
        "{}",
        text(&o)
    );
    let o = scfnet(&[
        "predict",
        "--random-weights",
        "--size",
        "300",
        "--input",
        s(&img),
        "--output",
        s(&out),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("multiple of 32"),
        "{}",
        text(&o)
    );
    let o = scfnet(&[
        "predict",
        "--random-weights",
        "--input",
        s(&tmp.path().join("nothing")),
        "--output",
        s(&out),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("no such file or folder"),
        "{}",
        text(&o)
    );
    // Reduced precision and the GPU's other convolution implementations (cuDNN included, before
    // any loading) exist only on a GPU: refused by name on the CPU, nothing written.
    for (option, value, refusal) in [
        ("--precision", "bf16", "only on CUDA GPUs"),
        ("--precision", "tf32", "only on CUDA GPUs"),
        ("--precision", "conv-tf32", "only on CUDA GPUs"),
        ("--convolutions", "cudnn", "CUDA GPUs"),
        ("--convolutions", "batch-wgrad", "CUDA GPUs"),
        ("--convolutions", "batch-columns", "CUDA GPUs"),
    ] {
        let o = scfnet(&[
            "predict",
            "--random-weights",
            option,
            value,
            "--input",
            s(&img),
            "--output",
            s(&out),
        ]);
        let said = text(&o);
        assert!(
            !o.status.success()
                && said.contains(&format!("{option} {value}"))
                && said.contains(refusal),
            "{said}"
        );
        assert!(
            !out.exists(),
            "{option} {value}: {} was written",
            out.display()
        );
    }
}

#[test]
fn convert_then_predict_with_the_authors_student_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let pdparams = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/model/authors_student_f16.pdparams");
    let st = tmp.path().join("student.safetensors");
    let o = scfnet(&[
        "convert",
        "--from",
        "paddle",
        "--model",
        "student",
        s(&pdparams),
        s(&st),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("tensors written"), "{}", text(&o));
    let out = tmp.path().join("maps");
    let o = scfnet(&[
        "predict",
        "--weights",
        s(&st),
        "--input",
        s(&demo("0004.jpg")),
        "--output",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.join("0004.png").exists());
    let o = scfnet(&[
        "convert",
        "--model",
        "swinb",
        s(&pdparams),
        s(&tmp.path().join("bad.safetensors")),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("authors_student_f16.pdparams"),
        "{}",
        text(&o)
    );
}
