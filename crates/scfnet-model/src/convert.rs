//! Converting the authors' released Paddle checkpoints to safetensors with our names.

use std::path::Path;

use candle_core::{DType, Device};
pub(crate) use scfnet_backbones::paddle::PADDLE_BN_ONLY;
use scfnet_backbones::paddle::{
    convert_file, paddle_bn_names, ConversionReport, Mapping, SWIN_PADDLE,
};
use scfnet_backbones::{synthetic_var_builder, WeightsError};

use crate::hub_config::{HubConfig, WeightsSource};
use crate::kind::ModelKind;
use crate::scfnet::{backbone_name, Scfnet, BACKBONE_PREFIX};

/// The authors' whole SCFNet-Swin-B checkpoint: names under [`BACKBONE_PREFIX`] mapped by
/// [`SWIN_PADDLE`] (and kept under the prefix), the decoder's BatchNorm statistics renamed.
pub(crate) const SCFNET_SWIN_PADDLE: Mapping = Mapping {
    rename: |name| match backbone_name(name) {
        Some(rest) => (SWIN_PADDLE.rename)(rest).map(|r| format!("{BACKBONE_PREFIX}.{r}")),
        None => Some(paddle_bn_names(name)),
    },
    transpose: |name| backbone_name(name).is_some_and(SWIN_PADDLE.transpose),
};

/// How the authors' checkpoint of `kind` maps to our names: BatchNorm statistics renamed; for the
/// Swin-B teacher also the original Swin layout moved to timm's (see
/// [`scfnet_backbones::paddle::SWIN_PADDLE`], applied under [`BACKBONE_PREFIX`]).
pub fn paddle_mapping(kind: ModelKind) -> Mapping {
    kind.spec().paddle_mapping
}

/// `(name, shape)` of every tensor `kind` needs.
pub fn expected_tensors(kind: ModelKind) -> candle_core::Result<Vec<(String, Vec<usize>)>> {
    let (vb, recorded) = synthetic_var_builder(DType::F32, &Device::Cpu);
    Scfnet::new(kind, vb)?;
    Ok(recorded.requested())
}

/// Converts the authors' `.pdparams` of `kind` at `input` to safetensors at `output`, refusing a
/// missing, extra or mis-shaped tensor by name. The file describes itself
/// ([`crate::weights_metadata`]): the network, its input side and normalisation, and `source`.
pub fn convert_paddle_checkpoint(
    kind: ModelKind,
    input: &Path,
    output: &Path,
    source: WeightsSource,
) -> Result<ConversionReport, WeightsError> {
    let expected = expected_tensors(kind)?;
    let metadata = crate::weights_metadata(&HubConfig::new(kind, Some(source)), None);
    convert_file(
        input,
        output,
        &expected,
        paddle_mapping(kind),
        Some(metadata),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authors_swin_b_checkpoint_names_map_to_ours() {
        let m = paddle_mapping(ModelKind::SwinB);
        let rename = |n: &str| (m.rename)(n);
        // Persistable buffers of SwinT.py and the unused final norm are dropped.
        for n in [
            "bkbone.layers.0.blocks.1.attn_mask",
            "bkbone.layers.2.blocks.3.attn.relative_position_index",
            "bkbone.norm.weight",
        ] {
            assert_eq!(rename(n), None, "{n}");
        }
        // Patch merging moves to the next stage, under the backbone prefix.
        assert_eq!(
            rename("bkbone.layers.0.downsample.reduction.weight").as_deref(),
            Some("bkbone.layers.1.downsample.reduction.weight")
        );
        assert_eq!(
            rename("bkbone.layers.3.blocks.1.attn.qkv.weight").as_deref(),
            Some("bkbone.layers.3.blocks.1.attn.qkv.weight")
        );
        // Decoder BatchNorm statistics get PyTorch's names; nothing else changes.
        assert_eq!(
            rename("mp.cv1.1._variance").as_deref(),
            Some("mp.cv1.1.running_var")
        );
        assert_eq!(rename("linear2.weight").as_deref(), Some("linear2.weight"));
        // Only the backbone's Linear weights are transposed (by our name).
        assert!((m.transpose)("bkbone.layers.1.downsample.reduction.weight"));
        assert!((m.transpose)("bkbone.layers.2.blocks.0.mlp.fc1.weight"));
        assert!(!(m.transpose)("bkbone.patch_embed.proj.weight"));
        assert!(!(m.transpose)("de1.cv1.0.weight"));
    }
}
