//! The batched prediction pipeline: images decoded and prepared, the network, maps made and
//! encoded, files written, the stages overlapped on every core.

use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use scfnet_model::Predictor;

use crate::background::Background;
use crate::cpu_clock;
use crate::error::{Error, Result};
use crate::inputs;
use crate::priority;
use crate::sink::{self, Outcome};

/// What a run writes, and how many images go through the network at once.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions<'a> {
    /// The output folder; each map goes to the input's relative path, extension `.png`.
    pub output: &'a Path,
    /// Images per forward pass (at least 1).
    pub batch: usize,
    /// Also write `NAME_cutout.png`: the image with the map as alpha channel.
    pub cutout: bool,
}

/// Where the time of [`run`] went.
#[derive(Clone, Copy, Debug, Default)]
pub struct Profile {
    /// The network's thread running the network (its busy-waiting helper runs background
    /// steps meanwhile).
    pub computing: Duration,
    /// The network's thread waiting for its next batch to be decoded, running background steps
    /// itself meanwhile.
    pub waiting_for_input: Duration,
    /// CPU time of the whole process over the pipeline, where the platform tells.
    pub cpu: Option<Duration>,
    /// CPU time of the steps that decoded and prepared images (any thread).
    pub decoding_cpu: Duration,
    /// CPU time of the steps that made and encoded maps (any thread).
    pub maps_cpu: Duration,
    /// CPU time of the writing thread (mostly the kernel's).
    pub writing_cpu: Option<Duration>,
}

impl Profile {
    /// The log line of the CPU time, per activity and per image, where the platform tells.
    pub fn cpu_line(&self, images: usize) -> Option<String> {
        let (all, writing) = (self.cpu?, self.writing_cpu?);
        let besides = self.decoding_cpu + self.maps_cpu + writing;
        let rest = all.saturating_sub(besides);
        let per = |d: Duration| {
            format!(
                "{:.2} s ({:.2} ms per image)",
                d.as_secs_f64(),
                1e3 * d.as_secs_f64() / images.max(1) as f64
            )
        };
        Some(format!(
            "CPU time {}: decoding and preparing {}, maps and PNGs {}, writing {}, the network \
             and the rest {}",
            per(all),
            per(self.decoding_cpu),
            per(self.maps_cpu),
            per(writing),
            per(rest)
        ))
    }
}

/// Background workers beside the network: none where the network's busy-waiting helper runs
/// the steps (single images on the CPU: a worker there only adds wake-ups, 3–7 % slower in five
/// paired runs), else one fewer than the cores (at least one). On the CPU they take the gaps the
/// network leaves; with the network on a GPU they do all the decoding and encoding.
fn background_workers(predictor: &Predictor, batch: usize) -> usize {
    if predictor.helper_takes_background(batch) {
        return 0;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// How many images beyond the batch the network runs may be decoded and prepared: the next
/// batch, at least two images. More is memory the process touches for nothing: a batch of
/// several images keeps both cores busy, so the gaps where the steps run ahead are short, and
/// each prepared input is 1.5 MB (3 × 352² values) of fresh pages at the start of a run.
fn decode_ahead(batch: usize) -> usize {
    batch.max(2)
}

/// Runs of fewer images than this are better off with small pages (see [`prefers_small_pages`]): on the
/// project's machine transparent huge pages cost a run 0.25–0.5 s of CPU up front (the system
/// time of 96-image runs, 0.36–0.73 s with them against 0.14–0.23 s without) and then save about
/// 4 % of the CPU time per image at batch 8 (768-image runs: faster with them in 5 of 6 pairs,
/// by 3–7 %), about 0.5 ms an image, so they pay for themselves from some 500–900 images on.
/// Fewer than 600 images: small pages (faster in 7 of 9 pairs of 96-image runs).
const SMALL_PAGES_BELOW: usize = 600;

/// Whether a run of `images` images is faster with transparent huge pages off for the process
/// (fewer than 600 images, measured on the project's machine); a binary turns them off before
/// the run starts.
pub fn prefers_small_pages(images: usize) -> bool {
    images < SMALL_PAGES_BELOW
}

/// Ends the background steps if the network's thread unwinds, so that the scope's threads end.
struct AbandonOnUnwind<'a, 'b>(&'a Background<'b>);

impl Drop for AbandonOnUnwind<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abandon();
        }
    }
}

/// Decodes, predicts and writes `inputs` in batches, the stages overlapped. Decoding and
/// preparing an image, and making and encoding a map, are steps of a shared queue that three
/// kinds of thread run: the network's busy-waiting helper in its idle moments (single images),
/// background workers at idle priority ([`priority::run_when_idle`]; one fewer than the cores,
/// none where the helper runs the steps) in the gaps the network leaves, and this thread while it
/// waits for its next batch. Decoding runs at most one batch ahead. A writing thread writes the PNGs in groups ([`sink::write_outcomes`]), so
/// that nothing waits for the disk, and calls `done(n)` as images finish (for a progress bar).
///
/// `inputs` are `(file, path relative to the input root)` ([`crate::collect_inputs`]). Returns
/// the failures (images that did not decode, maps not finite, files not written), one line each,
/// and where the time went; an error only when the network itself fails (the maps already made
/// are still written).
pub fn run(
    predictor: &Predictor,
    inputs: &[(PathBuf, PathBuf)],
    options: RunOptions,
    done: &(dyn Fn(u64) + Sync),
) -> Result<(Vec<String>, Profile)> {
    let batch_size = options.batch.max(1);
    let (outcomes_tx, outcomes_rx) = channel::<Outcome>();
    let background = Background::new(
        inputs,
        (predictor, batch_size),
        (options.output, options.cutout),
        outcomes_tx.clone(),
    );
    let cpu_at_start = cpu_clock::process_cpu();
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            let failures = sink::write_outcomes(outcomes_rx, done);
            (failures, cpu_clock::thread_cpu())
        });
        for _ in 0..background_workers(predictor, batch_size) {
            s.spawn(|| {
                priority::run_when_idle();
                background.work();
            });
        }
        let _abandon = AbandonOnUnwind(&background);
        let mut network = Ok(());
        let mut time = Profile::default();
        for (k, start) in (0..inputs.len()).step_by(batch_size).enumerate() {
            let end = (start + batch_size).min(inputs.len());
            background.allow(end + decode_ahead(batch_size));
            let waited = Instant::now();
            let (prepared, batch) = background.take(k);
            time.waiting_for_input += waited.elapsed();
            let mut images = Vec::with_capacity(prepared.len());
            for p in prepared {
                match p {
                    Ok(img) => images.push(img),
                    Err(line) => {
                        let _ = outcomes_tx.send(Outcome::Failed(line));
                    }
                }
            }
            if images.is_empty() {
                continue;
            }
            let Some(batch) = batch else {
                network = Err(Error::Internal(format!(
                    "the network input of batch {k} was not ready"
                )));
                break;
            };
            let started = Instant::now();
            let logits = predictor.batch_logits_beside(batch, &|| background.step());
            time.computing += started.elapsed();
            match logits {
                Ok(logits) if logits.len() != images.len() => {
                    network = Err(Error::Internal(format!(
                        "{} maps for {} images in batch {k}",
                        logits.len(),
                        images.len()
                    )));
                    break;
                }
                Ok(logits) => background.push_maps(images, logits),
                Err(e) => {
                    // The maps already computed are still written.
                    network = Err(Error::Predict(e));
                    break;
                }
            }
        }
        background.finish();
        drop(outcomes_tx);
        let (failures, writing_cpu) = writer.join().expect("the writing thread does not panic");
        time.writing_cpu = writing_cpu;
        time.decoding_cpu = background.decoding_cpu.get();
        time.maps_cpu = background.maps_cpu.get();
        time.cpu = cpu_clock::process_cpu()
            .zip(cpu_at_start)
            .map(|(end, start)| end.saturating_sub(start));
        network.map(|()| (failures, time))
    })
}

/// For benchmarks: every image decoded first (untimed), then the network's calls on batches of
/// `batch` images timed (each batch's input prepared in place before its clock starts; every
/// batch counts, the first included, as in [`run`]). Returns the time the network's calls took.
pub fn network_only(
    predictor: &Predictor,
    inputs: &[(PathBuf, PathBuf)],
    batch: usize,
) -> Result<Duration> {
    let images = inputs
        .iter()
        .map(|(path, rel)| inputs::decode(path, rel))
        .collect::<Result<Vec<_>>>()?;
    let mut computing = Duration::ZERO;
    for chunk in images.chunks(batch.max(1)) {
        let mut prepared = predictor.input_batch(chunk.len());
        for (i, img) in chunk.iter().enumerate() {
            prepared
                .fill(i, img.as_rgb())
                .map_err(|e| Error::Internal(format!("{}: {e}", img.path.display())))?;
        }
        let started = Instant::now();
        predictor.batch_logits_beside(prepared, &|| false)?;
        computing += started.elapsed();
    }
    Ok(computing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_line_splits_the_time_per_activity_and_per_image() {
        let ms = Duration::from_millis;
        let profile = Profile {
            cpu: Some(ms(2000)),
            decoding_cpu: ms(100),
            maps_cpu: ms(50),
            writing_cpu: Some(ms(30)),
            ..Profile::default()
        };
        let line = profile.cpu_line(100).expect("all parts known");
        assert!(
            line.starts_with("CPU time 2.00 s (20.00 ms per image)"),
            "{line}"
        );
        assert!(
            line.contains("decoding and preparing 0.10 s (1.00 ms per image)"),
            "{line}"
        );
        assert!(
            line.contains("maps and PNGs 0.05 s (0.50 ms per image)"),
            "{line}"
        );
        assert!(
            line.contains("writing 0.03 s (0.30 ms per image)"),
            "{line}"
        );
        assert!(
            line.contains("the network and the rest 1.82 s (18.20 ms per image)"),
            "{line}"
        );
        // Where the platform does not tell, no line rather than made-up numbers.
        let unknown = Profile {
            cpu: None,
            ..profile
        };
        assert!(unknown.cpu_line(100).is_none());
    }

    #[test]
    fn decoding_runs_one_batch_ahead_and_at_least_two_images() {
        assert_eq!(decode_ahead(1), 2);
        assert_eq!(decode_ahead(8), 8);
    }
}
