//! Reading saliency maps and masks from image files.

use std::path::Path;

use image::DynamicImage;

use crate::error::{MetricsError, Result};
use crate::gray::GrayMap;
use crate::pair::SaliencyPair;
use crate::resize::{resize_bilinear, ResizeMode};

pub use scfnet_base::pixels::{check_pixels, max_pixels, DEFAULT_MAX_PIXELS};

/// How a file's pixels became grey levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraySource {
    /// An 8-bit greyscale file, used as it is.
    Gray,
    /// Greyscale with alpha: the alpha channel is ignored.
    GrayAlpha,
    /// A colour file whose pixels all have R = G = B: channel 0 is taken (exact).
    EqualChannels,
    /// A truly coloured file, converted with ITU-R BT.601 luma in OpenCV's fixed point:
    /// `(4899 R + 9617 G + 1868 B + 8192) >> 14`. Tools disagree here; avoid such files.
    ColourConverted,
}

/// A decoded grey map and how it was obtained.
#[derive(Clone, Debug)]
pub struct LoadedGray {
    /// The pixels.
    pub map: GrayMap,
    /// Where they came from.
    pub source: GraySource,
}

fn from_rgb(raw: &[u8], channels: usize) -> (Vec<u8>, GraySource) {
    let equal = raw
        .chunks_exact(channels)
        .all(|px| px[0] == px[1] && px[1] == px[2]);
    if equal {
        (
            raw.chunks_exact(channels).map(|px| px[0]).collect(),
            GraySource::EqualChannels,
        )
    } else {
        let luma = raw
            .chunks_exact(channels)
            .map(|px| {
                let (r, g, b) = (px[0] as u32, px[1] as u32, px[2] as u32);
                ((4899 * r + 9617 * g + 1868 * b + 8192) >> 14) as u8
            })
            .collect();
        (luma, GraySource::ColourConverted)
    }
}

/// Decodes the image of `reader` as it is meant to be seen: its EXIF orientation (a camera's
/// "rotated 90°" tag) applied, as OpenCV's `imread` (the authors' reader, and
/// PySODMetrics') applies it. The one decoding step of every image file the workspace reads.
pub fn decode_upright<R: std::io::BufRead + std::io::Seek>(
    reader: image::ImageReader<R>,
) -> image::ImageResult<DynamicImage> {
    use image::ImageDecoder;
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// Decodes a PNG / JPEG / BMP / WebP file into an 8-bit grey map (upright: [`decode_upright`]).
///
/// 16-bit and floating-point images are refused with [`MetricsError::UnsupportedFormat`]
/// (tools reduce them differently); colour images are accepted and flagged in the result.
pub fn load_gray(path: impl AsRef<Path>) -> Result<LoadedGray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| MetricsError::Io {
        path: path.to_owned(),
        source,
    })?;
    // A PNG's compressed profile and text inflate whole, outside the pixel limit: left out.
    let bytes = scfnet_base::png_chunks::without_compressed_ancillary(&bytes).unwrap_or(bytes);
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(|e| MetricsError::Decode {
                path: path.to_owned(),
                message: e.to_string(),
            })
    };
    let (w, h) = reader()?
        .into_dimensions()
        .map_err(|e| MetricsError::Decode {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    check_pixels(w, h).map_err(|message| MetricsError::Decode {
        path: path.to_owned(),
        message,
    })?;
    let decoded = decode_upright(reader()?).map_err(|e| MetricsError::Decode {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let (w, h) = (decoded.width(), decoded.height());
    let (data, source) = match decoded {
        DynamicImage::ImageLuma8(img) => (img.into_raw(), GraySource::Gray),
        DynamicImage::ImageLumaA8(img) => (
            img.into_raw().chunks_exact(2).map(|px| px[0]).collect(),
            GraySource::GrayAlpha,
        ),
        DynamicImage::ImageRgb8(img) => from_rgb(img.as_raw(), 3),
        DynamicImage::ImageRgba8(img) => from_rgb(img.as_raw(), 4),
        other => {
            return Err(MetricsError::UnsupportedFormat {
                path: path.to_owned(),
                format: format!("{:?}", other.color()),
                hint: "only 8-bit images are scored; save the map as an 8-bit greyscale PNG",
            })
        }
    };
    let map = GrayMap::new(w as usize, h as usize, data).map_err(|e| MetricsError::InFile {
        path: path.to_owned(),
        source: Box::new(e),
    })?;
    Ok(LoadedGray { map, source })
}

/// A pair read from disk and prepared for scoring.
#[derive(Clone, Debug)]
pub struct LoadedPair {
    /// The normalised pair.
    pub pair: SaliencyPair,
    /// How the prediction file was read.
    pub pred_source: GraySource,
    /// How the GT file was read.
    pub gt_source: GraySource,
    /// The prediction's original size when it was resized to the GT size.
    pub resized_from: Option<(usize, usize)>,
}

/// Reads a prediction and its GT, resizing the prediction to the GT size when `mode` allows.
pub fn load_pair(
    pred: impl AsRef<Path>,
    gt: impl AsRef<Path>,
    mode: ResizeMode,
) -> Result<LoadedPair> {
    let p = load_gray(pred.as_ref())?;
    let g = load_gray(gt.as_ref())?;
    let mut pred_map = p.map;
    let mut resized_from = None;
    if pred_map.size() != g.map.size() {
        match mode {
            ResizeMode::Refuse => {
                return Err(MetricsError::InFile {
                    path: pred.as_ref().to_owned(),
                    source: Box::new(MetricsError::SizeMismatch {
                        pred_w: pred_map.width(),
                        pred_h: pred_map.height(),
                        gt_w: g.map.width(),
                        gt_h: g.map.height(),
                    }),
                })
            }
            ResizeMode::Bilinear => {
                resized_from = Some(pred_map.size());
                pred_map = resize_bilinear(&pred_map, g.map.width(), g.map.height());
            }
        }
    }
    let pair = SaliencyPair::from_maps(&pred_map, &g.map).map_err(|e| MetricsError::InFile {
        path: gt.as_ref().to_owned(),
        source: Box::new(e),
    })?;
    Ok(LoadedPair {
        pair,
        pred_source: p.source,
        gt_source: g.source,
        resized_from,
    })
}
