//! Bounded reads of files named by the user: a weights file, a `config.json`, a plan, a
//! manifest, a checkpoint's pointer and state.
//!
//! A path that names a FIFO would make a plain read wait forever for a writer, and one that names
//! `/dev/zero` would be read without end. Every such file is therefore opened without blocking,
//! checked to be a regular file (after links) on the open handle, and read only up to a limit
//! for its kind ([`TEXT_LIMIT`] for the small text files); anything else is an error of kind
//! `InvalidInput` that says what the path is.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The largest text file (configuration, plan, manifest, a checkpoint's state) read: 16 MiB,
/// hundreds of times the size of any the project writes.
pub const TEXT_LIMIT: u64 = 16 << 20;

/// What kind of thing a file type is, for messages.
fn kind_of(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading if it is a regular file (links followed), without ever blocking on
/// it (a FIFO is refused, not waited on).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let t = file.metadata()?.file_type();
    if !t.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {}, not a regular file", kind_of(t)),
        ));
    }
    Ok(file)
}

/// The whole of the regular file `path`, refused (kind `InvalidInput`) when it holds more than
/// `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is larger than the {limit} bytes a file of this kind may have"),
        )
    };
    if len > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large()); // grew while being read
    }
    Ok(bytes)
}

/// The SHA-256 of the regular file `path` as lowercase hex, read in 1 MiB pieces.
pub fn sha256_hex(path: &Path) -> io::Result<String> {
    use sha2::Digest;
    let mut file = open_regular(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The regular file `path` as UTF-8 text of at most [`TEXT_LIMIT`] bytes.
pub fn read_text(path: &Path) -> io::Result<String> {
    String::from_utf8(read_regular(path, TEXT_LIMIT)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_everything_else_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("a.json");
        std::fs::write(&text, "{}").unwrap();
        assert_eq!(read_text(&text).unwrap(), "{}");
        // `printf '{}' | sha256sum`
        assert_eq!(
            sha256_hex(&text).unwrap(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(read_regular(&text, 2).unwrap(), b"{}");
        let err = read_regular(&text, 1).unwrap_err();
        assert!(err.to_string().contains("larger than the 1 bytes"), "{err}");
        let err = read_text(dir.path()).unwrap_err();
        assert!(err.to_string().contains("a folder"), "{err}");
        std::fs::write(&text, [0xff, 0xfe]).unwrap();
        assert!(read_text(&text).unwrap_err().to_string().contains("UTF-8"));
        #[cfg(unix)]
        {
            let err = read_text(Path::new("/dev/zero")).unwrap_err();
            assert!(err.to_string().contains("character device"), "{err}");
            let fifo = dir.path().join("fifo");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            // No writer ever comes: a blocking open would wait forever.
            let err = read_text(&fifo).unwrap_err();
            assert!(err.to_string().contains("a FIFO"), "{err}");
            let link = dir.path().join("link");
            std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
            assert!(open_regular(&link).is_err());
        }
    }
}
