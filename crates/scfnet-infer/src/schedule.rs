//! How an eval-mode pass of a network runs on the CPU's rayon workers: the policy, apart from
//! the network, so that a model only says how one batch goes through its layers.
//!
//! In eval mode on the CPU the whole pass runs on rayon's worker threads: the kernels' parallel
//! loops then split work between the workers directly, instead of each waking the pool from
//! outside and putting the calling thread to sleep until it is done. A batch of several images is
//! cut into one part per worker and the parts run side by side, each image through the whole
//! network on one core, without hand-offs between operations (images are independent in eval
//! mode; the maps are those of the whole batch). A part takes its images one at a time: the same
//! speed as the part at once, with the memory of one image's activations per worker (peak 110
//! instead of 158 MiB for the student at batch 8). A single image keeps a second worker awake for
//! the length of the pass ([`crate::with_busy_helper`]) unless told not to.

use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;

/// Whether [`run_eval`] on `batch` images on `device` hands its background work to the
/// busy-waiting helper: a single image on the CPU, the helper on, and two or more workers in
/// rayon's pool.
pub fn helper_takes_background(batch: usize, device: &Device, helper: bool) -> bool {
    batch == 1 && device.is_cpu() && helper && rayon::current_num_threads() >= 2
}

/// The eval-mode output of `pass` over the batch `x` `(B, ...)`, scheduled as the module says;
/// `pass` computes a batch (or part of one) on the calling thread's terms and must treat images
/// independently. With `helper`, a single image keeps a second worker busy-waiting
/// and `background` runs in that worker's idle moments ([`crate::with_busy_helper_and`]): short
/// pieces of other work (decoding the next image, encoding the last map) that do one piece and
/// return whether there was any, never using rayon's pool nor blocking. Without the helper (off,
/// or a batch of several images) `background` is never called. Off the CPU, `pass` runs as it is.
pub fn run_eval(
    x: &Tensor,
    helper: bool,
    background: &(dyn Fn() -> bool + Sync),
    pass: &(dyn Fn(&Tensor) -> Result<Tensor> + Sync),
) -> Result<Tensor> {
    if !scfnet_ops::uses_cpu_kernels(x) {
        return pass(x);
    }
    if rayon::current_thread_index().is_none() {
        return rayon::scope(|_| run_eval(x, helper, background, pass));
    }
    let batch = x.dim(0)?;
    let parts = batch_parts(batch, rayon::current_num_threads());
    if parts.len() < 2 {
        if !helper_takes_background(batch, x.device(), helper) {
            return pass(x);
        }
        return crate::with_busy_helper_and(|| pass(x), background);
    }
    let outputs = parts
        .into_par_iter()
        .map(|(start, len)| {
            (start..start + len)
                .map(|i| pass(&x.narrow(0, i, 1)?))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&outputs.concat(), 0)
}

/// `(start, len)` of at most `workers` nearly equal, non-empty parts of a batch of `batch`.
fn batch_parts(batch: usize, workers: usize) -> Vec<(usize, usize)> {
    let n = workers.clamp(1, batch.max(1));
    let mut start = 0;
    (0..n)
        .map(|i| {
            let len = batch / n + usize::from(i < batch % n);
            let part = (start, len);
            start += len;
            part
        })
        .filter(|&(_, len)| len > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::batch_parts;

    #[test]
    fn batch_parts_cover_the_batch_in_order() {
        for batch in 0..20 {
            for workers in 1..6 {
                let parts = batch_parts(batch, workers);
                assert!(parts.len() <= workers.max(1));
                assert!(parts.iter().all(|&(_, len)| len > 0));
                let mut next = 0;
                for &(start, len) in &parts {
                    assert_eq!(start, next);
                    next += len;
                }
                assert_eq!(next, batch);
                let lens: Vec<_> = parts.iter().map(|p| p.1).collect();
                let (lo, hi) = (lens.iter().min(), lens.iter().max());
                if let (Some(lo), Some(hi)) = (lo, hi) {
                    assert!(hi - lo <= 1, "{batch} over {workers}: {lens:?}");
                }
            }
        }
        assert_eq!(batch_parts(8, 2), vec![(0, 4), (4, 4)]);
        assert_eq!(batch_parts(1, 2), vec![(0, 1)]);
    }
}
