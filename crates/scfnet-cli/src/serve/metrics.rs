//! The server's counters in the Prometheus text format: requests by status, request latency and
//! batch sizes as histograms, and the queue's depth.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the batch-size buckets.
const BATCH_BOUNDS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// A cumulative histogram with fixed bounds.
#[derive(Clone, Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[derive(Debug)]
struct Counts {
    by_status: BTreeMap<u16, u64>,
    latency: Histogram,
    batches: Histogram,
}

/// The server's metrics (shared by every request and the network thread).
#[derive(Debug)]
pub struct Metrics(Mutex<Counts>);

impl Default for Metrics {
    fn default() -> Self {
        Self(Mutex::new(Counts {
            by_status: BTreeMap::new(),
            latency: Histogram::new(&LATENCY_BOUNDS),
            batches: Histogram::new(&BATCH_BOUNDS),
        }))
    }
}

impl Metrics {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One answered request.
    pub fn request(&self, status: u16, took: Duration) {
        let mut c = self.counts();
        *c.by_status.entry(status).or_default() += 1;
        c.latency.observe(took.as_secs_f64());
    }

    /// One batch of `n` images through the network.
    pub fn batch(&self, n: usize) {
        self.counts().batches.observe(n as f64);
    }

    /// The Prometheus text, with the queue's depth now.
    pub fn render(&self, queue_depth: usize) -> String {
        let c = self.counts();
        let mut out = String::new();
        out.push_str("# HELP scfnet_requests_total Answered HTTP requests by status.\n# TYPE scfnet_requests_total counter\n");
        for (status, n) in &c.by_status {
            let _ = writeln!(out, "scfnet_requests_total{{status=\"{status}\"}} {n}");
        }
        c.latency.render(
            "scfnet_request_seconds",
            "Time from a request's arrival to its answer.",
            &mut out,
        );
        c.batches.render(
            "scfnet_batch_size",
            "Images per batch through the network.",
            &mut out,
        );
        let _ = writeln!(
            out,
            "# HELP scfnet_queue_depth Images waiting for the network.\n# TYPE scfnet_queue_depth gauge\nscfnet_queue_depth {queue_depth}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_has_every_family_with_cumulative_buckets() {
        let m = Metrics::default();
        m.request(200, Duration::from_millis(20));
        m.request(200, Duration::from_millis(200));
        m.request(503, Duration::from_millis(1));
        m.batch(3);
        let t = m.render(5);
        assert!(t.contains("scfnet_requests_total{status=\"200\"} 2"), "{t}");
        assert!(t.contains("scfnet_requests_total{status=\"503\"} 1"), "{t}");
        assert!(
            t.contains("scfnet_request_seconds_bucket{le=\"0.005\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("scfnet_request_seconds_bucket{le=\"0.025\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("scfnet_request_seconds_bucket{le=\"+Inf\"} 3"),
            "{t}"
        );
        assert!(t.contains("scfnet_batch_size_bucket{le=\"2\"} 0"), "{t}");
        assert!(t.contains("scfnet_batch_size_bucket{le=\"4\"} 1"), "{t}");
        assert!(t.contains("scfnet_queue_depth 5"), "{t}");
    }
}
