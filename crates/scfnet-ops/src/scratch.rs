//! Per-thread scratch buffers of the CPU kernels, kept across layers and calls.
//!
//! A kernel whose work items copy their input into a zero-padded buffer (the depthwise band, the
//! direct 3×3 window) used to build that buffer in rayon's `for_each_init`, which makes a new one
//! for every piece rayon splits a loop into: an allocation and a zero-fill several times per
//! layer and image. Here each thread keeps one buffer per kernel for the life of the thread. The
//! buffer is zeroed only when a call's layout differs from the previous call's on that thread.
//! The kernels never write their padding, so a buffer of the same layout still has zeros there,
//! whichever layer or call last used it.

use std::cell::RefCell;
use std::thread::LocalKey;

/// A per-thread buffer and the layout it was zeroed for. Each kernel declares its own, one per
/// element type, in a `thread_local!` (see [`with_scratch`]).
#[derive(Default)]
pub struct ScratchBuffer<T> {
    key: Vec<usize>,
    values: Vec<T>,
}

/// The slot a kernel declares for its buffer: `thread_local! { static BAND: ScratchSlot<f32> =
/// ScratchSlot::default(); }`.
pub type ScratchSlot<T> = RefCell<ScratchBuffer<T>>;

/// Runs `f` on this thread's buffer in `slot`, `len` values laid out as `key` describes (the
/// kernel's shape parameters): all zero when the previous call on this thread had another key
/// or length, else as that call left it.
///
/// `f` must not use the same slot again (it would panic): the kernels' work items run no
/// nested parallel loops.
pub fn with_scratch<T: Copy + Default + 'static, R>(
    slot: &'static LocalKey<ScratchSlot<T>>,
    key: &[usize],
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    slot.with(|cell| {
        let mut buf = cell.borrow_mut();
        let buf = &mut *buf;
        if buf.key != key || buf.values.len() != len {
            buf.values.clear();
            buf.values.resize(len, T::default());
            buf.key.clear();
            buf.key.extend_from_slice(key);
        }
        f(&mut buf.values)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static ONE: ScratchSlot<f32> = ScratchSlot::default();
        static TWO: ScratchSlot<f32> = ScratchSlot::default();
        static WIDE: ScratchSlot<f64> = ScratchSlot::default();
    }

    #[test]
    fn a_buffer_is_zeroed_only_when_its_layout_changes() {
        let write = |key: &[usize], len: usize| {
            with_scratch(&ONE, key, len, |b| {
                let before = b.to_vec();
                b.fill(7.0);
                before
            })
        };
        assert_eq!(write(&[1, 2], 4), vec![0.0; 4]);
        // Same layout: what the last call left.
        assert_eq!(write(&[1, 2], 4), vec![7.0; 4]);
        // Another key, another length: zeros again.
        assert_eq!(write(&[1, 3], 4), vec![0.0; 4]);
        assert_eq!(write(&[1, 3], 5), vec![0.0; 5]);
        // Other slots are separate buffers.
        with_scratch(&TWO, &[1, 3], 5, |b| assert_eq!(b, &[0.0; 5]));
        with_scratch(&WIDE, &[1, 3], 5, |b| assert_eq!(b, &[0.0; 5]));
    }
}
