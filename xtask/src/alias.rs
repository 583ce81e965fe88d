//! `cargo xtask download` and `cargo xtask sweep`: aliases of `scfnet download` and `scfnet
//! sweep` (the user-facing commands), kept for the project's own habits and scripts. They build
//! the release `scfnet` (with `--features cuda` when the arguments ask for a CUDA device) and run
//! it with the same arguments.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The arguments passed through.
#[derive(clap::Args)]
pub struct Args {
    /// Everything after the command, as `scfnet` takes it (see `scfnet download --help`,
    /// `scfnet sweep --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Whether `args` ask for a CUDA device (`--device cuda…` or `--device=cuda…`).
fn wants_cuda(args: &[String]) -> bool {
    args.iter().enumerate().any(|(i, a)| {
        a.strip_prefix("--device=")
            .is_some_and(|d| d.starts_with("cuda"))
            || (a == "--device" && args.get(i + 1).is_some_and(|d| d.starts_with("cuda")))
    })
}

/// Builds the release `scfnet` of this checkout (`--features cuda` when `cuda`) and returns its
/// path: what the aliases run and what the benchmarks time unless given another binary, so that
/// neither runs a binary older than the sources.
pub(crate) fn build_scfnet(cuda: bool) -> Result<PathBuf> {
    let root = crate::repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&root)
        .args(["build", "--release", "-p", "scfnet-cli"]);
    if cuda {
        build.args(["--features", "cuda"]);
    }
    let status = build.status().context("running cargo build")?;
    if !status.success() {
        bail!("building scfnet failed");
    }
    Ok(root.join("target/release/scfnet"))
}

/// Builds the release `scfnet` and runs `scfnet COMMAND ARGS…`, exiting with its status.
pub fn run(command: &str, args: Args) -> Result<()> {
    let scfnet = build_scfnet(wants_cuda(&args.args))?;
    // A SIGTERM to the alias reaches the sweep (and through it its stage) too.
    let status = scfnet_base::child::status(Command::new(&scfnet).arg(command).args(&args.args))
        .with_context(|| format!("running {}", scfnet.display()))?;
    if !status.success() {
        bail!("scfnet {command} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::wants_cuda;

    #[test]
    fn a_cuda_device_is_seen_in_both_spellings() {
        let v = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert!(wants_cuda(&v(&["--device", "cuda"])));
        assert!(wants_cuda(&v(&["--plan", "p.toml", "--device=cuda:1"])));
        assert!(!wants_cuda(&v(&["--device", "cpu", "cuda"])));
        assert!(!wants_cuda(&v(&["--dry-run"])));
    }
}
