//! End-to-end tests of `scfnet eval` on small folders built by the tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scfnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("scfnet runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A GT disc and a soft prediction of it, both `w × h`; `shift` moves the prediction.
fn pair_maps(w: u32, h: u32, shift: f64) -> (image::GrayImage, image::GrayImage) {
    let (cx, cy, r) = (w as f64 * 0.45, h as f64 * 0.5, h as f64 * 0.3);
    let gt = image::GrayImage::from_fn(w, h, |x, y| {
        let d = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)).sqrt();
        image::Luma([if d < r { 255 } else { 0 }])
    });
    let pred = image::GrayImage::from_fn(w, h, |x, y| {
        let d = ((x as f64 - cx - shift).powi(2) + (y as f64 - cy).powi(2)).sqrt();
        image::Luma([(255.0 / (1.0 + ((d - r) / 3.0).exp())) as u8])
    });
    (pred, gt)
}

/// `root/gt/NAME.png` and `root/pred/METHOD/NAME.png` for two methods and `n` images.
fn dataset(root: &Path, n: usize) {
    for i in 0..n {
        let (good, gt) = pair_maps(64 + i as u32 * 3, 48, 0.0);
        let (bad, _) = pair_maps(64 + i as u32 * 3, 48, 12.0);
        let name = format!("img{i:02}.png");
        for (dir, img) in [("gt", &gt), ("pred/good", &good), ("pred/bad", &bad)] {
            let path = root.join(dir).join(&name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            img.save(&path).unwrap();
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn scores_two_methods_and_writes_every_output() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    dataset(root, 5);
    let out = root.join("out");
    let (json, csv, md, tex, curves, per_image, plots) = (
        out.join("r.json"),
        out.join("r.csv"),
        out.join("r.md"),
        out.join("r.tex"),
        out.join("curves.json"),
        out.join("images.csv"),
        out.join("plots"),
    );
    let good = format!("good={}", s(&root.join("pred/good")));
    let bad = format!("bad={}", s(&root.join("pred/bad")));
    let gt = format!("toy={}", s(&root.join("gt")));
    let o = scfnet(&[
        "eval",
        "--method",
        &good,
        "--method",
        &bad,
        "--dataset",
        &gt,
        "--json",
        s(&json),
        "--csv",
        s(&csv),
        "--markdown",
        s(&md),
        "--latex",
        s(&tex),
        "--curves",
        s(&curves),
        "--per-image",
        s(&per_image),
        "--plot",
        s(&plots),
        "--plot-format",
        "svg",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    for label in [
        "maxF", "meanF", "adpF", "Sm", "maxE", "meanE", "adpE", "wF", "MAE",
    ] {
        assert!(
            table.contains(label),
            "{label} missing from the table:\n{table}"
        );
    }
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = r["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let (g, b) = (&rows[0], &rows[1]);
    assert_eq!(g["method"], "good");
    assert_eq!(g["images"], 5);
    assert!(g["Sm"].as_f64().unwrap() > b["Sm"].as_f64().unwrap());
    assert!(g["MAE"].as_f64().unwrap() < b["MAE"].as_f64().unwrap());
    assert!(std::fs::read_to_string(&md).unwrap().contains("**"));
    assert!(std::fs::read_to_string(&tex).unwrap().contains("\\textbf{"));
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 3);
    assert_eq!(
        std::fs::read_to_string(&per_image).unwrap().lines().count(),
        11
    );
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&curves).unwrap()).unwrap();
    assert_eq!(c[0]["precision"].as_array().unwrap().len(), 256);
    for f in ["toy_pr.svg", "toy_f.svg"] {
        let svg = std::fs::read_to_string(plots.join(f)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("good"), "{f}");
    }
}

#[test]
fn single_method_flags_and_thread_count_do_not_change_results() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path(), 6);
    let pred = tmp.path().join("pred/good");
    let gt = tmp.path().join("gt");
    let run = |threads: &str| {
        let o = scfnet(&[
            "--threads",
            threads,
            "eval",
            "--pred",
            s(&pred),
            "--gt",
            s(&gt),
            "--json",
            "-",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let one = run("1");
    assert_eq!(one, run("2"));
    let v: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(v["results"][0]["method"], "good");
    // A folder named `gt` is named after its parent.
    let parent = tmp.path().file_name().unwrap().to_str().unwrap();
    assert_eq!(v["results"][0]["dataset"], parent);
}

#[test]
fn missing_files_are_listed_together_and_can_be_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path(), 4);
    let pred = tmp.path().join("pred/good");
    std::fs::remove_file(pred.join("img01.png")).unwrap();
    std::fs::remove_file(pred.join("img03.png")).unwrap();
    let (p, g) = (pair_maps(10, 10, 0.0).0, tmp.path().join("gt"));
    p.save(pred.join("stray.png")).unwrap();
    let o = scfnet(&["eval", "--pred", s(&pred), "--gt", s(&g)]);
    assert!(!o.status.success());
    let t = text(&o);
    for name in ["img01.png", "img03.png", "stray.png", "--allow-missing"] {
        assert!(t.contains(name), "{name} not in:\n{t}");
    }
    let o = scfnet(&[
        "eval",
        "--pred",
        s(&pred),
        "--gt",
        s(&g),
        "--allow-missing",
        "--json",
        "-",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["results"][0]["images"], 2);
    assert_eq!(v["results"][0]["skipped"], 2);
}

#[test]
fn bad_images_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path(), 3);
    let pred = tmp.path().join("pred/good");
    let gt = tmp.path().join("gt");
    // A truncated PNG.
    let bytes = std::fs::read(pred.join("img00.png")).unwrap();
    std::fs::write(pred.join("img00.png"), &bytes[..bytes.len() / 3]).unwrap();
    // A 16-bit PNG.
    let wide = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_pixel(
        64 + 3,
        48,
        image::Luma([40000]),
    );
    wide.save(pred.join("img01.png")).unwrap();
    let o = scfnet(&["eval", "--pred", s(&pred), "--gt", s(&gt)]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("img00.png") && t.contains("cannot decode"),
        "{t}"
    );
    assert!(t.contains("img01.png") && t.contains("16"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    let o = scfnet(&[
        "eval",
        "--pred",
        s(&pred),
        "--gt",
        s(&gt),
        "--allow-missing",
        "--json",
        "-",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["results"][0]["images"], 1);
}

#[test]
fn colour_maps_are_converted_with_a_warning_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path(), 2);
    let pred = tmp.path().join("pred/good");
    let (grey, _) = pair_maps(64, 48, 0.0);
    let colour = image::RgbImage::from_fn(64, 48, |x, y| {
        let v = grey.get_pixel(x, y)[0];
        image::Rgb([v, v / 2, 255 - v])
    });
    colour.save(pred.join("img00.png")).unwrap();
    let o = scfnet(&[
        "eval",
        "--pred",
        s(&pred),
        "--gt",
        s(&tmp.path().join("gt")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("colour") && t.contains("img00.png"), "{t}");
}

#[test]
fn empty_or_absent_folders_and_size_mismatch_refusal() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path(), 2);
    let empty: PathBuf = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let gt = tmp.path().join("gt");
    let o = scfnet(&["eval", "--pred", s(&empty), "--gt", s(&gt)]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no images found"), "{}", text(&o));
    let o = scfnet(&[
        "eval",
        "--pred",
        s(&tmp.path().join("nope")),
        "--gt",
        s(&gt),
    ]);
    assert!(text(&o).contains("folder not found"), "{}", text(&o));

    let pred = tmp.path().join("pred/good");
    pair_maps(30, 20, 0.0)
        .0
        .save(pred.join("img00.png"))
        .unwrap();
    let o = scfnet(&[
        "eval",
        "--pred",
        s(&pred),
        "--gt",
        s(&gt),
        "--resize",
        "refuse",
    ]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("size mismatch") && t.contains("img00.png"),
        "{t}"
    );
    let o = scfnet(&["eval", "--pred", s(&pred), "--gt", s(&gt)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("resized"), "{}", text(&o));
}
