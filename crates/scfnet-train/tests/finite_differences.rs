//! Backpropagation equals finite differences, stage by stage, for each network (f64, small
//! inputs, training mode so BatchNorm uses batch statistics).
//!
//! For a probed tensor `w` and a direction `d` (synthetic values), the analytic directional
//! derivative `Σ ∇L ⊙ d` must equal `(L(w + εd) − L(w − εd)) / 2ε`, where `L` is a fixed linear
//! functional of the network's outputs. Perturbing a variable after the network is built also
//! catches weights that a layer copied at construction (an optimiser step would not reach them).
//!
//! The student and SCFNet-R50 are probed whole. Swin-B's backbone code is probed at a tiny width
//! (`SwinConfig` with 16 channels, window 4) on a 96×64 input, which exercises what Swin-B at
//! 384×384 has (shifted windows, the relative-position table, LayerNorms, patch merging) plus
//! padding; Swin-B itself at 64×64 costs ~25 GMAC per f64 forward. Its full-size gradients are
//! checked against the authors' code by `one_step_parity.rs`.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use scfnet_backbones::{synthetic_image, synthetic_values, Backbone, SwinConfig, SwinTransformer};
use scfnet_model::{ModelKind, Scfnet};
use scfnet_train::params::sorted_vars;

/// Every variable of `varmap` set to its synthetic value, in f64.
fn fill_synthetic(varmap: &VarMap) {
    for (name, var) in sorted_vars(varmap) {
        let v = synthetic_values(&name, var.dims());
        var.set(&Tensor::from_vec(v, var.dims(), &Device::Cpu).unwrap())
            .unwrap();
    }
}

/// `Σ_i Σ (y_i ⊙ r_i)` with fixed synthetic weights `r_i`.
fn functional(outputs: &[&Tensor]) -> Tensor {
    let mut total = Tensor::new(0f64, &Device::Cpu).unwrap();
    for (i, y) in outputs.iter().enumerate() {
        let r = synthetic_image(
            &format!("fd-weights:{i}"),
            y.dims(),
            DType::F64,
            &Device::Cpu,
        )
        .unwrap();
        total = (total + (*y * r).unwrap().sum_all().unwrap()).unwrap();
    }
    total
}

/// Largest relative difference between backprop and the best finite difference.
const TOLERANCE: f64 = 1e-5;

fn scalar(t: &Tensor) -> f64 {
    t.to_scalar::<f64>().unwrap()
}

/// Checks every probed tensor of `varmap`; `loss` runs the network (training mode).
fn check(what: &str, varmap: &VarMap, probes: &[&str], loss: impl Fn() -> Tensor) {
    let vars: std::collections::HashMap<String, Var> = sorted_vars(varmap).into_iter().collect();
    let l = loss();
    let grads = l.backward().unwrap();
    let mut report = Vec::new();
    for name in probes {
        let var = vars
            .get(*name)
            .unwrap_or_else(|| panic!("{what}: no tensor {name}"));
        let w = var.as_tensor().copy().unwrap();
        let d = Tensor::from_vec(
            synthetic_values(&format!("fd-direction:{name}"), var.dims()),
            var.dims(),
            &Device::Cpu,
        )
        .unwrap();
        let analytic = match grads.get(var.as_tensor()) {
            Some(g) => scalar(&(g * &d).unwrap().sum_all().unwrap()),
            None => 0.0,
        };
        // Central differences at steps of 1e-4 … 1e-8 of the tensor's scale: ReLU and max-pool
        // kinks spoil the large steps of the piecewise-linear networks, rounding the small steps
        // of small derivatives; a correct gradient agrees within TOLERANCE at one of them, a
        // missing or wrong one at none.
        let scale = scalar(&w.abs().unwrap().max_all().unwrap()).max(1e-3);
        let mut best: Option<(f64, f64, f64)> = None;
        for k in 4..=8 {
            let eps = 10f64.powi(-k) * scale;
            var.set(&(&w + (&d * eps).unwrap()).unwrap()).unwrap();
            let plus = scalar(&loss());
            var.set(&(&w - (&d * eps).unwrap()).unwrap()).unwrap();
            let minus = scalar(&loss());
            var.set(&w).unwrap();
            let numeric = (plus - minus) / (2.0 * eps);
            let err = (analytic - numeric).abs() / numeric.abs().max(analytic.abs());
            if best.is_none_or(|(e, _, _)| err < e) {
                best = Some((err, numeric, eps / scale));
            }
            if err < TOLERANCE {
                break;
            }
        }
        let (err, numeric, step) = best.expect("at least one step");
        report.push(format!(
            "{name}: analytic {analytic:.9e}, numeric {numeric:.9e} (step {step:.0e}), rel. error {err:.1e}"
        ));
        assert!(
            numeric.abs() > 1e-9 * scalar(&l.abs().unwrap()).max(1.0),
            "{what} {name}: the output does not depend on this tensor (numeric {numeric:e})"
        );
        assert!(
            err < TOLERANCE,
            "{what} {name}: backprop {analytic:e} vs finite differences {numeric:e} (rel. {err:.2e})"
        );
    }
    eprintln!("{what}: loss {:e}\n  {}", scalar(&l), report.join("\n  "));
}

fn network(kind: ModelKind, probes: &[&str]) {
    let varmap = VarMap::new();
    let net = Scfnet::new(
        kind,
        VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu),
    )
    .unwrap();
    fill_synthetic(&varmap);
    let x = synthetic_image("fd-input", &[2, 3, 64, 64], DType::F64, &Device::Cpu).unwrap();
    check(kind.name(), &varmap, probes, || {
        let out = net.side_outputs(&x, true).unwrap();
        functional(&out.as_array())
    });
}

#[test]
fn student_backprop_equals_finite_differences() {
    network(
        ModelKind::Student,
        &[
            "bkbone.conv.conv.weight",
            "bkbone.conv.bn.weight",
            "bkbone.blocks.0.bottleneck_conv.conv.weight",
            "bkbone.blocks.3.expand_conv.bn.bias",
            "bkbone.blocks.4.mid_se.conv1.weight",
            "bkbone.blocks.5.mid_se.conv2.bias",
            "bkbone.blocks.8.linear_conv.conv.weight",
            "bkbone.blocks.14.bottleneck_conv.conv.weight",
            "mp.cv2.0.weight",
            "cv1.1.weight",
            "de1.cv3.0.weight",
            "linear5.bias",
        ],
    );
}

#[test]
fn r50_backprop_equals_finite_differences() {
    network(
        ModelKind::R50,
        &[
            "bkbone.conv1.weight",
            "bkbone.bn1.bias",
            "bkbone.layer1.0.conv2.weight",
            "bkbone.layer1.0.downsample.0.weight",
            "bkbone.layer2.3.bn2.weight",
            "bkbone.layer3.1.conv3.weight",
            "bkbone.layer4.2.conv1.weight",
            "bkbone.layer4.0.downsample.1.weight",
            "mp.cv4.0.weight",
            "de3.cv2.1.bias",
            "linear2.weight",
        ],
    );
}

#[test]
fn swin_backprop_equals_finite_differences() {
    let config = SwinConfig {
        embed_dim: 16,
        depths: [2, 2, 2, 2],
        heads: [1, 2, 2, 4],
        window: 4,
        patch: 4,
        mlp_ratio: 2,
        drop_path_rate: 0.0,
    };
    let varmap = VarMap::new();
    let swin = SwinTransformer::new(
        VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu),
        config,
    )
    .unwrap();
    fill_synthetic(&varmap);
    // Stage maps 24×16, 12×8, 6×4 (padded to 8×4, shifted along H only), 3×2 (padded).
    let x = synthetic_image("fd-input", &[2, 3, 96, 64], DType::F64, &Device::Cpu).unwrap();
    check(
        "swin (tiny width)",
        &varmap,
        &[
            "patch_embed.proj.weight",
            "patch_embed.norm.weight",
            "layers.0.blocks.0.attn.qkv.weight",
            "layers.0.blocks.1.attn.relative_position_bias_table",
            "layers.0.blocks.1.norm1.bias",
            "layers.1.downsample.norm.weight",
            "layers.1.downsample.reduction.weight",
            "layers.1.blocks.1.attn.proj.bias",
            "layers.2.blocks.1.attn.relative_position_bias_table",
            "layers.2.blocks.0.norm2.weight",
            "layers.3.downsample.reduction.weight",
            "layers.3.blocks.1.mlp.fc1.weight",
            "layers.3.blocks.1.mlp.fc2.bias",
        ],
        || {
            let f = swin.features(&x, true).unwrap();
            functional(&[&f.x2, &f.x3, &f.x4, &f.x5])
        },
    );
}
