//! Turning extracted archives into our layout, `data/NAME/{image,mask,LIST}`, and checking it:
//! the published count of image/mask pairs, every image with its mask. The folder appears at
//! once (built as a temporary, renamed) with a `.complete` marker, so a second run skips it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use scfnet_data::walk::{image_files, utf8_stem};

use super::manifest::{Item, ItemKind, Source};

/// The marker a finished item folder holds.
pub const MARKER: &str = ".complete";

/// Whether `dir` holds a finished item (its marker).
pub fn is_complete(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
}

/// Folders under `roots` whose path ends with `pattern` (`**/a/b`) or equals it (`a/b`),
/// compared case-insensitively.
pub fn find_dirs(roots: &[PathBuf], pattern: &str) -> Vec<PathBuf> {
    let (anywhere, pat) = match pattern.strip_prefix("**/") {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let want: Vec<String> = pat
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut out = Vec::new();
    for root in roots {
        let mut stack = vec![(root.clone(), Vec::<String>::new())];
        while let Some((dir, rel)) = stack.pop() {
            let matches = if anywhere {
                rel.len() >= want.len() && rel[rel.len() - want.len()..] == want[..]
            } else {
                rel == want
            };
            if matches {
                out.push(dir.clone());
            }
            if rel.len() >= 12 {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                // Real folders only: an archive's links were refused, and none are followed here.
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let mut r = rel.clone();
                    r.push(e.file_name().to_string_lossy().to_lowercase());
                    stack.push((e.path(), r));
                }
            }
        }
    }
    out.sort();
    out
}

/// The one folder the first matching pattern names.
fn pick_dir(roots: &[PathBuf], patterns: &[String], what: &str) -> Result<PathBuf> {
    for p in patterns {
        let found = find_dirs(roots, p);
        match found.len() {
            0 => continue,
            1 => return Ok(found.into_iter().next().expect("one")),
            _ => bail!(
                "the {what} pattern {p:?} matches {} folders: {}",
                found.len(),
                found
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    let top: Vec<String> = roots
        .iter()
        .flat_map(|r| std::fs::read_dir(r).into_iter().flatten().flatten())
        .map(|e| e.path().display().to_string())
        .collect();
    bail!(
        "no folder matches the {what} patterns {patterns:?}; the archives hold: {}",
        top.join(", ")
    )
}

/// Image files of `dir` (not below it) by stem; two files with one stem are an error.
fn by_stem(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let (files, skipped) = image_files(dir, false)?;
    for line in skipped.lines() {
        tracing::warn!("{line}");
    }
    let mut out = BTreeMap::new();
    for f in files {
        let stem = utf8_stem(&f)?;
        if let Some(prev) = out.insert(stem.clone(), f.clone()) {
            bail!(
                "{} and {} share the name {stem:?}",
                prev.display(),
                f.display()
            );
        }
    }
    Ok(out)
}

/// A hard link to `from` at `to`, or a copy where links are impossible.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// A fresh, empty temporary folder next to `dest` (an earlier one of this process removed).
pub fn fresh_temp(dest: &Path) -> Result<PathBuf> {
    let tmp = scfnet_base::files::temp_path(dest);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    Ok(tmp)
}

/// Moves the finished temporary `tmp` to `dest` with its marker.
fn finish(tmp: &Path, dest: &Path, marker: &str) -> Result<()> {
    std::fs::write(tmp.join(MARKER), marker)?;
    if dest.exists() {
        bail!(
            "{} exists but is not a finished download (no {MARKER}); move it away first",
            dest.display()
        );
    }
    std::fs::rename(tmp, dest).with_context(|| format!("renaming into {}", dest.display()))?;
    if let Some(parent) = dest.parent() {
        scfnet_base::files::sync_dir(parent).ok();
    }
    Ok(())
}

/// Builds dataset `item` at `dest` from the extracted `roots` of `source`; returns the pair count.
pub fn install_dataset(
    item: &Item,
    source: &Source,
    roots: &[PathBuf],
    dest: &Path,
) -> Result<usize> {
    let images_dir = pick_dir(roots, &source.images, "image")?;
    let masks_dir = pick_dir(roots, &source.masks, "mask")?;
    let images = by_stem(&images_dir)?;
    let masks = by_stem(&masks_dir)?;
    let missing: Vec<&String> = images.keys().filter(|s| !masks.contains_key(*s)).collect();
    if !missing.is_empty() {
        bail!(
            "{} of {} images in {} have no mask in {}: {}{}",
            missing.len(),
            images.len(),
            images_dir.display(),
            masks_dir.display(),
            missing
                .iter()
                .take(10)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if missing.len() > 10 { ", …" } else { "" }
        );
    }
    let orphans = masks.keys().filter(|s| !images.contains_key(*s)).count();
    if orphans > 0 {
        tracing::warn!(
            "{}: {orphans} masks in {} have no image; left out",
            item.name,
            masks_dir.display()
        );
    }
    let count = item.count.expect("checked by the manifest");
    if images.len() != count {
        bail!(
            "{} holds {} image/mask pairs; {} are published",
            images_dir.display(),
            images.len(),
            count
        );
    }
    let tmp = fresh_temp(dest)?;
    std::fs::create_dir_all(tmp.join("image"))?;
    std::fs::create_dir_all(tmp.join("mask"))?;
    for (stem, path) in &images {
        let name = path.file_name().expect("a file");
        link_or_copy(path, &tmp.join("image").join(name))?;
        let mask = &masks[stem];
        let is_png = mask
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        let out = tmp.join("mask").join(format!("{stem}.png"));
        if is_png {
            link_or_copy(mask, &out)?;
        } else {
            // A few DUTS-TR masks ship as JPEG: stored as grey PNG like the rest.
            let grey = scfnet_data::decode_image(mask)
                .with_context(|| format!("{}: cannot decode this mask", mask.display()))?
                .to_luma8();
            grey.save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
        }
    }
    let list: String = images.keys().map(|s| format!("{s}\n")).collect();
    std::fs::write(tmp.join(item.list.as_deref().expect("checked")), list)?;
    finish(&tmp, dest, &format!("{} {}\n", item.name, images.len()))?;
    Ok(images.len())
}

/// Moves the images of folder `from` (searched recursively) into `dest/image` for the unlabeled
/// pool `item`, after checking their number; returns it.
pub fn install_unlabeled(item: &Item, from: &Path, dest: &Path) -> Result<usize> {
    debug_assert_eq!(item.kind, ItemKind::Unlabeled);
    let (files, skipped) = image_files(from, true)?;
    for line in skipped.lines() {
        tracing::warn!("{line}");
    }
    let count = item.count.expect("checked by the manifest");
    if files.len() != count {
        bail!(
            "{} holds {} images; {} has {count}",
            from.display(),
            files.len(),
            item.name
        );
    }
    let tmp = fresh_temp(dest)?;
    let image_dir = tmp.join("image");
    std::fs::create_dir_all(&image_dir)?;
    let mut seen = std::collections::HashSet::new();
    for f in &files {
        let name = f.file_name().expect("a file").to_owned();
        if !seen.insert(name.clone()) {
            bail!(
                "{}: two images are called {}; the pool must have unique names",
                from.display(),
                name.to_string_lossy()
            );
        }
    }
    let real_from = from
        .canonicalize()
        .with_context(|| format!("resolving {}", from.display()))?;
    for f in &files {
        let to = image_dir.join(f.file_name().expect("a file"));
        // Only what really lies inside `from` is moved: a file reached through a link to a
        // folder elsewhere, or a link itself, is linked or copied and its original left alone.
        let inside = std::fs::symlink_metadata(f).is_ok_and(|m| !m.file_type().is_symlink())
            && f.canonicalize().is_ok_and(|r| r.starts_with(&real_from));
        if !inside || std::fs::rename(f, &to).is_err() {
            link_or_copy(f, &to)?;
        }
    }
    finish(&tmp, dest, &format!("{} {}\n", item.name, files.len()))?;
    Ok(files.len())
}
