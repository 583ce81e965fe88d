//! Atomic, durable file writes, shared by every crate of the workspace that writes files
//! (converted weights, checkpoints, maps, synthetic datasets).
//!
//! A file is written to a temporary name in its own folder (`.NAME.scfnet-PID.tmp`), flushed to disk
//! (`fsync`, or one filesystem sync for a group of files: [`write_many`]), renamed over `NAME`,
//! and the folder is flushed too, so after a crash or power cut
//! `NAME` is either the old file or the complete new one. On any error the temporary is removed
//! and `NAME` is untouched. Temporaries left by killed processes are found by
//! [`remove_stale_temporaries`], which removes only names of that exact form whose process is
//! gone: a user's `.env.tmpl` or `.tmp_notes/` is never touched.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Suffix of every temporary this module creates.
pub const TEMP_SUFFIX: &str = ".tmp";

/// What stands between a temporary's name and its process's PID: `.NAME.scfnet-PID.tmp`.
const TEMP_MARK: &str = ".scfnet-";

/// The folder `path` lives in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// The temporary name used for `path` by this process: `.NAME.scfnet-PID.tmp` next to it (a
/// name only this project makes, with the process that owns it).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tail = format!("{TEMP_MARK}{}{TEMP_SUFFIX}", std::process::id());
    // A file name may hold 255 bytes: a long NAME is cut (at a character boundary) so that the
    // temporary of a 250-byte name still fits. Two long names cut alike only share a temporary
    // within one process, and each write finishes (renamed or removed) before the next starts.
    let room = MAX_NAME_BYTES - 1 - tail.len();
    let mut cut = name.len().min(room);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    parent_dir(path).join(format!(".{}{tail}", &name[..cut]))
}

/// The longest file name most filesystems take, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// The PID of the process that made the temporary named `name` (`.NAME.scfnet-PID.tmp`), or
/// `None` for any other name.
pub fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
    let (stem, pid) = rest.rsplit_once(TEMP_MARK)?;
    if stem.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Gives `path` the permissions any new file of this process gets (`0666` less the umask), as
/// every output has: for files made by a writer that creates them private (the safetensors
/// writer's 0600). Nothing to do on other platforms.
fn usual_permissions(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = 0o666 & !process_umask();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// The process's file-creation mask (read, not changed: setting it to read it would race with
/// other threads creating files); 0o022 where it cannot be read.
#[cfg(unix)]
fn process_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
        })
        .unwrap_or(0o022)
}

/// Whether process `pid` is running. Where that cannot be told (not Linux), every process
/// counts as running: a temporary is then never taken for stale.
fn process_alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        Path::new("/proc").join(pid.to_string()).exists()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        true
    }
}

/// An exclusive claim of a folder by this process (a run folder, a sweep folder): the file
/// `.scfnet-lock` in it, created atomically, holding the PID; removed when dropped. A lock left
/// by a process that no longer runs is taken over; one of a running process is refused (error
/// kind `WouldBlock`, the message names the PID).
#[derive(Debug)]
pub struct FolderLock {
    path: PathBuf,
    /// The folder, when the lock created it: removed with the lock if still empty then.
    created: Option<PathBuf>,
}

/// The name of a folder's lock file.
pub const LOCK_FILE: &str = ".scfnet-lock";

impl FolderLock {
    /// Claims `dir` (created if needed) for this process.
    pub fn acquire(dir: &Path) -> io::Result<Self> {
        let created = (!dir.exists()).then(|| dir.to_owned());
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOCK_FILE);
        for _ in 0..3 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(format!("{}\n", std::process::id()).as_bytes())?;
                    f.sync_all()?;
                    return Ok(Self { path, created });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match text.trim().parse::<u32>() {
                        Ok(pid) if pid != std::process::id() && !process_alive(pid) => {
                            // Left by a killed process: take it over (one contender wins the
                            // next creation).
                            let _ = std::fs::remove_file(&path);
                        }
                        Ok(pid) => {
                            return Err(io::Error::new(
                                io::ErrorKind::WouldBlock,
                                format!(
                                "in use by process {pid} (its lock {}); wait for it, or stop it",
                                path.display()
                            ),
                            ))
                        }
                        // Being written by its creator this instant, or not ours to judge.
                        Err(_) => {
                            return Err(io::Error::new(
                                io::ErrorKind::WouldBlock,
                                format!(
                                "locked ({} names no process); remove it if no scfnet runs there",
                                path.display()
                            ),
                            ))
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{}: contended", path.display()),
        ))
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = &self.created {
            // Only an empty folder is removed: a run that wrote nothing leaves nothing.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Flushes a folder's entries (the renames in it) to disk. A no-op where folders cannot be opened.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Whether `path` may be written as an output: a new path, or a regular file (which the write
/// replaces). A folder, a symbolic link (the link would be replaced, not what it names), a
/// device, a FIFO or a socket is refused: an output never replaces what is not a plain file.
pub fn check_output(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    let (kind, what) = if t.is_dir() {
        (io::ErrorKind::IsADirectory, "is a folder; give a file name")
    } else if t.is_symlink() {
        (
            io::ErrorKind::InvalidInput,
            "is a symbolic link; an output replaces only a regular file (give the path it names, or a new one)",
        )
    } else {
        (
            io::ErrorKind::InvalidInput,
            "is not a regular file (a device, FIFO or socket); an output replaces only a regular file",
        )
    };
    Err(io::Error::new(kind, what))
}

/// Whether `a` and `b` name the same existing file or folder (links and `..` resolved).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Writes `path` by calling `write` on a temporary path next to it, then flushes, renames and
/// flushes the folder. `path` must be a new path or a regular file ([`check_output`]). On
/// failure the temporary is removed.
pub fn write_with<E: From<io::Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    check_output(path)?;
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir)?;
    sweep_once(&dir);
    let tmp = temp_path(path);
    let result = write(&tmp).and_then(|()| {
        // The writer may have made it private (the safetensors writer creates 0600 files).
        usual_permissions(&tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(&dir)?;
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes several files as [`write_bytes`] does (each appears complete or not at all, and is on
/// disk when its result is `Ok`), with the flushes shared: every file is written to its
/// temporary, the temporaries are flushed to disk together ([`flush_together`]), renamed, then
/// each folder is flushed once. One result per file, in order; a failed file leaves no temporary.
pub fn write_many(files: &[(&Path, &[u8])]) -> Vec<io::Result<()>> {
    // (temporary, its open file) of every file written so far.
    let mut written: Vec<io::Result<(PathBuf, std::fs::File)>> = files
        .iter()
        .map(|&(path, bytes)| {
            check_output(path)?;
            let dir = parent_dir(path);
            std::fs::create_dir_all(&dir)?;
            sweep_once(&dir);
            let tmp = temp_path(path);
            let file = std::fs::File::create(&tmp).and_then(|mut f| {
                f.write_all(bytes)?;
                Ok(f)
            });
            match file {
                Ok(f) => Ok((tmp, f)),
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    Err(e)
                }
            }
        })
        .collect();
    let open: Vec<&std::fs::File> = written.iter().flatten().map(|(_, f)| f).collect();
    // One result per open file, in the same order.
    let mut flushed = flush_together(&open).into_iter();
    for w in &mut written {
        let Ok((tmp, _)) = w else { continue };
        if let Some(Err(e)) = flushed.next() {
            let _ = std::fs::remove_file(tmp);
            *w = Err(e);
        }
    }
    let mut results: Vec<io::Result<()>> = files
        .iter()
        .zip(written)
        .map(|(&(path, _), tmp)| {
            let (tmp, file) = tmp?;
            drop(file); // closed before the rename, which some systems require
            std::fs::rename(&tmp, path).inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
        })
        .collect();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (&(path, _), r) in files.iter().zip(&results) {
        let dir = parent_dir(path);
        if r.is_ok() && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in dirs {
        if let Err(e) = sync_dir(&dir) {
            for (&(path, _), r) in files.iter().zip(results.iter_mut()) {
                if r.is_ok() && parent_dir(path) == dir {
                    *r = Err(io::Error::new(e.kind(), e.to_string()));
                }
            }
        }
    }
    results
}

/// Flushes the contents of `files` to disk; one result per file.
///
/// On Linux, two or more files are flushed with one `syncfs` per filesystem they are on instead
/// of one `fsync` each: on this project's machine a small file's `fsync` costs about a
/// millisecond of CPU, several times the cost of encoding it. `syncfs` also flushes whatever
/// else is waiting to be written on that filesystem, and reports write-back errors on Linux 5.8
/// and newer. Elsewhere, and for a single file, each file is synced (`fsync`).
pub fn flush_together(files: &[&std::fs::File]) -> Vec<io::Result<()>> {
    #[cfg(target_os = "linux")]
    if files.len() > 1 {
        return syncfs_each_filesystem(files);
    }
    files.iter().map(|f| f.sync_all()).collect()
}

/// [`flush_together`] on Linux: one `syncfs` per filesystem (device) among `files`.
#[cfg(target_os = "linux")]
fn syncfs_each_filesystem(files: &[&std::fs::File]) -> Vec<io::Result<()>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let devices: Vec<io::Result<u64>> = files.iter().map(|f| Ok(f.metadata()?.dev())).collect();
    // (device, the result of its syncfs)
    let mut synced: Vec<(u64, io::Result<()>)> = Vec::new();
    for (file, device) in files.iter().zip(&devices) {
        let Ok(device) = device else { continue };
        if synced.iter().any(|(d, _)| d == device) {
            continue;
        }
        // SAFETY: `file` is an open file, so its descriptor is valid for the call.
        let rc = unsafe { libc::syncfs(file.as_raw_fd()) };
        let result = if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        };
        synced.push((*device, result));
    }
    devices
        .into_iter()
        .map(|device| {
            let device = device?;
            match synced.iter().find(|(d, _)| *d == device) {
                Some((_, Ok(()))) => Ok(()),
                Some((_, Err(e))) => Err(io::Error::new(e.kind(), e.to_string())),
                None => Err(io::Error::other("no filesystem sync ran")),
            }
        })
        .collect()
}

/// Writes `bytes` to `path` atomically (see [`write_with`]).
pub fn write_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp)?;
        f.write_all(bytes)
    })
}

/// Removes dead processes' temporaries from `dir` ([`remove_stale_temporaries`]) the first time
/// this process writes a file there: every command that writes (export, convert, predict, eval,
/// train, …) cleans up after a killed earlier one in the folders it writes into, at the cost of
/// one folder listing per folder.
fn sweep_once(dir: &Path) {
    static SWEPT: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut swept = SWEPT.lock().unwrap_or_else(|e| e.into_inner());
    if swept.insert(dir.to_owned()) {
        let _ = remove_stale_temporaries(dir);
    }
}

/// Removes the temporaries this project's processes left in `dir` when they died: files or
/// folders named exactly `.NAME.scfnet-PID.tmp` ([`temp_path`]) whose process is no longer
/// running (on Linux; elsewhere nothing is taken for stale). Returns how many. Anything else,
/// whatever its name (`.env.tmpl`, `.tmp_notes/`, `.x.tmp`), is left alone. Call it where a new
/// run starts writing, so a `kill -9` in the middle of a write costs nothing lasting.
pub fn remove_stale_temporaries(dir: &Path) -> io::Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let own = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = temp_owner(&name).is_some_and(|pid| pid != own && !process_alive(pid));
        if !stale {
            continue;
        }
        let path = entry.path();
        let gone = if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_files_are_written_and_a_bad_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.png"), dir.path().join("sub/b.png"));
        let folder = dir.path().join("taken");
        std::fs::create_dir(&folder).unwrap();
        write_bytes(&a, b"old").unwrap();
        let files: Vec<(&Path, &[u8])> = vec![
            (a.as_path(), b"new a"),
            (folder.as_path(), b"x"),
            (b.as_path(), b"new b"),
        ];
        let results = write_many(&files);
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        let err = results[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory);
        assert_eq!(std::fs::read(&a).unwrap(), b"new a");
        assert_eq!(std::fs::read(&b).unwrap(), b"new b");
        assert!(folder.is_dir());
        for d in [dir.path(), &dir.path().join("sub")] {
            let names: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(
                names.iter().all(|n| !n.contains(TEMP_SUFFIX)),
                "temporaries left in {}: {names:?}",
                d.display()
            );
        }
    }

    #[test]
    fn files_flushed_together_get_one_result_each() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let files: Vec<std::fs::File> = [a.path(), b.path(), a.path()]
            .iter()
            .enumerate()
            .map(|(i, d)| std::fs::File::create(d.join(format!("{i}"))).unwrap())
            .collect();
        let refs: Vec<&std::fs::File> = files.iter().collect();
        for n in [0, 1, 3] {
            let results = flush_together(&refs[..n]);
            assert_eq!(results.len(), n);
            assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
        }
    }

    #[test]
    fn a_failed_write_leaves_neither_temporary_nor_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write_bytes(&path, b"old").unwrap();
        let failed: Result<(), io::Error> = write_with(&path, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn links_and_special_files_are_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.txt");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = write_bytes(&link, b"x").unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        let null = Path::new("/dev/null");
        let err = write_bytes(null, b"x").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let results = write_many(&[(link.as_path(), b"x".as_slice())]);
        assert!(results[0].is_err());
        assert!(check_output(&dir.path().join("new.txt")).is_ok());
        assert!(check_output(&target).is_ok());
        assert!(same_file(&link, &target) && !same_file(&target, &dir.path().join("new.txt")));
    }

    #[test]
    fn a_folder_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_bytes(dir.path(), b"x").unwrap_err();
        assert!(err.to_string().contains("folder"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// A PID no process has (above Linux's largest, 2²²).
    const DEAD: u32 = 999_999_999;

    #[test]
    fn only_our_temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join(format!(".model.safetensors.scfnet-{DEAD}.tmp")),
            b"x",
        )
        .unwrap();
        std::fs::create_dir(d.join(format!(".step-00000004.scfnet-{DEAD}.tmp"))).unwrap();
        std::fs::write(d.join(format!(".step-00000004.scfnet-{DEAD}.tmp/w")), b"x").unwrap();
        // A user's files that merely look temporary, ours of a running process (PID 1 runs on
        // every Linux), and this process's own.
        let kept = [
            ".env.tmpl".to_string(),
            ".x.tmp".to_string(),
            ".model.safetensors.4242.tmp".to_string(),
            format!(".a.scfnet-{DEAD}x.tmp"),
            format!(".scfnet-{DEAD}.tmp"),
            ".b.scfnet-1.tmp".to_string(),
            "keep.txt".to_string(),
        ];
        for name in &kept {
            std::fs::write(d.join(name), b"user").unwrap();
        }
        std::fs::create_dir(d.join(".tmp_notes")).unwrap();
        std::fs::write(temp_path(&d.join("mine")), b"x").unwrap();
        let expected = if cfg!(target_os = "linux") { 2 } else { 0 };
        assert_eq!(remove_stale_temporaries(d).unwrap(), expected);
        for name in &kept {
            assert_eq!(std::fs::read(d.join(name)).unwrap(), b"user", "{name}");
        }
        assert!(d.join(".tmp_notes").is_dir() && temp_path(&d.join("mine")).is_file());
    }

    #[test]
    fn a_folder_has_one_holder_at_a_time_and_dead_holders_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let lock = FolderLock::acquire(&run).unwrap();
        assert!(run.join(LOCK_FILE).is_file());
        drop(lock);
        assert!(
            !run.exists(),
            "the folder the lock made, still empty, goes with it"
        );
        // PID 1 runs on every Linux: its lock is respected.
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join(LOCK_FILE), "1\n").unwrap();
        if cfg!(target_os = "linux") {
            let err = FolderLock::acquire(&run).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
            assert!(err.to_string().contains("process 1"), "{err}");
        }
        // A dead holder's lock is taken over, and released on drop.
        std::fs::write(run.join(LOCK_FILE), "999999999\n").unwrap();
        if cfg!(target_os = "linux") {
            let lock = FolderLock::acquire(&run).unwrap();
            let held = std::fs::read_to_string(run.join(LOCK_FILE)).unwrap();
            assert_eq!(held.trim(), std::process::id().to_string());
            drop(lock);
            assert!(!run.join(LOCK_FILE).exists());
            assert!(run.is_dir(), "a folder the lock did not make stays");
        }
    }

    #[test]
    fn a_long_name_still_gets_a_temporary_that_fits() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!("{}.png", "é".repeat(123)); // 250 bytes
        assert_eq!(long.len(), 250);
        let path = dir.path().join(&long);
        let t = temp_path(&path);
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(name.len() <= 255, "{}", name.len());
        assert_eq!(temp_owner(name), Some(std::process::id()));
        write_bytes(&path, b"x").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temporary_names_carry_their_owner() {
        let t = temp_path(Path::new("out/model.safetensors"));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert_eq!(temp_owner(name), Some(std::process::id()));
        assert_eq!(t.parent().unwrap(), Path::new("out"));
        assert_eq!(temp_owner(".a.b.scfnet-12.tmp"), Some(12));
        for other in [
            ".env.tmpl",
            ".x.tmp",
            "a.scfnet-1.tmp",
            ".scfnet-1.tmp",
            ".a.scfnet-.tmp",
            ".a.scfnet-1x.tmp",
            ".a.scfnet-1.tmp.bak",
        ] {
            assert_eq!(temp_owner(other), None, "{other}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_file_made_private_by_its_writer_gets_the_usual_permissions() {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        write_with(&path, |tmp| -> io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(tmp)?;
            f.write_all(b"x")
        })
        .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !process_umask());
        assert_ne!(
            mode, 0o600,
            "with the usual umask (022), readable by the group and others"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_first_write_into_a_folder_removes_dead_processes_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        // PID 4194304 is above Linux's largest (2^22): no such process.
        let stale = dir.path().join(".map.png.scfnet-4194304.tmp");
        let mine = dir.path().join(".notes.tmp");
        std::fs::write(&stale, b"half").unwrap();
        std::fs::write(&mine, b"user").unwrap();
        write_bytes(&dir.path().join("out.png"), b"new").unwrap();
        assert!(!stale.exists(), "a dead process's temporary is gone");
        assert_eq!(std::fs::read(&mine).unwrap(), b"user");
    }
}
