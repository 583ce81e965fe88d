//! Listing image files and pairing predictions with GT masks by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use scfnet_data::walk::image_files;
use scfnet_data::IMAGE_EXTENSIONS;

/// Prefix/suffix rules that turn a file stem into the key used for matching.
#[derive(Clone, Debug, Default)]
pub struct NameRule {
    /// Removed from the start of the stem when present.
    pub prefix: String,
    /// Removed from the end of the stem when present.
    pub suffix: String,
}

impl NameRule {
    /// The matching key of a file stem.
    pub fn key<'a>(&self, stem: &'a str) -> &'a str {
        let s = stem.strip_prefix(self.prefix.as_str()).unwrap_or(stem);
        s.strip_suffix(self.suffix.as_str()).unwrap_or(s)
    }
}

/// The image files of a folder (not recursive), keyed by their matching key, in name order.
pub fn list_images(dir: &Path, rule: &NameRule) -> Result<BTreeMap<String, PathBuf>> {
    if !dir.is_dir() {
        bail!("{}: folder not found", dir.display());
    }
    let mut out: BTreeMap<String, PathBuf> = BTreeMap::new();
    let (files, skipped) = image_files(dir, false)?;
    for line in skipped.lines() {
        tracing::warn!("{line}");
    }
    for path in files {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            bail!("{}: file name is not valid UTF-8", path.display());
        };
        let key = rule.key(stem).to_owned();
        if let Some(previous) = out.insert(key.clone(), path.clone()) {
            bail!(
                "{} and {} both match the name {key:?}; keep one of them",
                previous.display(),
                path.display()
            );
        }
    }
    if out.is_empty() {
        bail!(
            "{}: no images found (looked for {})",
            dir.display(),
            IMAGE_EXTENSIONS.join(", ")
        );
    }
    Ok(out)
}

/// The outcome of pairing one prediction folder with one GT folder.
#[derive(Debug, Default)]
pub struct Matched {
    /// `(name, prediction, gt)` in name order.
    pub pairs: Vec<(String, PathBuf, PathBuf)>,
    /// GT files with no prediction.
    pub missing_pred: Vec<PathBuf>,
    /// Prediction files with no GT.
    pub missing_gt: Vec<PathBuf>,
}

/// Pairs the files of the two folders by key.
pub fn match_folders(
    pred_dir: &Path,
    gt_dir: &Path,
    pred_rule: &NameRule,
    gt_rule: &NameRule,
) -> Result<Matched> {
    let preds = list_images(pred_dir, pred_rule)?;
    let gts = list_images(gt_dir, gt_rule)?;
    let mut m = Matched::default();
    for (key, gt) in &gts {
        match preds.get(key) {
            Some(pred) => m.pairs.push((key.clone(), pred.clone(), gt.clone())),
            None => m.missing_pred.push(gt.clone()),
        }
    }
    m.missing_gt = preds
        .iter()
        .filter(|(k, _)| !gts.contains_key(*k))
        .map(|(_, p)| p.clone())
        .collect();
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_suffix_are_stripped() {
        let rule = NameRule {
            prefix: "sal_".into(),
            suffix: "_pred".into(),
        };
        assert_eq!(rule.key("sal_0001_pred"), "0001");
        assert_eq!(rule.key("0002"), "0002");
    }

    #[test]
    fn folders_pair_by_stem() {
        let dir = tempfile::tempdir().unwrap();
        let (p, g) = (dir.path().join("p"), dir.path().join("g"));
        std::fs::create_dir_all(&p).unwrap();
        std::fs::create_dir_all(&g).unwrap();
        for f in ["a.png", "b.png", "extra.png", "notes.txt"] {
            std::fs::write(p.join(f), b"x").unwrap();
        }
        for f in ["a.png", "b.jpg", "c.png"] {
            std::fs::write(g.join(f), b"x").unwrap();
        }
        let m = match_folders(&p, &g, &NameRule::default(), &NameRule::default()).unwrap();
        let names: Vec<_> = m.pairs.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(m.missing_pred, [g.join("c.png")]);
        assert_eq!(m.missing_gt, [p.join("extra.png")]);
    }

    #[test]
    fn empty_and_absent_folders_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = list_images(dir.path(), &NameRule::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no images found"), "{err}");
        let err = list_images(&dir.path().join("nope"), &NameRule::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("folder not found"), "{err}");
    }
}
