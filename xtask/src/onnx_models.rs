//! Networks for the ONNX checks and benchmarks: the deterministic synthetic weights of the parity
//! tests, with BatchNorm statistics calibrated on a synthetic image (so activations and logits have the
//! scale of a trained network instead of saturating the sigmoid), saved as safetensors; and
//! their ONNX export through `Scfnet::to_onnx`, as `scfnet export` writes it.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use scfnet_backbones::{synthetic_image, synthetic_values};
use scfnet_model::{InputSide, ModelKind, Predictor, Scfnet};
use scfnet_onnx::encode_model;

/// Writes synthetic weights of `kind` ([`synthetic_values`]) to `path`, with running statistics
/// calibrated by 30 training-mode passes (momentum 0.1) on a synthetic `1 × 3 × side × side`
/// image.
pub fn calibrated_weights(kind: ModelKind, side: usize, path: &Path) -> Result<()> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let net = Scfnet::new(kind, vb)?;
    for (name, var) in varmap.data().lock().expect("not poisoned").iter() {
        let values = synthetic_values(name, var.dims());
        var.set(&Tensor::from_vec(values, var.dims(), &Device::Cpu)?.to_dtype(DType::F32)?)?;
    }
    let x = synthetic_image("calibration", &[1, 3, side, side], DType::F32, &Device::Cpu)?;
    for _ in 0..30 {
        net.side_outputs(&x, true)?;
    }
    varmap
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}

/// The inference path of the weights at `weights` (checked and folded, as `scfnet predict`
/// loads them), and its ONNX export written to `onnx`.
pub fn export(kind: ModelKind, weights: &Path, size: InputSide, onnx: &Path) -> Result<Predictor> {
    let label = weights.display().to_string();
    let predictor = Predictor::from_file(kind, weights, &label, size, &Device::Cpu)?;
    let model = predictor.net().to_onnx()?;
    std::fs::write(onnx, encode_model(&model))
        .with_context(|| format!("writing {}", onnx.display()))?;
    Ok(predictor)
}
