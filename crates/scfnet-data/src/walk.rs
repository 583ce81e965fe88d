//! Listing the image files under a folder without being led astray: every folder walk of the
//! project (training sets, unlabeled pools, `scfnet predict` and `scfnet eval` inputs) goes
//! through [`image_files`].
//!
//! - Symbolic links to folders are followed (datasets are often linked in), but each real folder
//!   is visited once: a link back to an ancestor (`ln -s . loop`) cannot make the walk loop.
//! - Only regular files are returned (after following links): a FIFO, socket or device named
//!   `x.png` is skipped, so nothing blocks on opening it; a dangling link is skipped.
//! - Folders nest at most [`MAX_DEPTH`] deep.
//! - Names that are not valid UTF-8 are returned like any other (paths stay `OsStr`); code that
//!   needs a text stem reports them with [`utf8_stem`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::layout::IMAGE_EXTENSIONS;

/// Deepest folder nesting a walk descends into.
pub const MAX_DEPTH: usize = 64;

/// Whether `path` has one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// What a walk skipped, for the caller to report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Image-named entries that are not regular files (FIFOs, sockets, devices, dangling links).
    pub not_files: Vec<PathBuf>,
    /// Folders reached a second time through a link (the loop is not followed).
    pub revisited: Vec<PathBuf>,
    /// Folders deeper than [`MAX_DEPTH`].
    pub too_deep: Vec<PathBuf>,
}

impl Skipped {
    /// Whether nothing was skipped.
    pub fn is_empty(&self) -> bool {
        self.not_files.is_empty() && self.revisited.is_empty() && self.too_deep.is_empty()
    }

    /// One line per skipped entry.
    pub fn lines(&self) -> Vec<String> {
        let show = |p: &PathBuf, why: &str| format!("{}: {why}", p.display());
        self.not_files
            .iter()
            .map(|p| show(p, "not a regular file, skipped"))
            .chain(
                self.revisited
                    .iter()
                    .map(|p| show(p, "a link to a folder already visited, not followed")),
            )
            .chain(
                self.too_deep
                    .iter()
                    .map(|p| show(p, &format!("deeper than {MAX_DEPTH} folders, skipped"))),
            )
            .collect()
    }
}

/// Image files (by extension) in `root`, and below it if `recursive`, sorted; plus what was
/// skipped. The errors name the folder that could not be listed.
pub fn image_files(root: &Path, recursive: bool) -> Result<(Vec<PathBuf>, Skipped)> {
    let mut files = Vec::new();
    let mut skipped = Skipped::default();
    let mut visited = HashSet::new();
    if let Ok(real) = root.canonicalize() {
        visited.insert(real);
    }
    // Explicit stack: no recursion, whatever the depth.
    let mut pending = vec![(root.to_owned(), 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DataError::io(&dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| DataError::io(&path, e))?;
            // Follow a link to see what it points at; a dangling one is neither file nor folder.
            let meta = if kind.is_symlink() {
                std::fs::metadata(&path).ok()
            } else {
                entry.metadata().ok()
            };
            let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
            if is_dir {
                if !recursive {
                    continue;
                }
                if depth + 1 > MAX_DEPTH {
                    skipped.too_deep.push(path);
                    continue;
                }
                let real = path.canonicalize().map_err(|e| DataError::io(&path, e))?;
                if visited.insert(real) {
                    pending.push((path, depth + 1));
                } else {
                    skipped.revisited.push(path);
                }
            } else if has_image_extension(&path) {
                if meta.as_ref().is_some_and(|m| m.is_file()) {
                    files.push(path);
                } else {
                    skipped.not_files.push(path);
                }
            }
        }
    }
    files.sort();
    Ok((files, skipped))
}

/// The stem of `path` as text, or an error naming the file if its name is not valid UTF-8 (a
/// stem is matched between images, masks and list files as text).
pub fn utf8_stem(path: &Path) -> Result<String> {
    match path.file_stem().map(|s| s.to_str()) {
        Some(Some(s)) => Ok(s.to_owned()),
        _ => Err(DataError::layout(
            path,
            "the file name is not valid UTF-8: rename it (stems are matched as text)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_case_insensitive() {
        assert!(has_image_extension(Path::new("a/B.JPG")));
        assert!(has_image_extension(Path::new("c.webp")));
        assert!(!has_image_extension(Path::new("c.txt")));
        assert!(!has_image_extension(Path::new("png")));
    }

    #[cfg(unix)]
    #[test]
    fn links_loops_and_fifos_do_not_trap_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        for f in ["a.png", "sub/b.jpg", "sub/deeper/c.JPEG", "notes.txt"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        std::os::unix::fs::symlink(".", root.join("sub/loop")).unwrap();
        std::os::unix::fs::symlink(root, root.join("sub/deeper/up")).unwrap();
        std::os::unix::fs::symlink("missing.png", root.join("dangling.png")).unwrap();
        let fifo = root.join("fifo.png");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());

        let (files, skipped) = image_files(root, true).unwrap();
        let rel: Vec<_> = files
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(rel, ["a.png", "sub/b.jpg", "sub/deeper/c.JPEG"]);
        assert_eq!(skipped.not_files.len(), 2, "{skipped:?}"); // the FIFO and the dangling link
        assert_eq!(skipped.revisited.len(), 2, "{skipped:?}"); // both links back up
        let (flat, _) = image_files(root, false).unwrap();
        assert_eq!(flat, [root.join("a.png")]);
    }
}
