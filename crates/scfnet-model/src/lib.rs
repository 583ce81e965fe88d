//! The SCFNet networks of KD-SCFNet (ECCV 2022) on candle.
//!
//! One decoder ([`Decoder`]: mapping convs, a dilated context conv, three semantics-guided
//! contextual fusion modules and four side-output heads) on three encoders, selected by
//! [`ModelKind`]: the student (MobileNetV3-Large ×0.5, 16 channels), the ResNet-50 teacher and
//! the Swin-B teacher (64 channels). [`Scfnet::side_outputs`] returns the four logit maps at the
//! input size; `p2` is the prediction. Weight names are the authors' (`bkbone.…`, `mp.…`, `cv1`,
//! `de1…3`, `linear2…5`), documented in `docs/model.md`.

#![warn(missing_docs)]

mod convert;
mod decoder;
mod hub_config;
mod info;
mod input_batch;
mod input_side;
mod kind;
mod predictor;
mod scfnet;
mod spec;
mod weights_meta;

pub use convert::{convert_paddle_checkpoint, expected_tensors, paddle_mapping};
pub use decoder::{conv_bn_relu, Decoder, DecoderConfig, Scfm, SideOutputs};
pub use hub_config::{HubConfig, HubConfigError, WeightsSource, CONFIG_FILE, WEIGHTS_FILE};
pub use info::{model_info, ModelInfo};
pub use input_batch::InputBatch;
pub use input_side::{InputSide, InputSideError, MAX_INPUT_SIDE};
pub use kind::ModelKind;
pub use predictor::{
    load_weights, network_logits, predict_maps, preprocess, preprocess_values, Logits,
    PredictError, Predictor, RgbRef, MEAN, STD,
};
pub use scfnet::{backbone_name, Scfnet, BACKBONE_PREFIX};
pub use spec::{ModelSpec, SPECS};
pub use weights_meta::{config_from_metadata, weights_metadata};

/// The examples of the crate's README.md, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
