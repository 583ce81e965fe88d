//! How the `scfnet` process uses memory: the allocator, and transparent huge pages.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t`.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped instead of returning it to the OS after 10 ms: the networks free and
/// re-allocate the same large activations every step, and re-faulting them (the kernel zeroing
/// fresh pages) cost about a quarter of a training step. `MIMALLOC_PURGE_DELAY` still wins.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option of the allocator; valid at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// Stops the kernel from backing this process's memory with transparent huge pages from now on
/// (Linux `PR_SET_THP_DISABLE`; elsewhere nothing). The allocator asks for huge pages, and
/// where the kernel has to zero a fresh 2 MiB page at each first touch (on the project's
/// virtual machine about 7 ms each, against well under 1 ms for the same memory in 4 KiB
/// pages) a short run pays for them up front: `scfnet predict` on 96 images spent 0.3–0.6 s of
/// its CPU time on them, about the work of 30 images. A long run earns that back (fewer TLB
/// misses), so `scfnet predict` asks for this on short runs only. Setting `MIMALLOC_ALLOW_THP`
/// leaves the choice to the allocator instead.
pub fn small_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: a prctl with plain integer arguments; it only sets a flag of this process.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            tracing::debug!("huge pages stay on: {}", std::io::Error::last_os_error());
        }
    }
}
