//! Swin-B (patch 4, window 12) against timm 1.0.31 with the same synthetic weights: the SCFNet
//! taps at 384×384 and at the non-square 416×384, the parameter count and the weight names.

mod common;

use candle_core::{DType, Device};
use common::{check_runs, count_params, reference, Build, Reference};
use scfnet_backbones::{synthetic_var_builder, Backbone, SwinTransformer};
use serde::Deserialize;

const BUILD: Build = |vb| Ok(Box::new(SwinTransformer::base(vb)?) as Box<dyn Backbone>);

#[test]
fn feature_maps_match_timm() {
    let r: Reference = reference("swin_base.json");
    check_runs("Swin-B vs timm", &r, BUILD);
}

#[test]
fn parameters_and_names_match_timm_without_the_unused_final_norm() {
    #[derive(Deserialize)]
    struct Info {
        timm_total_params: usize,
        final_norm_params: usize,
        names: Vec<String>,
    }
    let r: Reference = reference("swin_base.json");
    let info: Info = reference("swin_base.json");
    assert_eq!(count_params(BUILD), (r.trainable_params, 0));
    // Spec §2: 88,358,140 trainable for SCFNet_STB = 86,878,584 backbone + 1,479,556 decoder.
    assert_eq!(info.timm_total_params, 86_878_584);
    assert_eq!(
        r.trainable_params,
        info.timm_total_params - info.final_norm_params
    );
    let (vb, weights) = synthetic_var_builder(DType::F32, &Device::Cpu);
    SwinTransformer::base(vb).unwrap();
    let mut got: Vec<String> = weights.requested().into_iter().map(|(n, _)| n).collect();
    got.sort();
    assert_eq!(got, info.names);
}

#[test]
fn inputs_that_are_not_multiples_of_32_are_refused() {
    let (vb, _) = synthetic_var_builder(DType::F32, &Device::Cpu);
    let net = SwinTransformer::base(vb).unwrap();
    let x = candle_core::Tensor::zeros((1, 3, 100, 96), DType::F32, &Device::Cpu).unwrap();
    let err = net.features(&x, false).unwrap_err().to_string();
    assert!(err.contains("multiple of 32"), "{err}");
}
