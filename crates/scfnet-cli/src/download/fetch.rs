//! Fetching one file: the hub cache first, then each URL in turn, streamed to `.NAME.part`
//! with a progress bar, resumed with HTTP `Range` after an interruption, verified (size, MD5,
//! SHA-256 from the manifest or the lock file) and renamed into place.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use md5::Md5;
use scfnet_backbones::HubOptions;
use sha2::{Digest, Sha256};

use super::gdrive;
use super::lock::{Lock, Pin};
use super::manifest::{Archive, FileSpec};

/// How files are fetched.
pub struct Fetcher {
    agent: ureq::Agent,
    /// Hub endpoint, cache and offline mode (`HF_ENDPOINT`, `HF_HUB_CACHE`, `HF_HOME`).
    pub hub: HubOptions,
    /// A local copy tried before every other URL: `MIRROR/NAME`.
    pub mirror: Option<String>,
    /// Google Drive's address (tests point it at a loopback server).
    pub gdrive_base: String,
    /// Draw progress bars.
    pub progress: bool,
    /// Attempts in a row that bring no new byte before a URL is given up.
    pub retries: usize,
}

/// Why one URL gave nothing.
#[derive(Debug)]
enum UrlError {
    /// The server answered with this status.
    Status(u16),
    /// Anything else (connection, body, file system).
    Other(anyhow::Error),
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(s) => write!(f, "HTTP {s}"),
            Self::Other(e) => write!(f, "{e:#}"),
        }
    }
}

/// Digests of a file.
pub struct Digests {
    /// Bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// MD5, lower-case hex.
    pub md5: String,
}

/// SHA-256 and MD5 of the file at `path`, in one pass.
pub fn digests(path: &Path) -> Result<Digests> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (mut sha, mut md) = (Sha256::new(), Md5::new());
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Digests {
        size,
        sha256: hex(&sha.finalize()),
        md5: hex(&md.finalize()),
    })
}

/// `bytes` in lower-case hexadecimal (digests).
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Fetcher {
    /// A fetcher with the environment's hub settings.
    pub fn new(hub: HubOptions, mirror: Option<String>, progress: bool) -> Self {
        Self {
            agent: agent(Duration::from_secs(120)),
            hub,
            mirror,
            gdrive_base: gdrive::DEFAULT_BASE.to_owned(),
            progress,
            retries: 3,
        }
    }

    /// The hub settings (endpoint, cache folder, offline).
    pub fn hub(&self) -> &HubOptions {
        &self.hub
    }

    /// Sets how long one request may spend receiving its body before it is cut and resumed.
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.agent = agent(timeout);
        self
    }

    /// The hub's address: the environment's `HF_ENDPOINT`, else `https://huggingface.co`.
    pub fn endpoint(&self) -> String {
        self.hub
            .endpoint
            .clone()
            .unwrap_or_else(|| "https://huggingface.co".into())
    }

    /// The URLs tried for `spec`, in order (the mirror first, hub paths made absolute).
    pub fn urls(&self, spec: &FileSpec) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(m) = &self.mirror {
            out.push(format!("{}/{}", m.trim_end_matches('/'), spec.name));
        }
        let endpoint = self.endpoint();
        for u in &spec.urls {
            out.push(match parse_hf(u) {
                Some(h) => h.url(&endpoint),
                None => u.clone(),
            });
        }
        out
    }

    /// The verified local path of `spec`: `downloads/NAME`, or the hub cache's copy.
    pub fn fetch(&self, spec: &FileSpec, downloads: &Path, lock: &mut Lock) -> Result<PathBuf> {
        let dest = downloads.join(&spec.name);
        if dest.is_file() {
            self.verify(spec, &dest, "(already downloaded)", lock)
                .with_context(|| {
                    format!(
                        "{} does not match; delete it to download it again",
                        dest.display()
                    )
                })?;
            return Ok(dest);
        }
        if let Some(cached) = self.hub_cached(spec) {
            tracing::info!(
                "{}: found in the hub cache at {}",
                spec.name,
                cached.display()
            );
            self.verify(spec, &cached, "(hub cache)", lock)
                .with_context(|| format!("the hub cache's copy {}", cached.display()))?;
            return Ok(cached);
        }
        if self.hub.offline {
            bail!(
                "{}: not downloaded and offline mode is on (HF_HUB_OFFLINE)",
                spec.name
            );
        }
        std::fs::create_dir_all(downloads)
            .with_context(|| format!("creating {}", downloads.display()))?;
        let part = downloads.join(format!(".{}.part", spec.name));
        let mut failures = Vec::new();
        for url in self.urls(spec) {
            let direct = match url.strip_prefix("gdrive://") {
                Some(id) => match gdrive::direct_url(&self.agent, &self.gdrive_base, id) {
                    Ok(u) => u,
                    Err(e) => {
                        failures.push(format!("{url}: {e:#}"));
                        continue;
                    }
                },
                None => url.clone(),
            };
            match self.download(&direct, &part, &spec.name) {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!("{}: {url}: {e}; trying the next source", spec.name);
                    failures.push(format!("{url}: {e}"));
                    continue;
                }
            }
            match self.verify(spec, &part, &url, lock) {
                Ok(()) => {
                    let f = File::open(&part)?;
                    f.sync_all()
                        .with_context(|| format!("flushing {}", part.display()))?;
                    std::fs::rename(&part, &dest)
                        .with_context(|| format!("renaming into {}", dest.display()))?;
                    scfnet_base::files::sync_dir(downloads).ok();
                    let _ = std::fs::remove_file(sidecar(&part));
                    return Ok(dest);
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&part);
                    let _ = std::fs::remove_file(sidecar(&part));
                    tracing::warn!("{}: {url}: {e:#}", spec.name);
                    failures.push(format!("{url}: {e:#}"));
                }
            }
        }
        Err(anyhow!(
            "{}: no source gave a good copy:\n  {}",
            spec.name,
            failures.join("\n  ")
        ))
    }

    /// Checks `path` against the manifest's size, MD5 and SHA-256 and the lock file's pin; pins
    /// it when nothing is known.
    fn verify(&self, spec: &FileSpec, path: &Path, url: &str, lock: &mut Lock) -> Result<()> {
        if spec.archive == Archive::Zip {
            // An error page sent with status 200 must not be pinned as the file.
            let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            if let Err(e) = zip::ZipArchive::new(f) {
                bail!("not a readable zip archive ({e})");
            }
        }
        let d = digests(path)?;
        if let Some(size) = spec.size {
            if d.size != size {
                bail!("{} bytes, the manifest says {size}", d.size);
            }
        }
        if let Some(md5) = &spec.md5 {
            if !d.md5.eq_ignore_ascii_case(md5) {
                bail!("MD5 {} differs from the published {md5}", d.md5);
            }
        }
        let pinned = spec
            .sha256
            .clone()
            .or_else(|| lock.get(&spec.name).map(|p| p.sha256.clone()));
        match pinned {
            Some(sha) if !d.sha256.eq_ignore_ascii_case(&sha) => bail!(
                "SHA-256 {} differs from the pinned {sha}{}",
                d.sha256,
                if spec.sha256.is_some() {
                    " (manifest)"
                } else {
                    " (data/download.lock: the source changed the file, or this copy is bad)"
                }
            ),
            Some(_) => Ok(()),
            None => {
                tracing::info!(
                    "{}: pinning SHA-256 {} in the lock file",
                    spec.name,
                    d.sha256
                );
                lock.pin(Pin {
                    name: spec.name.clone(),
                    size: d.size,
                    sha256: d.sha256,
                    url: url.to_owned(),
                })
            }
        }
    }

    /// The hub cache's copy of an `hf://` source of `spec`, if any.
    fn hub_cached(&self, spec: &FileSpec) -> Option<PathBuf> {
        let cache = match &self.hub.cache_dir {
            Some(d) => hf_hub::Cache::new(d.clone()),
            None => hf_hub::Cache::default(),
        };
        spec.urls.iter().filter_map(|u| parse_hf(u)).find_map(|h| {
            let kind = if h.dataset {
                hf_hub::RepoType::Dataset
            } else {
                hf_hub::RepoType::Model
            };
            cache
                .repo(hf_hub::Repo::with_revision(h.repo, kind, "main".into()))
                .get(&h.file)
        })
    }

    /// Downloads `url` into `part`, resuming what is there when it came from the same URL.
    fn download(&self, url: &str, part: &Path, label: &str) -> std::result::Result<(), UrlError> {
        let side = sidecar(part);
        let same_source = std::fs::read_to_string(&side)
            .ok()
            .is_some_and(|s| s.lines().next() == Some(url));
        if !same_source {
            let _ = std::fs::remove_file(part);
        }
        let etag = std::fs::read_to_string(&side)
            .ok()
            .and_then(|s| s.lines().nth(1).map(str::to_owned))
            .filter(|e| same_source && !e.is_empty());
        let bar = self.bar(label);
        let mut stalls = 0;
        loop {
            let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
            let mut req = self.agent.get(url).header("Accept-Encoding", "identity");
            if have > 0 {
                req = req.header("Range", &format!("bytes={have}-"));
                if let Some(e) = &etag {
                    req = req.header("If-Range", e);
                }
            }
            let mut resp = match req.call() {
                Ok(r) => r,
                Err(e) => {
                    stalls += 1;
                    if stalls > self.retries {
                        return Err(UrlError::Other(anyhow!(e)));
                    }
                    std::thread::sleep(Duration::from_millis(200 * stalls as u64));
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let header = |n: &str| {
                resp.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let (append, total) = match status {
                200 => (false, header("content-length").and_then(|v| v.parse().ok())),
                206 => {
                    let (start, total) = header("content-range")
                        .and_then(|v| parse_content_range(&v))
                        .ok_or_else(|| {
                            UrlError::Other(anyhow!("206 without a usable Content-Range"))
                        })?;
                    if start != have {
                        // Not what was asked for: start again from the first byte.
                        let _ = std::fs::remove_file(part);
                        stalls += 1;
                        if stalls > self.retries {
                            return Err(UrlError::Other(anyhow!(
                                "the server resumes at byte {start}, not {have}"
                            )));
                        }
                        continue;
                    }
                    (true, total)
                }
                416 if have > 0 => {
                    // Everything may be there already; otherwise start again.
                    let total = header("content-range").and_then(|v| {
                        v.strip_prefix("bytes */")
                            .and_then(|n| n.trim().parse().ok())
                    });
                    if total == Some(have) {
                        bar.finish_and_clear();
                        return Ok(());
                    }
                    let _ = std::fs::remove_file(part);
                    continue;
                }
                s => return Err(UrlError::Status(s)),
            };
            let etag_now = header("etag").unwrap_or_default();
            std::fs::write(&side, format!("{url}\n{etag_now}\n"))
                .map_err(|e| UrlError::Other(anyhow!("writing {}: {e}", side.display())))?;
            let mut file = OpenOptions::new()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(part)
                .map_err(|e| UrlError::Other(anyhow!("opening {}: {e}", part.display())))?;
            let start = if append { have } else { 0 };
            if let Some(t) = total {
                bar.set_length(t);
            }
            bar.set_position(start);
            let mut reader = resp.body_mut().as_reader();
            let mut buf = vec![0u8; 1 << 16];
            let mut got = start;
            let cut = loop {
                match reader.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => {
                        file.write_all(&buf[..n]).map_err(|e| {
                            UrlError::Other(anyhow!("writing {}: {e}", part.display()))
                        })?;
                        got += n as u64;
                        bar.set_position(got);
                    }
                    Err(e) => break Some(e),
                }
            };
            file.flush()
                .map_err(|e| UrlError::Other(anyhow!("writing {}: {e}", part.display())))?;
            drop(file);
            let complete = match total {
                Some(t) => got >= t,
                None => cut.is_none(),
            };
            if complete {
                bar.finish_and_clear();
                return Ok(());
            }
            if got > have {
                stalls = 0;
            } else {
                stalls += 1;
            }
            tracing::info!(
                "{label}: connection cut at {got} bytes ({}); resuming",
                cut.map(|e| e.to_string())
                    .unwrap_or_else(|| "short body".into())
            );
            if stalls > self.retries {
                return Err(UrlError::Other(anyhow!(
                    "no progress after {} attempts (stuck at {got} bytes)",
                    self.retries + 1
                )));
            }
        }
    }

    fn bar(&self, label: &str) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:30} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("a valid template"),
        );
        bar.set_message(label.to_owned());
        bar
    }
}

/// The sidecar of a partial download: the URL it came from and its ETag.
fn sidecar(part: &Path) -> PathBuf {
    let mut s = part.as_os_str().to_owned();
    s.push(".source");
    PathBuf::from(s)
}

fn agent(body_timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_recv_body(Some(body_timeout))
        .user_agent("scfnet-download")
        .build()
        .into()
}

/// `bytes START-END/TOTAL` → (START, TOTAL when known).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((start, total.trim().parse().ok()))
}

/// An `hf://[datasets/]ORG/NAME/FILE` source.
struct HfSource {
    dataset: bool,
    repo: String,
    file: String,
}

impl HfSource {
    fn url(&self, endpoint: &str) -> String {
        format!(
            "{}/{}{}/resolve/main/{}",
            endpoint.trim_end_matches('/'),
            if self.dataset { "datasets/" } else { "" },
            self.repo,
            self.file
        )
    }
}

fn parse_hf(url: &str) -> Option<HfSource> {
    let rest = url.strip_prefix("hf://")?;
    let (dataset, rest) = match rest.strip_prefix("datasets/") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let mut parts = rest.splitn(3, '/');
    let (org, name, file) = (parts.next()?, parts.next()?, parts.next()?);
    Some(HfSource {
        dataset,
        repo: format!("{org}/{name}"),
        file: file.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 10-99/*"), Some((10, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn hub_sources_become_resolve_urls() {
        let h = parse_hf("hf://datasets/yuhuan-wu/GAPNet_datasets/SOD_datasets.zip").unwrap();
        assert_eq!(
            h.url("http://x/"),
            "http://x/datasets/yuhuan-wu/GAPNet_datasets/resolve/main/SOD_datasets.zip"
        );
        let m = parse_hf("hf://timm/resnet50.tv_in1k/model.safetensors").unwrap();
        assert_eq!(
            m.url("https://huggingface.co"),
            "https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors"
        );
        assert!(parse_hf("https://a/b").is_none());
    }
}
