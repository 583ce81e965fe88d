//! Finding and decoding input images.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Extensions read as input images (case-insensitive).
const EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "bmp", "webp"];

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
    /// Pixels, RGB, row-major.
    pub rgb: Vec<u8>,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, PathBuf)>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list folder", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("{}: cannot list folder", dir.display()))?
            .path();
        if path.is_dir() {
            walk(&path, root, out)?;
        } else if is_image(&path) {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_owned();
            out.push((path, rel));
        }
    }
    Ok(())
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
        bail!("{}: no such file or folder", input.display());
    }
    let mut out = Vec::new();
    walk(input, input, &mut out)?;
    out.sort();
    if out.is_empty() {
        bail!(
            "{}: no images found (looked for {})",
            input.display(),
            EXTENSIONS.join(", ")
        );
    }
    Ok(out)
}

/// Decodes one image to RGB; the error names the file.
pub fn decode(path: &Path, relative: &Path) -> Result<Decoded> {
    let img = image::ImageReader::open(path)
        .with_context(|| format!("{}: cannot open", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("{}: cannot read", path.display()))?
        .decode()
        .with_context(|| format!("{}: cannot decode image", path.display()))?
        .to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        bail!("{}: empty image", path.display());
    }
    Ok(Decoded {
        path: path.to_owned(),
        relative: relative.to_owned(),
        width: w,
        height: h,
        rgb: img.into_raw(),
    })
}
