//! Resizing an 8-bit prediction to the GT size (spec: f64 bilinear, OpenCV geometry).
//!
//! Half-pixel centres, no antialiasing, edge clamping, rounding half up. Unlike OpenCV's 8-bit
//! path it has no fixed-point weights and no switch to area interpolation, so it is exactly
//! reproducible; it differs from `cv2.resize(INTER_LINEAR)` by at most one grey level.

use crate::gray::GrayMap;

/// What to do when a prediction and its GT differ in size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ResizeMode {
    /// Resize the prediction to the GT size with [`resize_bilinear`] (the default).
    #[default]
    Bilinear,
    /// Refuse the pair with [`crate::MetricsError::SizeMismatch`] (pysodmetrics' behaviour).
    Refuse,
}

/// Source index pairs and weights along one axis.
fn axis_taps(src_len: usize, dst_len: usize) -> Vec<(usize, usize, f64)> {
    let scale = src_len as f64 / dst_len as f64;
    (0..dst_len)
        .map(|d| {
            let s = (d as f64 + 0.5) * scale - 0.5;
            let mut i0 = s.floor();
            let mut f = s - i0;
            if i0 < 0.0 {
                i0 = 0.0;
                f = 0.0;
            }
            let last = (src_len - 1) as f64;
            if i0 >= last {
                i0 = last;
                f = 0.0;
            }
            let i0 = i0 as usize;
            (i0, (i0 + 1).min(src_len - 1), f)
        })
        .collect()
}

/// Resizes `src` to `width × height` with the f64 bilinear of the metrics spec.
pub fn resize_bilinear(src: &GrayMap, width: usize, height: usize) -> GrayMap {
    let xs = axis_taps(src.width(), width);
    let ys = axis_taps(src.height(), height);
    let data = src.data();
    let sw = src.width();
    let mut out = Vec::with_capacity(width * height);
    for &(y0, y1, fy) in &ys {
        for &(x0, x1, fx) in &xs {
            let a = data[y0 * sw + x0] as f64;
            let b = data[y0 * sw + x1] as f64;
            let c = data[y1 * sw + x0] as f64;
            let d = data[y1 * sw + x1] as f64;
            let top = a * (1.0 - fx) + b * fx;
            let bottom = c * (1.0 - fx) + d * fx;
            let v = top * (1.0 - fy) + bottom * fy;
            out.push((v + 0.5).floor().min(255.0) as u8);
        }
    }
    GrayMap::new(width, height, out).expect("resize output has width * height pixels")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity() {
        let src = GrayMap::new(3, 2, vec![0, 10, 20, 30, 40, 250]).unwrap();
        assert_eq!(resize_bilinear(&src, 3, 2), src);
    }

    #[test]
    fn upsampling_two_pixels() {
        // 2 → 4: centres at -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
        let src = GrayMap::new(2, 1, vec![0, 100]).unwrap();
        let out = resize_bilinear(&src, 4, 1);
        assert_eq!(out.data(), &[0, 25, 75, 100]);
    }
}
