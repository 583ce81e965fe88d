//! Idle priority for `scfnet predict`'s decoding and writing threads.
//!
//! The network runs as fork-join loops on all cores: when another thread takes a core in the
//! middle of one, the whole loop waits for the worker it displaced. Decoding and writing are a
//! small share of the work, so they run at idle priority and take the cores in the gaps the
//! network leaves (between operations, in its sequential parts); when they fall behind, the
//! network waits for its input and the cores are theirs.

/// Puts the calling thread at idle priority (Linux `SCHED_IDLE`); elsewhere, or if refused,
/// it keeps its priority (logged at debug level).
pub fn run_when_idle() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 names the calling thread; `param` is a valid sched_param.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            tracing::debug!("idle priority refused: {}", std::io::Error::last_os_error());
        }
    }
}
