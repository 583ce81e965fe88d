//! A second worker kept awake while one thread runs a long chain of small parallel loops (the
//! layers of one image): each loop's pieces are taken up at once instead of waking a sleeping
//! worker through the kernel. ONNX Runtime's thread pool spins the same way between operators.

use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `f` on the calling rayon worker while another worker of the same pool busy-waits,
/// executing any pieces of `f`'s parallel loops it can take (`rayon::yield_now`), until `f`
/// returns. Outside a rayon pool, or in a pool of one thread, it only runs `f`.
///
/// The helper burns its core while `f` runs: use it for work that keeps every core busy anyway
/// (batch-1 inference), not around code that waits; or give it other work for its idle moments
/// ([`with_busy_helper_and`]).
pub fn with_busy_helper<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    with_busy_helper_and(f, &|| false)
}

/// [`with_busy_helper`], with `idle` called by the helper whenever it finds no piece of `f`'s
/// loops to run: `idle` does one short piece of other work (a millisecond or so) and returns
/// whether there was any. Meanwhile `f`'s loops run on the other workers, so the helper's spare
/// time goes to `idle`'s work instead of spinning. `idle` must not use the pool, nor block.
pub fn with_busy_helper_and<R: Send>(
    f: impl FnOnce() -> R + Send,
    idle: &(dyn Fn() -> bool + Sync),
) -> R {
    let Some(caller) = rayon::current_thread_index() else {
        return f();
    };
    if rayon::current_num_threads() < 2 {
        return f();
    }
    let done = AtomicBool::new(false);
    let (out, ()) = rayon::join(
        || {
            // Set even if `f` panics, so that the helper stops and the panic propagates.
            let _finished = Finished(&done);
            f()
        },
        || {
            // The caller itself may pick this half up while it waits inside `f` (when no other
            // worker has taken it yet): spinning there would wait for itself.
            if rayon::current_thread_index() == Some(caller) {
                return;
            }
            while !done.load(Ordering::Acquire) {
                if rayon::yield_now() != Some(rayon::Yield::Executed) && !idle() {
                    std::hint::spin_loop();
                }
            }
        },
    );
    out
}

/// Sets its flag when dropped.
struct Finished<'a>(&'a AtomicBool);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn runs_the_work_and_returns_with_every_pool_size() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let sum: u64 = pool.install(|| {
                with_busy_helper(|| {
                    (0..200u64)
                        .map(|i| (0..1000u64).into_par_iter().map(|j| i ^ j).sum::<u64>())
                        .sum()
                })
            });
            let want: u64 = (0..200u64)
                .map(|i| (0..1000u64).map(|j| i ^ j).sum::<u64>())
                .sum();
            assert_eq!(sum, want, "{threads} threads");
            // Outside the pool it just runs the closure.
            assert_eq!(with_busy_helper(|| 7), 7);
        }
    }

    #[test]
    fn the_helper_runs_the_idle_work_while_the_work_runs() {
        use std::sync::atomic::AtomicUsize;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let (pieces, started) = (AtomicUsize::new(0), AtomicBool::new(false));
        let idle = || {
            started.store(true, Ordering::Release);
            pieces.fetch_add(1, Ordering::Relaxed) < 3
        };
        // The work waits (a bounded while) until the helper has called `idle`.
        let saw_helper = pool.install(|| {
            with_busy_helper_and(
                || {
                    let t = std::time::Instant::now();
                    while !started.load(Ordering::Acquire) {
                        if t.elapsed() > std::time::Duration::from_secs(10) {
                            return false;
                        }
                        std::hint::spin_loop();
                    }
                    true
                },
                &idle,
            )
        });
        assert!(saw_helper, "the helper never ran the idle work");
        assert!(pieces.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller_and_stops_the_helper() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let result = pool.install(|| {
            std::panic::catch_unwind(|| with_busy_helper(|| -> u32 { panic!("inside") }))
        });
        assert!(result.is_err());
        // The pool still works afterwards (the helper returned).
        assert_eq!(pool.install(|| with_busy_helper(|| 5)), 5);
    }
}
