//! Host memory of used batches, handed back to the loader's workers.
//!
//! A batch of 128 images at 352 is 190 MB of `f32` (images) and 63 MB (masks). Allocated afresh
//! for every batch, each of its 4 KiB pages is mapped and zeroed by the kernel when first written
//! (a quarter of a loader thread's time) and unmapped when the batch is dropped, on the thread
//! that drops it: the training loop's. A consumer that gives the vectors back once their values
//! are on the device lets the next batches be written into memory that is already mapped.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::loader::Batch;

/// The shelf of vectors given back by a consumer and taken by the loader's workers; cloning it
/// gives another handle on the same shelf. Holds at most a fixed number of vectors of each kind
/// (more are freed), so it never keeps more memory than the batches it replaces.
#[derive(Clone, Debug)]
pub struct BatchBuffers {
    shelf: Arc<Mutex<Shelf>>,
}

#[derive(Debug)]
struct Shelf {
    images: Vec<Vec<f32>>,
    masks: Vec<Vec<f32>>,
    keep: usize,
}

impl BatchBuffers {
    /// An empty shelf keeping up to `keep` image vectors and `keep` mask vectors.
    pub(crate) fn new(keep: usize) -> Self {
        Self {
            shelf: Arc::new(Mutex::new(Shelf {
                images: Vec::new(),
                masks: Vec::new(),
                keep,
            })),
        }
    }

    /// Takes `batch`'s image and mask values for later batches, leaving it empty vectors (its
    /// stems, side and skipped samples stay). Call it once the values have been copied to where
    /// they are used.
    pub fn give_back(&self, batch: &mut Batch) {
        let images = std::mem::take(&mut batch.images);
        let masks = batch.masks.as_mut().map(std::mem::take);
        let mut shelf = self.lock();
        let Shelf {
            images: image_pile,
            masks: mask_pile,
            keep,
        } = &mut *shelf;
        for (pile, v) in [(image_pile, Some(images)), (mask_pile, masks)] {
            if let Some(v) = v.filter(|v| v.capacity() > 0) {
                if pile.len() < *keep {
                    pile.push(v);
                }
            }
        }
    }

    /// An empty image vector with room for at least `len` values: the largest on the shelf, or
    /// a new one.
    pub(crate) fn take_images(&self, len: usize) -> Vec<f32> {
        let mut shelf = self.lock();
        reuse(&mut shelf.images, len)
    }

    /// An empty mask vector with room for at least `len` values.
    pub(crate) fn take_masks(&self, len: usize) -> Vec<f32> {
        let mut shelf = self.lock();
        reuse(&mut shelf.masks, len)
    }

    /// Vectors on the shelf now: (images, masks).
    pub fn shelved(&self) -> (usize, usize) {
        let shelf = self.lock();
        (shelf.images.len(), shelf.masks.len())
    }

    /// The shelf holds plain vectors, whole after any panic of a thread holding the lock.
    fn lock(&self) -> MutexGuard<'_, Shelf> {
        self.shelf
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The largest vector of `pile`, emptied and grown to hold `len` values, or a new one.
fn reuse(pile: &mut Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let largest = (0..pile.len()).max_by_key(|&i| pile[i].capacity());
    let mut v = largest.map_or_else(Vec::new, |i| pile.swap_remove(i));
    v.clear();
    v.reserve(len);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(images: usize, masks: Option<usize>) -> Batch {
        Batch {
            index: 0,
            size: 1,
            stems: Vec::new(),
            images: vec![1.0; images],
            masks: masks.map(|n| vec![2.0; n]),
            skipped: Vec::new(),
        }
    }

    #[test]
    fn given_back_vectors_come_back_empty_largest_first() {
        let shelf = BatchBuffers::new(4);
        let (mut small, mut large) = (batch(10, Some(5)), batch(1000, Some(500)));
        shelf.give_back(&mut small);
        shelf.give_back(&mut large);
        assert!(small.images.is_empty() && small.masks.as_ref().is_some_and(Vec::is_empty));
        assert_eq!(shelf.shelved(), (2, 2));
        let v = shelf.take_images(20);
        assert!(v.is_empty() && v.capacity() >= 1000, "{}", v.capacity());
        let v = shelf.take_images(20);
        assert!(v.is_empty() && v.capacity() >= 20, "grown to the request");
        assert_eq!(
            shelf.take_images(7).capacity(),
            7,
            "a new one when the shelf is bare"
        );
        assert!(shelf.take_masks(3).capacity() >= 500);
    }

    #[test]
    fn the_shelf_keeps_at_most_its_limit_and_no_empty_vectors() {
        let shelf = BatchBuffers::new(2);
        for _ in 0..5 {
            shelf.give_back(&mut batch(8, None));
        }
        assert_eq!(shelf.shelved(), (2, 0));
        shelf.give_back(&mut batch(0, Some(0)));
        assert_eq!(
            shelf.shelved(),
            (2, 0),
            "nothing to keep in a vector without capacity"
        );
        let other = shelf.clone();
        other.take_images(1);
        assert_eq!(shelf.shelved(), (1, 0), "clones share one shelf");
    }
}
