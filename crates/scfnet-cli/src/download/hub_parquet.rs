//! A dataset published on the Hugging Face hub as parquet: fetched with candle-datasets' hub
//! route (`candle_datasets::hub::from_hub`, the hub's `refs/convert/parquet` branch, kept in the
//! hub cache), its rows written out as image and mask files for [`super::layout`] to lay out and
//! check like any extracted archive.
//!
//! `from_hub` returns one reader per shard of every configuration and split, in the order of the
//! repository listing; the listing (asked once more here) names them, so that the rows of one
//! `CONFIG/SPLIT` are taken. A second item from the same repository (DUTS-TR and DUTS-TE) finds
//! the shards in the hub cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_datasets::hub::FileReader;
use hf_hub_v1::{HFClientBuilder, HFClientSync};
use parquet::file::reader::SerializedFileReader;
use parquet::record::{Field, Row};
use scfnet_backbones::HubOptions;
use sha2::{Digest, Sha256};

use super::fetch::hex;
use super::manifest::ParquetSource;

/// The branch where the hub keeps its parquet conversion of a dataset repository.
const PARQUET_REVISION: &str = "refs/convert/parquet";

/// The rows of one split, written out.
#[derive(Debug)]
pub struct Extracted {
    /// Holds `image/` and `mask/`.
    pub root: PathBuf,
    /// Image/mask pairs written.
    pub rows: usize,
    /// Bytes of the images and masks.
    pub bytes: u64,
    /// SHA-256 (hex) of the sorted lines `NAME IMAGE-SHA256 MASK-SHA256`: what the rows hold,
    /// whatever the shards' encoding; pinned in the lock file like a download.
    pub digest: String,
}

/// The hub client `hub` describes (endpoint, cache folder; the token from the environment).
fn client(hub: &HubOptions) -> Result<HFClientSync> {
    let mut b = HFClientBuilder::new();
    if let Some(e) = &hub.endpoint {
        b = b.endpoint(e.clone());
    }
    if let Some(c) = &hub.cache_dir {
        b = b.cache_dir(c.clone());
    }
    b.build_sync()
        .context("starting the Hugging Face hub client")
}

/// The shard names (`CONFIG/SPLIT/NNNN.parquet`) of `dataset`'s conversion, in listing order.
fn shard_names(client: &HFClientSync, dataset: &str) -> Result<Vec<String>> {
    let (owner, name) = dataset.split_once('/').expect("checked by the manifest");
    let info = client
        .dataset(owner, name)
        .info()
        .revision(PARQUET_REVISION)
        .send()
        .with_context(|| format!("listing {dataset} at {PARQUET_REVISION}"))?;
    Ok(info
        .siblings
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.rfilename)
        .filter(|n| n.ends_with(".parquet"))
        .collect())
}

/// Whether shard `name` belongs to `config`/`split`.
fn in_split(name: &str, config: &str, split: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() == 3 && parts[0] == config && parts[1] == split
}

/// The `CONFIG/SPLIT` pairs the shards hold, for the error that names what is there.
fn splits_of(names: &[String]) -> String {
    let mut s: Vec<String> = names
        .iter()
        .filter_map(|n| n.rsplit_once('/').map(|(dir, _)| dir.to_owned()))
        .collect();
    s.sort();
    s.dedup();
    if s.is_empty() {
        "no parquet shards".into()
    } else {
        s.join(", ")
    }
}

/// Fetches `src` (listing, shards through `from_hub`) and writes its rows under `out`
/// (`out/image/NAME.EXT`, `out/mask/NAME.EXT`; an earlier `out` is replaced).
pub fn extract(src: &ParquetSource, hub: &HubOptions, out: &Path) -> Result<Extracted> {
    if hub.offline {
        bail!(
            "{}: the hub's listing is needed and HF_HUB_OFFLINE is set",
            src.label()
        );
    }
    let client = client(hub)?;
    let names = shard_names(&client, &src.dataset)?;
    tracing::info!(
        "{}: {} parquet shards in the repository",
        src.dataset,
        names.len()
    );
    // A malformed shard must be an error, not a crash of the whole download: the parquet reader
    // is guarded against panics on hostile files.
    let readers = guarded(|| {
        candle_datasets::hub::from_hub(&client, src.dataset.clone())
            .map_err(|e| anyhow::anyhow!("{e}"))
    })
    .with_context(|| format!("fetching the parquet shards of {}", src.dataset))?;
    if readers.len() != names.len() {
        bail!(
            "{}: the listing names {} shards but {} were fetched; the repository changed \
             meanwhile, try again",
            src.dataset,
            names.len(),
            readers.len()
        );
    }
    let mut shards: Vec<(String, SerializedFileReader<std::fs::File>)> = names
        .iter()
        .cloned()
        .zip(readers)
        .filter(|(n, _)| in_split(n, &src.config, &src.split))
        .collect();
    if shards.is_empty() {
        bail!(
            "{}: no shards of {}/{}; the repository holds {}",
            src.dataset,
            src.config,
            src.split,
            splits_of(&names)
        );
    }
    shards.sort_by(|a, b| a.0.cmp(&b.0));
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    }
    for sub in ["image", "mask"] {
        std::fs::create_dir_all(out.join(sub))
            .with_context(|| format!("creating {}", out.join(sub).display()))?;
    }
    let mut writer = RowWriter {
        out: out.to_owned(),
        lines: BTreeMap::new(),
        bytes: 0,
        index: 0,
    };
    for (name, reader) in &shards {
        let rows = reader.metadata().file_metadata().num_rows();
        tracing::info!("{}: {name}: {rows} rows", src.dataset);
        guarded(|| {
            let iter = reader.get_row_iter(None)?;
            for (k, row) in iter.enumerate() {
                let where_ = || format!("row {k}");
                let row = row.with_context(where_)?;
                writer.write(&row, src).with_context(where_)?;
            }
            Ok(())
        })
        .with_context(|| format!("{}: {name}", src.dataset))?;
    }
    let mut hasher = Sha256::new();
    for (name, line) in &writer.lines {
        hasher.update(format!("{name} {line}\n").as_bytes());
    }
    Ok(Extracted {
        root: out.to_owned(),
        rows: writer.lines.len(),
        bytes: writer.bytes,
        digest: hex(&hasher.finalize()),
    })
}

/// `f()`, with a panic inside it (a parquet reader meeting a malformed file) turned into an error.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown".into());
            bail!("the parquet reader failed on a malformed file ({what})")
        }
    }
}

/// Writes rows as files; remembers each row's digest line by name.
struct RowWriter {
    out: PathBuf,
    lines: BTreeMap<String, String>,
    bytes: u64,
    index: usize,
}

impl RowWriter {
    fn write(&mut self, row: &Row, src: &ParquetSource) -> Result<()> {
        let image = column(row, &src.image)?;
        let mask = column(row, &src.mask)?;
        let index = self.index;
        self.index += 1;
        // The image's own file name where the row has one (the benchmarks' names), else its index.
        let name = match &image.path {
            Some(p) => stem_of(p)?,
            None => format!("{index:06}"),
        };
        if self.lines.contains_key(&name) {
            bail!("a second image named {name:?}");
        }
        let mut line = Vec::new();
        for (sub, cell) in [("image", &image), ("mask", &mask)] {
            let ext = extension(&cell.bytes).with_context(|| format!("the {sub}"))?;
            let path = self.out.join(sub).join(format!("{name}.{ext}"));
            std::fs::write(&path, &cell.bytes)
                .with_context(|| format!("writing {}", path.display()))?;
            self.bytes += cell.bytes.len() as u64;
            line.push(hex(&Sha256::digest(&cell.bytes)));
        }
        self.lines.insert(name, line.join(" "));
        Ok(())
    }
}

/// One image cell: its bytes and, where the row has it, the original file name.
struct Cell {
    bytes: Vec<u8>,
    path: Option<String>,
}

/// The cell of column `name`: the `datasets` library's `Image` struct (`bytes`, `path`) or plain
/// bytes.
fn column(row: &Row, name: &str) -> Result<Cell> {
    let Some((_, field)) = row.get_column_iter().find(|(n, _)| n.as_str() == name) else {
        let have: Vec<&str> = row.get_column_iter().map(|(n, _)| n.as_str()).collect();
        bail!("no column {name:?}; the rows have {}", have.join(", "));
    };
    match field {
        Field::Bytes(b) => Ok(Cell {
            bytes: b.data().to_vec(),
            path: None,
        }),
        Field::Group(g) => {
            let mut bytes = None;
            let mut path = None;
            for (n, f) in g.get_column_iter() {
                match (n.as_str(), f) {
                    ("bytes", Field::Bytes(b)) => bytes = Some(b.data().to_vec()),
                    ("path", Field::Str(s)) => path = Some(s.clone()),
                    _ => {}
                }
            }
            match bytes {
                Some(bytes) => Ok(Cell { bytes, path }),
                None => bail!(
                    "column {name:?} holds no image bytes{} (only images stored in the \
                     parquet file are read)",
                    path.map(|p| format!(" (it names {p:?})"))
                        .unwrap_or_default()
                ),
            }
        }
        Field::Null => bail!("column {name:?} is empty"),
        other => {
            bail!("column {name:?} is not an image (bytes, or a struct of bytes and path): {other}")
        }
    }
}

/// The file stem of a row's `path` (its last component), refused where it could not name a file
/// of ours.
fn stem_of(path: &str) -> Result<String> {
    let last = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let stem = match last.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => last,
    };
    if stem.is_empty() || stem.starts_with('.') || stem.contains('\0') {
        bail!("the image path {path:?} does not give a file name");
    }
    Ok(stem.to_owned())
}

/// The file extension of an encoded image, from its first bytes.
fn extension(bytes: &[u8]) -> Result<&'static str> {
    use image::ImageFormat;
    match image::guess_format(bytes) {
        Ok(ImageFormat::Png) => Ok("png"),
        Ok(ImageFormat::Jpeg) => Ok("jpg"),
        Ok(ImageFormat::Bmp) => Ok("bmp"),
        Ok(ImageFormat::WebP) => Ok("webp"),
        Ok(other) => bail!("{other:?} images are not read (PNG, JPEG, BMP, WebP are)"),
        Err(_) => bail!(
            "{} bytes that are no image format we know (PNG, JPEG, BMP, WebP)",
            bytes.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_taken_by_config_and_split() {
        assert!(in_split("default/test/0000.parquet", "default", "test"));
        assert!(!in_split("default/train/0000.parquet", "default", "test"));
        assert!(!in_split("other/test/0000.parquet", "default", "test"));
        assert!(!in_split(
            "default/test/sub/0000.parquet",
            "default",
            "test"
        ));
        let names = vec![
            "default/train/0000.parquet".to_owned(),
            "default/train/0001.parquet".to_owned(),
            "default/test/0000.parquet".to_owned(),
        ];
        assert_eq!(splits_of(&names), "default/test, default/train");
        assert_eq!(splits_of(&[]), "no parquet shards");
    }

    #[test]
    fn names_come_from_the_last_component_of_the_path() {
        assert_eq!(
            stem_of("ILSVRC2012_test_00000003.jpg").unwrap(),
            "ILSVRC2012_test_00000003"
        );
        assert_eq!(stem_of("DUTS-TE/Imgs/sun_a.b.jpg").unwrap(), "sun_a.b");
        assert_eq!(stem_of("C:\\x\\y.png").unwrap(), "y");
        assert_eq!(stem_of("noext").unwrap(), "noext");
        for bad in ["", "dir/", "a/.hidden.png"] {
            assert!(stem_of(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn extensions_come_from_the_bytes() {
        assert_eq!(extension(b"\x89PNG\r\n\x1a\n....").unwrap(), "png");
        assert_eq!(extension(b"\xff\xd8\xff\xe0....").unwrap(), "jpg");
        let e = extension(b"hello").unwrap_err().to_string();
        assert!(e.contains("5 bytes"), "{e}");
    }
}
