//! ResNet-50 against timm 1.0.31 with the same synthetic weights (eval mode in f32, train mode in
//! f64; square and non-square inputs), and its parameter count.

mod common;

use common::{check_runs, count_params, reference, Build, Reference};
use scfnet_backbones::{Backbone, ResNet50};

const BUILD: Build = |vb| Ok(Box::new(ResNet50::new(vb)?) as Box<dyn Backbone>);

#[test]
fn feature_maps_match_timm() {
    let r: Reference = reference("resnet50.json");
    check_runs("ResNet-50 vs timm", &r, BUILD);
}

#[test]
fn parameter_count_matches_timm() {
    let r: Reference = reference("resnet50.json");
    assert_eq!(
        count_params(BUILD),
        (r.trainable_params, r.bn_running_stats)
    );
    assert_eq!(r.trainable_params, 23_508_032);
}
