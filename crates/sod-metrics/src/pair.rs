//! A prediction / ground-truth pair normalised the way pysodmetrics normalises it.

use crate::error::{MetricsError, Result};
use crate::gray::GrayMap;

/// A value of the ground truth above this is foreground (`gt > 128`; 128 itself is background).
pub const GT_THRESHOLD: u8 = 128;

/// A prediction in `[0, 1]` and a binary ground truth of the same shape `(H, W)`, ready to score.
///
/// Build it from 8-bit maps with [`SaliencyPair::from_u8`] (pysodmetrics' `normalize=True`: the
/// prediction is divided by 255 and min-max stretched unless constant, the GT is `> 128`) or
/// from floating-point maps with [`SaliencyPair::from_f32`] / [`SaliencyPair::from_f64`]
/// (pysodmetrics' `normalize=False`: values used as they are).
#[derive(Clone, Debug)]
pub struct SaliencyPair {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) pred: Vec<f64>,
    pub(crate) gt: Vec<bool>,
    /// For 8-bit input: the original bytes and the byte → value table (enables the
    /// histogram fast path of [`crate::Scorer`]).
    pub(crate) levels: Option<(Vec<u8>, Box<[f64; 256]>)>,
}

fn check_len(what: &'static str, len: usize, width: usize, height: usize) -> Result<()> {
    if len != width * height {
        return Err(MetricsError::BufferSize {
            what,
            len,
            width,
            height,
        });
    }
    if width > crate::edt::MAX_SIDE || height > crate::edt::MAX_SIDE {
        return Err(MetricsError::TooLarge {
            width,
            height,
            max: crate::edt::MAX_SIDE,
        });
    }
    if len < 2 {
        return Err(MetricsError::EmptyMap {
            what,
            width,
            height,
        });
    }
    Ok(())
}

/// The 256-entry table byte → normalised prediction value, as `prepare_data` computes it:
/// `p = b / 255`, then `(p - min) / (max - min)` when the map is not constant.
pub(crate) fn normalisation_table(pred: &[u8]) -> [f64; 256] {
    let (lo, hi) = pred
        .iter()
        .fold((u8::MAX, u8::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let pmin = lo as f64 / 255.0;
    let pmax = hi as f64 / 255.0;
    let mut table = [0.0; 256];
    for (b, slot) in table.iter_mut().enumerate() {
        let p = b as f64 / 255.0;
        *slot = if pmax != pmin {
            (p - pmin) / (pmax - pmin)
        } else {
            p
        };
    }
    table
}

impl SaliencyPair {
    /// Normalises 8-bit buffers of `width * height` pixels (row-major).
    pub fn from_u8(pred: &[u8], gt: &[u8], width: usize, height: usize) -> Result<Self> {
        check_len("prediction", pred.len(), width, height)?;
        check_len("ground truth", gt.len(), width, height)?;
        let table = normalisation_table(pred);
        Ok(Self {
            width,
            height,
            pred: pred.iter().map(|&b| table[b as usize]).collect(),
            gt: gt.iter().map(|&g| g > GT_THRESHOLD).collect(),
            levels: Some((pred.to_vec(), Box::new(table))),
        })
    }

    /// Normalises two [`GrayMap`]s; they must have the same size.
    pub fn from_maps(pred: &GrayMap, gt: &GrayMap) -> Result<Self> {
        if pred.size() != gt.size() {
            return Err(MetricsError::SizeMismatch {
                pred_w: pred.width(),
                pred_h: pred.height(),
                gt_w: gt.width(),
                gt_h: gt.height(),
            });
        }
        Self::from_u8(pred.data(), gt.data(), gt.width(), gt.height())
    }

    /// Takes a floating-point prediction in `[0, 1]` as it is (no stretching) and a binary mask.
    ///
    /// Values are widened to `f64`; all arithmetic is `f64`, as pysodmetrics does for `float64`
    /// input with `normalize=False`.
    pub fn from_f32(pred: &[f32], gt: &[bool], width: usize, height: usize) -> Result<Self> {
        Self::from_f64(pred.iter().map(|&v| v as f64).collect(), gt, width, height)
    }

    /// Like [`SaliencyPair::from_f32`] for an `f64` prediction.
    pub fn from_f64(pred: Vec<f64>, gt: &[bool], width: usize, height: usize) -> Result<Self> {
        check_len("prediction", pred.len(), width, height)?;
        check_len("ground truth", gt.len(), width, height)?;
        if let Some((index, &value)) = pred
            .iter()
            .enumerate()
            .find(|(_, v)| !(0.0..=1.0).contains(*v))
        {
            return Err(MetricsError::ValueOutOfRange { index, value });
        }
        Ok(Self {
            width,
            height,
            pred,
            gt: gt.to_vec(),
            levels: None,
        })
    }

    /// Width `W`.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height `H`.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The normalised prediction, row-major `(H, W)`, values in `[0, 1]`.
    pub fn pred(&self) -> &[f64] {
        &self.pred
    }

    /// The binary ground truth, row-major `(H, W)`.
    pub fn gt(&self) -> &[bool] {
        &self.gt
    }

    /// For a pair built from 8-bit maps: the prediction bytes and the byte → value table.
    pub(crate) fn levels(&self) -> Option<(&[u8], &[f64; 256])> {
        self.levels
            .as_ref()
            .map(|(codes, table)| (codes.as_slice(), &**table))
    }

    /// Number of ground-truth foreground pixels.
    pub fn foreground(&self) -> usize {
        self.gt.iter().filter(|&&g| g).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_prediction_is_not_stretched() {
        let pair = SaliencyPair::from_u8(&[200; 4], &[0; 4], 2, 2).unwrap();
        assert!(pair.pred().iter().all(|&p| p == 200.0 / 255.0));
    }

    #[test]
    fn prediction_is_min_max_stretched() {
        let pair = SaliencyPair::from_u8(&[100, 120, 140, 140], &[0; 4], 2, 2).unwrap();
        assert_eq!(pair.pred()[0], 0.0);
        assert_eq!(pair.pred()[3], 1.0);
        let p: f64 = 120.0 / 255.0;
        let expect = (p - 100.0 / 255.0) / (140.0 / 255.0 - 100.0 / 255.0);
        assert_eq!(pair.pred()[1].to_bits(), expect.to_bits());
    }

    #[test]
    fn gt_128_is_background_129_is_foreground() {
        let pair = SaliencyPair::from_u8(&[0; 4], &[0, 1, 128, 129], 2, 2).unwrap();
        assert_eq!(pair.gt(), &[false, false, false, true]);
    }

    #[test]
    fn bad_buffers_are_refused() {
        assert!(matches!(
            SaliencyPair::from_u8(&[0; 3], &[0; 4], 2, 2),
            Err(MetricsError::BufferSize { .. })
        ));
        assert!(matches!(
            SaliencyPair::from_u8(&[], &[], 0, 0),
            Err(MetricsError::EmptyMap { .. })
        ));
        assert!(matches!(
            SaliencyPair::from_f32(&[0.5, 1.5], &[true, false], 2, 1),
            Err(MetricsError::ValueOutOfRange { index: 1, .. })
        ));
        assert!(matches!(
            SaliencyPair::from_f32(&[f32::NAN, 0.5], &[true, false], 2, 1),
            Err(MetricsError::ValueOutOfRange { index: 0, .. })
        ));
    }
}
