//! The one inference path of the workspace: weights checked and loaded, images preprocessed as
//! the authors' test code does, the network, and the 8-bit map at the image's own size. `scfnet
//! predict`, validation during training, the demo and the sweep all call it, so their maps are
//! the same bytes.
//!
//! The authors' test procedure (`lib/dataset.py`, `test.py`): RGB in `[0, 255]`, normalised with
//! [`MEAN`] / [`STD`], resized to `size × size` with `cv2.INTER_LINEAR` (half-pixel centres, no
//! anti-aliasing: the same arithmetic as a bilinear resize with `align_corners = false`), the
//! network in eval mode, `sigmoid(p2)`, resized back to the image's size with `align_corners =
//! true`, ×255, rounded.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use scfnet_backbones::{check_safetensors, synthetic_var_builder, WeightsError};

use crate::input_batch::InputBatch;
use crate::input_side::InputSide;
use crate::kind::ModelKind;
use crate::scfnet::Scfnet;

pub use scfnet_base::normalisation::{MEAN, STD};

/// An RGB image: `height · width · 3` bytes, row-major, channels interleaved.
#[derive(Clone, Copy, Debug)]
pub struct RgbRef<'a> {
    /// The pixels.
    pub pixels: &'a [u8],
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
}

/// What can go wrong in inference.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The weights could not be read or do not fit the network.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The input side is not usable.
    #[error("{0}")]
    Size(String),
    /// An image buffer does not match its stated size.
    #[error("image buffer of {len} bytes, but {width}x{height} RGB needs {}", width * height * 3)]
    Buffer {
        /// Bytes given.
        len: usize,
        /// Stated width.
        width: usize,
        /// Stated height.
        height: usize,
    },
    /// The network produced NaN or infinite values for image `index` of a batch.
    #[error("the network's output for image {index} of the batch holds NaN or infinite values")]
    NonFinite {
        /// Position in the batch.
        index: usize,
    },
}

/// Weights of `kind` from a safetensors file: every tensor checked by name, shape and
/// finiteness first (`label` names the source in errors), then memory-mapped onto `device`.
pub fn load_weights(
    kind: ModelKind,
    path: &Path,
    label: &str,
    device: &Device,
) -> Result<VarBuilder<'static>, WeightsError> {
    // The names and shapes the network needs, from a dry build on recorded synthetic weights.
    let (probe, recorded) = synthetic_var_builder(DType::F32, &Device::Cpu);
    Scfnet::new(kind, probe)?;
    check_safetensors(path, &recorded.requested(), label)?;
    // SAFETY: the file is only read; it was just checked, and a concurrent writer could at worst
    // change values under the map (reported as wrong maps, not undefined behaviour in safe code
    // here).
    Ok(unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, device) }?)
}

/// A network ready to turn images into saliency maps.
pub struct Predictor {
    net: Scfnet,
    busy_helper: bool,
    size: InputSide,
    device: Device,
    dtype: DType,
}

impl Predictor {
    /// Wraps a built network, folding its BatchNorms into the convolutions
    /// ([`Scfnet::fold_batch_norms`]); `size` is the network input side (the authors': 352, 384
    /// for Swin-B, [`ModelKind::default_size`]).
    pub fn new(
        mut net: Scfnet,
        size: InputSide,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, PredictError> {
        net.fold_batch_norms()?;
        Ok(Self {
            net,
            busy_helper: true,
            size,
            device: device.clone(),
            dtype,
        })
    }

    /// `kind` with the weights of the safetensors file `path` (checked first, see
    /// [`load_weights`]), in f32 on `device`.
    pub fn from_file(
        kind: ModelKind,
        path: &Path,
        label: &str,
        size: InputSide,
        device: &Device,
    ) -> Result<Self, PredictError> {
        let vb = load_weights(kind, path, label, device)?;
        Self::new(Scfnet::new(kind, vb)?, size, device, DType::F32)
    }

    /// The network.
    pub fn net(&self) -> &Scfnet {
        &self.net
    }

    /// Whether a single image on the CPU keeps a second rayon worker busy-waiting for the length
    /// of the pass ([`scfnet_infer::with_busy_helper`]; on by default). The helper makes one pass
    /// faster but takes the second core for its whole length: turn it off when other threads of
    /// the process have work to do meanwhile and no background work is given.
    pub fn set_busy_helper(&mut self, on: bool) {
        self.busy_helper = on;
    }

    /// The network input side.
    pub fn size(&self) -> InputSide {
        self.size
    }

    /// The normalised, resized input of one image, `(1, 3, size, size)`.
    pub fn input(&self, image: RgbRef) -> Result<Tensor, PredictError> {
        preprocess(image, self.size, &self.device, self.dtype)
    }

    /// Whether [`Predictor::batch_logits_beside`] on `batch` images runs its background work on the
    /// network's busy-waiting helper ([`scfnet_infer::schedule::helper_takes_background`]).
    pub fn helper_takes_background(&self, batch: usize) -> bool {
        scfnet_infer::schedule::helper_takes_background(batch, &self.device, self.busy_helper)
    }

    /// Room for the inputs of `len` images at this network's input side, to fill in place
    /// ([`InputBatch::fill`]) and run with [`Predictor::batch_logits_beside`].
    pub fn input_batch(&self, len: usize) -> InputBatch {
        InputBatch::new(len, self.size)
    }

    /// The `p2` logits of a batch prepared in place (the maps come from [`Logits::map`]): its
    /// filled places, in order (the unfilled ones left out, see [`InputBatch::into_values`]),
    /// the values handed to the network without a copy on the CPU, with `background` run in the
    /// idle moments of the busy-waiting helper of a single image
    /// ([`scfnet_infer::schedule::run_eval`];
    /// `&|| false` for none). The one way to logits; [`Predictor::maps`] is the one way to maps.
    pub fn batch_logits_beside(
        &self,
        batch: InputBatch,
        background: &(dyn Fn() -> bool + Sync),
    ) -> Result<Logits, PredictError> {
        if batch.size() != self.size.get() {
            return Err(PredictError::Size(format!(
                "a batch prepared at side {}, but the network takes {}",
                batch.size(),
                self.size
            )));
        }
        let (values, n) = batch.into_values();
        let size = self.size.get();
        if n == 0 {
            return Ok(Logits {
                values: Vec::new(),
                size,
            });
        }
        let input =
            Tensor::from_vec(values, (n, 3, size, size), &self.device)?.to_dtype(self.dtype)?;
        let p2 = scfnet_infer::schedule::run_eval(&input, self.busy_helper, background, &|x| {
            self.net.p2(x, false)
        })?;
        logits_of(p2, size)
    }

    /// The 8-bit maps of a batch of images (any sizes), each at its image's size, in order.
    pub fn maps(&self, images: &[RgbRef]) -> Result<Vec<Vec<u8>>, PredictError> {
        predict_maps(&self.net, self.size, &self.device, self.dtype, images)
    }

    /// The 8-bit map of one image, at its size.
    pub fn map(&self, image: RgbRef) -> Result<Vec<u8>, PredictError> {
        Ok(self.maps(&[image])?.remove(0))
    }
}

/// The network input of one image, `(3, size, size)` values (planar, row-major): normalised,
/// then resized with `cv2.INTER_LINEAR`'s arithmetic. Runs on the calling thread (no thread pool),
/// so that another thread can prepare the next images while the network runs.
pub fn preprocess_values(image: RgbRef, side: InputSide) -> Result<Vec<f32>, PredictError> {
    let size = side.get();
    check_image(image)?;
    let (w, h) = (image.width, image.height);
    Ok(scfnet_ops::resize_bilinear_normalised_rgb(
        image.pixels,
        (h, w),
        (MEAN, STD),
        (size, size),
        false,
    )?)
}

/// Fails with [`PredictError::Buffer`] unless `image` holds `width · height · 3` bytes, both
/// sides positive.
pub(crate) fn check_image(image: RgbRef) -> Result<(), PredictError> {
    let (w, h) = (image.width, image.height);
    if image.pixels.len() != w * h * 3 || w == 0 || h == 0 {
        return Err(PredictError::Buffer {
            len: image.pixels.len(),
            width: w,
            height: h,
        });
    }
    Ok(())
}

/// The network input of one image, `(1, 3, size, size)` in `dtype` on `device`
/// ([`preprocess_values`] as a tensor).
pub fn preprocess(
    image: RgbRef,
    side: InputSide,
    device: &Device,
    dtype: DType,
) -> Result<Tensor, PredictError> {
    let values = preprocess_values(image, side)?;
    let size = side.get();
    Ok(Tensor::from_vec(values, (1, 3, size, size), device)?.to_dtype(dtype)?)
}

/// The `p2` logits of a batch, `(B, 1, size, size)`, copied to the host as f32.
#[derive(Clone, Debug)]
pub struct Logits {
    values: Vec<f32>,
    size: usize,
}

impl Logits {
    /// Images in the batch.
    pub fn len(&self) -> usize {
        self.values.len() / (self.size * self.size)
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The logits of image `index`, `(size, size)` row-major.
    pub fn image(&self, index: usize) -> &[f32] {
        let n = self.size * self.size;
        &self.values[index * n..(index + 1) * n]
    }

    /// The 8-bit map of image `index` at `(height, width)`: `sigmoid`, resized with
    /// `align_corners = true`, ×255, rounded. Runs on the calling thread (no thread pool).
    /// Fails with [`PredictError::NonFinite`] when the logits hold NaN or infinite values.
    pub fn map(&self, index: usize, height: usize, width: usize) -> Result<Vec<u8>, PredictError> {
        if index >= self.len() {
            return Err(PredictError::Size(format!(
                "no image {index} in a batch of {}",
                self.len()
            )));
        }
        let logits = self.image(index);
        if !scfnet_ops::all_finite_values(logits) {
            return Err(PredictError::NonFinite { index });
        }
        let prob = scfnet_ops::sigmoid_values(logits);
        let full = scfnet_ops::resize_bilinear_planes(
            &prob,
            (self.size, self.size),
            (height, width),
            true,
        )?;
        Ok(grey_levels(&full))
    }
}

/// A probability as a grey level: `round(p · 255)` (halves away from zero) clamped to
/// `0..=255`, without the `roundf` call that `f32::round` is on the baseline x86-64 target
/// (the truncation and the fraction `v − trunc(v)` are exact, so the result is the same). A NaN
/// gives 0.
#[inline(always)]
fn grey_level(p: f32) -> u8 {
    // `max`/`min` return the other operand for a NaN, so `v` is a number in [0, 255] and the
    // unchecked conversion exact; the saturating `as` would not vectorise.
    #[allow(clippy::manual_clamp)] // `clamp` would keep the NaN.
    let v = (p * 255.0).max(0.0).min(255.0);
    // SAFETY: `v` is finite and in [0, 255] (see above).
    let whole = unsafe { v.to_int_unchecked::<u32>() };
    (whole + u32::from(v - whole as f32 >= 0.5)) as u8
}

/// [`grey_level`] of every probability.
fn grey_levels(probabilities: &[f32]) -> Vec<u8> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked).
        return unsafe { grey_levels_wide(probabilities) };
    }
    probabilities.iter().map(|&p| grey_level(p)).collect()
}

/// [`grey_levels`] compiled for AVX2 (the same operations).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn grey_levels_wide(probabilities: &[f32]) -> Vec<u8> {
    probabilities.iter().map(|&p| grey_level(p)).collect()
}

/// The `p2` logits of `net` (eval mode) on a batch of preprocessed inputs
/// ([`preprocess_values`] at side `side`), run in `dtype` on `device`.
pub fn network_logits(
    net: &Scfnet,
    side: InputSide,
    device: &Device,
    dtype: DType,
    inputs: &[Vec<f32>],
) -> Result<Logits, PredictError> {
    let batch = network_input(side, device, dtype, inputs)?;
    logits_of(net.forward_t(&batch, false)?, side.get())
}

/// The batch `(B, 3, size, size)` of prepared inputs, in `dtype` on `device`.
fn network_input(
    side: InputSide,
    device: &Device,
    dtype: DType,
    inputs: &[Vec<f32>],
) -> Result<Tensor, PredictError> {
    let size = side.get();
    let per_image = 3 * size * size;
    let mut batch = Vec::with_capacity(inputs.len() * per_image);
    for (i, x) in inputs.iter().enumerate() {
        if x.len() != per_image {
            return Err(PredictError::Size(format!(
                "input {i} of the batch holds {} values, not 3x{size}x{size}",
                x.len()
            )));
        }
        batch.extend_from_slice(x);
    }
    Ok(Tensor::from_vec(batch, (inputs.len(), 3, size, size), device)?.to_dtype(dtype)?)
}

/// The network's logits `(B, 1, size, size)` copied to the host.
fn logits_of(logits: Tensor, size: usize) -> Result<Logits, PredictError> {
    let values = logits
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok(Logits { values, size })
}

/// The 8-bit maps of `images` by `net` (eval mode) at input side `side`, each at its image's
/// size: the one implementation behind [`Predictor::maps`], `scfnet predict` (which runs its three
/// steps on three threads) and validation during training (all pass a network with folded
/// BatchNorms, [`Scfnet::fold_batch_norms`]). The steps: [`preprocess_values`],
/// [`network_logits`], [`Logits::map`].
pub fn predict_maps(
    net: &Scfnet,
    side: InputSide,
    device: &Device,
    dtype: DType,
    images: &[RgbRef],
) -> Result<Vec<Vec<u8>>, PredictError> {
    if images.is_empty() {
        return Ok(Vec::new());
    }
    let inputs = images
        .iter()
        .map(|im| preprocess_values(*im, side))
        .collect::<Result<Vec<_>, _>>()?;
    let logits = network_logits(net, side, device, dtype, &inputs)?;
    images
        .iter()
        .enumerate()
        .map(|(i, im)| logits.map(i, im.height, im.width))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{grey_level, grey_levels};

    #[test]
    fn equals_rounding_then_clamping() {
        let mut values: Vec<f32> = (0..=2_000_000).map(|i| i as f32 / 2_000_000.0).collect();
        // Halves, their neighbours, and values outside 0..=1.
        for k in 0..=255 {
            let half = (k as f32 + 0.5) / 255.0;
            values.extend([half, half.next_up(), half.next_down()]);
        }
        values.extend([
            -1.0,
            -0.0,
            1.5,
            0.5f32.next_down() / 255.0,
            f32::MIN_POSITIVE,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ]);
        // One at a time, and through the vectorised loop.
        let levels = grey_levels(&values);
        for (&p, &level) in values.iter().zip(&levels) {
            let want = (p * 255.0).round().clamp(0.0, 255.0) as u8;
            assert_eq!(grey_level(p), want, "p = {p:e}");
            assert_eq!(level, want, "p = {p:e} (vectorised)");
        }
        assert_eq!(levels.len(), values.len());
    }
}
