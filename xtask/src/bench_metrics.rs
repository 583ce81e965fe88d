//! `cargo xtask bench-metrics`: images/s of the nine metrics, next to pysodmetrics.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sod_metrics::{Accumulator, SaliencyPair, Scorer};

use crate::synthetic;

/// Arguments of `bench-metrics`.
#[derive(clap::Args)]
pub struct Args {
    /// Number of pairs.
    #[arg(long, default_value_t = 500)]
    pairs: usize,
    /// Width of each pair.
    #[arg(long, default_value_t = 400)]
    width: usize,
    /// Height of each pair.
    #[arg(long, default_value_t = 300)]
    height: usize,
    /// Also write the pairs as PNGs here (`pred/`, `gt/`), for the reference script.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Time pysodmetrics on the same pairs in the same run (needs python3 with
    /// tests/reference/metrics/requirements.txt installed); implies a dump to a temp folder.
    #[arg(long)]
    python: bool,
    /// Repetitions of each measurement; the best is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

fn write_pairs(dir: &Path, pairs: &[synthetic::SyntheticPair], w: usize, h: usize) -> Result<()> {
    for sub in ["pred", "gt"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    for (i, p) in pairs.iter().enumerate() {
        for (sub, data) in [("pred", &p.pred), ("gt", &p.gt)] {
            let path = dir.join(sub).join(format!("{i:04}.png"));
            image::GrayImage::from_raw(w as u32, h as u32, data.clone())
                .context("buffer size")?
                .save(&path)
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
    }
    Ok(())
}

/// Seconds of the fastest of `repeat` runs of `f`.
fn best_of(repeat: usize, mut f: impl FnMut()) -> f64 {
    (0..repeat.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Runs the benchmark and prints images/s.
pub fn run(args: Args) -> Result<()> {
    let (w, h) = (args.width, args.height);
    let pairs: Vec<_> = (0..args.pairs)
        .map(|i| synthetic::pair(i as u64, w, h, 0.3 + 0.6 * (i % 7) as f64 / 6.0))
        .collect();
    let n = pairs.len() as f64;
    // Everything from the 8-bit buffers: normalisation + all nine numbers + curves + aggregation.
    let score_all = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        pool.install(|| {
            let results = sod_metrics::score_parallel(
                &pairs,
                |p| SaliencyPair::from_u8(&p.pred, &p.gt, w, h).map(|pair| (pair, ())),
                || {},
            );
            let mut acc = Accumulator::new();
            for r in results {
                acc.push(&r.expect("valid synthetic pair").0);
            }
            acc.finish()
        })
    };
    let single = best_of(args.repeat, || {
        let mut scorer = Scorer::new();
        let mut acc = Accumulator::new();
        for p in &pairs {
            let pair = SaliencyPair::from_u8(&p.pred, &p.gt, w, h).expect("valid synthetic pair");
            acc.push(&scorer.score(&pair));
        }
        std::hint::black_box(acc.finish());
    });
    let threads = rayon::current_num_threads();
    let multi = best_of(args.repeat, || {
        std::hint::black_box(score_all(threads));
    });
    let scores = score_all(threads);
    println!("sod-metrics: {} pairs of {w}x{h}", pairs.len());
    println!("  single thread : {:8.1} images/s", n / single);
    println!("  {threads} threads     : {:8.1} images/s", n / multi);
    println!(
        "  dataset: maxF {:.4} meanF {:.4} adpF {:.4} Sm {:.4} maxE {:.4} meanE {:.4} adpE {:.4} wF {:.4} MAE {:.4}",
        scores.max_f,
        scores.mean_f,
        scores.adaptive_f,
        scores.s_measure,
        scores.max_e,
        scores.mean_e,
        scores.adaptive_e,
        scores.weighted_f,
        scores.mae
    );

    let dump = match (&args.dump, args.python) {
        (Some(d), _) => Some(d.clone()),
        (None, true) => {
            Some(std::env::temp_dir().join(format!("sod-metrics-bench-{}", std::process::id())))
        }
        (None, false) => None,
    };
    if let Some(dir) = &dump {
        write_pairs(dir, &pairs, w, h)?;
        println!("  wrote the pairs to {}", dir.display());
    }
    if args.python {
        let dir = dump.expect("dump folder set with --python");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/reference/metrics/bench_pysodmetrics.py");
        let out = Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .output()
            .with_context(|| format!("running python3 {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "{} failed:\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        if let Some(py_rate) = text.lines().find_map(|l| {
            l.split(" = ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        }) {
            println!(
                "  ratio vs pysodmetrics (single thread): {:.1}x; all threads: {:.1}x",
                (n / single) / py_rate,
                (n / multi) / py_rate
            );
        }
        if args.dump.is_none() {
            std::fs::remove_dir_all(&dir).ok();
        }
    }
    Ok(())
}
