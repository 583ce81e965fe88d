//! Thresholded metrics: precision, recall, F-measure and E-measure from confusion counts.
//!
//! Every binary map is summarised by four integers (true/false positives, GT foreground, pixel
//! count), so curves over the 256 thresholds and the adaptive values share one formula each.

use crate::EPS;

/// Number of thresholds of every curve (`t = 0..=255`).
pub const THRESHOLDS: usize = 256;

/// β² of the F-measure (pysodmetrics calls it `beta`, but it is β²).
pub const F_BETA2: f64 = 0.3;

/// One binary prediction map compared with a binary ground truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Confusion {
    /// Predicted foreground on GT foreground.
    pub tp: u64,
    /// Predicted foreground on GT background.
    pub fp: u64,
    /// GT foreground pixel count.
    pub fg: u64,
    /// Pixel count `H * W`.
    pub n: u64,
}

impl Confusion {
    /// Precision `TP / (TP + FP)`, 0 when nothing is predicted.
    pub fn precision(&self) -> f64 {
        let predicted = (self.tp + self.fp).max(1);
        self.tp as f64 / predicted as f64
    }

    /// Recall `TP / FG`, 0 when the GT is empty.
    pub fn recall(&self) -> f64 {
        self.tp as f64 / self.fg.max(1) as f64
    }

    /// F-measure with β² = [`F_BETA2`]; 0 when TP is 0.
    pub fn f_measure(&self) -> f64 {
        f_from_pr(self.precision(), self.recall())
    }

    /// Enhanced-alignment measure (E-measure) of this binary map, closed form from the counts.
    ///
    /// Divides by `N - 1 + eps` like pysodmetrics, so a perfect map scores `N / (N - 1)`.
    pub fn e_measure(&self) -> f64 {
        let n = self.n as f64;
        let pred_fg = self.tp + self.fp;
        let pred_bg = self.n - pred_fg;
        let sum = if self.fg == 0 {
            pred_bg as f64
        } else if self.fg == self.n {
            pred_fg as f64
        } else {
            let fn_ = self.fg - self.tp;
            let tn = pred_bg - fn_;
            let mean_pred = pred_fg as f64 / n;
            let mean_gt = self.fg as f64 / n;
            let parts = [
                (self.tp, 1.0 - mean_pred, 1.0 - mean_gt),
                (self.fp, 1.0 - mean_pred, 0.0 - mean_gt),
                (fn_, 0.0 - mean_pred, 1.0 - mean_gt),
                (tn, 0.0 - mean_pred, 0.0 - mean_gt),
            ];
            let mut sum = 0.0;
            for (count, a, b) in parts {
                let align = 2.0 * (a * b) / (a * a + b * b + EPS);
                let enhanced = (align + 1.0) * (align + 1.0) / 4.0;
                sum += enhanced * count as f64;
            }
            sum
        };
        sum / ((self.n - 1) as f64 + EPS)
    }
}

/// F-measure from precision and recall, in pysodmetrics' operation order; 0 when the
/// numerator is 0.
pub fn f_from_pr(precision: f64, recall: f64) -> f64 {
    let numerator = (1.0 + F_BETA2) * precision * recall;
    if numerator == 0.0 {
        0.0
    } else {
        numerator / (F_BETA2 * precision + recall)
    }
}

/// Per-threshold curves; index `t` is the binary map `floor(p * 255) >= t`.
///
/// For one image these are that image's curves; for a dataset, the per-threshold means.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Curves {
    /// Precision at each threshold.
    pub precision: Vec<f64>,
    /// Recall at each threshold.
    pub recall: Vec<f64>,
    /// F-measure (β² = 0.3) at each threshold.
    pub f_measure: Vec<f64>,
    /// E-measure at each threshold.
    pub e_measure: Vec<f64>,
}

impl Curves {
    /// All-zero curves of [`THRESHOLDS`] points (the start of a running sum).
    pub fn zeros() -> Self {
        Self {
            precision: vec![0.0; THRESHOLDS],
            recall: vec![0.0; THRESHOLDS],
            f_measure: vec![0.0; THRESHOLDS],
            e_measure: vec![0.0; THRESHOLDS],
        }
    }

    /// The curves of one image from its quantised histograms of GT-foreground and
    /// GT-background pixels (`hist[q]` counts pixels with `floor(p * 255) == q`).
    pub fn from_histograms(fg_hist: &[u64; THRESHOLDS], bg_hist: &[u64; THRESHOLDS]) -> Self {
        let fg: u64 = fg_hist.iter().sum();
        let n = fg + bg_hist.iter().sum::<u64>();
        let mut curves = Self::zeros();
        let (mut tp, mut fp) = (0u64, 0u64);
        for t in (0..THRESHOLDS).rev() {
            tp += fg_hist[t];
            fp += bg_hist[t];
            let c = Confusion { tp, fp, fg, n };
            curves.precision[t] = c.precision();
            curves.recall[t] = c.recall();
            curves.f_measure[t] = f_from_pr(curves.precision[t], curves.recall[t]);
            curves.e_measure[t] = c.e_measure();
        }
        curves
    }

    /// Adds another set of curves point by point (running sum over images, in image order).
    pub fn add_assign(&mut self, other: &Curves) {
        for (a, b) in [
            (&mut self.precision, &other.precision),
            (&mut self.recall, &other.recall),
            (&mut self.f_measure, &other.f_measure),
            (&mut self.e_measure, &other.e_measure),
        ] {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }

    /// Divides every point by `n` (turns a running sum into a mean).
    pub fn scale(&mut self, n: f64) {
        for curve in [
            &mut self.precision,
            &mut self.recall,
            &mut self.f_measure,
            &mut self.e_measure,
        ] {
            for x in curve.iter_mut() {
                *x /= n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f_is_zero_without_true_positives() {
        let c = Confusion {
            tp: 0,
            fp: 5,
            fg: 3,
            n: 10,
        };
        assert_eq!(c.f_measure(), 0.0);
        assert_eq!(c.precision(), 0.0);
    }

    #[test]
    fn perfect_map_scores_n_over_n_minus_1() {
        let c = Confusion {
            tp: 4,
            fp: 0,
            fg: 4,
            n: 10,
        };
        assert!((c.e_measure() - 10.0 / 9.0).abs() < 1e-12);
        assert!((c.f_measure() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn empty_gt_counts_predicted_background() {
        let c = Confusion {
            tp: 0,
            fp: 3,
            fg: 0,
            n: 10,
        };
        assert!((c.e_measure() - 7.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn threshold_zero_marks_everything_foreground() {
        let mut fg = [0u64; THRESHOLDS];
        let mut bg = [0u64; THRESHOLDS];
        fg[255] = 2;
        bg[0] = 8;
        let curves = Curves::from_histograms(&fg, &bg);
        assert_eq!(curves.precision[0], 0.2);
        assert_eq!(curves.recall[0], 1.0);
        assert_eq!(curves.precision[1], 1.0);
        assert_eq!(curves.precision[255], 1.0);
    }
}
