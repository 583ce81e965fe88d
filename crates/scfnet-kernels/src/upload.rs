//! Host-to-GPU copies that overlap the kernels: page-locked host buffers, and a stream of their
//! own for the copies, ordered against candle's stream by events (the `cuda` feature).
//!
//! A copy from ordinary (pageable) host memory on candle's stream runs between two kernels and
//! at a fraction of the bus's speed: a training step of the student at batch 128 spent about a
//! fifth of its time uploading its batch that way. Here the batch is first written into a
//! [`PinnedBuffer`] (by any thread), then [`SideUploader::start`] queues its copy on the side
//! stream, where the copy engine runs it while candle's stream computes; [`Upload::finish`] makes
//! candle's stream wait for the copy and hands out the tensor.
//!
//! Ordering, all by stream events, never by the host waiting for the GPU:
//! - the destination is allocated on candle's stream (so it is freed there, after its last use),
//!   and the side stream waits for that allocation before copying into it;
//! - candle's stream waits for the copy before the first kernel that reads the tensor;
//! - a buffer is written again only after its last copy has completed ([`PinnedBuffer::write`]
//!   waits for that).

use std::sync::Arc;

use candle_core::cuda_backend::cudarc::driver::{
    result, sys, CudaContext, CudaEvent, CudaSlice, CudaStream, DevicePtrMut, PinnedHostSlice,
};
use candle_core::cuda_backend::WrapErr;
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, Result, Shape, Storage, Tensor};

/// A page-locked host buffer of `f32` values that grows to the largest batch written to it, and
/// the event of its last copy to the GPU.
pub struct PinnedBuffer {
    context: Arc<CudaContext>,
    host: Option<PinnedHostSlice<f32>>,
    copied: CudaEvent,
}

impl PinnedBuffer {
    /// An empty buffer for the GPU of `dev` (memory is allocated on the first write).
    pub fn new(dev: &CudaDevice) -> Result<Self> {
        let context = dev.cuda_stream().context().clone();
        let copied = context.new_event(None).w()?;
        Ok(Self {
            context,
            host: None,
            copied,
        })
    }

    /// Writes `parts` one after the other from the start of the buffer (after the buffer's last
    /// copy to the GPU has completed), growing it when they do not fit; returns where each part
    /// starts.
    pub fn write(&mut self, parts: &[&[f32]]) -> Result<Vec<usize>> {
        self.copied.synchronize().w()?;
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if self.host.as_ref().is_none_or(|h| h.len() < total) {
            self.host = None; // free the old one first
                              // SAFETY: the values are written below before any copy reads them.
            self.host = Some(unsafe { self.context.alloc_pinned::<f32>(total.max(1)) }.w()?);
        }
        let host = self.host.as_mut().expect("allocated above");
        let dst = host.as_mut_slice().w()?;
        let mut starts = Vec::with_capacity(parts.len());
        let mut at = 0;
        for part in parts {
            dst[at..at + part.len()].copy_from_slice(part);
            starts.push(at);
            at += part.len();
        }
        Ok(starts)
    }

    /// Values `start..start + len` as written by [`PinnedBuffer::write`].
    fn values(&self, start: usize, len: usize) -> Result<&[f32]> {
        match &self.host {
            Some(h) if start + len <= h.len() => Ok(&h.as_slice().w()?[start..start + len]),
            _ => candle_core::bail!("pinned buffer: values {start}..{} not written", start + len),
        }
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        // The host memory may be freed only after its last copy has read it.
        let _ = self.copied.synchronize();
    }
}

/// Copies on a stream of their own for candle's CUDA device `dev`.
pub struct SideUploader {
    dev: CudaDevice,
    stream: Arc<CudaStream>,
}

/// A copy queued by [`SideUploader::start`]: the tensor once candle's stream has waited for it.
pub struct Upload {
    dev: CudaDevice,
    values: Option<CudaSlice<f32>>,
    shape: Shape,
    done: CudaEvent,
}

impl SideUploader {
    /// A side stream on `dev`'s GPU.
    pub fn new(dev: &CudaDevice) -> Result<Self> {
        let stream = dev.cuda_stream().context().new_stream().w()?;
        Ok(Self {
            dev: dev.clone(),
            stream,
        })
    }

    /// Queues the copy of `buffer`'s values `start..` (as many as `shape` holds) into a new
    /// device tensor of `shape`; returns at once.
    pub fn start(&self, buffer: &PinnedBuffer, start: usize, shape: Shape) -> Result<Upload> {
        let len = shape.elem_count();
        let src = buffer.values(start, len)?;
        let main = self.dev.cuda_stream();
        // SAFETY: the side stream writes all `len` values before candle's stream reads them
        // (candle's stream waits for `done`).
        let mut values = unsafe { main.alloc::<f32>(len.max(1)) }.w()?;
        let allocated = main.record_event(None).w()?;
        self.stream.wait(&allocated).w()?;
        {
            let (dst, _guard) = values.device_ptr_mut(&self.stream);
            // SAFETY: `dst` holds at least `len` values (allocated above), `src` is page-locked
            // and stays unwritten until `copied` (recorded below) has completed.
            unsafe { result::memcpy_htod_async(dst, src, self.stream.cu_stream()) }.w()?;
        }
        buffer.copied.record(&self.stream).w()?;
        let done = self
            .stream
            .record_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING))
            .w()?;
        Ok(Upload {
            dev: self.dev.clone(),
            values: Some(values),
            shape,
            done,
        })
    }
}

impl Upload {
    /// Makes candle's stream wait for the copy (the host does not wait) and returns the tensor.
    pub fn finish(mut self) -> Result<Tensor> {
        self.dev.cuda_stream().wait(&self.done).w()?;
        let values = self.values.take().expect("taken only here");
        let storage = CudaStorage::wrap_cuda_slice(values, self.dev.clone());
        Ok(Tensor::from_storage(
            Storage::Cuda(storage),
            self.shape.clone(),
            BackpropOp::none(),
            false,
        ))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // An upload dropped unfinished: its buffer is freed on candle's stream, which must not
        // reuse the memory before the copy into it has ended.
        if self.values.is_some() {
            let _ = self.dev.cuda_stream().wait(&self.done);
        }
    }
}
