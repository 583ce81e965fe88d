//! A complete SCFNet: backbone + decoder.

use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use scfnet_backbones::{Backbone, MobileNetV3, ResNet50, SwinTransformer};

use crate::decoder::{Decoder, SideOutputs};
use crate::kind::ModelKind;

/// SCFNet with its backbone under `bkbone.` and the decoder at the root (the authors' names).
pub struct Scfnet {
    kind: ModelKind,
    backbone: Box<dyn Backbone>,
    decoder: Decoder,
}

impl Scfnet {
    /// Builds `kind` with weights from `vb`.
    pub fn new(kind: ModelKind, vb: VarBuilder) -> Result<Self> {
        let bb = vb.pp("bkbone");
        let backbone: Box<dyn Backbone> = match kind {
            ModelKind::Student => Box::new(MobileNetV3::large_x0_5(bb)?),
            ModelKind::R50 => Box::new(ResNet50::new(bb)?),
            ModelKind::SwinB => Box::new(SwinTransformer::base(bb)?),
        };
        let decoder = Decoder::new(vb, kind.backbone_channels(), kind.decoder_channels())?;
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
