//! Running a PyTorch timing script of `tests/reference/` in the same benchmark run.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Runs `tests/reference/<script>` with `--threads --size --repeat` and returns its
/// `torch LABEL: X ms` lines as `(LABEL, X)`.
pub fn torch_timings(
    script: &str,
    threads: usize,
    size: usize,
    repeat: usize,
) -> Result<Vec<(String, f64)>> {
    python_timings(script, "torch", threads, size, repeat, &[])
}

/// Runs `tests/reference/<script>` with `--threads --size --repeat` and `extra` arguments, and
/// returns its `PREFIX LABEL: X ms` lines as `(LABEL, X)`.
pub fn python_timings(
    script: &str,
    prefix: &str,
    threads: usize,
    size: usize,
    repeat: usize,
    extra: &[String],
) -> Result<Vec<(String, f64)>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/reference")
        .join(script);
    let out = Command::new("python3")
        .arg(&path)
        .args([
            "--threads",
            &threads.to_string(),
            "--size",
            &size.to_string(),
            "--repeat",
            &repeat.to_string(),
        ])
        .args(extra)
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (label, ms) = l.strip_prefix(prefix)?.trim_start().split_once(": ")?;
            Some((label.to_owned(), ms.trim_end_matches(" ms").parse().ok()?))
        })
        .collect())
}
