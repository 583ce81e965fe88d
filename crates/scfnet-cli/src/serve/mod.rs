//! `scfnet serve`: saliency maps over HTTP. Requests that arrive together run through the
//! network as one batch (`scfnet_predict::batcher`); the map of an image is the same PNG that
//! `scfnet predict` writes for it.
//!
//! - `POST /v1/saliency` (the image as the body, or the first file of a multipart form):
//!   the 8-bit PNG map at the image's size; `?cutout=true`: the RGBA cutout instead.
//! - `GET /healthz`, `GET /v1/model`, `GET /metrics` (Prometheus text), `GET /` (a web page).
//!
//! Under pressure: a full queue answers 503 with `Retry-After`; a body over `--max-body` is
//! refused with 413 before it is read whole; an image the checks of `predict` refuse gets 400
//! (413 over the pixel limit) with the reason; a request that takes longer than `--timeout-s`
//! gets 408, and a client that has not sent its headers within it is disconnected; SIGTERM or Ctrl-C finishes the requests in flight, then exits 0.

mod listen;
mod metrics;
mod routes;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use candle_core::DType;
use clap::Args;
use scfnet_model::{InputSide, Predictor, Scfnet};
use scfnet_predict::{BatchOptions, Batcher};

use crate::device::{device, DeviceArg};
use crate::weights::{self, WeightsArgs};
use metrics::Metrics;

/// `scfnet serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// Network input side, a multiple of 32 (default: what the weights say, else the network's).
    #[arg(long)]
    pub size: Option<InputSide>,
    /// Where to run the network.
    #[arg(long, default_value = "cpu", value_parser = DeviceArg::parse)]
    pub device: DeviceArg,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port (0: any free port; the address is printed on the first line of stdout).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Most images in one batch through the network.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub max_batch: u64,
    /// Longest an image waits for others to share its batch, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Largest request body in bytes (413 above it).
    #[arg(long, default_value_t = 32 << 20)]
    pub max_body: usize,
    /// Most images waiting for the network; more are answered 503 with Retry-After.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub queue: u64,
    /// Longest a request may take, reading its body included (408 after it); a connection that
    /// sends no whole request head within it (an idle keep-alive one included) is closed.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_s: u64,
}

/// What `GET /v1/model` says.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelInfo {
    /// Network name.
    pub network: String,
    /// Network input side.
    pub input_size: usize,
    /// SHA-256 of the weights file read (a folder's `model.safetensors`, a hub's cached file);
    /// `None` for synthetic weights.
    pub weights_sha256: Option<String>,
    /// Where the weights came from.
    pub weights: String,
    /// Most images per batch.
    pub max_batch: usize,
}

/// The server's shared state.
pub struct App {
    batcher: Batcher,
    metrics: Arc<Metrics>,
    model: ModelInfo,
    timeout: Duration,
}

/// Waits for Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("stopping: finishing the requests in flight");
}

/// Runs `scfnet serve` until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let dev = device(args.device)?;
    crate::precision::apply(&dev, None)?;
    let chosen = weights::choose(&args.weights, &dev)?;
    let model = chosen.model;
    let size = args.size.or(chosen.size).unwrap_or(model.default_size());
    let mut predictor = Predictor::new(
        Scfnet::new(model, chosen.vb).context("building the network")?,
        size,
        &dev,
        DType::F32,
    )?;
    // Other threads decode and encode while the network runs: no busy-waiting helper.
    predictor.set_busy_helper(false);
    let weights_sha256 = match &chosen.file {
        Some(f) => Some(
            scfnet_base::read::sha256_hex(f).with_context(|| format!("reading {}", f.display()))?,
        ),
        None => None,
    };
    let info = ModelInfo {
        network: model.to_string(),
        input_size: size.get(),
        weights_sha256,
        weights: chosen.label.clone(),
        max_batch: args.max_batch as usize,
    };
    let metrics = Arc::new(Metrics::default());
    let batch_metrics = Arc::clone(&metrics);
    let batcher = Batcher::start(
        predictor,
        BatchOptions {
            max_batch: args.max_batch as usize,
            max_wait: Duration::from_millis(args.max_wait_ms),
            queue: args.queue as usize,
        },
        move |n| batch_metrics.batch(n),
    );
    let app = Arc::new(App {
        batcher,
        metrics,
        model: info,
        timeout: Duration::from_secs(args.timeout_s),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let addr = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let bound = listener.local_addr()?;
        println!("listening on http://{bound}");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        tracing::info!(
            "serving {} at {size}x{size} on http://{bound} (batches of up to {}, queue {})",
            app.model.network,
            args.max_batch,
            args.queue
        );
        let router = routes::router(Arc::clone(&app), args.max_body);
        listen::serve(listener, router, app.timeout, shutdown_signal()).await;
        anyhow::Ok(())
    })?;
    drop(runtime);
    // The last requests are answered; the network thread finishes and stops.
    if let Ok(mut app) = Arc::try_unwrap(app) {
        app.batcher.shutdown();
    }
    Ok(ExitCode::SUCCESS)
}
