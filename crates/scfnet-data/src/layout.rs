//! Where the samples of a dataset are: the benchmark layout `ROOT/image/<stem>.jpg` +
//! `ROOT/mask/<stem>.png` with an optional list file (`train.txt` / `test.txt`, one stem a line),
//! and plain folders of unlabeled images (knowledge distillation).

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::walk::{image_files, utf8_stem};

/// Extensions read as images (case-insensitive), in lookup order.
pub const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "bmp", "webp"];

/// One training or test sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Name without extension (matches image and mask).
    pub stem: String,
    /// The RGB image.
    pub image: PathBuf,
    /// The ground-truth mask; `None` for unlabeled images.
    pub mask: Option<PathBuf>,
}

/// A list of samples under one root folder.
#[derive(Clone, Debug)]
pub struct SodDataset {
    root: PathBuf,
    samples: Vec<Sample>,
}

/// The first `dir/stem.EXT` that exists, trying [`IMAGE_EXTENSIONS`] (lower and upper case).
fn find_with_stem(dir: &Path, stem: &str) -> Option<PathBuf> {
    IMAGE_EXTENSIONS
        .iter()
        .flat_map(|e| [e.to_string(), e.to_ascii_uppercase()])
        .map(|e| dir.join(format!("{stem}.{e}")))
        .find(|p| p.is_file())
}

/// Image files in `dir` (or below it, if `recursive`) through the shared walker, with the
/// non-UTF-8 names as problems and the skipped entries logged.
fn list_images(
    dir: &Path,
    recursive: bool,
    problems: &mut Vec<String>,
) -> Result<Vec<(String, PathBuf)>> {
    let (files, skipped) = image_files(dir, recursive)?;
    for line in skipped.lines() {
        tracing::warn!("{line}");
    }
    let mut out = Vec::with_capacity(files.len());
    for path in files {
        match utf8_stem(&path) {
            Ok(stem) => out.push((stem, path)),
            Err(e) => problems.push(e.to_string()),
        }
    }
    Ok(out)
}

/// Stems of a list file: one a line, blank lines and `#` comments ignored, extensions dropped.
/// A stem must stay inside the dataset: absolute paths and `..` are errors naming the line.
fn read_list(path: &Path) -> Result<Vec<String>> {
    let text = scfnet_base::read::read_text(path).map_err(|e| DataError::io(path, e))?;
    let mut out = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let p = Path::new(l);
        if !p
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(DataError::layout(
                path,
                format!(
                    "line {}: {l:?} is not a name inside the dataset (absolute paths and .. are refused)",
                    no + 1
                ),
            ));
        }
        out.push(match p.extension().and_then(|e| e.to_str()) {
            Some(e) if IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()) => {
                l[..l.len() - e.len() - 1].to_string()
            }
            _ => l.to_string(),
        });
    }
    Ok(out)
}

impl SodDataset {
    /// A labeled dataset in the benchmark layout. With `list` (a file name under `root`, or a
    /// path), the samples are its stems in its order; without, every image in `root/image`.
    /// Every image must have its mask in `root/mask`: all missing files are reported together.
    pub fn labeled(root: impl AsRef<Path>, list: Option<&Path>) -> Result<Self> {
        let root = root.as_ref();
        let (image_dir, mask_dir) = (root.join("image"), root.join("mask"));
        for dir in [&image_dir, &mask_dir] {
            if !dir.is_dir() {
                return Err(DataError::layout(
                    root,
                    format!(
                        "not a dataset folder: {} is missing (expected ROOT/image/*.jpg and ROOT/mask/*.png)",
                        dir.display()
                    ),
                ));
            }
        }
        let mut problems = Vec::new();
        let stems: Vec<(String, Option<PathBuf>)> = match list {
            Some(list) => {
                let path = if list.is_absolute() || list.exists() {
                    list.to_owned()
                } else {
                    root.join(list)
                };
                read_list(&path)?
                    .into_iter()
                    .map(|s| {
                        let img = find_with_stem(&image_dir, &s);
                        if img.is_none() {
                            problems.push(format!(
                                "{}: listed in {} but no image {}/{s}.jpg (or png/bmp/webp)",
                                s,
                                path.display(),
                                image_dir.display()
                            ));
                        }
                        (s, img)
                    })
                    .collect()
            }
            None => list_images(&image_dir, false, &mut problems)?
                .into_iter()
                .map(|(stem, p)| (stem, Some(p)))
                .collect(),
        };
        let mut samples = Vec::with_capacity(stems.len());
        for (stem, image) in stems {
            let mask = find_with_stem(&mask_dir, &stem);
            match (image, mask) {
                (Some(image), Some(mask)) => samples.push(Sample {
                    stem,
                    image,
                    mask: Some(mask),
                }),
                (Some(image), None) => problems.push(format!(
                    "{}: no mask {}/{stem}.png",
                    image.display(),
                    mask_dir.display()
                )),
                (None, _) => {}
            }
        }
        if !problems.is_empty() {
            return Err(DataError::Invalid {
                root: root.to_owned(),
                problems,
            });
        }
        if samples.is_empty() {
            return Err(DataError::layout(&image_dir, "no images found"));
        }
        Ok(Self {
            root: root.to_owned(),
            samples,
        })
    }

    /// Unlabeled images for distillation: `root/image` (with `root/train.txt` if present, as the
    /// KD-SOD80K layout) when it exists, else every image below `root`, recursively.
    pub fn unlabeled(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        if !root.is_dir() {
            return Err(DataError::layout(root, "no such folder"));
        }
        let image_dir = root.join("image");
        let list = root.join("train.txt");
        let samples: Vec<Sample> = if image_dir.is_dir() && list.is_file() {
            let mut problems = Vec::new();
            let samples = read_list(&list)?
                .into_iter()
                .filter_map(|stem| match find_with_stem(&image_dir, &stem) {
                    Some(image) => Some(Sample {
                        stem,
                        image,
                        mask: None,
                    }),
                    None => {
                        problems.push(format!(
                            "{stem}: listed in {} but no image in {}",
                            list.display(),
                            image_dir.display()
                        ));
                        None
                    }
                })
                .collect();
            if !problems.is_empty() {
                return Err(DataError::Invalid {
                    root: root.to_owned(),
                    problems,
                });
            }
            samples
        } else {
            let dir = if image_dir.is_dir() { &image_dir } else { root };
            let mut problems = Vec::new();
            let samples = list_images(dir, true, &mut problems)?
                .into_iter()
                .map(|(stem, image)| Sample {
                    stem,
                    image,
                    mask: None,
                })
                .collect();
            if !problems.is_empty() {
                return Err(DataError::Invalid {
                    root: root.to_owned(),
                    problems,
                });
            }
            samples
        };
        if samples.is_empty() {
            return Err(DataError::layout(root, "no images found"));
        }
        Ok(Self {
            root: root.to_owned(),
            samples,
        })
    }

    /// A dataset made of explicit samples (for tests and programmatic use).
    pub fn from_samples(root: impl Into<PathBuf>, samples: Vec<Sample>) -> Self {
        Self {
            root: root.into(),
            samples,
        }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The samples, in list order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// True when every sample has a mask.
    pub fn is_labeled(&self) -> bool {
        self.samples.iter().all(|s| s.mask.is_some())
    }
}
