//! Which network: the student or one of the two teachers.

use serde::{Deserialize, Serialize};

use crate::input_side::InputSide;

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

    /// Decoder channels `C`.
    pub fn decoder_channels(self) -> usize {
        match self {
            ModelKind::Student => 16,
            ModelKind::R50 | ModelKind::SwinB => 64,
        }
    }

    /// Whether the authors' optimiser decays tensor `name` of this network (our whole-network
    /// name): everything except the student backbone's BatchNorm scales and shifts
    /// ([`scfnet_backbones::MobileNetV3::decays`]).
    pub fn decays(self, name: &str) -> bool {
        match (self, crate::scfnet::backbone_name(name)) {
            (ModelKind::Student, Some(own)) => scfnet_backbones::MobileNetV3::decays(own),
            _ => true,
        }
    }

    /// The stochastic-depth rate the authors train with: 0.5 for Swin-B (`SwinT.py`:
    /// `drop_path_rate=0.5`, "do not appear in official code"), 0 for the others (none built).
    pub fn paper_drop_path(self) -> f64 {
        match self {
            ModelKind::SwinB => 0.5,
            _ => 0.0,
        }
    }

    /// The input side the authors use (352; 384 for Swin-B).
    pub fn default_size(self) -> InputSide {
        match self {
            ModelKind::SwinB => InputSide::PAPER_SWIN,
            _ => InputSide::PAPER,
        }
    }

    /// Command-line name (`student`, `r50`, `swinb`).
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Student => "student",
            ModelKind::R50 => "r50",
            ModelKind::SwinB => "swinb",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "student" | "fsscfnet" | "kdscfnet" | "m305" | "mobilenetv3" => Ok(ModelKind::Student),
            "r50" | "resnet50" | "scfnetr50" => Ok(ModelKind::R50),
            "swinb" | "stb" | "st" | "scfnetstb" => Ok(ModelKind::SwinB),
            _ => Err(format!("unknown model {s:?}: use student, r50 or swinb")),
        }
    }
}
