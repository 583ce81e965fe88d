//! The download manifest (`data/manifest.toml`): files to fetch and the items they make.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The whole manifest.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Files to fetch.
    #[serde(rename = "file", default)]
    pub files: Vec<FileSpec>,
    /// What lands in the repository.
    #[serde(rename = "item", default)]
    pub items: Vec<Item>,
}

/// How a file is unpacked.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Archive {
    /// A zip archive, extracted into its own folder.
    Zip,
    /// Used as it is.
    None,
}

/// One file to fetch.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Local name under `data/cache/downloads/`.
    pub name: String,
    /// Where from, best first (`https://`, `http://`, `hf://`, `gdrive://`).
    pub urls: Vec<String>,
    /// Size in bytes, where published.
    pub size: Option<u64>,
    /// SHA-256 (hex), where published.
    pub sha256: Option<String>,
    /// MD5 (hex), where that is all the source publishes.
    pub md5: Option<String>,
    /// How it is unpacked.
    pub archive: Archive,
}

/// What an item is.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    /// Images with masks and a list file: `data/NAME/{image,mask,LIST}`.
    Dataset,
    /// Images only: `data/NAME/image`.
    Unlabeled,
    /// One weights file at `target`.
    Weights,
}

/// A dataset published on the Hugging Face hub as parquet: the hub's own conversion of a dataset
/// repository (its `refs/convert/parquet` branch, shards `CONFIG/SPLIT/NNNN.parquet`), fetched
/// through candle-datasets' hub route. Each row holds one image and its mask, as the `datasets`
/// library's `Image` feature (a struct of `bytes` and `path`) or as plain bytes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSource {
    /// The dataset repository, `ORG/NAME`.
    pub dataset: String,
    /// The configuration (the first folder of the shards).
    #[serde(default = "default_config")]
    pub config: String,
    /// The split (the shards' folder below the configuration), e.g. `train` or `test`.
    pub split: String,
    /// The column of the images.
    #[serde(default = "image_column")]
    pub image: String,
    /// The column of the masks.
    #[serde(default = "mask_column")]
    pub mask: String,
}

fn default_config() -> String {
    "default".into()
}

fn image_column() -> String {
    "image".into()
}

fn mask_column() -> String {
    "mask".into()
}

impl ParquetSource {
    /// A name for messages and the lock file: `hf-parquet://ORG/NAME/CONFIG/SPLIT`.
    pub fn label(&self) -> String {
        format!(
            "hf-parquet://{}/{}/{}",
            self.dataset, self.config, self.split
        )
    }
}

/// One alternative way to make an item.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Names of [`FileSpec`]s it needs.
    #[serde(default)]
    pub files: Vec<String>,
    /// Instead of files: a dataset on the hub as parquet (datasets only).
    pub parquet: Option<ParquetSource>,
    /// Folder patterns of the images (datasets).
    #[serde(default)]
    pub images: Vec<String>,
    /// Folder patterns of the masks (datasets).
    #[serde(default)]
    pub masks: Vec<String>,
}

/// Something that lands in the repository.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Name (the folder under `data/` for datasets).
    pub name: String,
    /// What it is.
    pub kind: ItemKind,
    /// The list file of a dataset (`train.txt` or `test.txt`).
    pub list: Option<String>,
    /// Published number of images.
    pub count: Option<usize>,
    /// Where weights land, relative to the repository root.
    pub target: Option<String>,
    /// Conversion on arrival (`paddleclas-mobilenetv3-x0.5`).
    pub convert: Option<String>,
    /// Only by hand (`--from DIR`).
    #[serde(default)]
    pub manual: bool,
    /// Fetched when no names are given.
    #[serde(default = "yes")]
    pub default: bool,
    /// Alternatives, best first.
    #[serde(default)]
    pub sources: Vec<Source>,
}

fn yes() -> bool {
    true
}

/// Whether `name` is one plain path component (no `/`, `\`, leading `.`, not empty).
fn plain(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.')
}

/// A parquet source stands alone (no files, no folder patterns: its rows are laid out by us) and
/// names its repository and split plainly.
fn check_parquet(item: &str, kind: ItemKind, s: &Source, p: &ParquetSource) -> Result<()> {
    if kind != ItemKind::Dataset {
        bail!("item {item}: a parquet source makes datasets only");
    }
    if !s.files.is_empty() || !s.images.is_empty() || !s.masks.is_empty() {
        bail!("item {item}: a parquet source takes no `files`, `images` or `masks`");
    }
    let parts: Vec<&str> = p.dataset.split('/').collect();
    if parts.len() != 2 || !parts.iter().all(|x| plain(x)) {
        bail!(
            "item {item}: parquet dataset {:?} must be ORG/NAME",
            p.dataset
        );
    }
    for (what, v) in [
        ("config", &p.config),
        ("split", &p.split),
        ("image", &p.image),
        ("mask", &p.mask),
    ] {
        if !plain(v) {
            bail!("item {item}: parquet {what} {v:?} must be a plain name");
        }
    }
    if p.image == p.mask {
        bail!(
            "item {item}: the image and mask columns are both {:?}",
            p.image
        );
    }
    Ok(())
}

/// Whether `path` is relative and made of plain names only (no `..`, `.`, root or drive), so
/// that joined to a folder it stays inside that folder.
fn confined(path: &str) -> bool {
    use std::path::Component;
    !path.is_empty()
        && !path.contains('\\')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

impl Manifest {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = scfnet_base::read::read_text(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let m: Self =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        m.check()
            .with_context(|| format!("checking {}", path.display()))?;
        Ok(m)
    }

    /// Every name unique, every file named by a source declared, every field an item's kind needs
    /// present.
    pub fn check(&self) -> Result<()> {
        let mut files = BTreeSet::new();
        for f in &self.files {
            if !files.insert(f.name.as_str()) {
                bail!("file {} is declared twice", f.name);
            }
            if f.urls.is_empty() {
                bail!("file {} has no URL", f.name);
            }
            if f.name.contains(['/', '\\']) || f.name.starts_with('.') {
                bail!("file name {:?} must be a plain name", f.name);
            }
        }
        let mut items = BTreeSet::new();
        for it in &self.items {
            if !items.insert(it.name.as_str()) {
                bail!("item {} is declared twice", it.name);
            }
            if it.name.contains(['/', '\\']) || it.name.starts_with('.') {
                bail!("item name {:?} must be a plain name", it.name);
            }
            for s in &it.sources {
                if let Some(p) = &s.parquet {
                    check_parquet(&it.name, it.kind, s, p)?;
                    continue;
                }
                if s.files.is_empty() {
                    bail!("item {}: a source needs `files` or `parquet`", it.name);
                }
                for f in &s.files {
                    if !files.contains(f.as_str()) {
                        bail!("item {} needs file {f}, which is not declared", it.name);
                    }
                }
                if it.kind == ItemKind::Dataset && (s.images.is_empty() || s.masks.is_empty()) {
                    bail!(
                        "item {}: a dataset source needs image and mask patterns",
                        it.name
                    );
                }
                if it.kind == ItemKind::Weights && s.files.len() != 1 {
                    bail!("item {}: a weights source is one file", it.name);
                }
            }
            match it.kind {
                ItemKind::Dataset if it.list.is_none() || it.count.is_none() => {
                    bail!("dataset {} needs `list` and `count`", it.name)
                }
                ItemKind::Unlabeled if it.count.is_none() => {
                    bail!("unlabeled set {} needs `count`", it.name)
                }
                ItemKind::Weights if it.target.is_none() => {
                    bail!("weights {} need a `target`", it.name)
                }
                _ => {}
            }
            if it.sources.is_empty() && !it.manual {
                bail!("item {} has no source and is not manual", it.name);
            }
            // What an item writes stays inside the repository: a list file beside the data set,
            // a weights target below the root.
            if let Some(list) = &it.list {
                if list.contains(['/', '\\']) || list.starts_with('.') || list.is_empty() {
                    bail!("item {}: list {list:?} must be a plain file name", it.name);
                }
            }
            if let Some(target) = &it.target {
                if !confined(target) {
                    bail!(
                        "item {}: target {target:?} must be a relative path inside the repository \
                         (no `..`, not absolute)",
                        it.name
                    );
                }
            }
        }
        Ok(())
    }

    /// The file called `name`.
    pub fn file(&self, name: &str) -> Option<&FileSpec> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The items `names` select: item names, or `datasets`, `weights`, `all`; none: the defaults.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Item>> {
        if names.is_empty() {
            return Ok(self.items.iter().filter(|i| i.default).collect());
        }
        let mut out: Vec<&Item> = Vec::new();
        for n in names {
            let chosen: Vec<&Item> = match n.as_str() {
                "all" => self.items.iter().collect(),
                "datasets" => self
                    .items
                    .iter()
                    .filter(|i| i.kind == ItemKind::Dataset)
                    .collect(),
                "weights" => self
                    .items
                    .iter()
                    .filter(|i| i.kind == ItemKind::Weights && i.default)
                    .collect(),
                _ => match self.items.iter().find(|i| i.name.eq_ignore_ascii_case(n)) {
                    Some(i) => vec![i],
                    None => bail!(
                        "no item {n:?} in the manifest; known: {}, or datasets, weights, all",
                        self.items
                            .iter()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            };
            for c in chosen {
                if !out.iter().any(|o| o.name == c.name) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_manifest_is_valid() {
        let path = crate::checkout::root().join("data/manifest.toml");
        let m = Manifest::load(&path).unwrap();
        let datasets: Vec<&str> = m
            .select(&["datasets".into()])
            .unwrap()
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(
            datasets,
            [
                "DUTS-TR",
                "DUTS-TE",
                "ECSSD",
                "HKU-IS",
                "DUT-OMRON",
                "PASCAL-S"
            ]
        );
        let counts: usize = m
            .select(&["datasets".into()])
            .unwrap()
            .iter()
            .map(|i| i.count.unwrap())
            .sum();
        assert_eq!(counts, 10553 + 5019 + 1000 + 4447 + 5168 + 850);
        assert!(m.select(&["kd-sod80k".into()]).unwrap()[0].manual);
        assert!(m.select(&["nonsense".into()]).is_err());
    }

    #[test]
    fn undeclared_files_are_refused() {
        let text = r#"
[[item]]
name = "X"
kind = "weights"
target = "weights/x.safetensors"
[[item.sources]]
files = ["missing.bin"]
"#;
        let m: Manifest = toml::from_str(text).unwrap();
        let e = m.check().unwrap_err().to_string();
        assert!(e.contains("missing.bin"), "{e}");
    }

    #[test]
    fn what_an_item_writes_stays_inside_the_repository() {
        let item = |field: &str| {
            format!(
                "[[file]]\nname = \"w.bin\"\nurls = [\"https://x/w.bin\"]\narchive = \"none\"\n\
                 [[item]]\nname = \"X\"\n{field}\n[[item.sources]]\nfiles = [\"w.bin\"]\n"
            )
        };
        for target in [
            "../outside.safetensors",
            "/etc/x",
            "weights/../../x",
            "",
            "./x",
        ] {
            let text = item(&format!("kind = \"weights\"\ntarget = {target:?}"));
            let m: Manifest = toml::from_str(&text).unwrap();
            let e = m.check().unwrap_err().to_string();
            assert!(
                e.contains("must be a relative path inside"),
                "{target}: {e}"
            );
        }
        let ok = item("kind = \"weights\"\ntarget = \"weights/x.safetensors\"");
        toml::from_str::<Manifest>(&ok).unwrap().check().unwrap();
        for list in ["../../train.txt", "/tmp/list.txt", "sub/train.txt"] {
            let text = format!(
                "[[item]]\nname = \"D\"\nkind = \"dataset\"\nlist = {list:?}\ncount = 1\nmanual = true\n"
            );
            let m: Manifest = toml::from_str(&text).unwrap();
            let e = m.check().unwrap_err().to_string();
            assert!(e.contains("must be a plain file name"), "{list}: {e}");
        }
    }
}
