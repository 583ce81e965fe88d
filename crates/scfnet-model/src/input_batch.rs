//! The network input of a batch, prepared image by image straight into its place, so that the
//! batch is never copied together from per-image buffers (for `scfnet predict` at batch 8 that
//! copy was 0.3–0.7 ms per image on the network's thread).

use crate::input_side::InputSide;
use crate::predictor::{check_image, PredictError, RgbRef, MEAN, STD};

/// Room for the inputs of `len` images, `(len, 3, size, size)` values, filled one place at a
/// time by [`InputBatch::fill`] (in any order; places left unfilled are left out of the batch
/// the network runs, see [`InputBatch::into_values`]). The memory is not zeroed first: every value
/// the network reads was written by a fill.
pub struct InputBatch {
    /// Capacity for every place; length 0 until [`InputBatch::into_values`].
    values: Vec<f32>,
    /// Which places hold a prepared image.
    filled: Vec<bool>,
    size: usize,
}

impl std::fmt::Debug for InputBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputBatch")
            .field("size", &self.size)
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}

impl InputBatch {
    /// Room for `len` images at network input side `side`.
    pub fn new(len: usize, side: InputSide) -> Self {
        let size = side.get();
        Self {
            values: Vec::with_capacity(len * 3 * size * size),
            filled: vec![false; len],
            size,
        }
    }

    /// Places in the batch.
    pub fn len(&self) -> usize {
        self.filled.len()
    }

    /// Whether the batch has no places.
    pub fn is_empty(&self) -> bool {
        self.filled.is_empty()
    }

    /// The network input side.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether place `index` holds a prepared image.
    pub fn is_filled(&self, index: usize) -> bool {
        self.filled.get(index).copied().unwrap_or(false)
    }

    /// Prepares `image` into place `index`: the values of [`crate::preprocess_values`], bit
    /// for bit. On failure (a buffer that does not match its size, no such place) the place
    /// stays as it was.
    pub fn fill(&mut self, index: usize, image: RgbRef) -> Result<(), PredictError> {
        check_image(image)?;
        if index >= self.len() {
            return Err(PredictError::Size(format!(
                "no place {index} in a batch of {}",
                self.len()
            )));
        }
        let per = 3 * self.size * self.size;
        let room = &mut self.values.spare_capacity_mut()[index * per..(index + 1) * per];
        scfnet_ops::resize_bilinear_normalised_rgb_into(
            image.pixels,
            (image.height, image.width),
            (MEAN, STD),
            (self.size, self.size),
            false,
            room,
        )?;
        self.filled[index] = true;
        Ok(())
    }

    /// The values of the filled places, in order, moved together over the unfilled ones:
    /// `(n, 3, size, size)` with `n` the number of filled places, and `n`.
    pub fn into_values(mut self) -> (Vec<f32>, usize) {
        let per = 3 * self.size * self.size;
        let room = self.values.spare_capacity_mut();
        let mut n = 0;
        for (i, &filled) in self.filled.iter().enumerate() {
            if filled {
                if i != n {
                    room.copy_within(i * per..(i + 1) * per, n * per);
                }
                n += 1;
            }
        }
        // SAFETY: the first `n · per` values are the filled places' (moved above), each written
        // entirely by `resize_bilinear_normalised_rgb_into` when `fill` marked it.
        unsafe { self.values.set_len(n * per) };
        (self.values, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess_values;

    fn image(seed: usize, (h, w): (usize, usize)) -> Vec<u8> {
        (0..h * w * 3)
            .map(|i| ((i * 31 + seed * 7 + i / 3) % 256) as u8)
            .collect()
    }

    #[test]
    fn filled_places_hold_the_prepared_values_in_order_without_the_gaps() {
        let size = InputSide::new(32).unwrap();
        let sizes = [(20, 30), (40, 33), (32, 32), (7, 50)];
        let pixels: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| image(i, s))
            .collect();
        let rgb = |i: usize| RgbRef {
            pixels: &pixels[i],
            width: sizes[i].1,
            height: sizes[i].0,
        };
        let mut batch = InputBatch::new(4, size);
        assert_eq!(batch.len(), 4);
        // Out of order, and place 1 never filled (an image that failed to decode).
        for i in [3, 0, 2] {
            batch.fill(i, rgb(i)).unwrap();
        }
        assert!(batch.is_filled(0) && !batch.is_filled(1) && batch.is_filled(3));
        let (values, n) = batch.into_values();
        assert_eq!(n, 3);
        let want: Vec<f32> = [0, 2, 3]
            .iter()
            .flat_map(|&i| preprocess_values(rgb(i), size).unwrap())
            .collect();
        assert_eq!(values.len(), want.len());
        assert!(values
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn a_failed_fill_leaves_the_place_empty() {
        let mut batch = InputBatch::new(2, InputSide::new(32).unwrap());
        let short = RgbRef {
            pixels: &[1, 2, 3],
            width: 2,
            height: 2,
        };
        assert!(matches!(
            batch.fill(0, short),
            Err(PredictError::Buffer { len: 3, .. })
        ));
        let ok = image(1, (8, 8));
        let ok = RgbRef {
            pixels: &ok,
            width: 8,
            height: 8,
        };
        let err = batch.fill(2, ok).unwrap_err().to_string();
        assert!(err.contains("no place 2 in a batch of 2"), "{err}");
        batch.fill(1, ok).unwrap();
        assert!(!batch.is_filled(0) && batch.is_filled(1));
        let (values, n) = batch.into_values();
        assert_eq!((values.len(), n), (3 * 32 * 32, 1));
    }
}
