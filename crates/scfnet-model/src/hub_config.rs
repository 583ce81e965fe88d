//! `config.json` of a weights folder laid out as a Hugging Face model repository
//! (`model.safetensors` + `config.json` + `README.md`): which network the weights are for and
//! how its input is prepared, so that `--weights DIR` or `--hub ORG/REPO` need nothing else.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::input_side::InputSide;
use crate::kind::ModelKind;
use crate::predictor::{MEAN, STD};

/// Name of the file in the folder or repository.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the weights file next to it.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Where converted weights came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightsSource {
    /// File name of the original checkpoint.
    pub file: String,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its format (`paddle`).
    pub format: String,
}

/// The contents of `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HubConfig {
    /// Always `"scfnet"`: what reads this file.
    pub library: String,
    /// The network: `student`, `r50` or `swinb`.
    pub network: ModelKind,
    /// The network input side the weights were trained and tested at (checked on reading).
    pub input_size: InputSide,
    /// Per-channel mean subtracted from RGB in `[0, 255]`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation the result is divided by.
    pub std: [f32; 3],
    /// The checkpoint the weights were converted from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<WeightsSource>,
}

/// What can be wrong with a `config.json`.
#[derive(Debug, thiserror::Error)]
pub enum HubConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a config of this library, or its values are unusable.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl HubConfig {
    /// The config of `network` at its paper input side and the authors' normalisation.
    pub fn new(network: ModelKind, source: Option<WeightsSource>) -> Self {
        Self {
            library: "scfnet".into(),
            network,
            input_size: network.default_size(),
            mean: MEAN,
            std: STD,
            source,
        }
    }

    /// Reads and checks `path` (a `config.json`).
    pub fn read(path: &Path) -> Result<Self, HubConfigError> {
        let text = scfnet_base::read::read_text(path).map_err(|source| HubConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |message: String| HubConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let c: HubConfig = serde_json::from_str(&text)
            .map_err(|e| invalid(format!("not an scfnet config.json: {e}")))?;
        c.check(path)?;
        Ok(c)
    }

    /// Refuses a config of another library or another normalisation (`path` names it).
    pub fn check(&self, path: &Path) -> Result<(), HubConfigError> {
        let invalid = |message: String| HubConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        if self.library != "scfnet" {
            return Err(invalid(format!(
                "written for library {:?}, not scfnet",
                self.library
            )));
        }
        if self.mean != MEAN || self.std != STD {
            return Err(invalid(format!(
                "normalisation mean {:?} / std {:?} differs from the networks' {MEAN:?} / {STD:?}",
                self.mean, self.std
            )));
        }
        Ok(())
    }

    /// The JSON text of the config.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("serialisable") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_round_trips_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONFIG_FILE);
        let c = HubConfig::new(
            ModelKind::SwinB,
            Some(WeightsSource {
                file: "a.pdparams".into(),
                sha256: "00".into(),
                format: "paddle".into(),
            }),
        );
        std::fs::write(&path, c.to_json()).unwrap();
        assert_eq!(HubConfig::read(&path).unwrap(), c);
        assert_eq!(c.input_size.get(), 384);
        std::fs::write(&path, r#"{"model_type": "bert"}"#).unwrap();
        let e = HubConfig::read(&path).unwrap_err().to_string();
        assert!(
            e.contains("config.json") && e.contains("not an scfnet"),
            "{e}"
        );
        let odd = c
            .to_json()
            .replace("\"input_size\": 384", "\"input_size\": 100");
        assert_ne!(odd, c.to_json());
        std::fs::write(&path, odd).unwrap();
        let e = HubConfig::read(&path).unwrap_err().to_string();
        assert!(e.contains("input side 100") && e.contains("32"), "{e}");
    }
}
