//! A complete SCFNet: backbone + decoder.

use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use scfnet_backbones::{Backbone, MobileNetV3, ResNet50, SwinConfig, SwinTransformer};

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
        let bb = vb.pp(BACKBONE_PREFIX);
        let backbone: Box<dyn Backbone> = match kind {
            ModelKind::Student => Box::new(MobileNetV3::large_x0_5(bb)?),
            ModelKind::R50 => Box::new(ResNet50::new(bb)?),
            ModelKind::SwinB => Box::new(SwinTransformer::new(
                bb,
                SwinConfig {
                    drop_path_rate,
                    ..SwinConfig::base_window12()
                },
            )?),
        };
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
    /// The prediction `p2` (logits).
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.side_outputs(x, train)?.p2)
    }
}
