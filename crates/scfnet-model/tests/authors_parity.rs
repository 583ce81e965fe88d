//! The three networks against the authors' own Paddle `SCFNet` (`net.py`), with the same synthetic
//! weights: the four side outputs in eval mode (f32; student and R50 also at 352×352 and on a
//! non-square input, Swin-B at its fixed 384×384), also with the BatchNorms folded as inference
//! runs them, and train mode (f64), and the weight names.

use candle_core::Device;
use scfnet_backbones::reference::{compare, read, Run};
use scfnet_backbones::{synthetic_image, synthetic_var_builder};
use scfnet_model::{ModelKind, Scfnet};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
struct Network {
    names: Vec<String>,
    runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Reference {
    networks: HashMap<String, Network>,
}

fn check(kind: ModelKind) {
    let r: Reference = read(env!("CARGO_MANIFEST_DIR"), "model/authors_scfnet.json");
    let net = &r.networks[kind.name()];
    let mut worst = 0.0f64;
    for run in &net.runs {
        let (vb, weights) = synthetic_var_builder(run.dtype(), &Device::Cpu);
        let model = Scfnet::new(kind, vb).unwrap();
        let mut names: Vec<String> = weights.requested().into_iter().map(|(n, _)| n).collect();
        names.sort();
        assert_eq!(names, net.names, "{kind}: weight names");
        let x = synthetic_image(&run.input, &run.shape, run.dtype(), &Device::Cpu).unwrap();
        let out = model.side_outputs(&x, run.train).unwrap();
        for (i, (got, want)) in out.as_array().into_iter().zip(&run.maps).enumerate() {
            let what = format!("{kind} {} train={} p{}", run.input, run.train, i + 2);
            let e = compare(&what, got, want, run.tolerance());
            if !run.train {
                worst = worst.max(e);
            }
        }
        if !run.train {
            // The inference path: BatchNorms folded into the convolutions.
            let folded = model.folded().unwrap().side_outputs(&x, false).unwrap();
            for (i, (got, want)) in folded.as_array().into_iter().zip(&run.maps).enumerate() {
                let what = format!("{kind} {} folded p{}", run.input, i + 2);
                worst = worst.max(compare(&what, got, want, run.tolerance()));
            }
        }
    }
    eprintln!("{kind} vs the authors' SCFNet: max relative error in f32 {worst:.2e}");
}

#[test]
fn student_matches_the_authors_network() {
    check(ModelKind::Student);
}

#[test]
fn resnet50_teacher_matches_the_authors_network() {
    check(ModelKind::R50);
}

#[test]
fn swin_teacher_matches_the_authors_network() {
    check(ModelKind::SwinB);
}
