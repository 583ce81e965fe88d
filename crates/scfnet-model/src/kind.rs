//! Which network: the student or one of the two teachers.

use serde::{Deserialize, Serialize};

use crate::input_side::InputSide;
use crate::spec::{ModelSpec, SPECS};

/// The three SCFNet variants of KD-SCFNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// FS-SCFNet / KD-SCFNet: MobileNetV3-Large ×0.5 encoder, 16 decoder channels.
    Student,
    /// SCFNet_R50 teacher: ResNet-50 encoder, 64 decoder channels.
    R50,
    /// SCFNet_STB teacher: Swin-B (window 12) encoder, 64 decoder channels.
    SwinB,
}

impl ModelKind {
    /// All variants.
    pub const ALL: [ModelKind; 3] = [ModelKind::Student, ModelKind::R50, ModelKind::SwinB];

    /// Everything known about this network ([`SPECS`]).
    pub fn spec(self) -> &'static ModelSpec {
        &SPECS[self as usize]
    }

    /// Decoder channels `C`.
    pub fn decoder_channels(self) -> usize {
        self.spec().decoder_channels
    }

    /// Whether the authors' optimiser decays tensor `name` of this network (our whole-network
    /// name): everything except the student backbone's BatchNorm scales and shifts
    /// ([`ModelSpec::backbone_decays`]).
    pub fn decays(self, name: &str) -> bool {
        crate::scfnet::backbone_name(name).is_none_or(self.spec().backbone_decays)
    }

    /// The stochastic-depth rate the authors train with: 0.5 for Swin-B, 0 for the others.
    pub fn paper_drop_path(self) -> f64 {
        self.spec().paper_drop_path
    }

    /// The input side the authors use (352; 384 for Swin-B).
    pub fn default_size(self) -> InputSide {
        self.spec().input_side
    }

    /// Command-line name (`student`, `r50`, `swinb`).
    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;

    /// The name or any alias of a [`ModelSpec`], in any case, `-` and `_` ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.to_ascii_lowercase().replace(['-', '_'], "");
        SPECS
            .iter()
            .find(|spec| spec.name == key || spec.aliases.contains(&key.as_str()))
            .map(|spec| spec.kind)
            .ok_or_else(|| format!("unknown model {s:?}: use student, r50 or swinb"))
    }
}
