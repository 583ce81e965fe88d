//! `cargo xtask onnx-parity`: the exported ONNX models against our own maps, under ONNX Runtime
//! and `onnx.checker` (tests/reference/model/onnx_parity.py, run in the same command).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use scfnet_backbones::synthetic_image;
use scfnet_model::{ModelKind, Scfnet};

use crate::onnx_models::{calibrated_weights, export};

/// Arguments of `onnx-parity`.
#[derive(clap::Args)]
pub struct Args {
    /// Where the weights, ONNX files, inputs and our maps are written (kept for inspection).
    #[arg(long, default_value = "target/onnx-parity")]
    out: PathBuf,
    /// Networks to check (student, r50, swinb).
    #[arg(long, value_delimiter = ',', default_values_t = ["student".to_string(), "r50".to_string()])]
    models: Vec<String>,
    /// Largest accepted difference of a probability.
    #[arg(long, default_value_t = 1e-4)]
    tolerance: f64,
}

/// The inputs: the authors' square side at batch 2, and a non-square size at batch 1 (the
/// exported graph has dynamic batch, height and width); for a graph fixed to one side (Swin-B),
/// that side at batch 2 and 1.
fn cases(fixed_side: Option<usize>) -> Vec<(String, [usize; 4])> {
    let case = |b: usize, h: usize, w: usize| (format!("b{b}_{h}x{w}"), [b, 3, h, w]);
    match fixed_side {
        Some(s) => vec![case(2, s, s), case(1, s, s)],
        None => vec![case(2, 352, 352), case(1, 320, 448)],
    }
}

/// Runs the check.
pub fn run(args: Args) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for name in &args.models {
        let kind: ModelKind = name.parse().map_err(anyhow::Error::msg)?;
        let weights = args.out.join(format!("{kind}.safetensors"));
        let onnx = args.out.join(format!("{kind}.onnx"));
        calibrated_weights(kind, kind.default_size().get(), &weights)?;
        let predictor = export(kind, &weights, kind.default_size(), &onnx)?;
        // The same network in f64: how far f32 arithmetic (ours and ONNX Runtime's) strays.
        // SAFETY: a file this command just wrote, only read.
        let vb64 =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F64, &Device::Cpu)? };
        let net64 = Scfnet::new(kind, vb64)?.folded()?;
        for (case, dims) in cases(predictor.net().onnx_input_side()) {
            let case = case.as_str();
            let x = synthetic_image(&format!("onnx:{case}"), &dims, DType::F32, &Device::Cpu)?;
            let map = |net: &Scfnet, x: &Tensor| -> Result<Tensor> {
                let p2 = net.side_outputs(x, false)?.p2;
                Ok(candle_nn::ops::sigmoid(&p2)?.to_dtype(DType::F32)?)
            };
            let file = |what: &str| args.out.join(format!("{kind}_{case}_{what}.npy"));
            x.write_npy(file("input"))?;
            map(predictor.net(), &x)?.write_npy(file("ours"))?;
            map(&net64, &x.to_dtype(DType::F64)?)?.write_npy(file("f64"))?;
        }
        println!("{kind}: wrote {}", onnx.display());
    }
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/model/onnx_parity.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg(&args.out)
        .args(["--tolerance", &args.tolerance.to_string()])
        .args(["--models", &args.models.join(",")])
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} failed (see above)", script.display());
    }
    Ok(())
}
