//! The batches of an epoch as tensors on the training device. On the CPU (and any device but
//! CUDA) each batch becomes its tensors when it is taken. On CUDA (the `cuda` feature) the
//! copies overlap the steps: a thread writes each batch into page-locked memory as soon as the
//! loader has it, and the copy of batch `k + 1` is queued on a stream of its own before step
//! `k`, so the GPU's copy engine moves it while step `k` computes (`scfnet_kernels::upload`).
//! Either way a batch's host values go back to the loader once copied
//! ([`scfnet_data::BatchBuffers`]), so that later batches are written into memory already
//! mapped.

use candle_core::{DType, Device, Tensor};
use scfnet_data::{Batch, EpochBatches};

use crate::error::Result;

/// A batch of the loader (its host values moved out) and its tensors on the device: images
/// `(B, 3, S, S)` and, for labeled data, masks `(B, 1, S, S)`, in the training dtype; no
/// tensors when every sample of the batch failed to load.
pub(crate) struct FedBatch {
    /// The batch's description (index, size, stems, skipped samples).
    pub batch: Batch,
    /// Images and masks on the device.
    pub tensors: Option<(Tensor, Option<Tensor>)>,
}

/// The batches of `epoch` on `device` in `dtype`.
pub(crate) fn feed(
    epoch: EpochBatches,
    device: &Device,
    dtype: DType,
) -> Result<Box<dyn Iterator<Item = Result<FedBatch>>>> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(dev) = device {
        return Ok(Box::new(cuda::CudaFeed::new(epoch, dev, dtype)?));
    }
    let device = device.clone();
    let buffers = epoch.buffers();
    Ok(Box::new(epoch.map(move |batch| {
        let mut batch = batch?;
        let tensors = if batch.is_empty() {
            None
        } else {
            let images = batch.images_tensor(&device)?.to_dtype(dtype)?;
            let masks = match batch.masks_tensor(&device)? {
                Some(m) => Some(m.to_dtype(dtype)?),
                None => None,
            };
            Some((images, masks))
        };
        // The tensors hold copies: the loader writes later batches into this memory.
        buffers.give_back(&mut batch);
        Ok(FedBatch { batch, tensors })
    })))
}

#[cfg(feature = "cuda")]
mod cuda {
    use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
    use std::thread::JoinHandle;

    use candle_core::{CudaDevice, DType, Tensor};
    use scfnet_data::{Batch, EpochBatches};
    use scfnet_kernels::upload::{PinnedBuffer, SideUploader, Upload};

    use super::FedBatch;
    use crate::error::{Result, TrainError};

    /// Page-locked buffers in circulation: one being copied to the GPU, one written by the
    /// staging thread, one ready.
    const BUFFERS: usize = 3;

    /// A batch written into page-locked memory: images from 0, masks after them.
    struct Staged {
        batch: Batch,
        buffer: PinnedBuffer,
        masks_at: Option<usize>,
    }

    /// A batch whose copies are queued.
    struct InFlight {
        batch: Batch,
        images: Option<(Upload, Option<Upload>)>,
    }

    /// The CUDA feed: staging thread, side stream, and the next batch in flight.
    pub(super) struct CudaFeed {
        staged: Option<Receiver<Result<Staged>>>,
        free: Option<SyncSender<PinnedBuffer>>,
        stager: Option<JoinHandle<()>>,
        uploader: SideUploader,
        next: Option<InFlight>,
        pending_error: Option<TrainError>,
        dtype: DType,
        done: bool,
    }

    impl CudaFeed {
        pub(super) fn new(epoch: EpochBatches, dev: &CudaDevice, dtype: DType) -> Result<Self> {
            let (free_tx, free_rx) = sync_channel::<PinnedBuffer>(BUFFERS);
            for _ in 0..BUFFERS {
                free_tx
                    .send(PinnedBuffer::new(dev)?)
                    .expect("the receiver is alive");
            }
            let (staged_tx, staged_rx) = sync_channel(1);
            let stager = std::thread::Builder::new()
                .name("scfnet-stager".into())
                .spawn(move || stage(epoch, free_rx, staged_tx))
                .map_err(|e| {
                    TrainError::Data(scfnet_data::DataError::Worker(format!(
                        "cannot start the staging thread: {e}"
                    )))
                })?;
            Ok(Self {
                staged: Some(staged_rx),
                free: Some(free_tx),
                stager: Some(stager),
                uploader: SideUploader::new(dev)?,
                next: None,
                pending_error: None,
                dtype,
                done: false,
            })
        }

        /// Takes the next staged batch and queues its copies; `None` at the end of the epoch.
        fn start_next(&mut self) -> Option<Result<InFlight>> {
            let staged = match self.staged.as_ref()?.recv() {
                Ok(s) => s,
                Err(_) => return None, // the epoch is over
            };
            Some(staged.and_then(|s| self.start(s)))
        }

        fn start(&self, staged: Staged) -> Result<InFlight> {
            let Staged {
                batch,
                buffer,
                masks_at,
            } = staged;
            let images = if batch.is_empty() {
                None
            } else {
                let (b, s) = (batch.len(), batch.size);
                let images = self.uploader.start(&buffer, 0, (b, 3, s, s).into())?;
                let masks = match masks_at {
                    Some(at) => Some(self.uploader.start(&buffer, at, (b, 1, s, s).into())?),
                    None => None,
                };
                Some((images, masks))
            };
            // Back to the staging thread, which waits for these copies before writing again.
            if let Some(free) = &self.free {
                let _ = free.send(buffer);
            }
            Ok(InFlight { batch, images })
        }

        fn finish(&self, flight: InFlight) -> Result<FedBatch> {
            let to_dtype = |t: Tensor| -> Result<Tensor> { Ok(t.to_dtype(self.dtype)?) };
            let tensors = match flight.images {
                Some((images, masks)) => Some((
                    to_dtype(images.finish()?)?,
                    masks.map(|m| to_dtype(m.finish()?)).transpose()?,
                )),
                None => None,
            };
            Ok(FedBatch {
                batch: flight.batch,
                tensors,
            })
        }
    }

    impl Iterator for CudaFeed {
        type Item = Result<FedBatch>;

        fn next(&mut self) -> Option<Self::Item> {
            if self.done {
                return None;
            }
            let current = match self.next.take() {
                Some(f) => f,
                None => {
                    if let Some(e) = self.pending_error.take() {
                        self.done = true;
                        return Some(Err(e));
                    }
                    match self.start_next() {
                        Some(Ok(f)) => f,
                        Some(Err(e)) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                        None => {
                            self.done = true;
                            return None;
                        }
                    }
                }
            };
            // Queue the following batch's copies before this batch's step is queued: the copy
            // engine then runs them while the step computes. An error there is reported after
            // this batch, in the loader's order.
            match self.start_next() {
                Some(Ok(f)) => self.next = Some(f),
                Some(Err(e)) => self.pending_error = Some(e),
                None => {}
            }
            Some(self.finish(current))
        }
    }

    impl Drop for CudaFeed {
        fn drop(&mut self) {
            // Closing both channels stops the staging thread (and with it the loader).
            self.staged = None;
            self.free = None;
            if let Some(h) = self.stager.take() {
                let _ = h.join();
            }
        }
    }

    /// The staging thread: each batch of the loader into a free page-locked buffer, in order.
    fn stage(
        epoch: EpochBatches,
        free: Receiver<PinnedBuffer>,
        staged: SyncSender<Result<Staged>>,
    ) {
        let buffers = epoch.buffers();
        for batch in epoch {
            let item = batch.map_err(TrainError::from).and_then(|mut batch| {
                let mut buffer = free.recv().map_err(|_| {
                    TrainError::Data(scfnet_data::DataError::Worker(
                        "the training loop went away".into(),
                    ))
                })?;
                let masks = batch.masks.as_deref().unwrap_or(&[]);
                let starts = buffer.write(&[&batch.images, masks])?;
                let masks_at = batch.masks.as_ref().map(|_| starts[1]);
                // Written to page-locked memory: the loader writes later batches into this
                // memory (here, not on the training thread, which would unmap it otherwise).
                buffers.give_back(&mut batch);
                Ok(Staged {
                    batch,
                    buffer,
                    masks_at,
                })
            });
            let failed = item.is_err();
            if staged.send(item).is_err() || failed {
                return;
            }
        }
    }
}
