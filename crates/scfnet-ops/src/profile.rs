//! Where a GPU step's time goes, op by op: while recording is on (this thread), each native
//! CUDA kernel launch of this crate (and the convolutions' forward matrix products) is timed
//! between two device synchronisations and added to its op's total. The synchronisations make
//! the step slower, so a profile says how the time divides, not how long a step takes;
//! everything not listed (candle's own kernels: matrix products of the backward, element-wise
//! ops, copies, the optimiser) is the step's time minus the listed sum. On the CPU nothing is
//! recorded.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::Result;

thread_local! {
    static RECORD: RefCell<Option<BTreeMap<&'static str, (f64, usize)>>> = const { RefCell::new(None) };
}

/// One op's share of a profile.
#[derive(Clone, Debug, PartialEq)]
pub struct OpTime {
    /// The op and pass, e.g. `depthwise grad-weight`.
    pub op: &'static str,
    /// Seconds summed over its calls.
    pub seconds: f64,
    /// Number of calls.
    pub calls: usize,
}

/// Starts recording on this thread (an earlier recording is dropped).
pub fn start() {
    RECORD.with(|r| *r.borrow_mut() = Some(BTreeMap::new()));
}

/// Stops recording and returns the ops, the slowest first.
pub fn finish() -> Vec<OpTime> {
    let map = RECORD.with(|r| r.borrow_mut().take()).unwrap_or_default();
    let mut ops: Vec<OpTime> = map
        .into_iter()
        .map(|(op, (seconds, calls))| OpTime { op, seconds, calls })
        .collect();
    ops.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    ops
}

fn recording() -> bool {
    RECORD.with(|r| r.borrow().is_some())
}

/// Runs `f`; while recording, between two calls of `sync`, adding the time to `op`.
pub(crate) fn timed<R>(
    op: &'static str,
    sync: impl Fn() -> Result<()>,
    f: impl FnOnce() -> Result<R>,
) -> Result<R> {
    if !recording() {
        return f();
    }
    sync()?;
    let t = Instant::now();
    let out = f()?;
    sync()?;
    let secs = t.elapsed().as_secs_f64();
    RECORD.with(|r| {
        if let Some(map) = r.borrow_mut().as_mut() {
            let e = map.entry(op).or_insert((0.0, 0));
            e.0 += secs;
            e.1 += 1;
        }
    });
    Ok(out)
}

/// [`timed`] for work on a GPU tensor's device (nothing is recorded on the CPU).
pub(crate) fn timed_on<R>(
    op: &'static str,
    device: &candle_core::Device,
    f: impl FnOnce() -> Result<R>,
) -> Result<R> {
    if device.is_cpu() {
        return f();
    }
    timed(op, || device.synchronize(), f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_while_started_and_sorts_by_time() {
        timed("before", || Ok(()), || Ok(())).unwrap();
        start();
        let sleep = |ms| {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok(())
        };
        // "short" does nothing and "long" sleeps 200 ms: the order holds on a loaded machine
        // (two sleeps of 1 ms against one of 5 ms did not: a sleep may oversleep by several ms).
        timed("short", || Ok(()), || Ok(())).unwrap();
        timed("long", || Ok(()), || sleep(200)).unwrap();
        timed("short", || Ok(()), || Ok(())).unwrap();
        let ops = finish();
        assert_eq!(
            ops.iter().map(|o| o.op).collect::<Vec<_>>(),
            ["long", "short"]
        );
        assert_eq!(ops[1].calls, 2);
        assert!(ops[0].seconds >= 0.2);
        assert!(finish().is_empty(), "finish stops the recording");
        timed("after", || Ok(()), || Ok(())).unwrap();
        assert!(finish().is_empty());
    }
}
