//! `scfnet synth`: a synthetic salient-object dataset in the benchmark layout.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use scfnet_data::synth::{generate, SynthConfig};

/// `scfnet synth --out DIR --n N --seed S`.
#[derive(Args, Debug, Clone)]
pub struct SynthArgs {
    /// Output folder (image/, mask/, train.txt, test.txt).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 200)]
    pub n: usize,
    /// Seed (the same seed gives the same files).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Smallest image side.
    #[arg(long, default_value_t = 160)]
    pub min_side: usize,
    /// Largest image side.
    #[arg(long, default_value_t = 256)]
    pub max_side: usize,
    /// Fraction listed in test.txt.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Most distractors per scene (not salient, not in the mask: muted shapes, small saturated
    /// specks, shapes cut by the border); 0 gives the plain scenes.
    #[arg(long, default_value_t = 0)]
    pub clutter: usize,
}

/// Runs `scfnet synth`.
pub fn run(args: SynthArgs) -> Result<ExitCode> {
    let config = SynthConfig {
        count: args.n,
        seed: args.seed,
        side: (args.min_side, args.max_side),
        test_fraction: args.test_fraction,
        clutter: args.clutter,
    };
    let pb = ProgressBar::new(args.n as u64);
    pb.set_style(
        ProgressStyle::with_template("generating [{bar:40}] {pos}/{len} images, ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let s = generate(&args.out, &config, || pb.inc(1))?;
    pb.finish_and_clear();
    tracing::info!(
        "wrote {} images to {} ({} in train.txt, {} in test.txt)",
        args.n,
        s.root.display(),
        s.train.len(),
        s.test.len()
    );
    Ok(ExitCode::SUCCESS)
}
