//! CPU time of the calling thread and of the process, for the profile `scfnet predict` logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// CPU time the calling thread has used so far (user and system), where the platform tells
/// (Linux); `None` elsewhere.
pub fn thread_cpu() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    return clock(libc::CLOCK_THREAD_CPUTIME_ID);
    #[cfg(not(target_os = "linux"))]
    None
}

/// CPU time the whole process has used so far (all threads, user and system), where the
/// platform tells (Linux); `None` elsewhere.
pub fn process_cpu() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    return clock(libc::CLOCK_PROCESS_CPUTIME_ID);
    #[cfg(not(target_os = "linux"))]
    None
}

/// The time of clock `id` (`clock_gettime`), or `None` if the call fails.
#[cfg(target_os = "linux")]
fn clock(id: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// CPU time summed over the threads that add to it (nanoseconds, atomically).
#[derive(Default)]
pub struct CpuTotal(AtomicU64);

impl CpuTotal {
    /// Runs `f`, adding the calling thread's CPU time over it.
    pub fn time<R>(&self, f: impl FnOnce() -> R) -> R {
        let start = thread_cpu();
        let out = f();
        if let (Some(start), Some(end)) = (start, thread_cpu()) {
            self.add(end.saturating_sub(start));
        }
        out
    }

    /// Adds `d`.
    pub fn add(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The total so far.
    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_loop_adds_cpu_time() {
        let total = CpuTotal::default();
        let spun = total.time(|| {
            let started = std::time::Instant::now();
            let mut x = 0u64;
            while started.elapsed() < Duration::from_millis(30) {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            x
        });
        std::hint::black_box(spun);
        if thread_cpu().is_some() {
            // Not more than the wall time; at least a part of it even on a loaded machine.
            let t = total.get();
            assert!(t > Duration::from_millis(3), "{t:?}");
            assert!(t < Duration::from_secs(5), "{t:?}");
        } else {
            assert_eq!(total.get(), Duration::ZERO);
        }
    }
}
