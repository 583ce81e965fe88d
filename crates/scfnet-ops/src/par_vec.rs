//! Output vectors of the parallel CPU kernels, zeroed by the threads that fill them.
//!
//! `vec![0; n]` before a parallel loop zeroes the whole output on the calling thread while the
//! other cores wait: in an R50 training step on 2 cores, such fills (ours and the matrix
//! products') were about a third of the calling thread's time between parallel loops. Here each
//! work item zeroes its own chunk on its own thread, just before it fills the chunk (which is
//! then in cache).

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// A vector of `len` values built in parallel by chunks of `chunk` values (the last may be
/// shorter): `fill(i, values)` gets chunk `i` with every value `T::default()` (zero) and writes
/// what it wants. The same values as `vec![T::default(); len]` followed by
/// `par_chunks_mut(chunk).enumerate().for_each(fill)`; a `chunk` of 0 counts as 1.
///
/// A kernel that reads its input by the same chunks takes `&x[i * chunk..][..values.len()]`.
pub(crate) fn par_filled<T, F>(len: usize, chunk: usize, fill: F) -> Vec<T>
where
    T: Copy + Default + Send + Sync,
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    let mut out: Vec<T> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .enumerate()
        .for_each(|(i, part)| {
            part.fill(MaybeUninit::new(T::default()));
            // SAFETY: every value of `part` was initialised on the line above, and
            // `MaybeUninit<T>` has the layout of `T`.
            let part = unsafe { &mut *(part as *mut [MaybeUninit<T>] as *mut [T]) };
            fill(i, part);
        });
    // SAFETY: the chunks cover the first `len` values of the capacity, each initialised in the
    // loop (a panic in `fill` propagates before this line, and `out` is dropped empty).
    unsafe { out.set_len(len) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_start_at_zero_and_keep_what_fill_writes() {
        // 10 values in chunks of 4: the last chunk is short; chunk 1 is left untouched.
        let v: Vec<f32> = par_filled(10, 4, |i, dst| {
            assert!(dst.iter().all(|&x| x == 0.0), "chunk {i} starts at zero");
            if i != 1 {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = (i * 10 + j) as f32;
                }
            }
        });
        assert_eq!(v, [0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 0.0, 20.0, 21.0]);
    }

    #[test]
    fn matches_the_serial_zero_fill_and_loop() {
        let len = 1000 + 7;
        let fill = |i: usize, dst: &mut [f64]| {
            for (j, d) in dst.iter_mut().enumerate() {
                if (i + j) % 3 != 0 {
                    *d = (i * 1000 + j) as f64 * 0.5;
                }
            }
        };
        let mut want = vec![0.0f64; len];
        want.chunks_mut(64)
            .enumerate()
            .for_each(|(i, d)| fill(i, d));
        assert_eq!(par_filled(len, 64, fill), want);
    }

    #[test]
    fn empty_and_zero_chunk() {
        let v: Vec<f32> = par_filled(0, 0, |_, _| panic!("no chunk of an empty vector"));
        assert!(v.is_empty());
        let v: Vec<f32> = par_filled(3, 0, |i, d| d[0] = i as f32 + 1.0);
        assert_eq!(v, [1.0, 2.0, 3.0]);
    }
}
