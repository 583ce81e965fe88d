//! The outputs of a prediction run: maps (and cutouts) encoded as PNG, written atomically in
//! groups that share their flushes to disk.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::inputs::Decoded;

/// `data` as a PNG. Maps (`L8`) use the "up" filter on every row: smooth grey maps compress
/// about as well as with the per-row choice of filter, for half the time. Cutouts keep the
/// encoder's defaults.
fn encode_png(
    width: usize,
    height: usize,
    data: Vec<u8>,
    color: image::ColorType,
) -> image::ImageResult<Vec<u8>> {
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
pub fn output_paths(out_dir: &Path, relative: &Path, cutout: bool) -> Vec<PathBuf> {
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
pub type Files = Vec<(PathBuf, Vec<u8>)>;

/// The PNG files of one image's map (and cutout).
pub fn encode_outputs(
    img: &Decoded,
    map: Vec<u8>,
    out_dir: &Path,
    cutout: bool,
) -> image::ImageResult<Files> {
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
pub struct Encoded {
    /// The input image (named in errors).
    pub image: PathBuf,
    /// Its output files.
    pub files: Files,
}

/// Writes the files of `encoded` atomically, the flushes shared
/// ([`scfnet_base::files::write_many`]); returns the failures, one line per image.
fn write_encoded(encoded: &[Encoded]) -> Vec<String> {
    let flat: Vec<(&Path, &[u8])> = encoded
        .iter()
        .flat_map(|e| e.files.iter().map(|(p, b)| (p.as_path(), b.as_slice())))
        .collect();
    let mut results = scfnet_base::files::write_many(&flat).into_iter();
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
/// …or when its first image has waited this long (or when no more images will come).
const GROUP_WAIT: Duration = Duration::from_millis(250);

/// What becomes of one image after the network: its encoded outputs, or why there are none.
pub enum Outcome {
    /// Ready to be written.
    Encoded(Encoded),
    /// A failure line (the image did not decode, or its map is not finite).
    Failed(String),
}

/// The writing thread of the pipeline: writes the encoded images that come from `outcomes` in
/// groups (32 images, or 250 ms after the first; one shared flush each), calls `done(n)` as each `n`
/// images are finished (written or failed), and returns the failures, one line per image, when
/// every sender is gone.
pub fn write_outcomes(outcomes: Receiver<Outcome>, done: &(dyn Fn(u64) + Sync)) -> Vec<String> {
    let mut failures = Vec::new();
    let mut group: Vec<Encoded> = Vec::new();
    let mut first_waiting = Instant::now();
    loop {
        let next = if group.is_empty() {
            outcomes.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            outcomes.recv_timeout(GROUP_WAIT.saturating_sub(first_waiting.elapsed()))
        };
        let last = match next {
            Ok(Outcome::Failed(line)) => {
                failures.push(line);
                done(1);
                continue;
            }
            Ok(Outcome::Encoded(encoded)) => {
                if group.is_empty() {
                    first_waiting = Instant::now();
                }
                group.push(encoded);
                if group.len() < GROUP_IMAGES {
                    continue;
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        failures.extend(write_encoded(&group));
        done(group.len() as u64);
        group.clear();
        if last {
            return failures;
        }
    }
}
