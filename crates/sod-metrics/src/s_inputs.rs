//! The sums the S-measure is computed from, whoever gathers them: [`crate::smeasure`] pixel by
//! pixel, [`crate::levels`] from 8-bit level histograms. Both depend on this module, not on each
//! other.

/// Foreground count and the split point of the four S-measure quadrants.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GtLayout {
    /// GT foreground pixels.
    pub fg: usize,
    /// Quadrant split row: rows `0..cy` are the top half.
    pub cy: usize,
    /// Quadrant split column: columns `0..cx` are the left half.
    pub cx: usize,
}

impl GtLayout {
    /// Counts the foreground and finds its centroid like pysodmetrics:
    /// `argwhere(gt).mean(axis=0).round()` (half to even), plus one (MATLAB's `1:X`).
    pub fn of(gt: &[bool], width: usize, height: usize) -> Self {
        let (mut fg, mut row_sum, mut col_sum) = (0u64, 0u64, 0u64);
        for (r, row) in gt.chunks_exact(width).enumerate() {
            let mut n = 0u64;
            for (c, &g) in row.iter().enumerate() {
                n += g as u64;
                col_sum += if g { c as u64 } else { 0 };
            }
            fg += n;
            row_sum += n * r as u64;
        }
        let (cy, cx) = if fg == 0 {
            (
                (height as f64 / 2.0).round_ties_even(),
                (width as f64 / 2.0).round_ties_even(),
            )
        } else {
            (
                (row_sum as f64 / fg as f64).round_ties_even(),
                (col_sum as f64 / fg as f64).round_ties_even(),
            )
        };
        Self {
            fg: fg as usize,
            cy: cy as usize + 1,
            cx: cx as usize + 1,
        }
    }

    /// The four quadrants `(rows, cols)` in the order left-top, right-top, left-bottom,
    /// right-bottom (half-open ranges; the right or bottom ones may be empty).
    pub fn quadrants(&self, width: usize, height: usize) -> [((usize, usize), (usize, usize)); 4] {
        let (cy, cx) = (self.cy.min(height), self.cx.min(width));
        [
            ((0, cy), (0, cx)),
            ((0, cy), (cx, width)),
            ((cy, height), (0, cx)),
            ((cy, height), (cx, width)),
        ]
    }
}

/// Count, mean and sum of squared deviations of a set of values (object part).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Moments {
    pub count: usize,
    pub mean: f64,
    pub squared_deviations: f64,
}

/// The sums of one quadrant that its SSIM term needs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RegionSums {
    /// Pixels in the quadrant.
    pub n: f64,
    /// GT foreground pixels in it.
    pub n_fg: f64,
    /// Mean prediction `x`.
    pub mean: f64,
    /// `Σ (p - x)²`.
    pub squared_deviations: f64,
    /// `Σ (p - x)` over the GT foreground.
    pub deviation_fg: f64,
    /// `Σ (p - x)` over the GT background.
    pub deviation_bg: f64,
}

/// Everything the S-measure needs, however it was gathered.
pub(crate) struct SInputs {
    /// Mean prediction over the whole image (for an all-background or all-foreground GT).
    pub mean: f64,
    /// `p` on the GT foreground.
    pub object_fg: Moments,
    /// `1 - p` on the GT background.
    pub object_bg: Moments,
    /// The four quadrants, in [`GtLayout::quadrants`] order.
    pub regions: [RegionSums; 4],
}
