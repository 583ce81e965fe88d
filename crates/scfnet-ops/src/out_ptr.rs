//! The output pointer of the parallel CPU kernels.

/// A raw output pointer shared by the work items of a kernel, which write disjoint regions
/// (each user says which, where it writes).
pub struct OutPtr<T>(*mut T);
// SAFETY: the kernels' work items write disjoint regions of the output (each user's SAFETY
// comments say which).
unsafe impl<T> Send for OutPtr<T> {}
unsafe impl<T> Sync for OutPtr<T> {}

impl<T> Clone for OutPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for OutPtr<T> {}

impl<T> OutPtr<T> {
    /// The start of `out`'s spare capacity (values written through it become `out`'s with
    /// `set_len`).
    pub fn new(out: &mut Vec<T>) -> Self {
        Self(out.spare_capacity_mut().as_mut_ptr().cast::<T>())
    }

    /// The pointer (a method, so that closures capture the `Sync` wrapper, not the field).
    pub fn at(self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}
