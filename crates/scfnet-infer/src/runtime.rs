//! Process-wide settings of the CPU runtime that binaries fix once, first thing in `main`.
//!
//! - `RAYON_NUM_THREADS`: candle reads it before every matrix product and, when it is unset,
//!   queries the CPU topology each time (a few percent of an inference).
//! - `CANDLE_BARRIER_POOL_SPIN_LIMIT`: candle 0.11's own worker pool spins 25,000 times before it
//!   parks, waiting for the next operation. Between two candle operations the ops of this crate
//!   run on rayon's threads, so the spinning worker takes a core away from them; on 2 cores the
//!   student's forward at batch 1 went from 23–29 to 30–37 images/s with a limit of 1,000
//!   (`cargo xtask bench-models`, alternating runs).

/// Spins of candle's idle pool workers before they park, when the environment does not say.
pub const SPIN_LIMIT: u32 = 1_000;

/// Sets `RAYON_NUM_THREADS` (to `threads`, else to what is already set, else to candle's
/// default) and, unless already set, `CANDLE_BARRIER_POOL_SPIN_LIMIT` to [`SPIN_LIMIT`].
///
/// Call it first thing in a binary's `main`, before any other thread exists: it changes the
/// process environment. Libraries never call it.
pub fn configure(threads: Option<usize>) {
    let n = threads.unwrap_or_else(candle_core::utils::get_num_threads);
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", SPIN_LIMIT.to_string());
    }
}
