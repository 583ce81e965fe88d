//! MobileNetV3-Large ×0.5 against PaddleClas 2.6.0's own module (paddlepaddle 3.3.1) with the same
//! synthetic weights (eval mode in f32, train mode in f64), its parameter count and its names.

mod common;

use candle_core::{DType, Device};
use common::{check_runs, count_params, reference, Build, Reference};
use scfnet_backbones::{synthetic_var_builder, Backbone, MobileNetV3};
use serde::Deserialize;

const BUILD: Build = |vb| Ok(Box::new(MobileNetV3::large_x0_5(vb)?) as Box<dyn Backbone>);

#[test]
fn feature_maps_match_paddleclas() {
    let r: Reference = reference("mobilenetv3.json");
    check_runs("MobileNetV3-Large x0.5 vs PaddleClas", &r, BUILD);
}

#[test]
fn parameter_count_matches_paddleclas_and_the_spec() {
    let r: Reference = reference("mobilenetv3.json");
    assert_eq!(
        count_params(BUILD),
        (r.trainable_params, r.bn_running_stats)
    );
    // Spec §2: backbone trunk 738,662 trainable, 11,408 BN running statistics.
    assert_eq!((r.trainable_params, r.bn_running_stats), (738_662, 11_408));
}

#[test]
fn weight_names_are_the_paddle_module_paths() {
    #[derive(Deserialize)]
    struct Names {
        names: Vec<String>,
    }
    let want: Names = reference("mobilenetv3.json");
    let (vb, weights) = synthetic_var_builder(DType::F32, &Device::Cpu);
    MobileNetV3::large_x0_5(vb).unwrap();
    let mut got: Vec<String> = weights.requested().into_iter().map(|(n, _)| n).collect();
    got.sort();
    assert_eq!(got, want.names);
    let channels = MobileNetV3::large_x0_5(synthetic_var_builder(DType::F32, &Device::Cpu).0)
        .unwrap()
        .channels();
    assert_eq!(channels, [8, 16, 24, 56, 80]);
}
