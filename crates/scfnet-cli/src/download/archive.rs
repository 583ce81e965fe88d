//! Zip extraction that never writes outside its target: absolute paths, `..` and symbolic links
//! refuse the whole archive before anything is written. macOS metadata (`__MACOSX/`, `._*`,
//! `.DS_Store`) is skipped. The result appears at once (built in a temporary folder, renamed).

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

/// Extracts the zip `archive` into `dest` (which must not exist yet); returns the number of
/// files written. A zip that holds one zip and nothing else is unpacked in turn.
pub fn extract_zip(archive: &Path, dest: &Path) -> Result<usize> {
    let tmp = super::layout::fresh_temp(dest)?;
    let result = extract_into(archive, &tmp).and_then(|n| {
        let inner = lone_zip(&tmp)?;
        match inner {
            Some(z) => {
                let nested = tmp.join(".nested");
                let m = extract_into(&z, &nested)?;
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

fn extract_into(archive: &Path, dest: &Path) -> Result<usize> {
    let label = archive.display();
    let file = File::open(archive).with_context(|| format!("opening {label}"))?;
    let mut zip = zip::ZipArchive::new(file)
        .with_context(|| format!("{label}: not a readable zip archive"))?;
    // First pass: refuse the whole archive before writing anything.
    let mut plan = Vec::with_capacity(zip.len());
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
        plan.push((i, rel, entry.is_dir(), entry.size()));
    }
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
