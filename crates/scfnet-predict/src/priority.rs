//! Idle priority for the pipeline's background workers.
//!
//! The network runs as fork-join loops on all cores: when another thread takes a core in the
//! middle of one, the whole loop waits for the worker it displaced. Decoding and encoding are a
//! small share of the work, so the workers that run them beside the network run at idle
//! priority and take the cores in the gaps the network leaves; when they fall behind, the
//! network's thread waits for its input, runs steps itself, and the cores are theirs.

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
