//! Zip extraction that never writes outside its target: absolute paths, `..` and symbolic links
//! refuse the whole archive before anything is written, and so do two entries of one name. It
//! never writes more than a budget either: [`MAX_EXPANSION`] times the archive's size (at least
//! [`MIN_BUDGET`]), counted over the declared sizes of all entries, a nested zip's included,
//! before anything of that level is written, and no entry yields more than it declares; at most
//! [`MAX_ENTRIES`] entries. macOS metadata (`__MACOSX/`, `._*`, `.DS_Store`) is skipped. The
//! result appears at once (built in a temporary folder, renamed).

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Whether `name` is macOS metadata that archives made on a Mac carry.
fn is_mac_metadata(name: &str) -> bool {
    name.starts_with("__MACOSX/")
        || name.contains("/__MACOSX/")
        || name
            .rsplit('/')
            .next()
            .is_some_and(|b| b.starts_with("._") || b == ".DS_Store")
}

/// The safe relative path of entry `name`, or why it is refused.
fn safe_relative(name: &str) -> std::result::Result<PathBuf, &'static str> {
    if name.starts_with('/') || name.starts_with('\\') || name.contains(':') {
        return Err("an absolute path");
    }
    let p = Path::new(name);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => return Err("a path with .."),
            Component::RootDir | Component::Prefix(_) => return Err("an absolute path"),
        }
    }
    if name.contains('\\') {
        return Err("a path with backslashes");
    }
    Ok(out)
}

/// How many times its own size an archive may unpack to. The data sets are JPEG and PNG
/// files, which do not compress further: their zips unpack to about their own size.
pub const MAX_EXPANSION: u64 = 20;

/// What any archive may unpack to, however small (256 MiB).
pub const MIN_BUDGET: u64 = 256 << 20;

/// The most entries an archive may have (DUTS-TR has about 21 000).
pub const MAX_ENTRIES: usize = 1_000_000;

/// Extracts the zip `archive` into `dest` (which must not exist yet); returns the number of
/// files written. A zip that holds one zip and nothing else is unpacked in turn. At most
/// [`MAX_EXPANSION`] times the archive's size (at least [`MIN_BUDGET`]) is written, all levels
/// together.
pub fn extract_zip(archive: &Path, dest: &Path) -> Result<usize> {
    let len = std::fs::metadata(archive)
        .with_context(|| format!("opening {}", archive.display()))?
        .len();
    extract_zip_within(
        archive,
        dest,
        len.saturating_mul(MAX_EXPANSION).max(MIN_BUDGET),
    )
}

/// [`extract_zip`] with a budget of `budget` bytes.
fn extract_zip_within(archive: &Path, dest: &Path, mut budget: u64) -> Result<usize> {
    let tmp = super::layout::fresh_temp(dest)?;
    let result = extract_into(archive, &tmp, &mut budget).and_then(|n| {
        let inner = lone_zip(&tmp)?;
        match inner {
            Some(z) => {
                let nested = tmp.join(".nested");
                let m = extract_into(&z, &nested, &mut budget)?;
                std::fs::remove_file(&z)?;
                for entry in std::fs::read_dir(&nested)? {
                    let entry = entry?;
                    std::fs::rename(entry.path(), tmp.join(entry.file_name()))?;
                }
                std::fs::remove_dir(&nested)?;
                Ok(m)
            }
            None => Ok(n),
        }
    });
    match result {
        Ok(n) => {
            std::fs::rename(&tmp, dest)
                .with_context(|| format!("renaming into {}", dest.display()))?;
            Ok(n)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// The only file under `dir` when it is a `.zip`.
fn lone_zip(dir: &Path) -> Result<Option<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
            if files.len() > 1 {
                return Ok(None);
            }
        }
    }
    Ok(files
        .pop()
        .filter(|f| f.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"))))
}

/// The number of entries the end of `file`'s central directory declares (ZIP64 included).
fn central_directory_entries(file: &mut File) -> Result<u64> {
    use std::io::{Seek, SeekFrom};
    let len = file.seek(SeekFrom::End(0))?;
    // The end record (22 bytes) is followed by at most a 65 535-byte comment.
    let tail_len = len.min(22 + 65_535);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact(&mut tail)?;
    let at = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .context("no end-of-central-directory record")?;
    let count = u16::from_le_bytes([tail[at + 10], tail[at + 11]]);
    if count != 0xffff {
        return Ok(count.into());
    }
    // ZIP64: a locator right before the end record gives the ZIP64 end record's offset.
    let locator = at
        .checked_sub(20)
        .context("a ZIP64 count without its locator")?;
    if tail[locator..locator + 4] != [0x50, 0x4b, 0x06, 0x07] {
        bail!("a ZIP64 count without its locator");
    }
    let offset = u64::from_le_bytes(tail[locator + 8..locator + 16].try_into().expect("8 bytes"));
    file.seek(SeekFrom::Start(offset))?;
    let mut record = [0u8; 40];
    file.read_exact(&mut record)?;
    if record[..4] != [0x50, 0x4b, 0x06, 0x06] {
        bail!("no ZIP64 end record where its locator says");
    }
    Ok(u64::from_le_bytes(
        record[32..40].try_into().expect("8 bytes"),
    ))
}

/// Extracts `archive` into `dest`, spending its declared sizes from `budget`.
fn extract_into(archive: &Path, dest: &Path, budget: &mut u64) -> Result<usize> {
    let label = archive.display();
    let mut file =
        scfnet_base::read::open_regular(archive).with_context(|| format!("opening {label}"))?;
    let listed = central_directory_entries(&mut file)
        .with_context(|| format!("{label}: not a readable zip archive"))?;
    let mut zip = zip::ZipArchive::new(file)
        .with_context(|| format!("{label}: not a readable zip archive"))?;
    // The reader keeps one entry per name: more listed entries than it has means two share one.
    if listed != zip.len() as u64 {
        bail!(
            "{label}: its central directory lists {listed} entries under {} distinct names: \
             entries share a name, and which one is meant is not clear; the archive is refused",
            zip.len()
        );
    }
    if zip.len() > MAX_ENTRIES {
        bail!(
            "{label}: {} entries, more than the {MAX_ENTRIES} an archive may have; refused",
            zip.len()
        );
    }
    // First pass: refuse the whole archive before writing anything.
    let mut plan = Vec::with_capacity(zip.len());
    let mut names = std::collections::HashSet::new();
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let entry = zip
            .by_index_raw(i)
            .with_context(|| format!("{label}: entry {i} is unreadable"))?;
        let name = entry
            .name()
            .with_context(|| format!("{label}: entry {i} has an unreadable name"))?
            .into_owned();
        if is_mac_metadata(&name) {
            continue;
        }
        let symlink = entry.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000);
        if symlink {
            bail!("{label}: entry {name:?} is a symbolic link; the archive is refused");
        }
        let rel = safe_relative(&name).map_err(|why| {
            anyhow::anyhow!("{label}: entry {name:?} is {why}, which would write outside the target; the archive is refused")
        })?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        if !entry.is_dir() && !names.insert(rel.clone()) {
            bail!(
                "{label}: two entries are called {:?}; which one is meant is not clear, so the \
                 archive is refused",
                rel.display()
            );
        }
        total = total.saturating_add(entry.size());
        plan.push((i, rel, entry.is_dir(), entry.size()));
    }
    if total > *budget {
        bail!(
            "{label}: its entries would unpack to {total} bytes, more than the {} left of what \
             it may write ({MAX_EXPANSION} times the archive's size, at least {MIN_BUDGET} \
             bytes); refused as a likely zip bomb",
            *budget
        );
    }
    *budget -= total;
    let mut written = 0;
    for (i, rel, is_dir, size) in plan {
        let out = dest.join(&rel);
        if is_dir {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let entry = zip
            .by_index(i)
            .with_context(|| format!("{label}: entry {} is unreadable", rel.display()))?;
        let mut f = File::create(&out).with_context(|| format!("creating {}", out.display()))?;
        // Never more than the declared size: a lying header cannot fill the disk.
        let copied = std::io::copy(&mut entry.take(size + 1), &mut f)
            .with_context(|| format!("{label}: extracting {}", rel.display()))?;
        if copied != size {
            bail!(
                "{label}: entry {} holds {copied} bytes, its header says {size}",
                rel.display()
            );
        }
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};
    use zip::write::SimpleFileOptions;

    /// A zip of `(name, bytes)` entries, deflated.
    fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in entries {
            w.start_file(*name, options).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn bombs_are_refused_before_their_level_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let zeros = vec![0u8; 4 << 20];
        // One level: 4 MiB of zeros against a 1 MiB budget.
        let flat = dir.path().join("flat.zip");
        std::fs::write(&flat, zip_of(&[("a.bin", zeros.clone())])).unwrap();
        assert!(std::fs::metadata(&flat).unwrap().len() < 64 << 10);
        let dest = dir.path().join("flat");
        let err = extract_zip_within(&flat, &dest, 1 << 20).unwrap_err();
        assert!(format!("{err:#}").contains("likely zip bomb"), "{err:#}");
        assert!(!dest.exists());
        // Nested: the inner zip is small, its content is not; the budget covers both levels.
        let inner = zip_of(&[("a.bin", zeros.clone()), ("b.bin", zeros)]);
        let nested = dir.path().join("nested.zip");
        std::fs::write(&nested, zip_of(&[("inner.zip", inner)])).unwrap();
        let dest = dir.path().join("nested");
        let err = extract_zip_within(&nested, &dest, 6 << 20).unwrap_err();
        assert!(format!("{err:#}").contains("likely zip bomb"), "{err:#}");
        assert!(!dest.exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // Within the budget, both levels unpack.
        assert_eq!(extract_zip_within(&nested, &dest, 9 << 20).unwrap(), 2);
        assert_eq!(
            std::fs::metadata(dest.join("b.bin")).unwrap().len(),
            4 << 20
        );
    }

    #[test]
    fn two_entries_of_one_name_refuse_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = zip_of(&[("a.txt", b"first".to_vec()), ("b.txt", b"second".to_vec())]);
        // Rename the second entry to the first's name, in its local and central headers.
        for i in 0..bytes.len() - 5 {
            if &bytes[i..i + 5] == b"b.txt" {
                bytes[i] = b'a';
            }
        }
        let archive = dir.path().join("dup.zip");
        std::fs::write(&archive, bytes).unwrap();
        let dest = dir.path().join("out");
        let err = extract_zip(&archive, &dest).unwrap_err();
        assert!(
            format!("{err:#}").contains("entries share a name"),
            "{err:#}"
        );
        assert!(!dest.exists());
    }

    #[test]
    fn entry_names_are_checked() {
        assert!(safe_relative("a/b.png").is_ok());
        assert!(safe_relative("./a/b.png").is_ok());
        assert!(safe_relative("../evil").is_err());
        assert!(safe_relative("a/../../evil").is_err());
        assert!(safe_relative("/etc/passwd").is_err());
        assert!(safe_relative("C:/x").is_err());
        assert!(safe_relative("a\\..\\b").is_err());
        assert!(is_mac_metadata("__MACOSX/a/._b.jpg"));
        assert!(is_mac_metadata("x/._b.jpg"));
        assert!(!is_mac_metadata("x/b.jpg"));
    }
}
