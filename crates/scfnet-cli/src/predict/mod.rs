//! `scfnet predict`: saliency maps for images or folders of images.

mod background;
mod cpu_clock;
mod images;
mod outputs;
mod priority;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use scfnet_model::{check_input_side, Predictor, Scfnet};

use crate::device::{device, DeviceArg};
use crate::paths::{ensure_distinct, ensure_outside};
use crate::weights::{self, WeightsArgs};
use background::Background;
use images::collect_inputs;
use outputs::{output_paths, Outcome};

/// `scfnet predict`: one 8-bit PNG saliency map per image, at the image's size.
#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// An image, or a folder searched recursively for jpg/png/bmp/webp files.
    #[arg(long, value_name = "FILE|DIR")]
    pub input: PathBuf,
    /// Output folder; the input folder's tree is kept.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Network input side (default 352; 384 for swinb); a multiple of 32.
    #[arg(long)]
    pub size: Option<usize>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Also write `NAME_cutout.png`: the image with the map as alpha channel.
    #[arg(long)]
    pub cutout: bool,
    /// Where to run the network.
    #[arg(long, default_value = "cpu", value_parser = DeviceArg::parse)]
    pub device: DeviceArg,
    /// For benchmarks: decode every image first, then run only the network over them in
    /// batches, timing its calls, and log its throughput; writes nothing. What `cargo xtask
    /// bench-predict` compares the folder's throughput with, in a process started the same way.
    #[arg(long, hide = true)]
    pub network_only: bool,
}

/// Where the time of [`pipeline`] went.
#[derive(Clone, Copy, Debug, Default)]
struct Profile {
    /// The network's thread running the network (its busy-waiting helper runs background
    /// steps meanwhile).
    computing: Duration,
    /// The network's thread waiting for its next batch to be decoded, running background steps
    /// itself meanwhile.
    waiting_for_input: Duration,
    /// CPU time of the whole process over the pipeline, where the platform tells.
    cpu: Option<Duration>,
    /// CPU time of the steps that decoded and prepared images (any thread).
    decoding_cpu: Duration,
    /// CPU time of the steps that made and encoded maps (any thread).
    maps_cpu: Duration,
    /// CPU time of the writing thread (mostly the kernel's).
    writing_cpu: Option<Duration>,
}

impl Profile {
    /// The log line of the CPU time, per activity and per image, where the platform tells.
    fn cpu_line(&self, images: usize) -> Option<String> {
        let (all, writing) = (self.cpu?, self.writing_cpu?);
        let besides = self.decoding_cpu + self.maps_cpu + writing;
        let rest = all.saturating_sub(besides);
        let per = |d: Duration| {
            format!(
                "{:.2} s ({:.2} ms per image)",
                d.as_secs_f64(),
                1e3 * d.as_secs_f64() / images.max(1) as f64
            )
        };
        Some(format!(
            "CPU time {}: decoding and preparing {}, maps and PNGs {}, writing {}, the network \
             and the rest {}",
            per(all),
            per(self.decoding_cpu),
            per(self.maps_cpu),
            per(writing),
            per(rest)
        ))
    }
}

/// Background workers beside the network: none where the network's busy-waiting helper runs
/// the steps (single images on the CPU: a worker there only adds wake-ups, 3–7 % slower in five
/// paired runs), else one fewer than the cores (at least one). On the CPU they take the gaps the
/// network leaves; with the network on a GPU they do all the decoding and encoding.
fn background_workers(predictor: &Predictor, batch: usize) -> usize {
    if predictor.helper_takes_background(batch) {
        return 0;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// How many images beyond the batch the network runs may be decoded and prepared: the next
/// batch, at least two images. More is memory the process touches for nothing: a batch of
/// several images keeps both cores busy, so the gaps where the steps run ahead are short, and
/// each prepared input is 1.5 MB (3 × 352² values) of fresh pages at the start of a run.
fn decode_ahead(batch: usize) -> usize {
    batch.max(2)
}

/// Runs of fewer images than this use small pages ([`crate::memory::small_pages`]): on the
/// project's machine transparent huge pages cost a run 0.25–0.5 s of CPU up front (the system
/// time of 96-image runs, 0.36–0.73 s with them against 0.14–0.23 s without) and then save about
/// 4 % of the CPU time per image at batch 8 (768-image runs: faster with them in 5 of 6 pairs,
/// by 3–7 %), about 0.5 ms an image, so they pay for themselves from some 500–900 images on.
/// Fewer than 600 images: small pages (faster in 7 of 9 pairs of 96-image runs).
const SMALL_PAGES_BELOW: usize = 600;

/// Ends the background steps if the network's thread unwinds, so that the scope's threads end.
struct AbandonOnUnwind<'a, 'b>(&'a Background<'b>);

impl Drop for AbandonOnUnwind<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abandon();
        }
    }
}

/// Decodes, predicts and writes `inputs` in batches, the stages overlapped. Decoding and
/// preparing an image, and making and encoding a map, are steps of a shared queue
/// ([`Background`]) that three kinds of thread run: the network's busy-waiting helper in its
/// idle moments (single images), background workers at idle priority
/// ([`priority::run_when_idle`], [`background_workers`]) in the gaps the network leaves, and this
/// thread while it waits
/// for its next batch. Decoding runs at most one batch ahead ([`decode_ahead`]). A writing thread writes the PNGs
/// in groups ([`outputs::write_outcomes`]), so that nothing waits for the disk. Returns the
/// failures (images that did not decode, maps not finite, files not written), one line each,
/// and where the time went.
fn pipeline(
    predictor: &Predictor,
    inputs: &[(PathBuf, PathBuf)],
    args: &PredictArgs,
    pb: &ProgressBar,
) -> Result<(Vec<String>, Profile)> {
    let (outcomes_tx, outcomes_rx) = channel::<Outcome>();
    let background = Background::new(
        inputs,
        (predictor, args.batch),
        (&args.output, args.cutout),
        outcomes_tx.clone(),
    );
    let cpu_at_start = cpu_clock::process_cpu();
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            let failures = outputs::write_outcomes(outcomes_rx, pb);
            (failures, cpu_clock::thread_cpu())
        });
        for _ in 0..background_workers(predictor, args.batch) {
            s.spawn(|| {
                priority::run_when_idle();
                background.work();
            });
        }
        let _abandon = AbandonOnUnwind(&background);
        let mut network = Ok(());
        let mut time = Profile::default();
        for (k, start) in (0..inputs.len()).step_by(args.batch).enumerate() {
            let end = (start + args.batch).min(inputs.len());
            background.allow(end + decode_ahead(args.batch));
            let waited = Instant::now();
            let (prepared, batch) = background.take(k);
            time.waiting_for_input += waited.elapsed();
            let mut images = Vec::with_capacity(prepared.len());
            for p in prepared {
                match p {
                    Ok(img) => images.push(img),
                    Err(line) => {
                        let _ = outcomes_tx.send(Outcome::Failed(line));
                    }
                }
            }
            if images.is_empty() {
                continue;
            }
            let Some(batch) = batch else {
                network = Err(anyhow::anyhow!(
                    "the network input of batch {k} was not ready (a bug)"
                ));
                break;
            };
            let started = Instant::now();
            let logits = predictor.batch_logits_beside(batch, &|| background.step());
            time.computing += started.elapsed();
            match logits {
                Ok(logits) if logits.len() != images.len() => {
                    network = Err(anyhow::anyhow!(
                        "{} maps for {} images in batch {k} (a bug)",
                        logits.len(),
                        images.len()
                    ));
                    break;
                }
                Ok(logits) => background.push_maps(images, logits),
                Err(e) => {
                    // The maps already computed are still written.
                    network = Err(anyhow::Error::new(e).context("the network failed"));
                    break;
                }
            }
        }
        background.finish();
        drop(outcomes_tx);
        let (failures, writing_cpu) = writer.join().expect("the writing thread does not panic");
        time.writing_cpu = writing_cpu;
        time.decoding_cpu = background.decoding_cpu.get();
        time.maps_cpu = background.maps_cpu.get();
        time.cpu = cpu_clock::process_cpu()
            .zip(cpu_at_start)
            .map(|(end, start)| end.saturating_sub(start));
        network.map(|()| (failures, time))
    })
}

/// Runs `scfnet predict`.
pub fn run(args: PredictArgs) -> Result<ExitCode> {
    if let Some(size) = args.size {
        check_input_side(size).map_err(|e| anyhow::anyhow!("--size: {e}"))?;
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let inputs = collect_inputs(&args.input)?;
    // Nothing may be written over an input, into the input folder, or twice.
    ensure_outside(&args.output, &args.input, "--output")?;
    let plan: Vec<(PathBuf, Vec<PathBuf>)> = inputs
        .iter()
        .map(|(path, rel)| (path.clone(), output_paths(&args.output, rel, args.cutout)))
        .collect();
    ensure_distinct(&plan)?;
    if inputs.len() < SMALL_PAGES_BELOW {
        crate::memory::small_pages();
    }
    let dev = device(args.device)?;
    let chosen = weights::choose(&args.weights, &dev)?;
    let model = chosen.model;
    let size = args.size.or(chosen.size).unwrap_or(model.default_size());
    let predictor = Predictor::new(
        Scfnet::new(model, chosen.vb).context("building the network")?,
        size,
        &dev,
        DType::F32,
    )?;
    tracing::info!(
        "{} images, model {}, input {size}x{size}",
        inputs.len(),
        model
    );

    if args.network_only {
        return network_only(&predictor, &inputs, args.batch);
    }

    let pb = ProgressBar::new(inputs.len() as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} predicting [{bar:40}] {pos}/{len} images, {per_sec}, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let (failures, time) = pipeline(&predictor, &inputs, &args, &pb)?;
    let wall = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let written = inputs.len() - failures.len();
    tracing::info!(
        "wrote {written} maps to {} in {wall:.2} s ({:.1} images/s)",
        args.output.display(),
        inputs.len() as f64 / wall
    );
    tracing::info!(
        "the network ran {:.2} s ({:.0} % of the time); it waited {:.2} s for decoded images",
        time.computing.as_secs_f64(),
        100.0 * time.computing.as_secs_f64() / wall,
        time.waiting_for_input.as_secs_f64(),
    );
    if let Some(line) = time.cpu_line(inputs.len()) {
        tracing::info!("{line}");
    }
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} images failed (the others were written):",
            failures.len()
        );
        for f in &failures {
            eprintln!("  {f}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// `--network-only`: every image decoded first (untimed), then the network's calls on batches of
/// `batch` images timed (each batch's input prepared in place before its clock starts; every
/// batch counts, the first included, as in [`pipeline`]).
fn network_only(
    predictor: &Predictor,
    inputs: &[(PathBuf, PathBuf)],
    batch: usize,
) -> Result<ExitCode> {
    let images = inputs
        .iter()
        .map(|(path, rel)| images::decode(path, rel))
        .collect::<Result<Vec<_>>>()?;
    let mut computing = Duration::ZERO;
    for chunk in images.chunks(batch) {
        let mut prepared = predictor.input_batch(chunk.len())?;
        for (i, img) in chunk.iter().enumerate() {
            prepared
                .fill(i, img.as_rgb())
                .with_context(|| format!("{}", img.path.display()))?;
        }
        let started = Instant::now();
        predictor.batch_logits_beside(prepared, &|| false)?;
        computing += started.elapsed();
    }
    tracing::info!(
        "network alone: {} images in {:.2} s ({:.1} images/s)",
        images.len(),
        computing.as_secs_f64(),
        images.len() as f64 / computing.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_line_splits_the_time_per_activity_and_per_image() {
        let ms = Duration::from_millis;
        let profile = Profile {
            cpu: Some(ms(2000)),
            decoding_cpu: ms(100),
            maps_cpu: ms(50),
            writing_cpu: Some(ms(30)),
            ..Profile::default()
        };
        let line = profile.cpu_line(100).expect("all parts known");
        assert!(
            line.starts_with("CPU time 2.00 s (20.00 ms per image)"),
            "{line}"
        );
        assert!(
            line.contains("decoding and preparing 0.10 s (1.00 ms per image)"),
            "{line}"
        );
        assert!(
            line.contains("maps and PNGs 0.05 s (0.50 ms per image)"),
            "{line}"
        );
        assert!(
            line.contains("writing 0.03 s (0.30 ms per image)"),
            "{line}"
        );
        assert!(
            line.contains("the network and the rest 1.82 s (18.20 ms per image)"),
            "{line}"
        );
        // Where the platform does not tell, no line rather than made-up numbers.
        let unknown = Profile {
            cpu: None,
            ..profile
        };
        assert!(unknown.cpu_line(100).is_none());
    }

    #[test]
    fn decoding_runs_one_batch_ahead_and_at_least_two_images() {
        assert_eq!(decode_ahead(1), 2);
        assert_eq!(decode_ahead(8), 8);
    }
}
