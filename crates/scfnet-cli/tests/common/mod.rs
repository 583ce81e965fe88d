//! Helpers shared by the command-line tests.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use scfnet_backbones::synthetic_values;
use scfnet_model::{ModelKind, Scfnet};

/// Writes the synthetic weights of `kind` (float32) as safetensors at `path`, with the first
/// value of tensor `poison` (if any) set to NaN; returns them by name.
pub fn synthetic_weights_file(
    kind: ModelKind,
    path: &Path,
    poison: Option<&str>,
) -> HashMap<String, Tensor> {
    let varmap = VarMap::new();
    Scfnet::new(
        kind,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let mut out = HashMap::new();
    for (name, var) in varmap.data().lock().unwrap().iter() {
        let mut v = synthetic_values(name, var.dims());
        if poison == Some(name.as_str()) {
            v[0] = f64::NAN;
        }
        let t = Tensor::from_vec(v, var.dims(), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        var.set(&t).unwrap();
        out.insert(name.clone(), t);
    }
    varmap.save(path).unwrap();
    out
}
