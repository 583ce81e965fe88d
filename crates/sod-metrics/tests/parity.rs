//! Parity with pysodmetrics 1.6.2 on the committed corpus.
//!
//! `tests/reference/metrics/make_reference.py` (run by hand, never by CI) generated the PNGs in
//! `tests/data/metrics/corpus/` and the expected values in `tests/data/metrics/expected.json`.
//! Tolerances: 1e-12 for MAE, F, E and every curve point; 1e-9 for S-measure and weighted F.

use std::path::PathBuf;

use serde::Deserialize;
use sod_metrics::{
    load_gray, load_pair, Accumulator, DatasetScores, GrayMap, ImageScores, ResizeMode,
    SaliencyPair, Scorer,
};

const TIGHT: f64 = 1e-12;
const LOOSE: f64 = 1e-9;

#[derive(Deserialize)]
struct Expected {
    images: Vec<ExpectedImage>,
    datasets: ExpectedDatasets,
    f32_cases: Vec<ExpectedF32>,
}

#[derive(Deserialize)]
struct ExpectedDatasets {
    all: ExpectedDataset,
    no_nan: ExpectedDataset,
}

#[derive(Deserialize)]
struct ExpectedCurves {
    precision: Vec<f64>,
    recall: Vec<f64>,
    f_curve: Vec<f64>,
    e_curve: Vec<f64>,
}

#[derive(Deserialize)]
struct ExpectedImage {
    name: String,
    pred: String,
    gt: String,
    width: usize,
    height: usize,
    resized: bool,
    resized_pred: Option<Vec<u8>>,
    #[serde(flatten)]
    scores: ExpectedScores,
}

/// The per-image values of pysodmetrics.
#[derive(Deserialize)]
struct ExpectedScores {
    mae: f64,
    sm: Option<f64>,
    wfm: f64,
    adp_f: f64,
    adp_e: f64,
    #[serde(flatten)]
    curves: ExpectedCurves,
}

#[derive(Deserialize)]
struct ExpectedDataset {
    names: Vec<String>,
    mae: f64,
    sm: Option<f64>,
    wfm: f64,
    adp_f: f64,
    adp_e: f64,
    max_f: f64,
    mean_f: f64,
    max_e: f64,
    mean_e: f64,
    #[serde(flatten)]
    curves: ExpectedCurves,
}

#[derive(Deserialize)]
struct ExpectedF32 {
    name: String,
    #[serde(flatten)]
    scores: ExpectedScores,
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/metrics")
}

fn expected() -> Expected {
    let path = data_dir().join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("expected.json parses")
}

thread_local! {
    /// Largest difference seen so far per tolerance class (tight, loose), for the report.
    static WORST: std::cell::Cell<(f64, f64)> = const { std::cell::Cell::new((0.0, 0.0)) };
}

/// Asserts |got - want| <= tol, treating `None` as NaN.
fn close(what: &str, got: f64, want: Option<f64>, tol: f64) {
    match want {
        None => assert!(got.is_nan(), "{what}: expected NaN, got {got}"),
        Some(w) => {
            let diff = (got - w).abs();
            assert!(
                diff <= tol,
                "{what}: got {got:.17}, want {w:.17} (diff {diff:.3e} > {tol:.0e})"
            );
            WORST.with(|c| {
                let (t, l) = c.get();
                c.set(if tol == TIGHT {
                    (t.max(diff), l)
                } else {
                    (t, l.max(diff))
                });
            });
        }
    }
}

/// Prints the largest differences seen by this test (`cargo test -- --nocapture`).
fn report(test: &str) {
    let (t, l) = WORST.with(|c| c.get());
    eprintln!("{test}: max |diff| MAE/F/E/curves {t:.2e}, S/wF {l:.2e}");
}

fn close_curves(what: &str, got: &sod_metrics::Curves, want: &ExpectedCurves) {
    for (name, g, w) in [
        ("precision", &got.precision, &want.precision),
        ("recall", &got.recall, &want.recall),
        ("F", &got.f_measure, &want.f_curve),
        ("E", &got.e_measure, &want.e_curve),
    ] {
        assert_eq!(g.len(), 256, "{what} {name} curve length");
        assert_eq!(w.len(), 256, "{what} expected {name} curve length");
        for t in 0..256 {
            close(&format!("{what} {name}[{t}]"), g[t], Some(w[t]), TIGHT);
        }
    }
}

fn check_image(name: &str, got: &ImageScores, want: &ExpectedScores) {
    close(&format!("{name} MAE"), got.mae, Some(want.mae), TIGHT);
    close(
        &format!("{name} adpF"),
        got.adaptive_f,
        Some(want.adp_f),
        TIGHT,
    );
    close(
        &format!("{name} adpE"),
        got.adaptive_e,
        Some(want.adp_e),
        TIGHT,
    );
    close(&format!("{name} Sm"), got.s_measure, want.sm, LOOSE);
    close(&format!("{name} wF"), got.weighted_f, Some(want.wfm), LOOSE);
    close_curves(name, &got.curves, &want.curves);
}

fn score_file(img: &ExpectedImage) -> ImageScores {
    let dir = data_dir().join("corpus");
    let loaded = load_pair(dir.join(&img.pred), dir.join(&img.gt), ResizeMode::Bilinear)
        .unwrap_or_else(|e| panic!("{}: {e}", img.name));
    assert_eq!(
        (loaded.pair.width(), loaded.pair.height()),
        (img.width, img.height)
    );
    assert_eq!(
        loaded.resized_from.is_some(),
        img.resized,
        "{}: resized flag",
        img.name
    );
    Scorer::new().score(&loaded.pair)
}

#[test]
fn per_image_values_match_pysodmetrics() {
    let exp = expected();
    assert!(exp.images.len() >= 20, "corpus too small");
    for img in &exp.images {
        let got = score_file(img);
        check_image(&img.name, &got, &img.scores);
    }
    report("per-image");
}

#[test]
fn resize_matches_the_reference_pixel_for_pixel() {
    let exp = expected();
    let dir = data_dir().join("corpus");
    let mut checked = 0;
    for img in exp.images.iter().filter(|i| i.resized) {
        let want = img
            .resized_pred
            .as_ref()
            .expect("resized cases store the resized prediction");
        let pred = load_gray(dir.join(&img.pred)).unwrap().map;
        let got = sod_metrics::resize_bilinear(&pred, img.width, img.height);
        assert_eq!(
            got.data(),
            &want[..],
            "{}: resized prediction differs",
            img.name
        );
        checked += 1;
    }
    assert!(checked >= 2, "expected an up- and a down-sampling case");
}

#[test]
fn size_mismatch_is_refused_on_request() {
    let exp = expected();
    let dir = data_dir().join("corpus");
    let img = exp
        .images
        .iter()
        .find(|i| i.resized)
        .expect("a resized case");
    let err = load_pair(dir.join(&img.pred), dir.join(&img.gt), ResizeMode::Refuse).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("size mismatch") && msg.contains(&img.pred.replace("pred/", "")),
        "{msg}"
    );
}

fn check_dataset(label: &str, got: &DatasetScores, want: &ExpectedDataset) {
    assert_eq!(got.images, want.names.len(), "{label}: image count");
    close(&format!("{label} MAE"), got.mae, Some(want.mae), TIGHT);
    close(&format!("{label} maxF"), got.max_f, Some(want.max_f), TIGHT);
    close(
        &format!("{label} meanF"),
        got.mean_f,
        Some(want.mean_f),
        TIGHT,
    );
    close(
        &format!("{label} adpF"),
        got.adaptive_f,
        Some(want.adp_f),
        TIGHT,
    );
    close(&format!("{label} maxE"), got.max_e, Some(want.max_e), TIGHT);
    close(
        &format!("{label} meanE"),
        got.mean_e,
        Some(want.mean_e),
        TIGHT,
    );
    close(
        &format!("{label} adpE"),
        got.adaptive_e,
        Some(want.adp_e),
        TIGHT,
    );
    close(&format!("{label} Sm"), got.s_measure, want.sm, LOOSE);
    close(
        &format!("{label} wF"),
        got.weighted_f,
        Some(want.wfm),
        LOOSE,
    );
    close_curves(label, &got.curves, &want.curves);
}

#[test]
fn dataset_values_match_pysodmetrics() {
    let exp = expected();
    for (label, want) in [("all", &exp.datasets.all), ("no_nan", &exp.datasets.no_nan)] {
        let mut acc = Accumulator::new();
        for name in &want.names {
            let img = exp.images.iter().find(|i| &i.name == name).unwrap();
            acc.push(&score_file(img));
        }
        let got = acc.finish();
        check_dataset(label, &got, want);
        if label == "all" {
            assert!(got.nan_s_measure > 0, "the corpus has NaN S-measure cases");
            assert!(
                got.s_measure.is_nan(),
                "a NaN S-measure poisons the dataset mean"
            );
            assert!(got.empty_gt > 0);
        }
    }
    report("dataset");
}

#[test]
fn dataset_values_do_not_depend_on_thread_count() {
    let exp = expected();
    let dir = data_dir().join("corpus");
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let results = sod_metrics::score_parallel(
                &exp.images,
                |img| {
                    load_pair(dir.join(&img.pred), dir.join(&img.gt), ResizeMode::Bilinear)
                        .map(|l| (l.pair, ()))
                },
                || {},
            );
            let mut acc = Accumulator::new();
            for r in results {
                acc.push(&r.unwrap().0);
            }
            acc.finish()
        })
    };
    let one = run(1);
    let many = run(4);
    // Bit-identical, including the NaN S-measure (compare through the debug representation).
    assert_eq!(format!("{one:?}"), format!("{many:?}"));
}

#[test]
fn f32_maps_match_pysodmetrics_without_normalisation() {
    let exp = expected();
    assert!(!exp.f32_cases.is_empty());
    let dir = data_dir().join("corpus");
    for case in &exp.f32_cases {
        let img = exp.images.iter().find(|i| i.name == case.name).unwrap();
        let pred = load_gray(dir.join(&img.pred)).unwrap().map;
        let gt: GrayMap = load_gray(dir.join(&img.gt)).unwrap().map;
        // The reference builds (pred_u8 as f32 / 255) ** 2 in float32.
        let p32: Vec<f32> = pred
            .data()
            .iter()
            .map(|&b| {
                let v = b as f32 / 255.0f32;
                v * v
            })
            .collect();
        let mask: Vec<bool> = gt.data().iter().map(|&g| g > 128).collect();
        let pair = SaliencyPair::from_f32(&p32, &mask, gt.width(), gt.height()).unwrap();
        let got = Scorer::new().score(&pair);
        check_image(&format!("{} (f32)", case.name), &got, &case.scores);
    }
    report("f32");
}
