//! Every fact the workspace knows about each network, in one table ([`SPECS`]), in the spirit of
//! timm's pretrained configs: its names, how its backbone is built, its decoder width, its input
//! side, how the authors' checkpoint maps to our names, how the recipe treats it, and what its
//! model card says. Adding a network is one entry here (and its backbone in
//! `scfnet-backbones`); everything else reads the table.

use candle_core::Result;
use candle_nn::VarBuilder;
use scfnet_backbones::paddle::Mapping;
use scfnet_backbones::{Backbone, MobileNetV3, ResNet50, SwinConfig, SwinTransformer};

use crate::input_side::InputSide;
use crate::kind::ModelKind;

/// One network's facts.
pub struct ModelSpec {
    /// The variant.
    pub kind: ModelKind,
    /// Command-line name (`student`, `r50`, `swinb`).
    pub name: &'static str,
    /// Other accepted names, lower case without `-` or `_` (the paper's and the authors').
    pub aliases: &'static [&'static str],
    /// The paper's name and the network's size, for model cards.
    pub title: &'static str,
    /// Builds the backbone from its weights (under `backbone.`) with stochastic depth of the
    /// given rate in training mode (only Swin-B has it; the others ignore the rate).
    pub backbone: fn(VarBuilder, f64) -> Result<Box<dyn Backbone>>,
    /// Decoder channels `C`.
    pub decoder_channels: usize,
    /// The input side the authors train (largest) and test at.
    pub input_side: InputSide,
    /// Whether the network takes only [`ModelSpec::input_side`] (Swin-B's windows): no
    /// multi-scale training.
    pub fixed_side: bool,
    /// The stochastic-depth rate the authors train with.
    pub paper_drop_path: f64,
    /// How the authors' Paddle checkpoint's names map to ours.
    pub paddle_mapping: Mapping,
    /// Whether the authors' optimiser decays the backbone tensor of this (backbone-local) name.
    pub backbone_decays: fn(&str) -> bool,
    /// The authors' published MAE of each released checkpoint of this network (their README):
    /// checkpoint name, then DUTS-TE, ECSSD, HKU-IS, DUT-OMRON, PASCAL-S.
    pub published_mae: &'static [(&'static str, [f64; 5])],
}

impl std::fmt::Debug for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSpec")
            .field("name", &self.name)
            .field("decoder_channels", &self.decoder_channels)
            .field("input_side", &self.input_side)
            .field("fixed_side", &self.fixed_side)
            .finish_non_exhaustive()
    }
}

fn student_backbone(vb: VarBuilder, _drop_path: f64) -> Result<Box<dyn Backbone>> {
    Ok(Box::new(MobileNetV3::large_x0_5(vb)?))
}

fn r50_backbone(vb: VarBuilder, _drop_path: f64) -> Result<Box<dyn Backbone>> {
    Ok(Box::new(ResNet50::new(vb)?))
}

fn swinb_backbone(vb: VarBuilder, drop_path_rate: f64) -> Result<Box<dyn Backbone>> {
    let config = SwinConfig {
        drop_path_rate,
        ..SwinConfig::base_window12()
    };
    Ok(Box::new(SwinTransformer::new(vb, config)?))
}

/// The three networks of KD-SCFNet, in [`ModelKind`] order.
pub static SPECS: [ModelSpec; 3] = [
    ModelSpec {
        kind: ModelKind::Student,
        name: "student",
        aliases: &["fsscfnet", "kdscfnet", "m305", "mobilenetv3"],
        title: "FS-/KD-SCFNet (MobileNetV3-Large ×0.5, 0.8 M parameters)",
        backbone: student_backbone,
        decoder_channels: 16,
        input_side: InputSide::PAPER,
        fixed_side: false,
        paper_drop_path: 0.0,
        paddle_mapping: crate::convert::PADDLE_BN_ONLY,
        backbone_decays: MobileNetV3::decays,
        published_mae: &[
            ("FS-SCFNet", [0.041, 0.039, 0.031, 0.059, 0.068]),
            (
                "KD-SCFNet (teacher SCFNet_R50)",
                [0.035, 0.035, 0.029, 0.052, 0.061],
            ),
            (
                "KD-SCFNet (teacher SCFNet_STB)",
                [0.035, 0.030, 0.026, 0.054, 0.056],
            ),
        ],
    },
    ModelSpec {
        kind: ModelKind::R50,
        name: "r50",
        aliases: &["resnet50", "scfnetr50"],
        title: "SCFNet_R50 (ResNet-50 teacher, 26.15 M parameters)",
        backbone: r50_backbone,
        decoder_channels: 64,
        input_side: InputSide::PAPER,
        fixed_side: false,
        paper_drop_path: 0.0,
        paddle_mapping: crate::convert::PADDLE_BN_ONLY,
        backbone_decays: decays_all,
        published_mae: &[("SCFNet_R50", [0.031, 0.031, 0.026, 0.047, 0.060])],
    },
    ModelSpec {
        kind: ModelKind::SwinB,
        name: "swinb",
        aliases: &["stb", "st", "scfnetstb"],
        title: "SCFNet_STB (Swin-B teacher, 88.16 M parameters)",
        backbone: swinb_backbone,
        decoder_channels: 64,
        input_side: InputSide::PAPER_SWIN,
        fixed_side: true,
        // `SwinT.py`: `drop_path_rate=0.5` ("do not appear in official code").
        paper_drop_path: 0.5,
        paddle_mapping: crate::convert::SCFNET_SWIN_PADDLE,
        backbone_decays: decays_all,
        published_mae: &[("SCFNet_STB", [0.026, 0.023, 0.021, 0.045, 0.051])],
    },
];

/// Every tensor decays (the teachers' backbones).
fn decays_all(_: &str) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_kind_order_and_names_are_unique() {
        for (i, spec) in SPECS.iter().enumerate() {
            assert_eq!(spec.kind as usize, i, "{}", spec.name);
            assert_eq!(spec.kind.spec().name, spec.name);
        }
        let mut names: Vec<&str> = SPECS
            .iter()
            .flat_map(|s| std::iter::once(s.name).chain(s.aliases.iter().copied()))
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "a name is used twice");
        for spec in &SPECS {
            for name in std::iter::once(spec.name).chain(spec.aliases.iter().copied()) {
                assert_eq!(name.parse::<ModelKind>().unwrap(), spec.kind, "{name}");
            }
        }
    }
}
