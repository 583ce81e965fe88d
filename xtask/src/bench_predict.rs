//! `cargo xtask bench-predict`: folder throughput of `scfnet predict` (decoding, the network,
//! maps at the images' sizes, PNG writing, overlapped) against the network alone on the same
//! images, batch by batch, in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use image::RgbImage;
use scfnet_backbones::synthetic_var_builder;
use scfnet_model::{ModelKind, Predictor, RgbRef, Scfnet};

/// The synthetic JPEG set of the predict and serve benchmarks.
#[derive(clap::Args)]
pub struct JpegSet {
    /// How many JPEGs.
    #[arg(long, default_value_t = 96)]
    pub count: usize,
    /// Their width.
    #[arg(long, default_value_t = 400)]
    pub width: u32,
    /// Their height.
    #[arg(long, default_value_t = 300)]
    pub height: u32,
}

/// Arguments of `bench-predict`.
#[derive(clap::Args)]
pub struct Args {
    /// The JPEGs in the folder.
    #[command(flatten)]
    jpegs: JpegSet,
    /// Chroma subsampling of the JPEGs: 420 (what cameras, libjpeg and PIL write by default) or
    /// 444 (full-resolution colour, about 1.5 times the decoding work).
    #[arg(long, default_value = "420", value_parser = ["420", "444"])]
    subsampling: String,
    /// Network (student or r50).
    #[arg(long, default_value = "student")]
    model: String,
    /// Batch sizes (`scfnet predict --batch`).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8])]
    batches: Vec<usize>,
    /// Alternations of the two measurements (the machine is noisy).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The `scfnet` binary (default: this checkout's release binary, built first).
    #[arg(long)]
    scfnet: Option<PathBuf>,
}

/// A deterministic photo-like RGB image: smooth gradients and a bright disc, different per `i`.
fn synthetic_photo(i: usize, width: u32, height: u32) -> RgbImage {
    let (cx, cy) = (
        width as f32 * (0.3 + 0.05 * (i % 7) as f32),
        height as f32 * (0.4 + 0.04 * (i % 5) as f32),
    );
    let r = height as f32 * 0.25;
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let inside = (fx - cx).powi(2) + (fy - cy).powi(2) < r * r;
        let wave = ((fx * 0.05 + i as f32).sin() * 30.0) as i32;
        let base = [
            60 + (fx * 0.2) as i32 + wave,
            80 + (fy * 0.3) as i32,
            120 - wave,
        ];
        let px = base.map(|v| (if inside { v + 110 } else { v }).clamp(0, 255) as u8);
        image::Rgb(px)
    })
}

/// Writes `args.jpegs.count` JPEGs (quality 90, `args.subsampling`) into `dir`.
fn write_folder(dir: &Path, args: &Args) -> Result<()> {
    write_jpegs(
        dir,
        args.jpegs.count,
        (args.jpegs.width, args.jpegs.height),
        &args.subsampling,
    )
}

/// Writes `count` photo-like JPEGs `NNNN.jpg` of `size` (quality 90, chroma `subsampling`: "420"
/// or "444") into `dir`.
pub(crate) fn write_jpegs(
    dir: &Path,
    count: usize,
    (width, height): (u32, u32),
    subsampling: &str,
) -> Result<()> {
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
    std::fs::create_dir_all(dir)?;
    let sampling = match subsampling {
        "444" => SamplingFactor::R_4_4_4,
        _ => SamplingFactor::R_4_2_0,
    };
    for i in 0..count {
        let img = synthetic_photo(i, width, height);
        let mut bytes = Vec::new();
        let mut encoder = Encoder::new(&mut bytes, 90);
        encoder.set_sampling_factor(sampling);
        encoder.encode(
            img.as_raw(),
            u16::try_from(width)?,
            u16::try_from(height)?,
            ColorType::Rgb,
        )?;
        std::fs::write(dir.join(format!("{i:04}.jpg")), bytes)?;
    }
    Ok(())
}

/// Images/s from one run of `scfnet predict` on `input` at `batch` (with `extra` arguments), read
/// from the log line that holds `marker`: "... (R images/s)".
fn scfnet_rate(
    scfnet: &Path,
    (model, batch): (&str, usize),
    (input, out): (&Path, &Path),
    extra: &[&str],
    marker: &str,
) -> Result<f64> {
    let output = Command::new(scfnet)
        .args(["predict", "--random-weights", "--model", model, "--batch"])
        .arg(batch.to_string())
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(out)
        .args(extra)
        .env("RUST_LOG", "info")
        .output()
        .with_context(|| format!("running {}", scfnet.display()))?;
    let log = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("{} predict failed:\n{log}", scfnet.display());
    }
    log.lines()
        .filter(|l| l.contains(marker))
        .find_map(|l| {
            let before = l.split(" images/s)").next()?;
            before.rsplit('(').next()?.trim().parse::<f64>().ok()
        })
        .with_context(|| format!("no \"{marker}\" line in the log of scfnet predict:\n{log}"))
}

/// Images/s of `scfnet predict` on `input` at `batch`, from its own log line (the pipeline's wall
/// clock: start-up and weight creation excluded, as for the network alone). `out` must not
/// exist yet: every run writes a new folder, as a user's first run does, and none is deleted
/// before the end of the benchmark (a run that creates its files just after many were deleted
/// pays for the deletions: on this project's ext4, without a journal, `perf` showed the writing
/// thread's kernel time going to the search past recently freed inodes).
pub(crate) fn predict_rate(
    scfnet: &Path,
    model: &str,
    input: &Path,
    out: &Path,
    batch: usize,
) -> Result<f64> {
    scfnet_rate(scfnet, (model, batch), (input, out), &[], "wrote")
}

/// Images/s of the network alone in a new `scfnet` process, as `scfnet predict` runs it
/// (`--network-only`: the images decoded first, then only the network's calls timed, the first
/// batch included): the same allocator, page policy and cold start as the folder's run.
fn fresh_network_rate(scfnet: &Path, model: &str, input: &Path, batch: usize) -> Result<f64> {
    // Nothing is written there.
    let unused = input.with_file_name("network-only");
    scfnet_rate(
        scfnet,
        (model, batch),
        (input, &unused),
        &["--network-only"],
        "network alone",
    )
}

/// Images/s of the network alone in this process (warm after the first round: its memory, the
/// weights and the caches stay from one round to the next) over the decoded images in batches
/// of `batch`: only the network's call is timed (`Predictor::batch_logits_beside`, the call `scfnet predict` makes,
/// logits copied out included), each batch's input prepared in place before its clock starts.
/// Every batch counts (no warm-up, as in `scfnet predict`).
fn network_rate(predictor: &Predictor, images: &[RgbImage], batch: usize) -> Result<f64> {
    let mut computing = Duration::ZERO;
    for chunk in images.chunks(batch) {
        let mut inputs = predictor.input_batch(chunk.len());
        for (i, img) in chunk.iter().enumerate() {
            inputs.fill(
                i,
                RgbRef {
                    pixels: img.as_raw(),
                    width: img.width() as usize,
                    height: img.height() as usize,
                },
            )?;
        }
        let started = Instant::now();
        predictor.batch_logits_beside(inputs, &|| false)?;
        computing += started.elapsed();
    }
    Ok(images.len() as f64 / computing.as_secs_f64())
}

/// The median of `values` (the mean of the middle two for an even count).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The `scfnet` binary a benchmark runs: `given`, else this checkout's release binary, built
/// first (`cargo build --release -p scfnet-cli`).
pub(crate) fn scfnet_binary(given: Option<&Path>) -> Result<PathBuf> {
    let Some(scfnet) = given else {
        // This checkout's release binary, built now: never one older than the sources.
        return crate::alias::build_scfnet(false);
    };
    if !scfnet.is_file() {
        bail!("{}: no such scfnet binary", scfnet.display());
    }
    Ok(scfnet.to_owned())
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    let kind: ModelKind = args
        .model
        .parse()
        .map_err(|e| anyhow::anyhow!("--model: {e}"))?;
    let scfnet = scfnet_binary(args.scfnet.as_deref())?;
    let root = crate::repo_root().join("target/bench-predict");
    let (input, maps) = (root.join("jpegs"), root.join("maps"));
    let _ = std::fs::remove_dir_all(&input);
    let _ = std::fs::remove_dir_all(&maps);
    write_folder(&input, &args)?;

    let (vb, _) = synthetic_var_builder(DType::F32, &Device::Cpu);
    let predictor = Predictor::new(
        Scfnet::new(kind, vb)?,
        kind.default_size(),
        &Device::Cpu,
        DType::F32,
    )?;
    let images = (0..args.jpegs.count)
        .map(|i| Ok(image::open(input.join(format!("{i:04}.jpg")))?.to_rgb8()))
        .collect::<Result<Vec<_>>>()?;

    println!(
        "{} JPEGs of {}x{} ({} chroma), {kind}, {} threads, {} rounds (each: scfnet predict; the network \
         alone in a new scfnet process; the network alone in this process, warm after round 1; \
         on the same decoded images, only the network's calls timed)\n",
        args.jpegs.count,
        args.jpegs.width,
        args.jpegs.height,
        format_args!("{}:{}:{}", &args.subsampling[..1], &args.subsampling[1..2], &args.subsampling[2..]),
        candle_core::utils::get_num_threads(),
        args.rounds
    );
    println!(
        "| batch | round | scfnet predict (img/s) | network alone, new process (img/s) | ratio | \
         network alone, warm process (img/s) | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    // Per batch: the best of each column over the rounds (the least disturbed run of each), and
    // the median of the rounds' ratios (each round's runs are next to each other in time).
    let mut best = Vec::new();
    for &batch in &args.batches {
        let mut top = [0f64; 3];
        let (mut ratios, mut warm_ratios) = (Vec::new(), Vec::new());
        for round in 1..=args.rounds.max(1) {
            let out = maps.join(format!("batch{batch}-round{round}"));
            let folder = predict_rate(&scfnet, kind.name(), &input, &out, batch)?;
            let fresh = fresh_network_rate(&scfnet, kind.name(), &input, batch)?;
            let warm = network_rate(&predictor, &images, batch)?;
            println!(
                "| {batch} | {round} | {folder:.1} | {fresh:.1} | {:.0} % | {warm:.1} | {:.0} % |",
                100.0 * folder / fresh,
                100.0 * folder / warm
            );
            for (t, v) in top.iter_mut().zip([folder, fresh, warm]) {
                *t = t.max(v);
            }
            ratios.push(folder / fresh);
            warm_ratios.push(folder / warm);
        }
        best.push((batch, top, median(&mut ratios), median(&mut warm_ratios)));
    }
    println!(
        "\nbest of the rounds (each column's least disturbed run), and the median of the rounds' \
         ratios:\n"
    );
    println!(
        "| batch | scfnet predict (img/s) | network alone, new process (img/s) | ratio of the bests \
         | median ratio | network alone, warm process (img/s) | ratio of the bests | median ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (batch, [folder, fresh, warm], median, warm_median) in best {
        println!(
            "| {batch} | {folder:.1} | {fresh:.1} | {:.0} % | {:.0} % | {warm:.1} | {:.0} % | {:.0} % |",
            100.0 * folder / fresh,
            100.0 * median,
            100.0 * folder / warm,
            100.0 * warm_median
        );
    }
    let _ = std::fs::remove_dir_all(&maps);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
