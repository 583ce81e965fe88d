//! `cargo xtask bench-models`: images/s of the SCFNet networks on the inference path, next to
//! PyTorch eager and ONNX Runtime (on our own ONNX export) in the same run.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use candle_nn::ModuleT;
use scfnet_backbones::{synthetic_image, synthetic_var_builder};
use scfnet_model::{ModelKind, Scfnet};
use scfnet_onnx::encode_model;

use crate::torch_timing::python_timings;

/// Arguments of `bench-models`.
#[derive(clap::Args)]
pub struct Args {
    /// Input side.
    #[arg(long, default_value_t = 352)]
    size: usize,
    /// Timed repetitions (after one warm-up); the best is reported.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Networks to time (student, r50).
    #[arg(long, value_delimiter = ',', default_values_t = ["student".to_string(), "r50".to_string()])]
    models: Vec<String>,
    /// Batch sizes to time.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8])]
    batches: Vec<usize>,
    /// Also time the PyTorch re-creation (tests/reference/model/bench_torch.py).
    #[arg(long)]
    python: bool,
    /// Also time ONNX Runtime on the networks' own ONNX export (tests/reference/model/
    /// bench_onnx.py; needs onnxruntime).
    #[arg(long)]
    onnx: bool,
    /// Also time the training graph's eval mode (BatchNorms not folded).
    #[arg(long)]
    unfolded: bool,
    /// Rounds of the whole measurement (scfnet, then PyTorch, then ONNX Runtime), alternated
    /// because the machine's load drifts; the table gives medians.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

/// Best ms of `repeat` eval passes (network + sigmoid of p2) on a `batch × 3 × size × size` input.
fn time_model(net: &Scfnet, batch: usize, size: usize, repeat: usize) -> Result<f64> {
    let x = synthetic_image("bench", &[batch, 3, size, size], DType::F32, &Device::Cpu)?;
    // The logits leave the tensor as `scfnet predict` takes them (`network_logits`), then the
    // project's vectorised sigmoid.
    let pass = || -> Result<()> {
        let logits = net.forward_t(&x, false)?.flatten_all()?.to_vec1::<f32>()?;
        std::hint::black_box(scfnet_ops::sigmoid_values(&logits));
        Ok(())
    };
    pass()?;
    let mut best = f64::INFINITY;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        pass()?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

/// `(name, batch, ms)` of `prefix NAME bB: X ms` lines.
fn by_model_batch(lines: Vec<(String, f64)>) -> Vec<(String, usize, f64)> {
    lines
        .into_iter()
        .filter_map(|(label, ms)| {
            let (name, b) = label.split_once(" b")?;
            Some((name.to_owned(), b.parse().ok()?, ms))
        })
        .collect()
}

/// One cell of the table: a network at a batch size, its images/s in each round.
struct Cell {
    name: &'static str,
    batch: usize,
    ours: Vec<f64>,
    torch: Vec<f64>,
    ort: Vec<f64>,
}

/// The median of `v` (`None` when empty).
fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (n > 0).then(|| (v[(n - 1) / 2] + v[n / 2]) / 2.0)
}

/// Images/s of `name` at `batch` in `list` (`(name, batch, ms)`).
fn rate(list: &[(String, usize, f64)], name: &str, batch: usize) -> Option<f64> {
    list.iter()
        .find(|(n, b, _)| n == name && *b == batch)
        .map(|(_, b, ms)| *b as f64 * 1e3 / ms)
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    let threads = candle_core::utils::get_num_threads();
    let kinds: Vec<ModelKind> = [ModelKind::Student, ModelKind::R50]
        .into_iter()
        .filter(|k| args.models.iter().any(|m| m == k.name()))
        .collect();
    let onnx_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-onnx");
    let mut nets = Vec::new();
    let mut onnx_files = Vec::new();
    for &kind in &kinds {
        let (vb, _) = synthetic_var_builder(DType::F32, &Device::Cpu);
        let net = Scfnet::new(kind, vb)?;
        // The inference path, as `scfnet predict` runs it.
        let folded = net.folded()?;
        if args.onnx {
            std::fs::create_dir_all(&onnx_dir)?;
            let path = onnx_dir.join(format!("{kind}.onnx"));
            std::fs::write(&path, encode_model(&net.to_onnx()?))
                .with_context(|| format!("writing {}", path.display()))?;
            onnx_files.push(format!("{kind}={}", path.display()));
        }
        if args.unfolded {
            for &batch in &args.batches {
                let ms = time_model(&net, batch, args.size, args.repeat)?;
                println!(
                    "{kind} b{batch} training graph (unfolded): {:.1} img/s",
                    batch as f64 * 1e3 / ms
                );
            }
        }
        nets.push((kind, folded));
    }
    let mut cells: Vec<Cell> = nets
        .iter()
        .flat_map(|(kind, _)| {
            args.batches.iter().map(|&batch| Cell {
                name: kind.name(),
                batch,
                ours: Vec::new(),
                torch: Vec::new(),
                ort: Vec::new(),
            })
        })
        .collect();
    let batches = args
        .batches
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",");
    // The reference scripts' arguments and a run of one: `(network, batch, ms)` lines.
    let torch_args = [
        "--models".to_string(),
        args.models.join(","),
        "--batches".into(),
        batches.clone(),
    ];
    let mut onnx_args = vec!["--batches".to_string(), batches];
    for f in &onnx_files {
        onnx_args.extend(["--model".to_string(), f.clone()]);
    }
    let python = |script: &str, prefix: &str, extra: &[String]| -> Result<_> {
        let lines = python_timings(script, prefix, threads, args.size, args.repeat, extra)?;
        Ok(by_model_batch(lines))
    };
    let rounds = args.rounds.max(1);
    for round in 1..=rounds {
        if rounds > 1 {
            eprintln!("round {round} of {rounds}");
        }
        for (kind, folded) in &nets {
            for &batch in &args.batches {
                let ms = time_model(folded, batch, args.size, args.repeat)?;
                let cell = cells
                    .iter_mut()
                    .find(|c| c.name == kind.name() && c.batch == batch)
                    .expect("a cell per network and batch");
                cell.ours.push(batch as f64 * 1e3 / ms);
            }
        }
        if args.python {
            let list = python("model/bench_torch.py", "torch", &torch_args)?;
            for c in &mut cells {
                c.torch.extend(rate(&list, c.name, c.batch));
            }
        }
        if args.onnx {
            let list = python("model/bench_onnx.py", "onnx", &onnx_args)?;
            for c in &mut cells {
                c.ort.extend(rate(&list, c.name, c.batch));
            }
        }
    }
    print_table(&cells, &args, threads);
    Ok(())
}

/// The table: with one round its images/s; with several, the median images/s of each column
/// and, as the ratio, the median of the rounds' own ratios (each round's runs are minutes
/// apart at most, so they share the machine's load of the moment), then each round's figures.
fn print_table(cells: &[Cell], args: &Args, threads: usize) {
    let rounds = args.rounds.max(1);
    let what = if rounds > 1 {
        format!(", median of {rounds} rounds (the ratios: median of the rounds' own ratios)")
    } else {
        String::new()
    };
    println!(
        "\nimages/s: network + sigmoid of p2, eval, {s}x{s}, {threads} threads, best of {} \
         (scfnet: BatchNorms folded, as `scfnet predict`; ONNX Runtime: our `scfnet export`){what}\n",
        args.repeat,
        s = args.size
    );
    println!("| model | batch | scfnet | PyTorch eager | ONNX Runtime | scfnet / PyTorch | scfnet / ORT |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let rate = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let ratio = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}x"));
    let ratios = |other: &[f64], c: &Cell| -> Vec<f64> {
        c.ours.iter().zip(other).map(|(a, b)| a / b).collect()
    };
    for c in cells {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            c.name,
            c.batch,
            rate(median(&c.ours)),
            rate(median(&c.torch)),
            rate(median(&c.ort)),
            ratio(median(&ratios(&c.torch, c))),
            ratio(median(&ratios(&c.ort, c))),
        );
    }
    if rounds > 1 {
        println!("\nper round (scfnet / PyTorch / ONNX Runtime images/s):\n");
        for c in cells {
            let per: Vec<String> = (0..c.ours.len())
                .map(|i| {
                    let at = |v: &[f64]| v.get(i).map_or("-".to_string(), |x| format!("{x:.1}"));
                    format!("{} / {} / {}", at(&c.ours), at(&c.torch), at(&c.ort))
                })
                .collect();
            println!("- {} b{}: {}", c.name, c.batch, per.join(" · "));
        }
    }
}
