//! Safetensors files with their `__metadata__`: written atomically with a description of
//! themselves ([`write_safetensors`]), and their header read alone, without the tensors
//! ([`read_header`]), through the `safetensors` crate.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use candle_core::Tensor;

use crate::error::WeightsError;

/// The largest header read (the format's own limit): 100 MB.
const MAX_HEADER: u64 = 100_000_000;

/// Writes `tensors` to `path` as safetensors with `metadata` as its `__metadata__`, atomically
/// (`scfnet_base::files::write_with`); errors name the file.
pub fn write_safetensors(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    metadata: Option<HashMap<String, String>>,
) -> Result<(), WeightsError> {
    let io = |source: std::io::Error| WeightsError::Io {
        path: path.to_owned(),
        source,
    };
    // Contiguous copies where needed (the format stores dense row-major data).
    let dense: Vec<(&String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| Ok((k, t.contiguous()?)))
        .collect::<candle_core::Result<_>>()?;
    scfnet_base::files::write_with(path, |tmp| {
        safetensors::serialize_to_file(dense.iter().map(|(k, t)| (k, t)), metadata, tmp)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        sort_header(tmp)
    })
    .map_err(io)
}

/// Rewrites the header of the safetensors file `path` in place with its JSON keys in sorted
/// order: the writer emits `__metadata__` in hash order, so the same weights would get other
/// bytes in every process. The same entries take the same length, so nothing else moves.
fn sort_header(path: &Path) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)?;
    let n = u64::from_le_bytes(len) as usize;
    let mut header = vec![0u8; n];
    file.read_exact(&mut header)?;
    // serde_json's maps are ordered by key (no `preserve_order` in this workspace).
    let value: serde_json::Value = serde_json::from_slice(&header)?;
    let mut sorted = serde_json::to_vec(&value)?;
    if sorted.len() > n {
        return Err(std::io::Error::other(
            "the sorted header is longer than the written one",
        ));
    }
    sorted.resize(n, b' '); // the format's own padding
    file.seek(SeekFrom::Start(8))?;
    file.write_all(&sorted)
}

/// One tensor as a safetensors header lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// Its name.
    pub name: String,
    /// Its element type (`F32`, `F16`, …).
    pub dtype: String,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// The header of a safetensors file: its `__metadata__` and its tensors (sorted by name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetensorsHeader {
    /// The `__metadata__` strings (empty when the file has none).
    pub metadata: BTreeMap<String, String>,
    /// The tensors, by name.
    pub tensors: Vec<TensorEntry>,
    /// The file's size in bytes.
    pub file_bytes: u64,
}

/// Reads the header of the safetensors file `path` alone (the tensors are not read), checking
/// that it is a regular file and that the header's offsets account for the whole file.
pub fn read_header(path: &Path) -> Result<SafetensorsHeader, WeightsError> {
    let bad = |message: String| WeightsError::Safetensors {
        path: path.to_owned(),
        message: format!("not a safetensors file: {message}"),
    };
    let io = |source: std::io::Error| WeightsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = scfnet_base::read::open_regular(path).map_err(io)?;
    let file_bytes = file.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| bad("shorter than its 8-byte header length".into()))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER || n > file_bytes.saturating_sub(8) {
        return Err(bad(format!(
            "a header of {n} bytes in a file of {file_bytes}"
        )));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io)?;
    let parsed: safetensors::tensor::Metadata =
        serde_json::from_slice(&header).map_err(|e| bad(format!("its header: {e}")))?;
    let data_end = parsed.data_len() as u64;
    if 8 + n + data_end != file_bytes {
        return Err(bad(format!(
            "its header accounts for {} bytes, the file has {file_bytes} (truncated?)",
            8 + n + data_end
        )));
    }
    let mut tensors: Vec<TensorEntry> = parsed
        .tensors()
        .into_iter()
        .map(|(name, info)| TensorEntry {
            name,
            dtype: format!("{:?}", info.dtype),
            shape: info.shape.clone(),
        })
        .collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let metadata = parsed
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(SafetensorsHeader {
        metadata,
        tensors,
        file_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn metadata_is_written_and_read_back_from_the_header_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let mut tensors = HashMap::new();
        tensors.insert(
            "b.weight".to_owned(),
            Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap(),
        );
        tensors.insert(
            "a.bias".to_owned(),
            Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
        );
        let meta = HashMap::from([("network".to_owned(), "student".to_owned())]);
        write_safetensors(&path, &tensors, Some(meta)).unwrap();
        let h = read_header(&path).unwrap();
        assert_eq!(
            h.metadata.get("network").map(String::as_str),
            Some("student")
        );
        let names: Vec<&str> = h.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a.bias", "b.weight"]);
        assert_eq!(h.tensors[1].shape, [2, 3]);
        assert_eq!(h.tensors[1].dtype, "F32");
        // The same tensors and metadata (another map, another hash order) give the same bytes.
        let first = std::fs::read(&path).unwrap();
        let meta: HashMap<String, String> = (0..12)
            .map(|i| (format!("key{i}"), i.to_string()))
            .collect();
        write_safetensors(&path, &tensors, Some(meta.clone())).unwrap();
        let a = std::fs::read(&path).unwrap();
        let again: HashMap<String, String> = meta
            .into_iter()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        write_safetensors(&path, &tensors, Some(again)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), a);
        assert_ne!(a, first);
        std::fs::write(&path, &first).unwrap();
        // candle reads it as any safetensors file.
        let back = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        assert_eq!(back["b.weight"].dims(), [2, 3]);
        // A cut file is refused from its header.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let err = read_header(&path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
