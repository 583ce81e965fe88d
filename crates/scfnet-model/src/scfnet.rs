//! A complete SCFNet: backbone + decoder.

use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
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
        };
        net.fold_batch_norms()?;
        Ok(net)
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
        let f = self.backbone.features(x, train)?;
        self.decoder
            .forward_t([&f.x2, &f.x3, &f.x4, &f.x5], x, train)
    }
}

impl ModuleT for Scfnet {
    /// The prediction `p2` (logits `(B, 1, H, W)`), without the deep-supervision heads. In eval
    /// mode the pass is scheduled on the CPU's workers by [`scfnet_infer::schedule::run_eval`]
    /// (a part of the batch per worker; a single image with the busy-waiting helper).
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            return self.p2(x, train);
        }
        scfnet_infer::schedule::run_eval(x, true, &|| false, &|x| self.p2(x, false))
    }
}

impl Scfnet {
    /// `p2` of `x` computed on the calling thread's terms: no batch splitting, no helper (what
    /// [`scfnet_infer::schedule::run_eval`] runs on each part of a batch).
    pub fn p2(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let f = self.backbone.features(x, train)?;
        self.decoder
            .prediction([&f.x2, &f.x3, &f.x4, &f.x5], x, train)
    }
}
