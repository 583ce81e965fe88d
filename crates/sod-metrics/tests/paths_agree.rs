//! The 8-bit histogram path and the pixel-by-pixel path give the same scores.
//!
//! `SaliencyPair::from_u8` scores through byte-level histograms; `from_f64` with the same
//! normalised values goes pixel by pixel. Both must agree far inside the parity tolerances,
//! including the edge cases (empty / full GT, constant maps, centroid on the last column).

use sod_metrics::{SaliencyPair, Scorer};

/// xorshift64*, so the test needs no extra crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn cases() -> Vec<(usize, usize, Vec<u8>, Vec<u8>)> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut out = Vec::new();
    for k in 0..40 {
        let w = 5 + (rng.next() % 60) as usize;
        let h = 5 + (rng.next() % 50) as usize;
        let (cx, cy, r) = (
            (rng.next() % w as u64) as f64,
            (rng.next() % h as u64) as f64,
            2.0 + (rng.next() % 20) as f64,
        );
        let mut gt = vec![0u8; w * h];
        let mut pred = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let d = ((x as f64 - cx).powi(2) + (y as f64 - cy).powi(2)).sqrt();
                gt[y * w + x] = if d < r { 255 } else { 0 };
                let noise = (rng.next() % 60) as f64;
                pred[y * w + x] = (255.0 / (1.0 + (d - r).exp()) * 0.8 + noise).min(255.0) as u8;
            }
        }
        match k % 8 {
            0 => gt.fill(0),
            1 => gt.fill(255),
            2 => pred.fill(200),
            3 => {
                gt.fill(0);
                for y in 0..h {
                    gt[y * w + w - 1] = 255;
                }
            }
            _ => {}
        }
        out.push((w, h, pred, gt));
    }
    out
}

#[test]
fn histogram_and_pixel_paths_agree() {
    let mut scorer = Scorer::new();
    for (w, h, pred, gt) in cases() {
        let fast = SaliencyPair::from_u8(&pred, &gt, w, h).unwrap();
        let mask: Vec<bool> = fast.gt().to_vec();
        let slow = SaliencyPair::from_f64(fast.pred().to_vec(), &mask, w, h).unwrap();
        let a = scorer.score(&fast);
        let b = scorer.score(&slow);
        let close = |what: &str, x: f64, y: f64| {
            assert!(
                (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-12,
                "{what} on {w}x{h}: histogram {x} vs pixels {y}"
            );
        };
        close("MAE", a.mae, b.mae);
        close("Sm", a.s_measure, b.s_measure);
        close("wF", a.weighted_f, b.weighted_f);
        close("adpF", a.adaptive_f, b.adaptive_f);
        close("adpE", a.adaptive_e, b.adaptive_e);
        assert_eq!(a.curves, b.curves, "curves on {w}x{h}");
        assert_eq!(a.gt_foreground, b.gt_foreground);
    }
}
