//! Self-describing weight files: the `__metadata__` that every safetensors file scfnet writes
//! (`train`, `distill`, `convert`) carries, and its reading back as a [`HubConfig`].
//!
//! Keys (all strings, as the format requires): `library` (`scfnet`), `network`, `input_size`,
//! `mean` and `std` (JSON arrays), `scfnet_version`; converted weights add `source` (the
//! checkpoint's file name, SHA-256 and format, as JSON), trained ones `recipe` (the run's
//! settings, as JSON) and `mode` (`supervised` or `distill:TEACHER`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::hub_config::{HubConfig, HubConfigError};

/// The `__metadata__` describing weights of `config`'s network, with the training settings
/// (`recipe`, JSON) and `mode` of the run that made them, if any.
pub fn weights_metadata(
    config: &HubConfig,
    recipe: Option<(String, String)>,
) -> HashMap<String, String> {
    let mut m = HashMap::from([
        ("library".to_owned(), config.library.clone()),
        ("network".to_owned(), config.network.name().to_owned()),
        ("input_size".to_owned(), config.input_size.get().to_string()),
        ("mean".to_owned(), json(&config.mean)),
        ("std".to_owned(), json(&config.std)),
        (
            "scfnet_version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ]);
    if let Some(source) = &config.source {
        m.insert("source".into(), json(source));
    }
    if let Some((recipe, mode)) = recipe {
        m.insert("recipe".into(), recipe);
        m.insert("mode".into(), mode);
    }
    m
}

/// The [`HubConfig`] a weights file's `__metadata__` describes (`path` names it in errors):
/// `None` for a file scfnet did not describe (no `library = scfnet`: a timm checkpoint, or one
/// written before the metadata existed); an error when it is scfnet's but unusable.
pub fn config_from_metadata(
    metadata: &BTreeMap<String, String>,
    path: &Path,
) -> Result<Option<HubConfig>, HubConfigError> {
    if metadata.get("library").map(String::as_str) != Some("scfnet") {
        return Ok(None);
    }
    let invalid = |message: String| HubConfigError::Invalid {
        path: path.to_owned(),
        message: format!("its metadata: {message}"),
    };
    let field = |key: &str| -> Result<serde_json::Value, HubConfigError> {
        let text = metadata
            .get(key)
            .ok_or_else(|| invalid(format!("no {key:?}")))?;
        // `network` is a bare name; every other value is JSON.
        Ok(serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.clone())))
    };
    let mut object = serde_json::Map::new();
    object.insert("library".into(), "scfnet".into());
    for key in ["network", "input_size", "mean", "std"] {
        object.insert(key.into(), field(key)?);
    }
    if metadata.contains_key("source") {
        object.insert("source".into(), field("source")?);
    }
    let config: HubConfig = serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| invalid(e.to_string()))?;
    config.check(path)?;
    Ok(Some(config))
}

/// The JSON text of a small value (an array, the source).
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("serialisable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub_config::WeightsSource;
    use crate::ModelKind;

    #[test]
    fn metadata_round_trips_and_others_files_are_not_taken_for_ours() {
        let config = HubConfig::new(
            ModelKind::R50,
            Some(WeightsSource {
                file: "SCFNet_R50.pdparams".into(),
                sha256: "ab".repeat(32),
                format: "paddle".into(),
            }),
        );
        let m = weights_metadata(
            &config,
            Some(("{\"epochs\":69}".into(), "supervised".into())),
        );
        assert_eq!(m["network"], "r50");
        assert_eq!(m["input_size"], "352");
        assert_eq!(m["recipe"], "{\"epochs\":69}");
        let sorted: BTreeMap<String, String> = m.into_iter().collect();
        let back = config_from_metadata(&sorted, Path::new("w.safetensors")).unwrap();
        assert_eq!(back, Some(config));
        assert_eq!(
            config_from_metadata(&BTreeMap::new(), Path::new("timm.safetensors")).unwrap(),
            None
        );
        let mut odd = sorted.clone();
        odd.insert("network".into(), "vgg16".into());
        let err = config_from_metadata(&odd, Path::new("w.safetensors")).unwrap_err();
        assert!(
            err.to_string().contains("w.safetensors: its metadata"),
            "{err}"
        );
    }
}
