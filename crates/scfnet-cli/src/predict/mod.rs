//! `scfnet predict`: saliency maps for images or folders of images.

mod images;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::sync_channel;

use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use scfnet_model::{check_input_side, PredictError, Predictor, RgbRef, Scfnet};

use crate::atomic::write_atomic;
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

fn encode_png(
    width: usize,
    height: usize,
    data: Vec<u8>,
    color: image::ColorType,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    image::write_buffer_with_format(
        &mut std::io::Cursor::new(&mut out),
        &data,
        width as u32,
        height as u32,
        color,
        image::ImageFormat::Png,
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

/// Writes the map (and cutout) of one image.
fn write_outputs(img: &Decoded, map: Vec<u8>, out_dir: &Path, cutout: bool) -> Result<()> {
    let paths = output_paths(out_dir, &img.relative, cutout);
    let map_path = &paths[0];
    if let Some(cut) = paths.get(1) {
        let mut rgba = Vec::with_capacity(map.len() * 4);
        for (px, &a) in img.rgb.chunks_exact(3).zip(&map) {
            rgba.extend_from_slice(&[px[0], px[1], px[2], a]);
        }
        write_atomic(
            cut,
            &encode_png(img.width, img.height, rgba, image::ColorType::Rgba8)?,
        )?;
    }
    write_atomic(
        map_path,
        &encode_png(img.width, img.height, map, image::ColorType::L8)?,
    )
}

/// A decoded batch: the images that decoded, and the errors of those that did not.
type DecodedBatch = (Vec<Decoded>, Vec<String>);
/// A batch with its maps (or the error of each image's map).
type MappedBatch = (Vec<Decoded>, Vec<Result<Vec<u8>, PredictError>>);

/// Decodes, predicts and writes `inputs` in batches, the three overlapped: one thread decodes the
/// next batches while the network runs on this one (on rayon's threads), and one encodes and
/// writes the PNGs of the previous ones. At most two batches wait between stages. Returns the
/// failures (images that did not decode, maps not finite, files not written), one line each.
fn pipeline(
    predictor: &Predictor,
    inputs: &[(PathBuf, PathBuf)],
    args: &PredictArgs,
    pb: &ProgressBar,
) -> Result<Vec<String>> {
    std::thread::scope(|s| {
        let (decoded_tx, decoded_rx) = sync_channel::<DecodedBatch>(2);
        let (mapped_tx, mapped_rx) = sync_channel::<MappedBatch>(2);
        s.spawn(move || {
            for chunk in inputs.chunks(args.batch) {
                let mut ok = Vec::with_capacity(chunk.len());
                let mut failed = Vec::new();
                for (path, rel) in chunk {
                    match images::decode(path, rel) {
                        Ok(img) => ok.push(img),
                        Err(e) => failed.push(format!("{e:#}")),
                    }
                }
                if decoded_tx.send((ok, failed)).is_err() {
                    break; // the network stopped on an error
                }
            }
        });
        let writer = s.spawn(move || {
            let mut failures = Vec::new();
            for (images, maps) in mapped_rx {
                for (img, map) in images.iter().zip(maps) {
                    let written = map
                        .with_context(|| format!("{}: no map", img.path.display()))
                        .and_then(|map| {
                            write_outputs(img, map, &args.output, args.cutout).with_context(|| {
                                format!("{}: cannot write the map", img.path.display())
                            })
                        });
                    if let Err(e) = written {
                        failures.push(format!("{e:#}"));
                    }
                    pb.inc(1);
                }
            }
            failures
        });
        let mut failures = Vec::new();
        for (ok, failed) in decoded_rx {
            pb.inc(failed.len() as u64);
            failures.extend(failed);
            if ok.is_empty() {
                continue;
            }
            let refs: Vec<RgbRef> = ok
                .iter()
                .map(|img| RgbRef {
                    pixels: &img.rgb,
                    width: img.width,
                    height: img.height,
                })
                .collect();
            let maps = match predictor.maps(&refs) {
                Ok(maps) => maps.into_iter().map(Ok).collect(),
                // One image whose output is not finite: redo the batch one by one, so that only
                // it fails.
                Err(PredictError::NonFinite { .. }) if refs.len() > 1 => {
                    refs.iter().map(|r| predictor.map(*r)).collect::<Vec<_>>()
                }
                Err(e) => return Err(e.into()),
            };
            if mapped_tx.send((ok, maps)).is_err() {
                break;
            }
        }
        drop(mapped_tx);
        failures.extend(writer.join().expect("the writer thread does not panic"));
        Ok(failures)
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
    let predictor = Predictor::new(
        Scfnet::new(model, chosen.vb).context("building the network")?,
        size,
        &dev,
        DType::F32,
    )?;
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
    let failures = pipeline(&predictor, &inputs, &args, &pb)?;
    pb.finish_and_clear();
    let written = inputs.len() - failures.len();
    tracing::info!("wrote {written} maps to {}", args.output.display());
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
