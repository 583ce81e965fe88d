//! A complete SCFNet: backbone + decoder.

use candle_core::{Device, Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use rayon::prelude::*;
use scfnet_backbones::Backbone;
use scfnet_onnx::{proto::ModelProto, Dim, OnnxGraph};

use crate::decoder::{Decoder, DecoderConfig, SideOutputs};
use crate::kind::ModelKind;

/// Where the backbone's weights are in a whole network's checkpoint (the authors' `self.bkbone`):
/// `bkbone.<backbone name>`; the decoder's names are at the root.
pub const BACKBONE_PREFIX: &str = "bkbone";

/// The backbone's own name of a whole-network tensor name (`bkbone.conv1.weight` →
/// `conv1.weight`), or `None` for a decoder tensor.
pub fn backbone_name(name: &str) -> Option<&str> {
    name.strip_prefix(BACKBONE_PREFIX)?.strip_prefix('.')
}

/// SCFNet with its backbone under [`BACKBONE_PREFIX`] and the decoder at the root (the authors'
/// names).
pub struct Scfnet {
    kind: ModelKind,
    backbone: Box<dyn Backbone>,
    decoder: Decoder,
    /// Whether a single image in eval mode keeps a second worker busy-waiting
    /// ([`Scfnet::set_busy_helper`]).
    busy_helper: bool,
}

impl Scfnet {
    /// Builds `kind` with weights from `vb`, without stochastic depth (deterministic in training
    /// mode too).
    pub fn new(kind: ModelKind, vb: VarBuilder) -> Result<Self> {
        Self::with_drop_path(kind, vb, 0.0)
    }

    /// Builds `kind` with stochastic depth of rate `drop_path_rate` in its backbone, applied in
    /// training mode only. Only Swin-B has it (the authors train it with
    /// [`ModelKind::paper_drop_path`] = 0.5); the other backbones ignore the rate.
    pub fn with_drop_path(kind: ModelKind, vb: VarBuilder, drop_path_rate: f64) -> Result<Self> {
        let backbone = (kind.spec().backbone)(vb.pp(BACKBONE_PREFIX), drop_path_rate)?;
        // The decoder sizes itself from the backbone's own feature description.
        let [_, c2, c3, c4, c5] = backbone.channels();
        let decoder = Decoder::new(
            vb,
            DecoderConfig {
                in_channels: [c2, c3, c4, c5],
                channels: kind.decoder_channels(),
            },
        )?;
        Ok(Self {
            kind,
            backbone,
            decoder,
            busy_helper: true,
        })
    }

    /// Folds every BatchNorm into its convolution, for inference: eval mode then runs one
    /// convolution with bias and activation per block (maps equal to the unfolded network's up to
    /// f32 rounding); training mode is unchanged. The folded copy does not follow later weight
    /// updates, so fold a network only once it has stopped training (or fold a copy,
    /// [`Scfnet::folded`]).
    pub fn fold_batch_norms(&mut self) -> Result<()> {
        self.backbone.fold_batch_norms()?;
        self.decoder.fold_batch_norms()
    }

    /// A copy with every BatchNorm folded ([`Scfnet::fold_batch_norms`]), sharing the unfolded
    /// weights with `self`.
    pub fn folded(&self) -> Result<Scfnet> {
        let mut net = Scfnet {
            kind: self.kind,
            backbone: self.backbone.clone_box(),
            decoder: self.decoder.clone(),
            busy_helper: self.busy_helper,
        };
        net.fold_batch_norms()?;
        Ok(net)
    }

    /// Whether a single image in eval mode on the CPU keeps a second rayon worker busy-waiting
    /// for the length of the pass ([`scfnet_infer::with_busy_helper`]; on by default). The helper
    /// makes one pass faster but takes the second core for its whole length: turn it off when
    /// other threads of the process have work to do meanwhile (`scfnet predict` at batch 1
    /// decodes and encodes beside the network).
    pub fn set_busy_helper(&mut self, on: bool) {
        self.busy_helper = on;
    }

    /// Whether [`Scfnet::forward_beside`] on `batch` images on `device` hands its background work
    /// to the busy-waiting helper: a single image on the CPU, the helper on, and two or more
    /// workers in rayon's pool.
    pub fn helper_takes_background(&self, batch: usize, device: &Device) -> bool {
        batch == 1 && device.is_cpu() && self.busy_helper && rayon::current_num_threads() >= 2
    }

    /// The side `S` the ONNX export's `S × S` input is fixed to, when the backbone's graph
    /// depends on the input size (Swin-B: 384); `None`: any multiple of 32.
    pub fn onnx_input_side(&self) -> Option<usize> {
        self.backbone.onnx_input_side()
    }

    /// The network in eval mode as an ONNX model (opset [`scfnet_onnx::OPSET`]), BatchNorms
    /// folded: input `image` `(batch, 3, height, width)`, normalised RGB ([`crate::MEAN`],
    /// [`crate::STD`]), height and width any multiples of 32 (Swin-B: fixed to
    /// [`Scfnet::onnx_input_side`], 384); output `saliency` `(batch, 1, height, width)`, the
    /// sigmoid of `p2`.
    pub fn to_onnx(&self) -> Result<ModelProto> {
        let mut g = OnnxGraph::new();
        let named = |s: &str| Dim::Named(s.into());
        // Height and width: dynamic, or fixed where the backbone's graph depends on them.
        let fixed = self.onnx_input_side();
        let side = |s: &str| fixed.map_or_else(|| named(s), Dim::Fixed);
        let image = g.input(
            "image",
            &[named("batch"), Dim::Fixed(3), side("height"), side("width")],
        );
        let [x2, x3, x4, x5] = self.backbone.to_onnx(&mut g, BACKBONE_PREFIX, &image)?;
        let p2 = self.decoder.to_onnx(&mut g, [&x2, &x3, &x4, &x5], &image)?;
        let map = g.op("Sigmoid", "saliency_map", &[&p2]);
        g.output(
            &map,
            "saliency",
            &[named("batch"), Dim::Fixed(1), side("height"), side("width")],
        );
        let sizes = match fixed {
            Some(n) => format!("{n}x{n} (this network's graph is written for that size only)"),
            None => "multiples of 32 (the authors use 352x352)".to_owned(),
        };
        let list = |v: [f32; 3]| format!("{}, {}, {}", v[0], v[1], v[2]);
        Ok(g.into_model(
            &format!("scfnet-{}", self.kind),
            &format!(
                "SCFNet (KD-SCFNet, ECCV 2022) salient object detection. Input: RGB in \
                 [0, 255], normalised per channel as (x - mean) / std, channels first, height \
                 and width {sizes}, resized with bilinear half-pixel interpolation. Output: the \
                 saliency probability map at the input size."
            ),
            &[
                ("network", self.kind.name().to_owned()),
                ("mean", list(crate::MEAN)),
                ("std", list(crate::STD)),
                ("input_side", self.kind.default_size().to_string()),
            ],
        ))
    }

    /// Which variant this is.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// The four side outputs (logits, `(B, 1, H, W)`) of a `(B, 3, H, W)` normalised batch.
    pub fn side_outputs(&self, x: &Tensor, train: bool) -> Result<SideOutputs> {
        let (_, _, h, w) = x.dims4()?;
        let f = self.backbone.features(x, train)?;
        self.decoder
            .forward_t([&f.x2, &f.x3, &f.x4, &f.x5], (h, w), train)
    }
}

impl ModuleT for Scfnet {
    /// The prediction `p2` (logits `(B, 1, H, W)`), without the deep-supervision heads.
    ///
    /// In eval mode on the CPU the whole pass runs on rayon's worker threads: the kernels'
    /// parallel loops then split work between the workers directly, instead of each waking the
    /// pool from outside and putting the calling thread to sleep until it is done. A batch of
    /// several images is cut into one part per worker and the parts run side by side, each image
    /// through the whole network on one core, without hand-offs between operations (images are
    /// independent in eval mode; the maps are those of the whole batch). A part takes its images
    /// one at a time: the same speed as the part at once, with the memory of one image's
    /// activations per worker (peak 110 instead of 158 MiB for the student at batch 8). A single image keeps a
    /// second worker awake for the length of the pass ([`scfnet_infer::with_busy_helper`]).
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            return self.prediction(x, train);
        }
        self.forward_beside(x, &|| false)
    }
}

impl Scfnet {
    /// The eval-mode prediction `p2` of [`ModuleT::forward_t`], with `background` run by the
    /// busy-waiting helper of a single image whenever it has no piece of the network to run
    /// ([`scfnet_infer::with_busy_helper_and`]): short pieces of other work (decoding the next
    /// image, encoding the last map) that would otherwise wait for the pass to end or take a
    /// core from it. `background` does one piece and returns whether there was any; it must not
    /// use rayon's pool, nor block. Without the helper (off, or a batch of several images) it is
    /// never called.
    pub fn forward_beside(
        &self,
        x: &Tensor,
        background: &(dyn Fn() -> bool + Sync),
    ) -> Result<Tensor> {
        let train = false;
        if !scfnet_ops::uses_cpu_kernels(x) {
            return self.prediction(x, train);
        }
        if rayon::current_thread_index().is_none() {
            return rayon::scope(|_| self.forward_beside(x, background));
        }
        let parts = batch_parts(x.dim(0)?, rayon::current_num_threads());
        if parts.len() < 2 {
            if !self.helper_takes_background(x.dim(0)?, x.device()) {
                return self.prediction(x, train);
            }
            return scfnet_infer::with_busy_helper_and(|| self.prediction(x, train), background);
        }
        let maps = parts
            .into_par_iter()
            .map(|(start, len)| {
                (start..start + len)
                    .map(|i| self.prediction(&x.narrow(0, i, 1)?, train))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&maps.concat(), 0)
    }

    /// `p2` of `x` computed on the calling thread's terms (no batch splitting).
    fn prediction(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let f = self.backbone.features(x, train)?;
        self.decoder
            .prediction([&f.x2, &f.x3, &f.x4, &f.x5], (h, w), train)
    }
}

/// `(start, len)` of at most `workers` nearly equal, non-empty parts of a batch of `batch`.
fn batch_parts(batch: usize, workers: usize) -> Vec<(usize, usize)> {
    let n = workers.clamp(1, batch.max(1));
    let mut start = 0;
    (0..n)
        .map(|i| {
            let len = batch / n + usize::from(i < batch % n);
            let part = (start, len);
            start += len;
            part
        })
        .filter(|&(_, len)| len > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::batch_parts;

    #[test]
    fn batch_parts_cover_the_batch_in_order() {
        for batch in 0..20 {
            for workers in 1..6 {
                let parts = batch_parts(batch, workers);
                assert!(parts.len() <= workers.max(1));
                assert!(parts.iter().all(|&(_, len)| len > 0));
                let mut next = 0;
                for &(start, len) in &parts {
                    assert_eq!(start, next);
                    next += len;
                }
                assert_eq!(next, batch);
                let lens: Vec<_> = parts.iter().map(|p| p.1).collect();
                let (lo, hi) = (lens.iter().min(), lens.iter().max());
                if let (Some(lo), Some(hi)) = (lo, hi) {
                    assert!(hi - lo <= 1, "{batch} over {workers}: {lens:?}");
                }
            }
        }
        assert_eq!(batch_parts(8, 2), vec![(0, 4), (4, 4)]);
        assert_eq!(batch_parts(1, 2), vec![(0, 1)]);
    }
}
