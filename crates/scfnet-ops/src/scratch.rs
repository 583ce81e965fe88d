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

/// Which kernel's buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Slot {
    /// The depthwise kernel's interleaved band ([`crate::depthwise_lanes`]).
    DepthwiseBand = 0,
    /// The direct 3×3 kernel's window ([`crate::direct_conv`]).
    DirectWindow = 1,
    /// The Winograd kernel's transformed tiles ([`crate::winograd`]).
    Winograd = 2,
}

/// Number of [`Slot`]s.
const SLOTS: usize = 3;

/// A buffer and the layout it was zeroed for.
#[derive(Default)]
pub(crate) struct Buffer<T> {
    key: Vec<usize>,
    values: Vec<T>,
}

/// This thread's buffers of one element type.
type Buffers<T> = RefCell<[Buffer<T>; SLOTS]>;

/// The element types with per-thread buffers (every [`crate::elem::Real`]); `default()` is zero.
pub(crate) trait ScratchValue: Copy + Default + 'static {
    /// Runs `f` on this thread's buffers of this type.
    fn with_buffers<R>(f: impl FnOnce(&Buffers<Self>) -> R) -> R;
}

macro_rules! scratch_value {
    ($t:ty, $name:ident) => {
        thread_local! {
            static $name: Buffers<$t> = RefCell::new(Default::default());
        }
        impl ScratchValue for $t {
            fn with_buffers<R>(f: impl FnOnce(&Buffers<Self>) -> R) -> R {
                $name.with(f)
            }
        }
    };
}

scratch_value!(f32, F32_BUFFERS);
scratch_value!(f64, F64_BUFFERS);

/// Runs `f` on this thread's buffer `slot` of `len` values laid out as `key` describes (the
/// kernel's shape parameters): all zero when the previous call on this thread had another key
/// or length, else as that call left it.
///
/// `f` must not use the same element type's buffers again (it would panic): the kernels' work
/// items run no nested parallel loops.
pub(crate) fn with_scratch<T: ScratchValue, R>(
    slot: Slot,
    key: &[usize],
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    T::with_buffers(|cell| {
        let mut buffers = cell.borrow_mut();
        let buf = &mut buffers[slot as usize];
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

    #[test]
    fn a_buffer_is_zeroed_only_when_its_layout_changes() {
        let write = |key: &[usize], len: usize| {
            with_scratch::<f32, _>(Slot::DepthwiseBand, key, len, |b| {
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
        // The other slot and the other type are separate buffers.
        with_scratch::<f32, _>(Slot::DirectWindow, &[1, 3], 5, |b| assert_eq!(b, &[0.0; 5]));
        with_scratch::<f64, _>(Slot::DepthwiseBand, &[1, 3], 5, |b| {
            assert_eq!(b, &[0.0; 5])
        });
    }
}
