//! The checkout this binary was built from: where `scfnet download` finds the manifest
//! (`data/manifest.toml`) and puts the data, and where `scfnet sweep` finds its plans
//! (`sweeps/`) and writes its outputs (`out/`), unless told otherwise.

use std::path::PathBuf;

/// The repository root of the build (canonical where it exists).
pub fn root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}
