//! `scfnet download [NAMES…]`: the benchmarks, the ImageNet backbones and (by hand) the
//! distillation pool, from the manifest `data/manifest.toml`.
//!
//! Every file is fetched by [`fetch::Fetcher`] (hub cache, resumable streaming, checksums, lock
//! file), unpacked by [`archive::extract_zip`] and laid out by [`layout`]. A dataset published on
//! the Hugging Face hub as parquet is fetched through candle-datasets ([`hub_parquet`]), its rows
//! written out and laid out the same way. Items already complete
//! are skipped, so a second run does nothing.

mod archive;
mod fetch;
mod gdrive;
mod hub_parquet;
mod layout;
mod lock;
mod manifest;
#[cfg(test)]
mod parquet_tests;
#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use scfnet_backbones::HubOptions;

use fetch::Fetcher;
use lock::{Lock, Pin};
use manifest::{Archive, Item, ItemKind, Manifest, ParquetSource, Source};

/// Arguments of `download`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Items to fetch (names from the manifest, or `datasets`, `weights`, `all`); none: the
    /// six benchmarks and the three ImageNet backbones.
    names: Vec<String>,
    /// Show what is present, missing and its size, and stop.
    #[arg(long)]
    list: bool,
    /// Print what would be fetched and from where, and stop.
    #[arg(long)]
    dry_run: bool,
    /// Try `URL/FILE` before every other source (a local copy of the files).
    #[arg(long, value_name = "URL")]
    mirror: Option<String>,
    /// Take the files from this folder instead of the network (files named as in the manifest;
    /// for an unlabeled pool such as KD-SOD80K, a folder of its images, moved in).
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    /// The manifest (default: data/manifest.toml of the repository).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Where `data/` and `weights/` are (default: the repository root).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Seconds one request may spend receiving before it is cut and resumed with a Range
    /// request (a stalled server costs at most this, a few times over).
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    request_timeout: u64,
}

/// What a download run does.
pub struct Options {
    /// Repository root: items land in `ROOT/data/NAME` and `ROOT/TARGET`.
    pub root: PathBuf,
    /// The manifest.
    pub manifest: PathBuf,
    /// Items asked for.
    pub names: Vec<String>,
    /// Only show the state.
    pub list: bool,
    /// Only show the plan.
    pub dry_run: bool,
    /// A folder holding the files (or an unlabeled pool).
    pub from: Option<PathBuf>,
    /// How files are fetched.
    pub fetcher: Fetcher,
}

/// What happened to each item.
#[derive(Debug, Default)]
pub struct Report {
    /// Items already complete.
    pub present: Vec<String>,
    /// Items made in this run.
    pub made: Vec<String>,
    /// Printed lines of `--list` / `--dry-run`.
    pub lines: Vec<String>,
}

/// Runs the command.
pub fn run(args: Args) -> Result<()> {
    let root = args.root.unwrap_or_else(crate::checkout::root);
    let manifest = args
        .manifest
        .unwrap_or_else(|| root.join("data/manifest.toml"));
    let opts = Options {
        manifest,
        names: args.names,
        list: args.list,
        dry_run: args.dry_run,
        from: args.from,
        fetcher: Fetcher::new(HubOptions::from_env(), args.mirror, true)
            .with_body_timeout(std::time::Duration::from_secs(args.request_timeout.max(1))),
        root,
    };
    let report = download(&opts)?;
    for l in &report.lines {
        println!("{l}");
    }
    if !opts.list && !opts.dry_run {
        for p in &report.present {
            println!("{p}: present, nothing to do");
        }
        for m in &report.made {
            println!("{m}: done");
        }
    }
    Ok(())
}

/// Where item `it` lands.
fn destination(root: &Path, it: &Item) -> PathBuf {
    match it.kind {
        ItemKind::Dataset | ItemKind::Unlabeled => root.join("data").join(&it.name),
        ItemKind::Weights => root.join(it.target.as_deref().expect("checked by the manifest")),
    }
}

fn is_present(root: &Path, it: &Item) -> bool {
    let dest = destination(root, it);
    match it.kind {
        ItemKind::Weights => dest.is_file(),
        _ => layout::is_complete(&dest),
    }
}

/// Bytes under `path` (a file or a folder).
fn disk_size(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| disk_size(&e.path()))
            .sum(),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{:.1} KiB", b as f64 / 1024.0),
    }
}

/// Does the work of `opts`; errors name each item that could not be made and why.
pub fn download(opts: &Options) -> Result<Report> {
    let manifest = Manifest::load(&opts.manifest)?;
    let mut report = Report::default();
    // `--list` alone shows every item, the by-hand ones (KD-SOD80K, the authors' checkpoints)
    // and the non-default ones too; a fetch without names takes the defaults.
    let selected = if opts.list && opts.names.is_empty() {
        manifest.items.iter().collect()
    } else {
        manifest.select(&opts.names)?
    };
    let data = opts.root.join("data");
    let cache = data.join("cache");
    let downloads = cache.join("downloads");
    if opts.list {
        report.lines.push(format!(
            "{:<20} {:<10} {:<8} {:>10}  where",
            "item", "kind", "state", "size"
        ));
        for it in &selected {
            let dest = destination(&opts.root, it);
            let state = if is_present(&opts.root, it) {
                "present"
            } else if dest.exists() {
                "partial"
            } else {
                "missing"
            };
            let size = if dest.exists() {
                human(disk_size(&dest))
            } else {
                "-".into()
            };
            report.lines.push(format!(
                "{:<20} {:<10} {:<8} {:>10}  {}{}",
                it.name,
                format!("{:?}", it.kind).to_lowercase(),
                state,
                size,
                dest.display(),
                if it.manual && state != "present" {
                    "  (by hand: --from DIR)"
                } else {
                    ""
                }
            ));
        }
        return Ok(report);
    }
    let mut lock = Lock::load(&data.join("download.lock"))?;
    // Folders a killed run was building (`.NAME.scfnet-PID.tmp`, the PID gone) are garbage;
    // `.part` files are kept. A dry run changes nothing.
    for dir in [&data, &downloads] {
        if dir.is_dir() && !opts.dry_run {
            scfnet_base::files::remove_stale_temporaries(dir)
                .with_context(|| format!("cleaning {}", dir.display()))?;
        }
    }
    let mut failures = Vec::new();
    for it in &selected {
        if is_present(&opts.root, it) {
            report.present.push(it.name.clone());
            continue;
        }
        let dest = destination(&opts.root, it);
        if opts.dry_run {
            report.lines.push(plan_lines(&manifest, opts, it, &dest));
            continue;
        }
        if it.kind != ItemKind::Weights && dest.exists() {
            failures.push(format!(
                "{}: {} exists but is not a finished download; move it away first",
                it.name,
                dest.display()
            ));
            continue;
        }
        let result = if it.kind == ItemKind::Unlabeled {
            match &opts.from {
                Some(from) => layout::install_unlabeled(it, from, &dest).map(|_| ()),
                None => Err(anyhow::anyhow!(
                    "published on Google Drive / Baidu only: download it by hand and run `scfnet download {} --from DIR`",
                    it.name
                )),
            }
        } else {
            make_item(&manifest, opts, it, &dest, &downloads, &cache, &mut lock)
        };
        match result {
            Ok(()) => report.made.push(it.name.clone()),
            Err(e) => failures.push(format!("{}: {e:#}", it.name)),
        }
    }
    let extract = cache.join("extract");
    if extract.exists() {
        let _ = std::fs::remove_dir_all(&extract);
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} items could not be made:\n{}",
            failures.len(),
            selected.len(),
            failures.join("\n")
        );
    }
    Ok(report)
}

/// The `--dry-run` description of item `it`.
fn plan_lines(manifest: &Manifest, opts: &Options, it: &Item, dest: &Path) -> String {
    let mut s = format!("{} -> {}", it.name, dest.display());
    if it.manual && it.sources.is_empty() {
        s.push_str(&format!(
            "\n  by hand only: scfnet download {} --from DIR",
            it.name
        ));
    }
    for (k, src) in it.sources.iter().enumerate() {
        s.push_str(&format!("\n  source {}:", k + 1));
        if let Some(p) = &src.parquet {
            let endpoint = opts.fetcher.endpoint();
            s.push_str(&format!(
                "\n    {} (columns {}, {})\n      {endpoint}/datasets/{}/tree/refs%2Fconvert%2Fparquet/{}/{}",
                p.label(),
                p.image,
                p.mask,
                p.dataset,
                p.config,
                p.split
            ));
        }
        for f in &src.files {
            let spec = manifest.file(f).expect("checked");
            s.push_str(&format!("\n    {f}"));
            if let Some(from) = &opts.from {
                s.push_str(&format!("\n      {}", from.join(f).display()));
            }
            for u in opts.fetcher.urls(spec) {
                s.push_str(&format!("\n      {u}"));
            }
        }
    }
    s
}

/// Makes one item from its first source that works.
fn make_item(
    manifest: &Manifest,
    opts: &Options,
    it: &Item,
    dest: &Path,
    downloads: &Path,
    cache: &Path,
    lock: &mut Lock,
) -> Result<()> {
    let mut errors = Vec::new();
    for (k, src) in it.sources.iter().enumerate() {
        match make_from(manifest, opts, it, src, dest, downloads, cache, lock) {
            Ok(()) => return Ok(()),
            Err(e) => {
                if it.sources.len() > 1 {
                    tracing::warn!("{}: source {} failed: {e:#}", it.name, k + 1);
                }
                errors.push(format!("source {}: {e:#}", k + 1));
            }
        }
    }
    bail!("{}", errors.join("\n  "))
}

#[allow(clippy::too_many_arguments)]
fn make_from(
    manifest: &Manifest,
    opts: &Options,
    it: &Item,
    src: &Source,
    dest: &Path,
    downloads: &Path,
    cache: &Path,
    lock: &mut Lock,
) -> Result<()> {
    if let Some(p) = &src.parquet {
        return make_from_parquet(opts, it, p, dest, cache, lock);
    }
    let mut roots = Vec::new();
    let mut fetched = Vec::new();
    for f in &src.files {
        let spec = manifest.file(f).expect("checked by the manifest");
        if let Some(from) = &opts.from {
            take_from(from, &spec.name, downloads)?;
        }
        let path = opts.fetcher.fetch(spec, downloads, lock)?;
        if spec.archive == Archive::Zip {
            let out = cache.join("extract").join(&spec.name);
            if !out.exists() {
                tracing::info!("extracting {}", path.display());
                archive::extract_zip(&path, &out)?;
            }
            roots.push(out);
        }
        fetched.push(path);
    }
    match it.kind {
        ItemKind::Dataset => {
            let n = layout::install_dataset(it, src, &roots, dest)?;
            tracing::info!("{}: {n} image/mask pairs in {}", it.name, dest.display());
            Ok(())
        }
        ItemKind::Weights => install_weights(it, &fetched[0], dest),
        ItemKind::Unlabeled => bail!("an unlabeled pool comes from --from only"),
    }
}

/// Makes dataset `it` from the hub's parquet shards: rows written under the extraction folder,
/// laid out and counted like an archive's folders, what they hold checked against the lock file's
/// pin (pinned by the first good run).
fn make_from_parquet(
    opts: &Options,
    it: &Item,
    p: &ParquetSource,
    dest: &Path,
    cache: &Path,
    lock: &mut Lock,
) -> Result<()> {
    let out = cache.join("extract").join(format!("{}.parquet", it.name));
    let got = hub_parquet::extract(p, opts.fetcher.hub(), &out)?;
    let label = p.label();
    tracing::info!(
        "{label}: {} rows written ({} bytes of images and masks)",
        got.rows,
        got.bytes
    );
    let pinned = lock.get(&label).map(|pin| pin.sha256.clone());
    if let Some(sha) = &pinned {
        if *sha != got.digest {
            bail!(
                "{label}: the rows' SHA-256 {} differs from the pinned {sha} (data/download.lock: \
                 the source changed the dataset)",
                got.digest
            );
        }
    }
    let folders = Source {
        files: Vec::new(),
        parquet: None,
        images: vec!["image".into()],
        masks: vec!["mask".into()],
    };
    let n = layout::install_dataset(it, &folders, &[got.root], dest)?;
    tracing::info!(
        "{}: {n} image/mask pairs from {label} in {}",
        it.name,
        dest.display()
    );
    if pinned.is_none() {
        tracing::info!(
            "{label}: pinning the rows' SHA-256 {} in the lock file",
            got.digest
        );
        lock.pin(Pin {
            name: label.clone(),
            size: got.bytes,
            sha256: got.digest,
            url: label,
        })?;
    }
    Ok(())
}

/// Moves `from/NAME` into the downloads folder, where it is verified like a download.
fn take_from(from: &Path, name: &str, downloads: &Path) -> Result<()> {
    let src = from.join(name);
    let dst = downloads.join(name);
    if dst.exists() {
        return Ok(());
    }
    if !src.is_file() {
        bail!("{} is not there", src.display());
    }
    std::fs::create_dir_all(downloads)?;
    if std::fs::rename(&src, &dst).is_err() {
        let tmp = scfnet_base::files::temp_path(&dst);
        std::fs::copy(&src, &tmp)
            .with_context(|| format!("copying {} into {}", src.display(), downloads.display()))?;
        std::fs::rename(&tmp, &dst)?;
    }
    Ok(())
}

/// Our names and shapes of MobileNetV3-Large ×`multiplier`.
fn mobilenetv3_names(multiplier: f64) -> Result<Vec<(String, Vec<usize>)>> {
    let (vb, weights) = scfnet_backbones::synthetic_var_builder(DType::F32, &Device::Cpu);
    scfnet_backbones::MobileNetV3::large(vb, multiplier)?;
    Ok(weights.requested())
}

/// Puts a fetched weights file at `dest`, converting it where the manifest says so.
fn install_weights(it: &Item, fetched: &Path, dest: &Path) -> Result<()> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match it.convert.as_deref() {
        Some("paddleclas-mobilenetv3-x0.5") => {
            let report = scfnet_backbones::paddle::convert_file(
                fetched,
                dest,
                &mobilenetv3_names(0.5)?,
                scfnet_backbones::paddle::MOBILENETV3_PADDLECLAS,
                None,
            )?;
            tracing::info!(
                "{}: {} tensors converted to {}",
                it.name,
                report.written,
                dest.display()
            );
            Ok(())
        }
        Some(other) => bail!("unknown conversion {other:?} in the manifest"),
        None => {
            scfnet_base::files::write_with(dest, |tmp| std::fs::copy(fetched, tmp).map(|_| ()))
                .with_context(|| format!("copying {} to {}", fetched.display(), dest.display()))?;
            if dest.extension().is_some_and(|e| e == "safetensors") {
                scfnet_backbones::check_safetensors(dest, &[], &it.name)?;
            }
            Ok(())
        }
    }
}
