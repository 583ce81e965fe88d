//! `scfnet predict`: saliency maps for images or folders of images.

mod images;
mod priority;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use scfnet_model::{check_input_side, Logits, Predictor, Scfnet};

use crate::device::{device, DeviceArg};
use crate::paths::{ensure_distinct, ensure_outside};
use crate::weights::{self, WeightsArgs};
use images::{collect_inputs, Decoded};

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
}

/// `data` as a PNG. Maps (`L8`) use the "up" filter on every row: smooth grey maps compress
/// about as well as with the per-row choice of filter, for half the time. Cutouts keep the
/// encoder's defaults.
fn encode_png(
    width: usize,
    height: usize,
    data: Vec<u8>,
    color: image::ColorType,
) -> Result<Vec<u8>> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let mut out = Vec::new();
    let filter = if color == image::ColorType::L8 {
        FilterType::Up
    } else {
        FilterType::default()
    };
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, filter).write_image(
        &data,
        width as u32,
        height as u32,
        color.into(),
    )?;
    Ok(out)
}

/// Where the map of the image at `relative` (and its cutout) go under `out_dir`:
/// `REL.png` and `REL_cutout.png` (extension replaced).
fn output_paths(out_dir: &Path, relative: &Path, cutout: bool) -> Vec<PathBuf> {
    let base = out_dir.join(relative);
    let mut out = vec![base.with_extension("png")];
    if cutout {
        let stem = base
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(base.with_file_name(format!("{stem}_cutout.png")));
    }
    out
}

/// Encoded output files: `(path, bytes)`.
type Files = Vec<(PathBuf, Vec<u8>)>;

/// The PNG files of one image's map (and cutout).
fn encode_outputs(img: &Decoded, map: Vec<u8>, out_dir: &Path, cutout: bool) -> Result<Files> {
    let paths = output_paths(out_dir, &img.relative, cutout);
    let mut files = Vec::with_capacity(paths.len());
    if let Some(cut) = paths.get(1) {
        let mut rgba = Vec::with_capacity(map.len() * 4);
        for (px, &a) in img.rgb.chunks_exact(3).zip(&map) {
            rgba.extend_from_slice(&[px[0], px[1], px[2], a]);
        }
        let png = encode_png(img.width, img.height, rgba, image::ColorType::Rgba8)?;
        files.push((cut.clone(), png));
    }
    let png = encode_png(img.width, img.height, map, image::ColorType::L8)?;
    files.push((paths[0].clone(), png));
    Ok(files)
}

/// One image's encoded outputs, waiting to be written.
struct Encoded {
    /// The input image (named in errors).
    image: PathBuf,
    /// Its output files.
    files: Files,
}

/// Makes the maps of a batch at the images' sizes and encodes their PNGs; returns them, and the
/// failures (maps not finite), one line per image.
fn encode_batch(
    images: &[Decoded],
    logits: &Logits,
    args: &PredictArgs,
) -> (Vec<Encoded>, Vec<String>) {
    let mut failures = Vec::new();
    let mut encoded = Vec::with_capacity(images.len());
    for (i, img) in images.iter().enumerate() {
        let files = logits
            .map(i, img.height, img.width)
            .with_context(|| format!("{}: no map", img.path.display()))
            .and_then(|map| encode_outputs(img, map, &args.output, args.cutout));
        match files {
            Ok(files) => encoded.push(Encoded {
                image: img.path.clone(),
                files,
            }),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    (encoded, failures)
}

/// Writes the files of `encoded` atomically, the flushes shared
/// ([`scfnet_backbones::files::write_many`]); returns the failures, one line per image.
fn write_encoded(encoded: &[Encoded]) -> Vec<String> {
    let flat: Vec<(&Path, &[u8])> = encoded
        .iter()
        .flat_map(|e| e.files.iter().map(|(p, b)| (p.as_path(), b.as_slice())))
        .collect();
    let mut results = scfnet_backbones::files::write_many(&flat).into_iter();
    let mut failures = Vec::new();
    for e in encoded {
        // The first error among the image's files, if any.
        let errors: Vec<String> = e
            .files
            .iter()
            .zip(results.by_ref())
            .filter_map(|((path, _), r)| r.err().map(|err| format!("{}: {err}", path.display())))
            .collect();
        if let Some(err) = errors.first() {
            failures.push(format!(
                "{}: cannot write the map: {err}",
                e.image.display()
            ));
        }
    }
    failures
}

/// Encoded images are written in groups, which share their flushes to disk: a group is written
/// when it holds this many images…
const GROUP_IMAGES: usize = 32;
/// …or when its first image has waited this long (or the last batch has been encoded).
const GROUP_WAIT: Duration = Duration::from_millis(250);

/// The encoding thread of [`pipeline`]: encodes the maps of each batch from `mapped` as it comes
/// and hands them to the writing thread in groups ([`GROUP_IMAGES`], [`GROUP_WAIT`]); returns the
/// failures (maps not finite).
fn encode_maps(
    mapped: Receiver<MappedBatch>,
    groups: SyncSender<Vec<Encoded>>,
    args: &PredictArgs,
    pb: &ProgressBar,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut group: Vec<Encoded> = Vec::new();
    let mut first_waiting = Instant::now();
    loop {
        let next = if group.is_empty() {
            mapped.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            mapped.recv_timeout(GROUP_WAIT.saturating_sub(first_waiting.elapsed()))
        };
        let last = match next {
            Ok((images, logits)) => {
                let (encoded, failed) = encode_batch(&images, &logits, args);
                pb.inc(failed.len() as u64);
                failures.extend(failed);
                if group.is_empty() {
                    first_waiting = Instant::now();
                }
                group.extend(encoded);
                if group.len() < GROUP_IMAGES {
                    continue;
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if !group.is_empty() && groups.send(std::mem::take(&mut group)).is_err() {
            return failures; // the writing thread ended early: it panicked
        }
        if last {
            return failures;
        }
    }
}

/// The writing thread of [`pipeline`]: writes each group of encoded images ([`write_encoded`]);
/// returns the failures.
fn write_groups(groups: Receiver<Vec<Encoded>>, pb: &ProgressBar) -> Vec<String> {
    let mut failures = Vec::new();
    for group in groups {
        failures.extend(write_encoded(&group));
        pb.inc(group.len() as u64);
    }
    failures
}

/// A decoded batch: the images that decoded with their network inputs, and the errors of those
/// that did not.
type DecodedBatch = (Vec<(Decoded, Vec<f32>)>, Vec<String>);
/// A batch with the network's logits.
type MappedBatch = (Vec<Decoded>, Logits);

/// Where the network's thread of [`pipeline`] spent its time.
#[derive(Clone, Copy, Debug, Default)]
struct NetworkTime {
    /// Running the network.
    computing: Duration,
    /// Waiting for the decoding thread's next batch.
    waiting_for_input: Duration,
    /// Waiting for room in the encoding thread's queue.
    waiting_for_writer: Duration,
}

/// Decodes, predicts and writes `inputs` in batches, the stages overlapped: one thread decodes
/// and prepares the next batches (normalised, resized) while the network runs on this one (on
/// rayon's threads); one turns the logits of the previous ones into maps at the images' sizes and
/// encodes the PNGs ([`encode_maps`]); one writes them in groups ([`write_groups`]), so that the
/// network never waits for the disk. At most two batches wait between the first stages, one group
/// before the last. The helper threads use no thread pool, so they never queue work behind the
/// network's, and run at idle priority ([`priority::run_when_idle`]), so they never stall it
/// either. Returns the failures (images that did not decode, maps not finite, files not
/// written), one line each, and where the network's thread spent its time.
fn pipeline(
    predictor: &Predictor,
    inputs: &[(PathBuf, PathBuf)],
    args: &PredictArgs,
    pb: &ProgressBar,
) -> Result<(Vec<String>, NetworkTime)> {
    std::thread::scope(|s| {
        let (decoded_tx, decoded_rx) = sync_channel::<DecodedBatch>(2);
        let (mapped_tx, mapped_rx) = sync_channel::<MappedBatch>(2);
        s.spawn(move || {
            priority::run_when_idle();
            for chunk in inputs.chunks(args.batch) {
                let mut ok = Vec::with_capacity(chunk.len());
                let mut failed = Vec::new();
                for (path, rel) in chunk {
                    let prepared = images::decode(path, rel).and_then(|img| {
                        let x = predictor
                            .prepare(img.as_rgb())
                            .with_context(|| format!("{}", path.display()))?;
                        Ok((img, x))
                    });
                    match prepared {
                        Ok(pair) => ok.push(pair),
                        Err(e) => failed.push(format!("{e:#}")),
                    }
                }
                if decoded_tx.send((ok, failed)).is_err() {
                    break; // the network stopped on an error
                }
            }
        });
        let (groups_tx, groups_rx) = sync_channel::<Vec<Encoded>>(1);
        let encoder = s.spawn(move || {
            priority::run_when_idle();
            encode_maps(mapped_rx, groups_tx, args, pb)
        });
        let writer = s.spawn(move || {
            priority::run_when_idle();
            write_groups(groups_rx, pb)
        });
        let mut failures = Vec::new();
        let mut network = Ok(());
        let mut time = NetworkTime::default();
        let mut waited = Instant::now();
        for (ok, failed) in decoded_rx {
            time.waiting_for_input += waited.elapsed();
            pb.inc(failed.len() as u64);
            failures.extend(failed);
            if ok.is_empty() {
                continue;
            }
            let (images, inputs): (Vec<Decoded>, Vec<Vec<f32>>) = ok.into_iter().unzip();
            let started = Instant::now();
            let logits = predictor.logits(&inputs);
            time.computing += started.elapsed();
            match logits {
                Ok(logits) => {
                    let started = Instant::now();
                    if mapped_tx.send((images, logits)).is_err() {
                        break;
                    }
                    time.waiting_for_writer += started.elapsed();
                }
                Err(e) => {
                    // The maps already computed are still written.
                    network = Err(anyhow::Error::new(e).context("the network failed"));
                    break;
                }
            }
            waited = Instant::now();
        }
        drop(mapped_tx);
        failures.extend(encoder.join().expect("the encoding thread does not panic"));
        failures.extend(writer.join().expect("the writing thread does not panic"));
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
    let dev = device(args.device)?;
    let chosen = weights::choose(&args.weights, &dev)?;
    let model = chosen.model;
    let size = args.size.or(chosen.size).unwrap_or(model.default_size());
    let mut predictor = Predictor::new(
        Scfnet::new(model, chosen.vb).context("building the network")?,
        size,
        &dev,
        DType::F32,
    )?;
    // The decoding and writing threads use the second core between and during single-image
    // passes, which a busy-waiting helper worker would hold (docs/benchmarks.md).
    predictor.set_busy_helper(false);
    let inputs = collect_inputs(&args.input)?;
    // Nothing may be written over an input, into the input folder, or twice.
    ensure_outside(&args.output, &args.input, "--output")?;
    let plan: Vec<(PathBuf, Vec<PathBuf>)> = inputs
        .iter()
        .map(|(path, rel)| (path.clone(), output_paths(&args.output, rel, args.cutout)))
        .collect();
    ensure_distinct(&plan)?;
    tracing::info!(
        "{} images, model {}, input {size}x{size}",
        inputs.len(),
        model
    );

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
        "the network ran {:.2} s ({:.0} % of the time); it waited {:.2} s for decoded images and \
         {:.2} s for the encoder",
        time.computing.as_secs_f64(),
        100.0 * time.computing.as_secs_f64() / wall,
        time.waiting_for_input.as_secs_f64(),
        time.waiting_for_writer.as_secs_f64()
    );
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
