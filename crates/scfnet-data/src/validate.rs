//! Up-front validation of a dataset: every image and mask decodes and their sizes agree. All
//! problems are collected and reported together, by file name, before any training starts.

use rayon::prelude::*;

use crate::error::{DataError, Result};
use crate::layout::{Sample, SodDataset};

/// What validation saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationReport {
    /// Samples checked.
    pub samples: usize,
    /// Smallest and largest image width.
    pub width: (usize, usize),
    /// Smallest and largest image height.
    pub height: (usize, usize),
}

/// Size of the image, or the problem with this sample.
fn check(sample: &Sample) -> std::result::Result<(usize, usize), String> {
    // Decoded whole (a header alone passes a truncated file), upright as training reads it.
    let image = crate::image_ops::read_rgb(&sample.image).map_err(|e| e.to_string())?;
    let (w, h) = (image.width, image.height);
    if let Some(mask) = &sample.mask {
        let m = crate::image_ops::read_mask(mask).map_err(|e| e.to_string())?;
        if (m.width, m.height) != (w, h) {
            return Err(format!(
                "{}: mask is {}×{} but its image {} is {w}×{h}",
                mask.display(),
                m.width,
                m.height,
                sample.image.display()
            ));
        }
    }
    Ok((w, h))
}

/// Decodes every sample of `dataset` (on all cores) and returns a summary, or
/// [`DataError::Invalid`] listing every problem.
pub fn validate(dataset: &SodDataset) -> Result<ValidationReport> {
    let results: Vec<_> = dataset.samples().par_iter().map(check).collect();
    let mut problems = Vec::new();
    let mut report = ValidationReport {
        samples: dataset.len(),
        width: (usize::MAX, 0),
        height: (usize::MAX, 0),
    };
    for r in results {
        match r {
            Ok((w, h)) => {
                report.width = (report.width.0.min(w), report.width.1.max(w));
                report.height = (report.height.0.min(h), report.height.1.max(h));
            }
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(DataError::Invalid {
            root: dataset.root().to_owned(),
            problems,
        })
    }
}
