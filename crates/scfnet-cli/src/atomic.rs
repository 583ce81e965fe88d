//! Writing output files atomically (temporary file in the same folder, then rename).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `bytes` to `path` so that readers see either the old file or the complete new one.
///
/// The path `-` writes to standard output instead.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.as_os_str() == "-" {
        std::io::stdout()
            .write_all(bytes)
            .context("writing to standard output")?;
        return Ok(());
    }
    scfnet_base::files::write_bytes(path, bytes)
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", path.display()))
}
