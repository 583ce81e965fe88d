//! Which parameters train, with which learning-rate multiplier and weight decay, and a seeded
//! fresh initialisation (spec §3.5).
//!
//! - BatchNorm running statistics are not parameters (they have no gradient).
//! - The backbone (`bkbone.…`) trains at `backbone_lr_mult` × the global rate, the decoder at 1 ×.
//! - Weight decay applies to everything except the student's MobileNetV3 BatchNorm γ/β, whose
//!   Paddle `ParamAttr` carries its own `L2Decay(0.0)`. Paddle stores the coefficient as float32,
//!   so it is rounded to f32 here too.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Tensor, Var};
use candle_nn::VarMap;
use scfnet_data::Rng;
use scfnet_model::ModelKind;

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::optim::ParamGroup;

/// True for BatchNorm running statistics (state, not parameters).
pub fn is_running_stat(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// True for a backbone tensor.
pub fn is_backbone(name: &str) -> bool {
    scfnet_model::backbone_name(name).is_some()
}

/// Whether weight decay applies to parameter `name` of `kind` ([`ModelKind::decays`]).
pub fn decays(kind: ModelKind, name: &str) -> bool {
    kind.decays(name)
}

/// The variables of `varmap` sorted by name.
pub fn sorted_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("var map lock");
    let sorted: BTreeMap<_, _> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    sorted.into_iter().collect()
}

/// The optimiser groups of a network's parameters, and their names group by group:
/// backbone with decay, backbone without decay, decoder.
pub fn param_groups(varmap: &VarMap, config: &TrainConfig) -> (Vec<ParamGroup>, Vec<Vec<String>>) {
    let wd = config.weight_decay as f32 as f64;
    let mut groups = [
        (config.backbone_lr_mult, wd, Vec::new(), Vec::new()),
        (config.backbone_lr_mult, 0.0, Vec::new(), Vec::new()),
        (1.0, wd, Vec::new(), Vec::new()),
    ];
    for (name, var) in sorted_vars(varmap) {
        if is_running_stat(&name) {
            continue;
        }
        let g = match (is_backbone(&name), decays(config.model, &name)) {
            (true, true) => 0,
            (true, false) => 1,
            (false, _) => 2,
        };
        groups[g].2.push(var);
        groups[g].3.push(name);
    }
    let mut out = Vec::new();
    let mut names = Vec::new();
    for (lr_mult, weight_decay, vars, n) in groups {
        if !vars.is_empty() {
            out.push(ParamGroup {
                vars,
                lr_mult,
                weight_decay,
            });
            names.push(n);
        }
    }
    (out, names)
}

/// `n` normal samples (Box–Muller) with standard deviation `std`.
fn normal(rng: &mut Rng, n: usize, std: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let u1 = rng.unit().max(1e-300);
            let u2 = rng.unit();
            std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect()
}

fn name_key(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
    })
}

/// Overwrites every variable with a seeded fresh value: conv/linear weights Kaiming-normal
/// (fan-in, gain √2: `std = √(2 / fan_in)`), biases 0, norm scales 1, running means 0 and
/// variances 1, Swin's relative-position tables `N(0, 0.02)`. The decoder's initialisation of the
/// original; reproducible from `seed` (candle's own initialisers are not seedable on the CPU).
pub fn init_fresh(varmap: &VarMap, seed: u64) -> Result<()> {
    for (name, var) in sorted_vars(varmap) {
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let mut rng = Rng::stream(seed, &[0x494e_4954, name_key(&name)]);
        let values: Vec<f64> = if name.ends_with("running_var") {
            vec![1.0; n]
        } else if name.ends_with("relative_position_bias_table") {
            normal(&mut rng, n, 0.02)
        } else if name.ends_with("bias") || name.ends_with("running_mean") {
            vec![0.0; n]
        } else if dims.len() == 1 {
            vec![1.0; n]
        } else {
            let fan_in: usize = dims[1..].iter().product();
            normal(&mut rng, n, (2.0 / fan_in.max(1) as f64).sqrt())
        };
        let t = Tensor::from_vec(values, dims, var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

/// The tensors of the safetensors file `path` (on the CPU), after checking that it is a regular
/// file (a FIFO or a device is refused, not waited on or read without end).
pub(crate) fn read_safetensors(path: &Path) -> Result<std::collections::HashMap<String, Tensor>> {
    scfnet_base::read::open_regular(path)
        .map_err(|e| TrainError::checkpoint(path, format!("not a weights file: {e}")))?;
    candle_core::safetensors::load(path, &candle_core::Device::Cpu)
        .map_err(|e| TrainError::checkpoint(path, format!("cannot read safetensors: {e}")))
}

/// Loads ImageNet backbone weights into the `bkbone.…` variables of `varmap` from a safetensors
/// file whose names are either the backbone's own (`conv1.weight`, timm/PaddleClas names) or
/// prefixed (`bkbone.conv1.weight`); extra tensors (classifier heads) are ignored. Every missing
/// tensor and wrong shape is reported together. Returns the number of tensors loaded.
pub fn load_backbone(varmap: &VarMap, path: &Path) -> Result<usize> {
    let file = read_safetensors(path)?;
    let mut problems = Vec::new();
    let mut loaded = 0;
    for (name, var) in sorted_vars(varmap) {
        let Some(short) = scfnet_model::backbone_name(&name) else {
            continue;
        };
        let Some(t) = file.get(short).or_else(|| file.get(&name)) else {
            problems.push(format!("missing tensor {short}"));
            continue;
        };
        if t.dims() != var.dims() {
            problems.push(format!(
                "tensor {short} has shape {:?}, the network needs {:?}",
                t.dims(),
                var.dims()
            ));
            continue;
        }
        if !scfnet_ops::all_finite(t)? {
            problems.push(format!("tensor {short} holds NaN or infinite values"));
            continue;
        }
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        loaded += 1;
    }
    if !problems.is_empty() {
        return Err(TrainError::checkpoint(
            path,
            format!(
                "not a backbone checkpoint for this network:\n  {}",
                problems.join("\n  ")
            ),
        ));
    }
    Ok(loaded)
}

/// Loads a whole network's weights (every variable, BatchNorm statistics included) into
/// `varmap` from a safetensors file with our names, e.g. the authors' converted checkpoint or
/// an earlier run's `model.safetensors`: the starting point of a fine-tuning run. Every missing
/// tensor and wrong shape is reported together; extra tensors are refused too (a file of another
/// network). Returns the number of tensors loaded.
pub fn load_weights(varmap: &VarMap, path: &Path) -> Result<usize> {
    let file = read_safetensors(path)?;
    let vars = sorted_vars(varmap);
    let mut problems = Vec::new();
    for (name, var) in &vars {
        match file.get(name) {
            None => problems.push(format!("missing tensor {name}")),
            Some(t) if t.dims() != var.dims() => problems.push(format!(
                "tensor {name} has shape {:?}, the network needs {:?}",
                t.dims(),
                var.dims()
            )),
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<&String> = file
        .keys()
        .filter(|n| !known.contains(n.as_str()))
        .collect();
    extra.sort();
    for name in extra {
        problems.push(format!("unexpected tensor {name}"));
    }
    if !problems.is_empty() {
        let shown = problems.len().min(20);
        return Err(TrainError::checkpoint(
            path,
            format!(
                "not a checkpoint of this network ({} problems):\n  {}{}",
                problems.len(),
                problems[..shown].join("\n  "),
                if problems.len() > shown {
                    "\n  …"
                } else {
                    ""
                }
            ),
        ));
    }
    let bad = scfnet_ops::non_finite_names(vars.iter().map(|(n, _)| (n.as_str(), &file[n])))?;
    if !bad.is_empty() {
        return Err(TrainError::checkpoint(
            path,
            format!(
                "{} tensor(s) hold NaN or infinite values: {}",
                bad.len(),
                bad.join(", ")
            ),
        ));
    }
    for (name, var) in &vars {
        let t = &file[name];
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(vars.len())
}

/// The dtype of the variables (F32 unless built otherwise).
pub fn var_dtype(varmap: &VarMap) -> DType {
    sorted_vars(varmap)
        .first()
        .map(|(_, v)| v.dtype())
        .unwrap_or(DType::F32)
}
