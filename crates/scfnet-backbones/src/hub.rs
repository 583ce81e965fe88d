//! Weights from a local file or from the Hugging Face hub (through the `hf-hub` crate).
//!
//! A [`WeightSource`] is either a local file or `repo[@revision][:file]` on the hub. Resolving a
//! hub source looks in the local cache first (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`, the layout the Python library uses), so a file that is already
//! there needs no network; with [`HubOptions::offline`] (`HF_HUB_OFFLINE=1`) nothing else is tried.
//! Otherwise the file is downloaded from `$HF_ENDPOINT` (default `https://huggingface.co`), its
//! size is checked against the server's, and it lands in the cache. [`check_safetensors`] then
//! verifies that every tensor a model needs is present with the right shape.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{Result, WeightsError};

/// Where weights come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightSource {
    /// A file on disk.
    File(PathBuf),
    /// A file of a Hugging Face hub model repository.
    Hub {
        /// Repository id, e.g. `timm/resnet50.tv_in1k`.
        repo: String,
        /// Branch, tag or commit (default `main`).
        revision: String,
        /// File in the repository (default `model.safetensors`).
        file: String,
    },
}

impl WeightSource {
    /// Parses `PATH`, or `[hf://]ORG/NAME[@REVISION][:FILE]` for the hub. A string naming an
    /// existing file, or starting with `/`, `.` or `~`, or ending in `.safetensors`/`.pdparams`
    /// without an `ORG/NAME` form, is a path. `default_file` is used when no `:FILE` is given.
    pub fn parse(spec: &str, default_file: &str) -> Self {
        let explicit_hub = spec.strip_prefix("hf://");
        let weight_file = [".safetensors", ".pdparams", ".pth", ".bin"]
            .iter()
            .any(|e| spec.ends_with(e))
            && !spec.contains([':', '@']);
        let looks_local = Path::new(spec).exists()
            || spec.starts_with(['/', '.', '~'])
            || spec.matches('/').count() != 1
            || weight_file;
        if looks_local && explicit_hub.is_none() {
            return Self::File(PathBuf::from(spec));
        }
        let rest = explicit_hub.unwrap_or(spec);
        let (repo_rev, file) = match rest.split_once(':') {
            Some((r, f)) if !f.is_empty() => (r, f.to_owned()),
            _ => (rest.trim_end_matches(':'), default_file.to_owned()),
        };
        let (repo, revision) = match repo_rev.split_once('@') {
            Some((r, v)) if !v.is_empty() => (r.to_owned(), v.to_owned()),
            _ => (repo_rev.trim_end_matches('@').to_owned(), "main".to_owned()),
        };
        Self::Hub {
            repo,
            revision,
            file,
        }
    }
}

impl std::fmt::Display for WeightSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Hub {
                repo,
                revision,
                file,
            } => write!(f, "hf://{repo}@{revision}:{file}"),
        }
    }
}

/// How hub sources are resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubOptions {
    /// Server to download from (`None`: `https://huggingface.co`).
    pub endpoint: Option<String>,
    /// Cache folder (`None`: the default cache).
    pub cache_dir: Option<PathBuf>,
    /// Never touch the network: only the cache and local files.
    pub offline: bool,
    /// Show a download progress bar.
    pub progress: bool,
}

impl HubOptions {
    /// Options from the process environment: `HF_ENDPOINT`, `HF_HUB_CACHE`, `HF_HOME`,
    /// `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Options from an environment lookup (for tests and embedding).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|h| PathBuf::from(h).join("hub")));
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        Self {
            endpoint: var("HF_ENDPOINT").filter(|e| !e.is_empty()),
            cache_dir,
            offline,
            progress: true,
        }
    }

    fn cache(&self) -> Cache {
        match &self.cache_dir {
            Some(dir) => Cache::new(dir.clone()),
            None => Cache::default(),
        }
    }
}

/// The local path of `source`, downloading it into the cache if needed.
pub fn resolve(source: &WeightSource, opts: &HubOptions) -> Result<PathBuf> {
    let (repo, revision, file) = match source {
        WeightSource::File(path) => {
            return if path.is_file() {
                Ok(path.clone())
            } else {
                Err(WeightsError::Io {
                    path: path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "weight file not found",
                    ),
                })
            };
        }
        WeightSource::Hub {
            repo,
            revision,
            file,
        } => (repo, revision, file),
    };
    let hub_err = |message: String| WeightsError::Hub {
        repo: repo.clone(),
        revision: revision.clone(),
        file: file.clone(),
        message,
    };
    let hf_repo = Repo::with_revision(repo.clone(), RepoType::Model, revision.clone());
    let cache = opts.cache();
    // Where every file of this repository must resolve to.
    let repo_dir = cache.path().join(hf_repo.folder_name());
    if let Some(path) = cache.repo(hf_repo.clone()).get(file) {
        return checked_cache_file(&repo_dir, path).map_err(hub_err);
    }
    if opts.offline {
        return Err(hub_err(format!(
            "not in the cache {} and offline mode is on (HF_HUB_OFFLINE); download it first or pass a local file",
            cache.path().display()
        )));
    }
    let mut builder = ApiBuilder::from_cache(cache)
        .with_progress(opts.progress)
        .with_retries(0);
    if let Some(endpoint) = &opts.endpoint {
        builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_owned());
    }
    let api = builder
        .build()
        .map_err(|e| hub_err(format!("cannot start the client: {e}")))?;
    let api_repo = api.repo(hf_repo);
    let url = api_repo.url(file);
    let meta = api
        .metadata(&url)
        .map_err(|e| hub_err(format!("cannot get {url}: {e}")))?;
    let path = api_repo
        .download(file)
        .map_err(|e| hub_err(format!("download from {url} failed: {e}")))?;
    let got = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if got != meta.size() as u64 {
        // Remove the bad copy (pointer and blob) so the next attempt starts afresh.
        if let Ok(blob) = std::fs::canonicalize(&path) {
            let _ = std::fs::remove_file(blob);
        }
        let _ = std::fs::remove_file(&path);
        return Err(hub_err(format!(
            "download truncated: {got} of {} bytes received from {url}",
            meta.size()
        )));
    }
    checked_cache_file(&repo_dir, path).map_err(hub_err)
}

/// `path`, a file resolved in the hub cache, once checked: it must lie inside the repository's
/// own cache folder `repo_dir` (a `refs/REVISION`, a file name or a snapshot link leading
/// elsewhere, say with `..`, is refused), and a blob named by a SHA-256, as the hub names large
/// files, must have that digest (a damaged or replaced blob is refused, not loaded).
fn checked_cache_file(repo_dir: &Path, path: PathBuf) -> std::result::Result<PathBuf, String> {
    let real_dir = repo_dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", repo_dir.display()))?;
    let real = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !real.starts_with(&real_dir) {
        return Err(format!(
            "the cache entry {} leads to {}, outside the repository's cache folder {} (a \
             damaged or hostile refs/ file or snapshot link); delete the entry to download again",
            path.display(),
            real.display(),
            real_dir.display()
        ));
    }
    let name = real.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
        let digest =
            scfnet_base::read::sha256_hex(&real).map_err(|e| format!("{}: {e}", real.display()))?;
        if !digest.eq_ignore_ascii_case(name) {
            return Err(format!(
                "the cached blob {} does not have the SHA-256 its name says (it has {digest}): \
                 damaged or replaced; delete it to download again",
                real.display()
            ));
        }
    }
    Ok(path)
}

/// Checks that the safetensors file at `path` holds every `(name, shape)` of `expected`
/// (extra tensors are allowed: a checkpoint may carry a classifier the backbone does not use).
/// `label` names the source in errors (e.g. the hub repository and file).
pub fn check_safetensors(
    path: &Path,
    expected: &[(String, Vec<usize>)],
    label: &str,
) -> Result<()> {
    let wrap = |message: String| WeightsError::Safetensors {
        path: path.to_owned(),
        message,
    };
    // A FIFO or a device (`/dev/zero`) is refused before it is mapped or read.
    scfnet_base::read::open_regular(path)
        .map_err(|e| wrap(format!("{label}: not a weights file: {e}")))?;
    // SAFETY: the file is only read; a concurrent writer could change it under the map, which
    // would be reported as corrupt data rather than cause undefined behaviour in safe code here.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }.map_err(|e| {
        wrap(format!(
            "{label}: not a readable safetensors file ({e}); the download may be truncated"
        ))
    })?;
    let have: std::collections::HashMap<String, Vec<usize>> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec()))
        .collect();
    let missing: Vec<String> = expected
        .iter()
        .filter(|(n, _)| !have.contains_key(n))
        .map(|(n, _)| format!("{label}: {n}"))
        .collect();
    if !missing.is_empty() {
        return Err(WeightsError::Missing {
            path: path.to_owned(),
            names: missing,
        });
    }
    for (name, shape) in expected {
        if &have[name] != shape {
            return Err(WeightsError::Shape {
                path: path.to_owned(),
                name: format!("{label}: {name}"),
                expected: shape.clone(),
                found: have[name].clone(),
            });
        }
    }
    // Values enter here: a NaN or infinity would give black maps without a word.
    let mut bad = Vec::new();
    for (name, _) in expected {
        let t = st
            .load(name, &candle_core::Device::Cpu)
            .map_err(|e| wrap(format!("{label}: tensor {name}: {e}")))?;
        if !scfnet_ops::all_finite(&t)? {
            bad.push(format!("{label}: {name}"));
        }
    }
    if !bad.is_empty() {
        return Err(WeightsError::NonFinite {
            path: path.to_owned(),
            names: bad,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(
            WeightSource::parse("timm/resnet50.tv_in1k", "model.safetensors"),
            WeightSource::Hub {
                repo: "timm/resnet50.tv_in1k".into(),
                revision: "main".into(),
                file: "model.safetensors".into()
            }
        );
        assert_eq!(
            WeightSource::parse("hf://org/name@v1.0:weights/b.safetensors", "x"),
            WeightSource::Hub {
                repo: "org/name".into(),
                revision: "v1.0".into(),
                file: "weights/b.safetensors".into()
            }
        );
        assert_eq!(
            WeightSource::parse("./w.safetensors", "x"),
            WeightSource::File("./w.safetensors".into())
        );
        assert_eq!(
            WeightSource::parse("weights/a/b.safetensors", "x"),
            WeightSource::File("weights/a/b.safetensors".into())
        );
        assert_eq!(
            WeightSource::parse("w.safetensors", "x"),
            WeightSource::File("w.safetensors".into())
        );
    }

    #[test]
    fn environment_is_read() {
        let env = |k: &str| match k {
            "HF_HOME" => Some("/h".to_owned()),
            "HF_ENDPOINT" => Some("http://127.0.0.1:9".to_owned()),
            "HF_HUB_OFFLINE" => Some("1".to_owned()),
            _ => None,
        };
        let o = HubOptions::from_vars(env);
        assert_eq!(o.cache_dir, Some(PathBuf::from("/h/hub")));
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert!(o.offline);
        let o = HubOptions::from_vars(|k| (k == "HF_HUB_CACHE").then(|| "/c".to_owned()));
        assert_eq!(o.cache_dir, Some(PathBuf::from("/c")));
        assert!(!o.offline);
    }
}
