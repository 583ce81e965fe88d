//! `data/download.lock`: the SHA-256 of every file whose source publishes none, pinned by its
//! first good download; a later download that differs is an error.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One pinned file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Pin {
    /// The manifest's file name, or a parquet source's `hf-parquet://ORG/NAME/CONFIG/SPLIT` (its
    /// SHA-256 is then that of the rows it holds).
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Where the pinned copy came from.
    pub url: String,
}

/// The lock file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Lock {
    /// Pins, sorted by name.
    #[serde(rename = "file", default)]
    pub files: Vec<Pin>,
    #[serde(skip)]
    path: PathBuf,
}

impl Lock {
    /// Reads `path` (an absent file is an empty lock).
    pub fn load(path: &Path) -> Result<Self> {
        let mut lock = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str::<Self>(&text)
                .with_context(|| format!("{}: not a valid lock file", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        lock.path = path.to_owned();
        Ok(lock)
    }

    /// The pin of `name`.
    pub fn get(&self, name: &str) -> Option<&Pin> {
        self.files.iter().find(|p| p.name == name)
    }

    /// Adds (or replaces) a pin and writes the file atomically.
    pub fn pin(&mut self, pin: Pin) -> Result<()> {
        self.files.retain(|p| p.name != pin.name);
        self.files.push(pin);
        self.files.sort_by(|a, b| a.name.cmp(&b.name));
        let body = toml::to_string(self).context("serialising the lock file")?;
        let text = format!(
            "# Pinned by `scfnet download`: the SHA-256 of each file whose source publishes\n\
             # none, taken from its first good download. A later download that differs is refused.\n\n{body}"
        );
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).ok();
        }
        scfnet_base::files::write_bytes(&self.path, text.as_bytes())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}
