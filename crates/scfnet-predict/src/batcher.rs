//! Dynamic batching for a server: images that arrive together run through the network as one
//! batch (up to a size, waiting at most a while for company), and each caller gets its own map
//! back as the same PNG bytes that [`crate::run`] writes for the image.
//!
//! The queue in front of the network is bounded: [`Batcher::submit`] refuses a job at once when
//! it is full (a server answers "busy, retry" instead of piling work up). One thread runs the
//! network; the PNG encoding of a batch's maps runs on rayon's pool.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use scfnet_model::Predictor;

use crate::inputs::Decoded;
use crate::sink::encode_outputs;

/// How batches are formed.
#[derive(Clone, Copy, Debug)]
pub struct BatchOptions {
    /// Most images in one batch (at least 1).
    pub max_batch: usize,
    /// Longest a batch's first image waits for others before the batch runs.
    pub max_wait: Duration,
    /// Most jobs waiting for the network; more are refused ([`Submit::Full`]).
    pub queue: usize,
}

/// The outputs of one image: its map as an 8-bit PNG at the image's size (and the RGBA
/// cutout), byte-identical to what [`crate::run`] writes for the same image.
#[derive(Clone, Debug)]
pub struct Served {
    /// The map (`L8` PNG).
    pub map_png: Vec<u8>,
    /// The cutout (`RGBA8` PNG), when asked for.
    pub cutout_png: Option<Vec<u8>>,
    /// How many images the batch it ran in held.
    pub batch: usize,
}

/// One image to serve and where its answer goes. The answer is `Err` with a reason when the
/// network or the encoder failed for this image.
pub struct Job {
    /// The decoded image.
    pub image: Decoded,
    /// Also encode the cutout.
    pub cutout: bool,
    /// Receives the answer (once).
    pub reply: SyncSender<Result<Served, String>>,
}

/// Why [`Batcher::submit`] did not take a job.
pub enum Submit {
    /// The queue holds [`BatchOptions::queue`] jobs already: try again later.
    Full(Job),
    /// The batcher has stopped.
    Stopped(Job),
}

/// Counts a server reports (shared with the network thread).
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Jobs submitted and not yet taken into a batch.
    pub queued: AtomicUsize,
    /// Batches run.
    pub batches: AtomicUsize,
    /// Images run.
    pub images: AtomicUsize,
}

/// The network thread and the bounded queue in front of it.
pub struct Batcher {
    sender: Option<SyncSender<Job>>,
    stats: Arc<BatchStats>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Submit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Submit::Full(_) => "the queue is full",
            Submit::Stopped(_) => "the batcher has stopped",
        })
    }
}

impl Batcher {
    /// Starts the network thread for `predictor`; `on_batch(n)` is called after every batch of
    /// `n` images has been through the network and before any of its answers is sent, so that a
    /// client holding its answer sees its batch counted (a server's histogram of batch sizes).
    pub fn start(
        predictor: Predictor,
        options: BatchOptions,
        on_batch: impl Fn(usize) + Send + 'static,
    ) -> Self {
        let (sender, jobs) = mpsc::sync_channel(options.queue.max(1));
        let stats = Arc::new(BatchStats::default());
        let worker_stats = Arc::clone(&stats);
        let worker = std::thread::Builder::new()
            .name("scfnet-batcher".into())
            .spawn(move || work(predictor, options, jobs, &worker_stats, on_batch))
            .expect("spawning the network thread");
        Self {
            sender: Some(sender),
            stats,
            worker: Some(worker),
        }
    }

    /// Queues `job`, or gives it back at once when the queue is full or the batcher stopped.
    pub fn submit(&self, job: Job) -> Result<(), Submit> {
        let Some(sender) = &self.sender else {
            return Err(Submit::Stopped(job));
        };
        self.stats.queued.fetch_add(1, Ordering::SeqCst);
        sender.try_send(job).map_err(|e| {
            self.stats.queued.fetch_sub(1, Ordering::SeqCst);
            match e {
                TrySendError::Full(job) => Submit::Full(job),
                TrySendError::Disconnected(job) => Submit::Stopped(job),
            }
        })
    }

    /// The counts so far.
    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }

    /// Stops taking jobs, finishes the ones queued, and waits for the network thread.
    pub fn shutdown(&mut self) {
        self.sender = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The next batch: the first job (blocking), then more until `max_batch` or until the first
/// has waited `max_wait`. `None` when every sender is gone and nothing is queued.
fn next_batch(jobs: &Receiver<Job>, options: &BatchOptions) -> Option<Vec<Job>> {
    let first = jobs.recv().ok()?;
    let deadline = Instant::now() + options.max_wait;
    let mut batch = vec![first];
    while batch.len() < options.max_batch.max(1) {
        // Whatever is already queued joins without waiting.
        match jobs.try_recv() {
            Ok(job) => {
                batch.push(job);
                continue;
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match jobs.recv_timeout(left) {
            Ok(job) => batch.push(job),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    Some(batch)
}

fn work(
    predictor: Predictor,
    options: BatchOptions,
    jobs: Receiver<Job>,
    stats: &BatchStats,
    on_batch: impl Fn(usize),
) {
    while let Some(batch) = next_batch(&jobs, &options) {
        stats.queued.fetch_sub(batch.len(), Ordering::SeqCst);
        let n = batch.len();
        let images: Vec<_> = batch.iter().map(|j| j.image.as_rgb()).collect();
        let maps = predictor.maps(&images);
        drop(images);
        // Counted before any answer leaves: a client that has its map may read the counts next.
        stats.batches.fetch_add(1, Ordering::SeqCst);
        stats.images.fetch_add(n, Ordering::SeqCst);
        on_batch(n);
        match maps {
            Ok(maps) => {
                batch
                    .into_par_iter()
                    .zip(maps)
                    .for_each(|(job, map)| answer(job, map, n));
            }
            Err(e) => {
                let reason = format!("the network failed: {e}");
                for job in batch {
                    let _ = job.reply.send(Err(reason.clone()));
                }
            }
        }
    }
}

/// Encodes one job's map (as `run` does) and sends it back.
fn answer(job: Job, map: Vec<u8>, batch: usize) {
    let result = encode_outputs(&job.image, map, Path::new(""), job.cutout)
        .map_err(|e| format!("encoding the map failed: {e}"))
        .map(|files| {
            // `encode_outputs` puts the cutout first, the map last.
            let mut bytes: Vec<Vec<u8>> = files.into_iter().map(|(_, b)| b).collect();
            let map_png = bytes.pop().unwrap_or_default();
            Served {
                map_png,
                cutout_png: bytes.pop(),
                batch,
            }
        });
    let _ = job.reply.send(result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use scfnet_model::{InputSide, ModelKind, Scfnet};

    fn predictor() -> Predictor {
        let dev = Device::Cpu;
        let vb = scfnet_backbones::synthetic_var_builder(DType::F32, &dev).0;
        Predictor::new(
            Scfnet::new(ModelKind::Student, vb).unwrap(),
            InputSide::new(64).unwrap(),
            &dev,
            DType::F32,
        )
        .unwrap()
    }

    fn image(seed: u8, w: usize, h: usize) -> Decoded {
        let rgb = (0..w * h * 3)
            .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
            .collect();
        Decoded {
            path: format!("img{seed}.png").into(),
            relative: format!("img{seed}.png").into(),
            width: w,
            height: h,
            rgb,
        }
    }

    #[test]
    fn jobs_that_arrive_together_share_a_batch_and_get_their_own_maps() {
        let p = predictor();
        let sizes = [(40, 30), (33, 50), (64, 64), (20, 70)];
        // The maps and PNGs one at a time, as `run` makes them.
        let expected: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &(w, h))| {
                let img = image(i as u8 + 1, w, h);
                let map = p.map(img.as_rgb()).unwrap();
                encode_outputs(&img, map, Path::new(""), false).unwrap()[0]
                    .1
                    .clone()
            })
            .collect();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen_in = Arc::clone(&seen);
        let mut b = Batcher::start(
            p,
            BatchOptions {
                max_batch: 8,
                max_wait: Duration::from_millis(500),
                queue: 8,
            },
            move |n| seen_in.lock().unwrap().push(n),
        );
        let replies: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &(w, h))| {
                let (tx, rx) = mpsc::sync_channel(1);
                b.submit(Job {
                    image: image(i as u8 + 1, w, h),
                    cutout: i == 2,
                    reply: tx,
                })
                .map_err(|_| "refused")
                .unwrap();
                rx
            })
            .collect();
        for (i, rx) in replies.into_iter().enumerate() {
            let served = rx.recv().unwrap().unwrap();
            assert_eq!(served.map_png, expected[i], "image {i}");
            assert_eq!(served.cutout_png.is_some(), i == 2);
            assert!(served.batch > 1, "image {i} ran alone");
        }
        b.shutdown();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.iter().sum::<usize>(), 4);
        assert!(seen.len() < 4, "batches {seen:?}");
    }

    #[test]
    fn a_batch_is_counted_before_its_answers_leave() {
        // A slow counter: were it called after the answers, the client would see nothing counted.
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen_in = Arc::clone(&seen);
        let mut b = Batcher::start(
            predictor(),
            BatchOptions {
                max_batch: 1,
                max_wait: Duration::ZERO,
                queue: 1,
            },
            move |n| {
                std::thread::sleep(Duration::from_millis(200));
                seen_in.lock().unwrap().push(n);
            },
        );
        let (tx, rx) = mpsc::sync_channel(1);
        b.submit(Job {
            image: image(1, 32, 24),
            cutout: false,
            reply: tx,
        })
        .map_err(|_| "refused")
        .unwrap();
        rx.recv().unwrap().unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![1]);
        assert_eq!(b.stats().batches.load(Ordering::SeqCst), 1);
        assert_eq!(b.stats().images.load(Ordering::SeqCst), 1);
        b.shutdown();
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        // A batch of one that waits long holds the network; the queue of one fills behind it.
        let b = Batcher::start(
            predictor(),
            BatchOptions {
                max_batch: 1,
                max_wait: Duration::ZERO,
                queue: 1,
            },
            |_| {},
        );
        let mut refused = 0;
        let mut replies = Vec::new();
        for i in 0..32 {
            let (tx, rx) = mpsc::sync_channel(1);
            match b.submit(Job {
                image: image(i + 1, 256, 256),
                cutout: false,
                reply: tx,
            }) {
                Ok(()) => replies.push(rx),
                Err(Submit::Full(_)) => refused += 1,
                Err(Submit::Stopped(_)) => panic!("stopped"),
            }
        }
        assert!(refused > 0, "32 jobs in a row all fitted a queue of one");
        for rx in replies {
            rx.recv().unwrap().unwrap();
        }
    }
}
