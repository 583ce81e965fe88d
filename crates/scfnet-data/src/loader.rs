//! A seeded, reproducible batch loader with worker threads and prefetch (spec §3.2–3.3).
//!
//! Epoch `e` visits the samples in a permutation drawn from `(seed, e)`; batch `b` of it is resized
//! to one side drawn from `(seed, e, b)`, and each sample is augmented with a stream drawn from
//! `(seed, e, position)`. Nothing depends on thread timing, so any number of workers gives the same
//! batches, and a run resumed at batch `b` sees exactly what an uninterrupted run would.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};

use crate::augment::Augment;
use crate::error::{DataError, Result};
use crate::image_ops::{read_mask, read_rgb, resize_bilinear_chw_into, Planar};
use crate::layout::{Sample, SodDataset};
use crate::recycle::BatchBuffers;
use crate::rng::Rng;

/// The batch-level input sides of the original (`224, 256, 288, 320, 352`).
pub const PAPER_SIZES: [usize; 5] = [224, 256, 288, 320, 352];

const TAG_SHUFFLE: u64 = 0x5348_5546;
const TAG_SIZE: u64 = 0x5349_5a45;
const TAG_SAMPLE: u64 = 0x5341_4d50;

/// What to do with a sample that fails to load during training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Leave it out of its batch, count and report it.
    Skip,
    /// Stop with an error naming the file.
    Fail,
}

/// Settings of a [`Loader`].
#[derive(Clone, Debug)]
pub struct LoaderConfig {
    /// Samples per batch.
    pub batch: usize,
    /// Input sides; each batch draws one uniformly.
    pub sizes: Vec<usize>,
    /// Shuffle the samples every epoch.
    pub shuffle: bool,
    /// Drop a last, incomplete batch (the original keeps it).
    pub drop_last: bool,
    /// Seed of every random draw.
    pub seed: u64,
    /// Worker threads decoding and augmenting.
    pub workers: usize,
    /// Batches each worker may prepare ahead.
    pub prefetch: usize,
    /// Augmentation chain.
    pub augment: Augment,
    /// Failing samples: skip or stop.
    pub on_error: OnError,
}

impl LoaderConfig {
    /// The original recipe: batch 128, sides 224…352, shuffled, last batch kept, full augmentation.
    pub fn paper(seed: u64) -> Self {
        Self {
            batch: 128,
            sizes: PAPER_SIZES.to_vec(),
            shuffle: true,
            drop_last: false,
            seed,
            workers: 2,
            prefetch: 2,
            augment: Augment::paper(),
            on_error: OnError::Skip,
        }
    }
}

/// One batch, ready for the network.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Index of the batch in its epoch.
    pub index: usize,
    /// Input side `S` of this batch.
    pub size: usize,
    /// Stems of the samples, in batch order.
    pub stems: Vec<String>,
    /// Normalised images, `(B, 3, S, S)` row-major.
    pub images: Vec<f32>,
    /// Masks in `[0, 1]`, `(B, 1, S, S)`; `None` for unlabeled data.
    pub masks: Option<Vec<f32>>,
    /// Samples left out of this batch because they failed to load (one message each).
    pub skipped: Vec<String>,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.stems.len()
    }

    /// True when every sample of the batch failed.
    pub fn is_empty(&self) -> bool {
        self.stems.is_empty()
    }

    /// The images as a `(B, 3, S, S)` tensor on `device`.
    pub fn images_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_slice(
            &self.images,
            (self.len(), 3, self.size, self.size),
            device,
        )?)
    }

    /// The masks as a `(B, 1, S, S)` tensor on `device`, if labeled.
    pub fn masks_tensor(&self, device: &Device) -> Result<Option<Tensor>> {
        self.masks
            .as_ref()
            .map(|m| Tensor::from_slice(m, (self.len(), 1, self.size, self.size), device))
            .transpose()
            .map_err(Into::into)
    }
}

/// Decodes one sample (mask required when the sample has one) and checks that sizes agree.
fn load_sample(sample: &Sample) -> Result<(Planar, Option<Planar>)> {
    let img = read_rgb(&sample.image)?;
    let mask = match &sample.mask {
        Some(path) => {
            let m = read_mask(path)?;
            if (m.width, m.height) != (img.width, img.height) {
                return Err(DataError::layout(
                    path,
                    format!(
                        "mask is {}×{} but its image {} is {}×{}",
                        m.width,
                        m.height,
                        sample.image.display(),
                        img.width,
                        img.height
                    ),
                ));
            }
            Some(m)
        }
        None => None,
    };
    Ok((img, mask))
}

/// Batches of a dataset, epoch by epoch.
#[derive(Clone, Debug)]
pub struct Loader {
    dataset: Arc<SodDataset>,
    config: LoaderConfig,
    buffers: BatchBuffers,
    prepared: Prepared,
}

/// An epoch whose workers started ahead of use ([`Loader::prepare`]), shared by the clones of a
/// loader; dropped (its workers stopped) with the last clone or when another epoch is asked for.
#[derive(Clone, Default)]
struct Prepared(Arc<Mutex<Option<EpochBatches>>>);

impl Prepared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<EpochBatches>> {
        // The slot holds a plain value: a panic elsewhere cannot leave it half-written.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let epoch = self.lock().as_ref().map(|e| e.epoch);
        f.debug_tuple("Prepared").field(&epoch).finish()
    }
}

impl Loader {
    /// A loader over `dataset`; refuses a batch size of 0 or an empty or zero side list.
    pub fn new(dataset: SodDataset, config: LoaderConfig) -> Result<Self> {
        if config.batch == 0 {
            return Err(DataError::Config("batch size must be at least 1".into()));
        }
        if config.sizes.is_empty() || config.sizes.contains(&0) {
            return Err(DataError::Config(format!(
                "input sizes must be a non-empty list of positive sides, got {:?}",
                config.sizes
            )));
        }
        if dataset.is_empty() {
            return Err(DataError::layout(dataset.root(), "no samples"));
        }
        // Each worker takes one vector of each kind at a time; two more cover the consumer's.
        let buffers = BatchBuffers::new(config.workers.max(1) + 2);
        Ok(Self {
            dataset: Arc::new(dataset),
            config,
            buffers,
            prepared: Prepared::default(),
        })
    }

    /// The dataset.
    pub fn dataset(&self) -> &SodDataset {
        &self.dataset
    }

    /// The settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The shelf where a consumer gives back the host values of used batches, for the workers
    /// to write later batches into (shared by this loader's clones and epochs).
    pub fn buffers(&self) -> &BatchBuffers {
        &self.buffers
    }

    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.config.batch);
        if self.config.drop_last {
            (n / b).max(1)
        } else {
            n.div_ceil(b)
        }
    }

    /// Sample order of `epoch`.
    fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.config.shuffle {
            Rng::stream(self.config.seed, &[TAG_SHUFFLE, epoch as u64]).shuffle(&mut order);
        }
        order
    }

    /// Builds batch `index` of `epoch` on the calling thread.
    pub fn batch(&self, epoch: usize, index: usize) -> Result<Batch> {
        build_batch(
            &self.dataset,
            &self.config,
            &self.buffers,
            &self.order(epoch),
            epoch,
            index,
        )
    }

    /// Batches `start..` of `epoch`, prepared by worker threads ahead of use. An epoch started
    /// ahead by [`Loader::prepare`] is taken over when `start` is 0; any other prepared epoch is
    /// dropped.
    pub fn epoch(&self, epoch: usize, start: usize) -> EpochBatches {
        let prepared = self.prepared.lock().take();
        match prepared {
            Some(batches) if batches.epoch == epoch && start == 0 => batches,
            other => {
                drop(other); // its workers stop before this epoch's start
                self.spawn(epoch, start)
            }
        }
    }

    /// [`Loader::epoch`], and then the next epoch prepared ([`Loader::prepare`]) as soon as one
    /// of this epoch's workers has built its last batch (at the latest when the last batch is
    /// handed out): the workers keep loading while the consumer uses the last batches,
    /// validates or saves, and the next `epoch(epoch + 1, 0)` starts with batches ready. For a
    /// consumer that goes on to the next epoch (otherwise the prepared work is wasted until the
    /// loader is dropped or another epoch is asked for).
    pub fn epoch_preparing_next(&self, epoch: usize, start: usize) -> EpochBatches {
        let mut batches = self.epoch(epoch, start);
        batches.then = Some(self.clone());
        batches
    }

    /// Starts the workers of `epoch` (from its first batch) now, for a later
    /// [`Loader::epoch`]`(epoch, 0)` to take over: its first batches are ready when it is asked
    /// for. Nothing is done when that epoch is already prepared; any other prepared epoch is
    /// dropped. The batches are the same as without preparing (they depend only on the seed).
    pub fn prepare(&self, epoch: usize) {
        let mut slot = self.prepared.lock();
        if slot.as_ref().is_some_and(|b| b.epoch == epoch) {
            return;
        }
        let old = slot.take();
        let mut batches = self.spawn(epoch, 0);
        batches.prepared_ahead = true;
        *slot = Some(batches);
        drop(slot);
        drop(old); // its workers are joined outside the lock
    }

    /// True when `epoch` has been prepared and not yet taken over.
    pub fn is_prepared(&self, epoch: usize) -> bool {
        self.prepared
            .lock()
            .as_ref()
            .is_some_and(|b| b.epoch == epoch)
    }

    fn spawn(&self, epoch: usize, start: usize) -> EpochBatches {
        let total = self.batches_per_epoch();
        let workers = self
            .config
            .workers
            .max(1)
            .min(total.saturating_sub(start).max(1));
        let order = Arc::new(self.order(epoch));
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = sync_channel(self.config.prefetch.max(1));
            let (dataset, config, order, buffers) = (
                self.dataset.clone(),
                self.config.clone(),
                order.clone(),
                self.buffers.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("scfnet-loader-{w}"))
                .spawn(move || {
                    for b in (start + w..total).step_by(workers) {
                        let batch = build_batch(&dataset, &config, &buffers, &order, epoch, b);
                        if tx.send(batch).is_err() {
                            return; // the consumer went away
                        }
                    }
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    return EpochBatches {
                        receivers: Vec::new(),
                        handles,
                        buffers: self.buffers.clone(),
                        epoch,
                        next: start,
                        start,
                        total,
                        failed: Some(DataError::Worker(e.to_string())),
                        then: None,
                        prepared_ahead: false,
                    }
                }
            }
            receivers.push(rx);
        }
        EpochBatches {
            receivers,
            handles,
            buffers: self.buffers.clone(),
            epoch,
            next: start,
            start,
            total,
            failed: None,
            then: None,
            prepared_ahead: false,
        }
    }
}

fn build_batch(
    dataset: &SodDataset,
    config: &LoaderConfig,
    buffers: &BatchBuffers,
    order: &[usize],
    epoch: usize,
    index: usize,
) -> Result<Batch> {
    let size_rng = &mut Rng::stream(config.seed, &[TAG_SIZE, epoch as u64, index as u64]);
    let size = config.sizes[size_rng.below(config.sizes.len())];
    let lo = index * config.batch;
    let hi = (lo + config.batch).min(order.len());
    let labeled = dataset.is_labeled();
    let mut batch = Batch {
        index,
        size,
        stems: Vec::with_capacity(hi - lo),
        images: buffers.take_images((hi - lo) * 3 * size * size),
        masks: labeled.then(|| buffers.take_masks((hi - lo) * size * size)),
        skipped: Vec::new(),
    };
    for (pos, &i) in order.iter().enumerate().take(hi).skip(lo) {
        let sample = &dataset.samples()[i];
        let (img, mask) = match load_sample(sample) {
            Ok(v) => v,
            Err(e) if config.on_error == OnError::Skip => {
                tracing::warn!("skipping a sample: {e}");
                batch.skipped.push(e.to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut rng = Rng::stream(config.seed, &[TAG_SAMPLE, epoch as u64, pos as u64]);
        let (img, mask) = config.augment.apply(img, mask, &mut rng);
        resize_bilinear_chw_into(&img, size, size, &mut batch.images);
        if let (Some(out), Some(m)) = (batch.masks.as_mut(), mask) {
            resize_bilinear_chw_into(&m, size, size, out);
        }
        batch.stems.push(sample.stem.clone());
    }
    Ok(batch)
}

/// The batches of one epoch, in order; dropping it stops the workers.
pub struct EpochBatches {
    receivers: Vec<Receiver<Result<Batch>>>,
    handles: Vec<JoinHandle<()>>,
    buffers: BatchBuffers,
    epoch: usize,
    next: usize,
    start: usize,
    total: usize,
    failed: Option<DataError>,
    /// The loader that prepares the next epoch once this one's workers are done
    /// ([`Loader::epoch_preparing_next`]; never set on an epoch held as prepared, so no cycle).
    then: Option<Loader>,
    prepared_ahead: bool,
}

impl EpochBatches {
    /// The loader's shelf for the host values of used batches ([`BatchBuffers::give_back`]).
    pub fn buffers(&self) -> BatchBuffers {
        self.buffers.clone()
    }

    /// The epoch these batches belong to.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// True when the workers started ahead of use ([`Loader::prepare`]).
    pub fn was_prepared(&self) -> bool {
        self.prepared_ahead
    }

    fn prepare_next_when_due(&mut self) {
        let due = self.next >= self.total || self.handles.iter().any(|h| h.is_finished());
        if due {
            if let Some(loader) = self.then.take() {
                loader.prepare(self.epoch + 1);
            }
        }
    }
}

impl Iterator for EpochBatches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            self.next = self.total;
            return Some(Err(e));
        }
        if self.next >= self.total {
            self.prepare_next_when_due();
            return None;
        }
        let w = (self.next - self.start) % self.receivers.len();
        self.next += 1;
        let batch = self.receivers[w]
            .recv()
            .unwrap_or_else(|_| Err(DataError::Worker("a loader thread panicked".into())));
        self.prepare_next_when_due();
        Some(batch)
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
