//! The original training augmentation (spec §3.2), per sample and in this order: Gaussian blur
//! (p = 0.1), contrast/brightness, normalisation, random crop, horizontal flip (p = 0.5),
//! vertical flip (p = 0.2). The image and its mask get the same geometry.

use crate::image_ops::{crop_in_place, flip_horizontal, flip_vertical, gaussian_blur, Planar};
use crate::rng::Rng;

/// The normalisation of the original code (RGB order; not the ImageNet constants), defined once
/// with the networks' inference path.
pub use scfnet_base::normalisation::{MEAN, STD};

/// Which augmentations run; [`Augment::paper`] is the original chain, [`Augment::none`] only
/// normalises (fixed batches, parity tests, validation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augment {
    /// Probability of a Gaussian blur with a kernel of 3, 5, 7 or 9.
    pub blur_p: f64,
    /// Contrast factor `α ~ U[lo, hi)`; `(1, 1)` disables it.
    pub contrast: (f64, f64),
    /// Brightness offset `β`, an integer uniform in `[lo, hi]`; `(0, 0)` disables it.
    pub brightness: (i32, i32),
    /// Random crop of up to 1/8 of each side.
    pub crop: bool,
    /// Probability of a left–right flip.
    pub hflip_p: f64,
    /// Probability of a top–bottom flip.
    pub vflip_p: f64,
}

impl Augment {
    /// The authors' chain.
    pub fn paper() -> Self {
        Self {
            blur_p: 0.1,
            contrast: (0.5, 1.5),
            brightness: (-15, 14),
            crop: true,
            hflip_p: 0.5,
            vflip_p: 0.2,
        }
    }

    /// Normalisation only.
    pub fn none() -> Self {
        Self {
            blur_p: 0.0,
            contrast: (1.0, 1.0),
            brightness: (0, 0),
            crop: false,
            hflip_p: 0.0,
            vflip_p: 0.0,
        }
    }

    /// Applies the chain to an RGB image in `[0, 255]` and its mask in `[0, 255]`: the image comes
    /// back normalised with [`MEAN`]/[`STD`], the mask in `[0, 1]`.
    pub fn apply(
        &self,
        mut img: Planar,
        mut mask: Option<Planar>,
        rng: &mut Rng,
    ) -> (Planar, Option<Planar>) {
        // Every draw happens whether or not it is used, so that the stream stays aligned.
        let blur = rng.chance(self.blur_p);
        let k = (3 + rng.below(7)) | 1; // r in {3..9}, made odd → 3/5/7/9 with 1/7, 2/7, 2/7, 2/7
        if blur {
            img = gaussian_blur(&img, k.min(9));
        }
        let alpha = rng.uniform(self.contrast.0, self.contrast.1) as f32;
        let span = (self.brightness.1 - self.brightness.0 + 1).max(1) as usize;
        let beta = (self.brightness.0 + rng.below(span) as i32) as f32;
        if alpha != 1.0 || beta != 0.0 {
            for v in &mut img.data {
                *v = (alpha * *v + beta).clamp(0.0, 255.0);
            }
        }
        normalize(&mut img);
        if let Some(m) = mask.as_mut() {
            m.data.iter_mut().for_each(|v| *v /= 255.0);
        }
        if self.crop {
            let (h, w) = (img.height, img.width);
            let rh = rng.below(h / 8);
            let rw = rng.below(w / 8);
            let oh = rng.below(rh);
            let ow = rng.below(rw);
            let (ch, cw) = (h - rh, w - rw);
            crop_in_place(&mut img, ow, oh, cw, ch);
            if let Some(m) = mask.as_mut() {
                crop_in_place(m, ow, oh, cw, ch);
            }
        }
        if rng.chance(self.hflip_p) {
            flip_horizontal(&mut img);
            if let Some(m) = mask.as_mut() {
                flip_horizontal(m);
            }
        }
        if rng.chance(self.vflip_p) {
            flip_vertical(&mut img);
            if let Some(m) = mask.as_mut() {
                flip_vertical(m);
            }
        }
        (img, mask)
    }
}

/// `(v − MEAN) / STD` per channel, in place, on an RGB image in `[0, 255]`.
pub fn normalize(img: &mut Planar) {
    // Four pixels at a time: twelve values over which the channels' constants repeat, so that
    // the compiler turns the loop into whole-register subtractions and divisions (per pixel it
    // did one value at a time). The same operation on every value, so the same results.
    const PIXELS: usize = 4;
    let mean: [f32; 3 * PIXELS] = std::array::from_fn(|i| MEAN[i % 3]);
    let std: [f32; 3 * PIXELS] = std::array::from_fn(|i| STD[i % 3]);
    let mut blocks = img.data.chunks_exact_mut(3 * PIXELS);
    for block in &mut blocks {
        for ((v, m), s) in block.iter_mut().zip(&mean).zip(&std) {
            *v = (*v - m) / s;
        }
    }
    for px in blocks.into_remainder().chunks_mut(3) {
        for ((v, m), s) in px.iter_mut().zip(&MEAN).zip(&STD) {
            *v = (*v - m) / s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(w: usize, h: usize) -> (Planar, Planar) {
        let img = Planar {
            width: w,
            height: h,
            channels: 3,
            data: (0..w * h * 3).map(|i| (i % 251) as f32).collect(),
        };
        let mask = Planar {
            width: w,
            height: h,
            channels: 1,
            data: (0..w * h)
                .map(|i| if i % w < w / 2 { 255.0 } else { 0.0 })
                .collect(),
        };
        (img, mask)
    }

    #[test]
    fn none_only_normalises() {
        let (img, mask) = scene(16, 12);
        let (a, m) = Augment::none().apply(img.clone(), Some(mask.clone()), &mut Rng::new(1));
        assert_eq!((a.width, a.height), (16, 12));
        assert!((a.data[0] - (0.0 - MEAN[0]) / STD[0]).abs() < 1e-6);
        assert_eq!(m.unwrap().data[0], 1.0);
    }

    #[test]
    fn paper_chain_crops_within_an_eighth_and_keeps_pairs_aligned() {
        let (img, mask) = scene(80, 64);
        let mut sizes = std::collections::HashSet::new();
        for seed in 0..200 {
            let (a, m) =
                Augment::paper().apply(img.clone(), Some(mask.clone()), &mut Rng::new(seed));
            let m = m.unwrap();
            assert_eq!((a.width, a.height), (m.width, m.height));
            assert!(a.width > 80 - 10 && a.width <= 80, "{}", a.width);
            assert!(a.height > 64 - 8 && a.height <= 64);
            assert!(m.data.iter().all(|v| (0.0..=1.0).contains(v)));
            sizes.insert((a.width, a.height));
        }
        assert!(sizes.len() > 5, "the crop varies: {sizes:?}");
    }

    #[test]
    fn normalize_gives_each_channel_its_own_constants_at_any_width() {
        // 1…7 pixels: no whole block, one, and a remainder after blocks.
        for pixels in 1..=7 {
            let mut img = Planar {
                width: pixels,
                height: 1,
                channels: 3,
                data: (0..pixels * 3).map(|i| (i * 37 % 256) as f32).collect(),
            };
            let want: Vec<f32> = img
                .data
                .iter()
                .enumerate()
                .map(|(i, v)| (v - MEAN[i % 3]) / STD[i % 3])
                .collect();
            normalize(&mut img);
            assert_eq!(img.data, want, "{pixels} pixels");
        }
    }

    #[test]
    fn same_seed_same_result() {
        let (img, mask) = scene(40, 32);
        let a = Augment::paper().apply(img.clone(), Some(mask.clone()), &mut Rng::new(9));
        let b = Augment::paper().apply(img, Some(mask), &mut Rng::new(9));
        assert_eq!(a, b);
    }
}
