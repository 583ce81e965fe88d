//! Finding and decoding the input images of a prediction run.

use std::path::{Path, PathBuf};

use scfnet_data::walk::image_files;
use scfnet_data::IMAGE_EXTENSIONS as EXTENSIONS;
use scfnet_model::RgbRef;

use crate::error::{Error, Result};

/// A decoded RGB image and where its outputs go.
pub struct Decoded {
    /// The file.
    pub path: PathBuf,
    /// Path relative to the input root (the output keeps this tree).
    pub relative: PathBuf,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// Pixels, RGB, row-major; emptied once the network input is made, unless a cutout needs
    /// them.
    pub rgb: Vec<u8>,
}

impl Decoded {
    /// The pixels as the network's input type.
    pub fn as_rgb(&self) -> RgbRef<'_> {
        RgbRef {
            pixels: &self.rgb,
            width: self.width,
            height: self.height,
        }
    }
}

/// `(file, path relative to the input root)` of every image under `input`, sorted.
pub fn collect_inputs(input: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    if input.is_file() {
        let name = input
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| input.to_owned());
        return Ok(vec![(input.to_owned(), name)]);
    }
    if !input.is_dir() {
        return Err(Error::NoInput(input.to_owned()));
    }
    let (files, skipped) = image_files(input, true).map_err(Error::Data)?;
    for line in skipped.lines() {
        tracing::warn!("{line}");
    }
    let out: Vec<(PathBuf, PathBuf)> = files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(input).unwrap_or(&path).to_owned();
            (path, rel)
        })
        .collect();
    if out.is_empty() {
        return Err(Error::NoImages {
            dir: input.to_owned(),
            extensions: EXTENSIONS.join(", "),
        });
    }
    Ok(out)
}

/// Decodes one image to RGB; the error names the file.
pub fn decode(path: &Path, relative: &Path) -> Result<Decoded> {
    let img = scfnet_data::decode_image(path).map_err(Error::Data)?;
    Ok(decoded(img, path, relative))
}

/// Decodes an image held in memory (an upload) to RGB, with the checks of [`decode`]; `name`
/// labels it in errors and is its `path` and `relative`.
pub fn decode_bytes(bytes: Vec<u8>, name: &Path) -> Result<Decoded> {
    let img = scfnet_data::decode_image_bytes(bytes, name).map_err(Error::Data)?;
    Ok(decoded(img, name, name))
}

fn decoded(img: image::DynamicImage, path: &Path, relative: &Path) -> Decoded {
    let img = img.into_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    Decoded {
        path: path.to_owned(),
        relative: relative.to_owned(),
        width: w,
        height: h,
        rgb: img.into_raw(),
    }
}
