//! The hub loader without the internet: a loopback HTTP server that answers like the hub's
//! `resolve` endpoint, and hand-built cache folders.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use scfnet_backbones::{check_safetensors, resolve, HubOptions, WeightSource, WeightsError};

#[path = "common/fake_hub.rs"]
mod fake_hub;
use fake_hub::{fake_hub, Served, COMMIT};

fn safetensors_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let mut map = HashMap::new();
    map.insert(
        "conv1.weight".to_owned(),
        Tensor::ones((4, 3, 1, 1), DType::F32, &Device::Cpu).unwrap(),
    );
    map.insert(
        "bn1.bias".to_owned(),
        Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&map, &path).unwrap();
    std::fs::read(path).unwrap()
}

fn options(endpoint: &str, cache: &Path) -> HubOptions {
    HubOptions {
        endpoint: Some(endpoint.to_owned()),
        cache_dir: Some(cache.to_owned()),
        offline: false,
        progress: false,
    }
}

fn hub(repo: &str, file: &str) -> WeightSource {
    WeightSource::Hub {
        repo: repo.into(),
        revision: "main".into(),
        file: file.into(),
    }
}

#[test]
fn downloads_into_the_cache_then_works_offline() {
    let body = safetensors_bytes();
    let mut files = HashMap::new();
    files.insert(
        "org/net/resolve/main/model.safetensors".to_owned(),
        Served {
            body: body.clone(),
            send: body.len(),
        },
    );
    let (url, log) = fake_hub(files, 4);
    let cache = tempfile::tempdir().unwrap();
    let path = resolve(
        &hub("org/net", "model.safetensors"),
        &options(&url, cache.path()),
    )
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    assert!(
        path.starts_with(cache.path().join("models--org--net/snapshots").join(COMMIT)),
        "{}",
        path.display()
    );
    assert!(
        log.lock().unwrap().len() >= 2,
        "metadata and download requests"
    );
    // Offline, from the cache only: no request reaches a server (the endpoint is unreachable).
    let mut offline = options("http://127.0.0.1:1", cache.path());
    offline.offline = true;
    assert_eq!(
        resolve(&hub("org/net", "model.safetensors"), &offline).unwrap(),
        path
    );
    check_safetensors(
        &path,
        &[("conv1.weight".into(), vec![4, 3, 1, 1])],
        "org/net:model.safetensors",
    )
    .unwrap();
}

#[test]
fn a_missing_file_names_repo_and_file() {
    let (url, _) = fake_hub(HashMap::new(), 4);
    let cache = tempfile::tempdir().unwrap();
    let err = resolve(
        &hub("org/absent", "model.safetensors"),
        &options(&url, cache.path()),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, WeightsError::Hub { .. }), "{msg}");
    assert!(
        msg.contains("org/absent") && msg.contains("model.safetensors"),
        "{msg}"
    );
}

#[test]
fn a_cut_download_is_reported_and_not_left_in_the_cache() {
    let body = safetensors_bytes();
    let mut files = HashMap::new();
    files.insert(
        "org/cut/resolve/main/model.safetensors".to_owned(),
        Served {
            body: body.clone(),
            send: body.len() / 2,
        },
    );
    let (url, _) = fake_hub(files, 4);
    let cache = tempfile::tempdir().unwrap();
    let msg = resolve(
        &hub("org/cut", "model.safetensors"),
        &options(&url, cache.path()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("org/cut") && (msg.contains("truncated") || msg.contains("failed")),
        "{msg}"
    );
    let mut offline = options("http://127.0.0.1:1", cache.path());
    offline.offline = true;
    assert!(
        resolve(&hub("org/cut", "model.safetensors"), &offline).is_err(),
        "no partial file served from the cache"
    );
}

#[test]
fn a_hand_built_cache_resolves_offline_and_a_miss_says_so() {
    let cache = tempfile::tempdir().unwrap();
    let repo_dir = cache.path().join("models--timm--resnet50.tv_in1k");
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::write(repo_dir.join("refs/main"), COMMIT).unwrap();
    let snap = repo_dir.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(snap.join("model.safetensors"), safetensors_bytes()).unwrap();
    let opts = HubOptions {
        offline: true,
        ..HubOptions::from_vars(|k| {
            (k == "HF_HUB_CACHE").then(|| cache.path().display().to_string())
        })
    };
    let path = resolve(
        &WeightSource::parse("timm/resnet50.tv_in1k", "model.safetensors"),
        &opts,
    )
    .unwrap();
    assert_eq!(path, snap.join("model.safetensors"));
    let msg = resolve(
        &WeightSource::parse("timm/other", "model.safetensors"),
        &opts,
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("timm/other") && msg.contains("offline"),
        "{msg}"
    );
    // HF_HOME points at <home>/hub.
    let home = HubOptions::from_vars(|k| (k == "HF_HOME").then(|| "/data/hf".to_owned()));
    assert_eq!(home.cache_dir.unwrap(), Path::new("/data/hf/hub"));
}

#[test]
fn weight_files_are_checked_tensor_by_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("w.safetensors");
    std::fs::write(&good, safetensors_bytes()).unwrap();
    let label = "org/net:model.safetensors";
    let msg = check_safetensors(
        &good,
        &[("layer1.0.conv1.weight".into(), vec![64, 64, 1, 1])],
        label,
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("layer1.0.conv1.weight") && msg.contains(label) && msg.contains("missing"),
        "{msg}"
    );
    let msg = check_safetensors(&good, &[("bn1.bias".into(), vec![8])], label)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("bn1.bias") && msg.contains("[4]") && msg.contains("[8]"),
        "{msg}"
    );
    let cut = dir.path().join("cut.safetensors");
    let bytes = safetensors_bytes();
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let msg = check_safetensors(&cut, &[], label).unwrap_err().to_string();
    assert!(
        msg.contains("cut.safetensors") && msg.contains(label),
        "{msg}"
    );
    let msg = resolve(
        &WeightSource::File(dir.path().join("nope.safetensors")),
        &HubOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("nope.safetensors") && msg.contains("not found"),
        "{msg}"
    );
}

/// Issue 30, class 6: a cache entry leading out of its repository's cache folder (a `refs/main`
/// or a file name with `..`) is refused, and a blob named by a SHA-256 must have that digest.
#[test]
fn cache_entries_stay_in_their_repository_and_blobs_match_their_names() {
    use sha2::Digest;
    let cache = tempfile::tempdir().unwrap();
    let opts = HubOptions {
        offline: true,
        ..HubOptions::from_vars(|k| {
            (k == "HF_HUB_CACHE").then(|| cache.path().display().to_string())
        })
    };
    let source = WeightSource::parse("timm/resnet50.tv_in1k", "model.safetensors");
    let repo_dir = cache.path().join("models--timm--resnet50.tv_in1k");
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    // refs/main leading outside: a folder beside the cache with a loadable file.
    let outside = cache.path().join("outside/snap");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("model.safetensors"), safetensors_bytes()).unwrap();
    std::fs::create_dir_all(repo_dir.join("snapshots")).unwrap();
    std::fs::write(repo_dir.join("refs/main"), "../../outside/snap").unwrap();
    let msg = resolve(&source, &opts).unwrap_err().to_string();
    assert!(
        msg.contains("outside the repository's cache folder"),
        "{msg}"
    );
    // A regular layout: the snapshot's file is a link to a blob named by its SHA-256.
    std::fs::write(repo_dir.join("refs/main"), COMMIT).unwrap();
    let bytes = safetensors_bytes();
    let digest: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::create_dir_all(repo_dir.join("blobs")).unwrap();
    let blob = repo_dir.join("blobs").join(&digest);
    std::fs::write(&blob, &bytes).unwrap();
    let snap = repo_dir.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    std::os::unix::fs::symlink(
        format!("../../blobs/{digest}"),
        snap.join("model.safetensors"),
    )
    .unwrap();
    assert_eq!(
        resolve(&source, &opts).unwrap(),
        snap.join("model.safetensors")
    );
    // The same blob with one byte changed: refused.
    let mut damaged = bytes.clone();
    *damaged.last_mut().unwrap() ^= 1;
    std::fs::write(&blob, &damaged).unwrap();
    let msg = resolve(&source, &opts).unwrap_err().to_string();
    assert!(
        msg.contains("does not have the SHA-256 its name says"),
        "{msg}"
    );
    // A file name climbing out of the snapshot.
    std::fs::write(&blob, &bytes).unwrap();
    let climbing = WeightSource::parse(
        "hf://timm/resnet50.tv_in1k:../../../outside/snap/model.safetensors",
        "model.safetensors",
    );
    let msg = resolve(&climbing, &opts).unwrap_err().to_string();
    assert!(
        msg.contains("outside the repository's cache folder"),
        "{msg}"
    );
}
