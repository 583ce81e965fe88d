//! `cargo xtask bench-serve`: `scfnet serve` on loopback under 1, 8 and 32 concurrent clients
//! (throughput, p50 and p99 latency) beside `scfnet predict` on the same images at the same batch
//! size, in the same run; then the server's memory over many requests. Bounded in requests and
//! in time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench_predict::{median, predict_rate, scfnet_binary, write_jpegs, JpegSet};

/// Arguments of `bench-serve`.
#[derive(clap::Args)]
pub struct Args {
    /// The JPEGs the clients send (in turn).
    #[command(flatten)]
    jpegs: JpegSet,
    /// Network (student or r50).
    #[arg(long, default_value = "student")]
    model: String,
    /// Batch size: the server's `--max-batch` and `scfnet predict --batch`.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Concurrent clients, one measurement each.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8, 32])]
    clients: Vec<usize>,
    /// Requests per measurement.
    #[arg(long, default_value_t = 192)]
    requests: usize,
    /// Most seconds one measurement may take (it stops early and says so).
    #[arg(long, default_value_t = 120)]
    max_seconds: u64,
    /// Requests of the memory check (0: skip it); the server's resident memory is read after a
    /// tenth of them and after all.
    #[arg(long, default_value_t = 10_000)]
    memory_requests: usize,
    /// The `scfnet` binary (default: this checkout's release binary, built first).
    #[arg(long)]
    scfnet: Option<PathBuf>,
}

/// A running `scfnet serve`, stopped when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(scfnet: &Path, model: &str, batch: usize) -> Result<Self> {
        let mut child = Command::new(scfnet)
            .args(["serve", "--random-weights", "--model", model, "--port", "0"])
            .args(["--max-batch", &batch.to_string(), "--queue", "1024"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} serve", scfnet.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("the server's stdout")?).read_line(&mut line)?;
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| format!("the server's first line: {line:?}"))?
            .to_owned();
        Ok(Self { child, base })
    }

    /// Resident memory in KiB (Linux).
    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one measurement saw.
struct Measured {
    requests: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
    stopped_early: bool,
}

/// `requests` POSTs of the images in turn from `clients` threads, at most `limit` long.
fn measure(
    url: &str,
    images: &[Vec<u8>],
    clients: usize,
    requests: usize,
    limit: Duration,
) -> Result<Measured> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let per_client: Vec<Result<Vec<f64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| -> Result<Vec<f64>> {
                    let mut lat = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= requests || started.elapsed() > limit {
                            return Ok(lat);
                        }
                        let t = Instant::now();
                        let mut r = agent
                            .post(url)
                            .send(&images[i % images.len()][..])
                            .with_context(|| format!("request {i}"))?;
                        r.body_mut().read_to_vec()?;
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("a client thread panicked"))
            })
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies_ms = Vec::new();
    for l in per_client {
        latencies_ms.extend(l?);
    }
    Ok(Measured {
        requests: latencies_ms.len(),
        seconds,
        stopped_early: latencies_ms.len() < requests,
        latencies_ms,
    })
}

/// The `q` quantile (0–1) of `values`, nearest rank.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    let scfnet = scfnet_binary(args.scfnet.as_deref())?;
    let root = crate::repo_root().join("target/bench-serve");
    let (input, maps) = (root.join("jpegs"), root.join("maps"));
    let _ = std::fs::remove_dir_all(&root);
    write_jpegs(
        &input,
        args.jpegs.count,
        (args.jpegs.width, args.jpegs.height),
        "420",
    )?;
    let images = (0..args.jpegs.count)
        .map(|i| Ok(std::fs::read(input.join(format!("{i:04}.jpg")))?))
        .collect::<Result<Vec<_>>>()?;
    let limit = Duration::from_secs(args.max_seconds);

    println!(
        "{} JPEGs of {}x{}, {}, batch {}; each row: {} requests (at most {} s) from that many \
         clients, then scfnet predict on the folder at the same batch\n",
        args.jpegs.count,
        args.jpegs.width,
        args.jpegs.height,
        args.model,
        args.batch,
        args.requests,
        args.max_seconds
    );
    println!(
        "| clients | serve (img/s) | p50 (ms) | p99 (ms) | predict (img/s) | serve / predict |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let server = Server::start(&scfnet, &args.model, args.batch)?;
    let url = format!("{}/v1/saliency", server.base);
    // One request first: the process's first pass is not part of any row.
    measure(&url, &images, 1, 1, limit)?;
    let mut ratios = Vec::new();
    for (round, &clients) in args.clients.iter().enumerate() {
        let mut m = measure(&url, &images, clients.max(1), args.requests, limit)?;
        let rate = m.requests as f64 / m.seconds;
        let out = maps.join(format!("round{round}"));
        let predict = predict_rate(&scfnet, &args.model, &input, &out, args.batch)?;
        ratios.push(rate / predict);
        println!(
            "| {clients} | {rate:.1}{} | {:.1} | {:.1} | {predict:.1} | {:.0} % |",
            if m.stopped_early {
                " (stopped early)"
            } else {
                ""
            },
            quantile(&mut m.latencies_ms, 0.5),
            quantile(&mut m.latencies_ms, 0.99),
            100.0 * rate / predict
        );
    }
    println!(
        "\nmedian serve / predict over the rows: {:.0} %",
        100.0 * median(&mut ratios)
    );
    if args.memory_requests > 0 {
        let tenth = (args.memory_requests / 10).max(1);
        let clients = 8;
        measure(&url, &images, clients, tenth, Duration::from_secs(3600))?;
        let early = server.rss_kib();
        let m = measure(
            &url,
            &images,
            clients,
            args.memory_requests - tenth,
            Duration::from_secs(3600),
        )?;
        let late = server.rss_kib();
        match (early, late) {
            (Some(a), Some(b)) => println!(
                "\nmemory: resident {:.1} MiB after {tenth} requests, {:.1} MiB after {} ({:+.1} %)",
                a as f64 / 1024.0,
                b as f64 / 1024.0,
                tenth + m.requests,
                100.0 * (b as f64 - a as f64) / a as f64
            ),
            _ => println!("\nmemory: not readable on this system (/proc)"),
        }
    }
    let _ = std::fs::remove_dir_all(&maps);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.5), 50.0);
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut [3.0], 0.99), 3.0);
        assert!(quantile(&mut [], 0.5).is_nan());
    }
}
