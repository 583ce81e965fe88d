//! The ONNX export's structure, read back from its bytes: opset and IR version, the dynamic input
//! and output (Swin-B's fixed at its own 384×384), a graph in topological order that uses only
//! defined values, one folded weight per convolution (equal to the fold of the running network).
//! The numbers themselves are checked under ONNX Runtime by `cargo xtask onnx-parity`
//! (tests/reference/model/onnx_parity.py; results in onnx_parity.jsonl beside it).

use std::collections::HashSet;

use candle_core::{DType, Device};
use scfnet_backbones::synthetic_var_builder;
use scfnet_model::{ModelKind, Scfnet};
use scfnet_onnx::proto::{DimensionValue, ModelProto, ValueInfoProto};
use scfnet_onnx::{decode_model, encode_model, IR_VERSION, OPSET};

fn exported(kind: ModelKind) -> ModelProto {
    let (vb, _) = synthetic_var_builder(DType::F32, &Device::Cpu);
    let net = Scfnet::new(kind, vb).unwrap();
    decode_model(&encode_model(&net.to_onnx().unwrap())).unwrap()
}

fn dims(v: &ValueInfoProto) -> Vec<String> {
    let t = v.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
    t.shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| match d.value.as_ref().unwrap() {
            DimensionValue::DimValue(n) => n.to_string(),
            DimensionValue::DimParam(s) => s.clone(),
        })
        .collect()
}

/// The operators of the student's and R50's graphs.
const CNN_OPS: &[&str] = &[
    "Conv",
    "Relu",
    "HardSwish",
    "HardSigmoid",
    "GlobalAveragePool",
    "Mul",
    "Add",
    "MaxPool",
    "Shape",
    "Concat",
    "Resize",
    "Sigmoid",
    "Identity",
];

/// What Swin's blocks add: token layout, LayerNorm, attention, the erf GELU and the cyclic shift.
const SWIN_OPS: &[&str] = &[
    "Transpose",
    "Reshape",
    "LayerNormalization",
    "MatMul",
    "Softmax",
    "Div",
    "Erf",
    "Slice",
];

fn check_graph(kind: ModelKind, convs: usize, spatial: [&str; 2], ops: &[&[&str]]) {
    let m = exported(kind);
    assert_eq!(m.ir_version, IR_VERSION);
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!(
        (m.opset_import[0].domain.as_str(), m.opset_import[0].version),
        ("", OPSET)
    );
    const { assert!(OPSET >= 17) };
    let meta: Vec<(&str, &str)> = m
        .metadata_props
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert!(meta.contains(&("network", kind.name())), "{meta:?}");
    let g = m.graph.unwrap();
    assert_eq!(g.input.len(), 1);
    assert_eq!(g.input[0].name, "image");
    assert_eq!(dims(&g.input[0]), ["batch", "3", spatial[0], spatial[1]]);
    assert_eq!(g.output.len(), 1);
    assert_eq!(g.output[0].name, "saliency");
    assert_eq!(dims(&g.output[0]), ["batch", "1", spatial[0], spatial[1]]);
    let allowed: Vec<&str> = ops.concat();

    // Every node reads only values defined before it; every value is defined once.
    let mut defined: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    assert_eq!(
        defined.len(),
        g.initializer.len(),
        "duplicate initializer names"
    );
    defined.insert("image".into());
    for n in &g.node {
        assert!(allowed.contains(&n.op_type.as_str()), "{}", n.op_type);
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            assert!(defined.contains(i), "{} reads {i} before it exists", n.name);
        }
        for o in &n.output {
            assert!(defined.insert(o.clone()), "{o} defined twice");
        }
    }
    assert!(defined.contains("saliency"));
    // One weight per convolution, each with its bias (BatchNorm folded; no BatchNorm node).
    let conv_nodes: Vec<_> = g.node.iter().filter(|n| n.op_type == "Conv").collect();
    assert_eq!(conv_nodes.len(), convs, "{kind}: convolutions");
    let weights: HashSet<&str> = conv_nodes.iter().map(|n| n.input[1].as_str()).collect();
    assert_eq!(
        weights.len(),
        convs,
        "{kind}: a weight shared by two convolutions"
    );
    for n in &conv_nodes {
        assert_eq!(n.input.len(), 3, "{}: a convolution without bias", n.name);
        let w = g.initializer.iter().find(|t| t.name == n.input[1]);
        assert_eq!(w.map(|t| t.dims.len()), Some(4), "{}: its weight", n.name);
    }
    // Every float weight is finite and its bytes match its shape.
    for t in &g.initializer {
        let n: i64 = t.dims.iter().product();
        let width = if t.data_type == 1 { 4 } else { 8 };
        assert_eq!(t.raw_data.len() as i64, n * width, "{}", t.name);
        if t.data_type == 1 {
            assert!(t
                .raw_data
                .chunks_exact(4)
                .all(|b| f32::from_le_bytes(b.try_into().unwrap()).is_finite()));
        }
    }
}

#[test]
fn the_student_exports_a_valid_graph() {
    // Stem 1; 15 blocks × 3; 8 squeeze-excite blocks × 2; decoder 4 + 1 + 3 × 3 + the p2 head.
    check_graph(
        ModelKind::Student,
        1 + 45 + 16 + 4 + 1 + 9 + 1,
        ["height", "width"],
        &[CNN_OPS],
    );
}

#[test]
fn the_resnet50_teacher_exports_a_valid_graph() {
    // Stem 1; 16 bottlenecks × 3 + 4 downsamples; decoder 4 + 1 + 9 + 1.
    check_graph(
        ModelKind::R50,
        1 + 48 + 4 + 4 + 1 + 9 + 1,
        ["height", "width"],
        &[CNN_OPS],
    );
}

#[test]
fn the_stem_weight_is_the_folded_weight() {
    let m = exported(ModelKind::Student);
    let g = m.graph.unwrap();
    let t = g
        .initializer
        .iter()
        .find(|t| t.name == "bkbone.conv.weight")
        .expect("the stem's weight");
    let got: Vec<f32> = t
        .raw_data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    // W' = W · γ / √(σ² + ε), from the synthetic values in f64.
    let v = |name: &str, shape: &[usize]| scfnet_backbones::synthetic_values(name, shape);
    let w = v("bkbone.conv.conv.weight", &[8, 3, 3, 3]);
    let gamma = v("bkbone.conv.bn.weight", &[8]);
    let var = v("bkbone.conv.bn.running_var", &[8]);
    assert_eq!(t.dims, [8, 3, 3, 3]);
    for (i, (&got, &w)) in got.iter().zip(&w).enumerate() {
        let c = i / 27;
        let want = (w * gamma[c] / (var[c] + 1e-5).sqrt()) as f32;
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{i}: {got} vs {want}"
        );
    }
}

#[test]
fn the_swin_teacher_exports_a_valid_graph_at_its_own_size() {
    // Patch embedding 1; decoder 4 + 1 + 9 + 1 (the blocks are linear maps, not convolutions).
    // Input fixed at 384x384 (every stage a whole number of 12x12 windows), batch dynamic.
    check_graph(
        ModelKind::SwinB,
        1 + 4 + 1 + 9 + 1,
        ["384", "384"],
        &[CNN_OPS, SWIN_OPS],
    );
}
