//! The download task end to end against a loopback server: resumption after a cut, checksum and
//! lock mismatches, a 404 falling back, zip-slip and symlink archives, a missing mask, Google
//! Drive's confirm page, the hub cache, a manual drop, idempotence.

use std::collections::HashMap;
use std::io::{Cursor, Write};
use std::path::Path;
use std::time::Duration;

use scfnet_backbones::HubOptions;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

use super::fetch::Fetcher;
use super::test_server::{serve, Route, Server};
use super::{download, Options, Report};

pub(super) fn png(value: u8) -> Vec<u8> {
    let img = image::GrayImage::from_pixel(4, 3, image::Luma([value]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

pub(super) fn jpg(value: u8) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(4, 3, image::Rgb([value, 10, 20]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

fn grey_jpg(value: u8) -> Vec<u8> {
    let img = image::GrayImage::from_pixel(4, 3, image::Luma([value]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// A zip of `(name, bytes)` entries.
fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        w.start_file(*name, SimpleFileOptions::default()).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// The toy benchmark: three pairs under `SOD/TOY/{image,mask}` (one mask a JPEG, as in
/// DUTS-TR), macOS metadata beside them; `drop_mask` leaves one mask out.
fn toy_dataset(drop_mask: bool) -> Vec<u8> {
    let mut e = vec![
        ("SOD/TOY/image/a.jpg", jpg(1)),
        ("SOD/TOY/image/b.jpg", jpg(2)),
        ("SOD/TOY/image/c.jpg", jpg(3)),
        ("SOD/TOY/mask/a.png", png(255)),
        ("SOD/TOY/mask/b.jpg", grey_jpg(200)),
        ("__MACOSX/SOD/TOY/image/._a.jpg", vec![0; 10]),
    ];
    if !drop_mask {
        e.push(("SOD/TOY/mask/c.png", png(0)));
    }
    zip_of(&e)
}

/// A server with the toy dataset at `/toy.zip` (its mask `c` missing when `drop_mask`).
fn toy_server(drop_mask: bool) -> Server {
    serve(HashMap::from([(
        "/toy.zip".to_string(),
        Route {
            body: toy_dataset(drop_mask),
            ..Default::default()
        },
    )]))
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn fetcher(server: &Server, root: &Path) -> Fetcher {
    let hub = HubOptions {
        endpoint: Some(server.url.clone()),
        cache_dir: Some(root.join("hub")),
        offline: false,
        progress: false,
    };
    let mut f = Fetcher::new(hub, None, false).with_body_timeout(Duration::from_secs(10));
    f.gdrive_base = server.url.clone();
    f
}

/// Writes `manifest` into `root/data/manifest.toml` and runs the task for `names`.
pub(super) fn run(
    root: &Path,
    server: &Server,
    manifest: &str,
    names: &[&str],
) -> anyhow::Result<Report> {
    run_with(root, server, manifest, names, |_| {})
}

pub(super) fn run_with(
    root: &Path,
    server: &Server,
    manifest: &str,
    names: &[&str],
    tweak: impl FnOnce(&mut Options),
) -> anyhow::Result<Report> {
    std::fs::create_dir_all(root.join("data")).unwrap();
    let path = root.join("data/manifest.toml");
    std::fs::write(&path, manifest.replace("SERVER", &server.url)).unwrap();
    let mut opts = Options {
        root: root.to_owned(),
        manifest: path,
        names: names.iter().map(|s| s.to_string()).collect(),
        list: false,
        dry_run: false,
        from: None,
        fetcher: fetcher(server, root),
    };
    tweak(&mut opts);
    download(&opts)
}

const TOY: &str = r#"
[[file]]
name = "toy.zip"
urls = ["SERVER/missing/toy.zip", "SERVER/toy.zip"]
archive = "zip"

[[item]]
name = "TOY"
kind = "dataset"
list = "test.txt"
count = 3
[[item.sources]]
files = ["toy.zip"]
images = ["**/TOY/imgs", "**/TOY/image"]
masks = ["**/TOY/mask"]
"#;

pub(super) fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_cut_download_resumes_falls_back_from_a_404_and_lands_once() {
    let body = toy_dataset(false);
    let cut = body.len() / 2;
    let server = serve(HashMap::from([(
        "/toy.zip".to_string(),
        Route {
            body: body.clone(),
            cut_first_at: Some(cut),
            ..Default::default()
        },
    )]));
    let root = tempfile::tempdir().unwrap();
    let report = run(root.path(), &server, TOY, &[]).unwrap();
    assert_eq!(report.made, ["TOY"]);
    let log = server.requests();
    assert!(log[0].starts_with("/missing/toy.zip"), "{log:?}");
    assert!(
        log.iter().any(|l| l == &format!("/toy.zip Some({cut})")),
        "no resumed request in {log:?}"
    );
    let data = root.path().join("data/TOY");
    assert_eq!(files_in(&data.join("image")), ["a.jpg", "b.jpg", "c.jpg"]);
    assert_eq!(files_in(&data.join("mask")), ["a.png", "b.png", "c.png"]);
    let b = image::open(data.join("mask/b.png")).unwrap().to_luma8();
    assert!((b.get_pixel(0, 0)[0] as i32 - 200).abs() < 8);
    assert_eq!(
        std::fs::read_to_string(data.join("test.txt")).unwrap(),
        "a\nb\nc\n"
    );
    // The download is whole, pinned in the lock, and nothing temporary is left.
    let downloaded = std::fs::read(root.path().join("data/cache/downloads/toy.zip")).unwrap();
    assert_eq!(downloaded, body);
    let lock = std::fs::read_to_string(root.path().join("data/download.lock")).unwrap();
    assert!(lock.contains(&sha256(&body)), "{lock}");
    assert_eq!(
        files_in(&root.path().join("data/cache/downloads")),
        ["toy.zip"]
    );
    assert!(!root.path().join("data/cache/extract").exists());
    // Idempotent: a second run asks nothing of the server.
    let before = server.requests().len();
    let again = run(root.path(), &server, TOY, &[]).unwrap();
    assert_eq!(again.present, ["TOY"]);
    assert!(again.made.is_empty());
    assert_eq!(server.requests().len(), before);
}

const WEIGHTS: &str = r#"
[[file]]
name = "w.bin"
urls = ["SERVER/w.bin"]
sha256 = "SHA"
archive = "none"

[[item]]
name = "w"
kind = "weights"
target = "weights/w.bin"
[[item.sources]]
files = ["w.bin"]
"#;

#[test]
fn a_checksum_mismatch_is_refused_and_leaves_nothing() {
    let body = b"the real bytes".to_vec();
    let server = serve(HashMap::from([(
        "/w.bin".to_string(),
        Route {
            body: body.clone(),
            ..Default::default()
        },
    )]));
    let root = tempfile::tempdir().unwrap();
    let wrong = WEIGHTS.replace("SHA", &sha256(b"other bytes"));
    let err = run(root.path(), &server, &wrong, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("SHA-256") && err.contains("w.bin"), "{err}");
    assert!(!root.path().join("weights/w.bin").exists());
    let downloads = root.path().join("data/cache/downloads");
    assert!(
        files_in(&downloads).is_empty(),
        "{:?}",
        files_in(&downloads)
    );
    // With the right checksum the same server gives the file.
    let right = WEIGHTS.replace("SHA", &sha256(&body));
    run(root.path(), &server, &right, &[]).unwrap();
    assert_eq!(
        std::fs::read(root.path().join("weights/w.bin")).unwrap(),
        body
    );
}

#[test]
fn a_file_that_changes_at_its_source_is_refused_by_the_lock() {
    let manifest = WEIGHTS.replace("sha256 = \"SHA\"\n", "");
    let first = serve(HashMap::from([(
        "/w.bin".to_string(),
        Route {
            body: b"version one".to_vec(),
            ..Default::default()
        },
    )]));
    let root = tempfile::tempdir().unwrap();
    run(root.path(), &first, &manifest, &[]).unwrap();
    std::fs::remove_file(root.path().join("weights/w.bin")).unwrap();
    std::fs::remove_file(root.path().join("data/cache/downloads/w.bin")).unwrap();
    let second = serve(HashMap::from([(
        "/w.bin".to_string(),
        Route {
            body: b"version two".to_vec(),
            ..Default::default()
        },
    )]));
    let err = run(root.path(), &second, &manifest, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("download.lock"), "{err}");
    assert!(!root.path().join("weights/w.bin").exists());
}

#[test]
fn archives_that_write_outside_or_hold_links_are_refused() {
    let slip = zip_of(&[
        ("SOD/TOY/image/a.jpg", jpg(1)),
        ("../../evil.txt", b"pwned".to_vec()),
    ]);
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.add_symlink(
        "SOD/TOY/image/link.jpg",
        "/etc/passwd",
        SimpleFileOptions::default(),
    )
    .unwrap();
    let link = w.finish().unwrap().into_inner();
    for (body, why) in [(slip, "outside the target"), (link, "symbolic link")] {
        let server = serve(HashMap::from([(
            "/toy.zip".to_string(),
            Route {
                body,
                ..Default::default()
            },
        )]));
        let root = tempfile::tempdir().unwrap();
        let err = run(root.path(), &server, TOY, &[]).unwrap_err().to_string();
        assert!(err.contains(why) && err.contains("toy.zip"), "{err}");
        assert!(!root.path().join("data/evil.txt").exists());
        assert!(!root.path().join("data/cache/evil.txt").exists());
        assert!(!root.path().join("evil.txt").exists());
        assert!(!root.path().join("data/TOY").exists());
    }
}

#[test]
fn a_missing_mask_is_named_and_nothing_lands() {
    let server = toy_server(true);
    let root = tempfile::tempdir().unwrap();
    let err = run(root.path(), &server, TOY, &[]).unwrap_err().to_string();
    assert!(err.contains("have no mask") && err.contains(": c"), "{err}");
    assert!(!root.path().join("data/TOY").exists());
}

#[test]
fn a_wrong_count_is_refused() {
    let server = toy_server(false);
    let root = tempfile::tempdir().unwrap();
    let err = run(
        root.path(),
        &server,
        &TOY.replace("count = 3", "count = 4"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("3 image/mask pairs; 4 are published"), "{err}");
}

#[test]
fn google_drive_confirm_page_is_followed() {
    let page = r#"<html><form id="download-form" action="/download" method="get">
<input type="hidden" name="id" value="FILEID"><input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="42"></form></html>"#;
    let server = serve(HashMap::from([
        (
            "/uc".to_string(),
            Route {
                body: page.as_bytes().to_vec(),
                content_type: Some("text/html; charset=utf-8".into()),
                ..Default::default()
            },
        ),
        (
            "/download".to_string(),
            Route {
                body: b"checkpoint".to_vec(),
                ..Default::default()
            },
        ),
    ]));
    let root = tempfile::tempdir().unwrap();
    let manifest = WEIGHTS
        .replace("SERVER/w.bin", "gdrive://FILEID")
        .replace("sha256 = \"SHA\"\n", "");
    run(root.path(), &server, &manifest, &[]).unwrap();
    assert_eq!(
        std::fs::read(root.path().join("weights/w.bin")).unwrap(),
        b"checkpoint"
    );
    let log = server.requests();
    assert!(
        log.iter()
            .any(|l| l.starts_with("/download?id=FILEID&export=download&confirm=t&uuid=42")),
        "{log:?}"
    );
}

#[test]
fn the_hub_cache_is_used_without_the_network() {
    let body = toy_dataset(false);
    let server = serve(HashMap::new());
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("hub/datasets--org--sets");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
    std::fs::write(repo.join("snapshots").join(commit).join("toy.zip"), &body).unwrap();
    let manifest = TOY.replace(
        r#"["SERVER/missing/toy.zip", "SERVER/toy.zip"]"#,
        r#"["hf://datasets/org/sets/toy.zip"]"#,
    );
    let report = run(root.path(), &server, &manifest, &["TOY"]).unwrap();
    assert_eq!(report.made, ["TOY"]);
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    assert_eq!(files_in(&root.path().join("data/TOY/mask")).len(), 3);
}

const POOL: &str = r#"
[[item]]
name = "POOL"
kind = "unlabeled"
count = 3
manual = true
default = false
"#;

#[test]
fn an_unlabeled_pool_is_moved_in_by_hand_after_its_count_is_checked() {
    let server = serve(HashMap::new());
    let root = tempfile::tempdir().unwrap();
    let err = run(root.path(), &server, POOL, &["POOL"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--from DIR"), "{err}");
    let drop = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(drop.path().join("part1")).unwrap();
    std::fs::write(drop.path().join("part1/x.jpg"), jpg(5)).unwrap();
    std::fs::write(drop.path().join("y.jpg"), jpg(6)).unwrap();
    let from = Some(drop.path().to_owned());
    let err = run_with(root.path(), &server, POOL, &["POOL"], |o| {
        o.from = from.clone()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("holds 2 images; POOL has 3"), "{err}");
    std::fs::write(drop.path().join("part1/z.png"), png(7)).unwrap();
    run_with(root.path(), &server, POOL, &["POOL"], |o| {
        o.from = from.clone()
    })
    .unwrap();
    assert_eq!(
        files_in(&root.path().join("data/POOL/image")),
        ["x.jpg", "y.jpg", "z.png"]
    );
    assert!(!drop.path().join("y.jpg").exists(), "files are moved in");
}

/// Issue 30, class 6: images reached through a link to a folder outside `--from` are copied
/// (or linked), never moved out of that folder.
#[test]
fn an_unlabeled_pool_never_moves_files_from_outside_its_folder() {
    let server = serve(HashMap::new());
    let root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("mine.jpg"), jpg(8)).unwrap();
    let drop = tempfile::tempdir().unwrap();
    std::fs::write(drop.path().join("x.jpg"), jpg(5)).unwrap();
    std::fs::write(drop.path().join("y.jpg"), jpg(6)).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), drop.path().join("link")).unwrap();
    let from = Some(drop.path().to_owned());
    run_with(root.path(), &server, POOL, &["POOL"], |o| {
        o.from = from.clone()
    })
    .unwrap();
    assert_eq!(
        files_in(&root.path().join("data/POOL/image")),
        ["mine.jpg", "x.jpg", "y.jpg"]
    );
    assert_eq!(
        std::fs::read(elsewhere.path().join("mine.jpg")).unwrap(),
        jpg(8),
        "the file outside --from stays where it was"
    );
    assert!(
        !drop.path().join("x.jpg").exists(),
        "files inside are moved in"
    );
}

#[test]
fn list_and_dry_run_touch_nothing() {
    let server = serve(HashMap::new());
    let root = tempfile::tempdir().unwrap();
    // Even a stale temporary of ours stays put in a dry run.
    let stale = root.path().join("data/.TOY.scfnet-999999999.tmp");
    std::fs::create_dir_all(&stale).unwrap();
    let report = run_with(root.path(), &server, TOY, &[], |o| {
        o.dry_run = true;
        o.fetcher.mirror = Some("http://mirror.example".into());
    })
    .unwrap();
    let plan = report.lines.join("\n");
    let mirror = plan.find("http://mirror.example/toy.zip").unwrap();
    let missing = plan.find("/missing/toy.zip").unwrap();
    assert!(mirror < missing, "{plan}");
    let listed = run_with(root.path(), &server, TOY, &[], |o| o.list = true)
        .unwrap()
        .lines
        .join("\n");
    assert!(
        listed.contains("TOY") && listed.contains("missing"),
        "{listed}"
    );
    // By-hand and non-default items are listed too (issue 30, class 7).
    let both = format!("{TOY}\n{POOL}");
    let listed = run_with(root.path(), &server, &both, &[], |o| o.list = true)
        .unwrap()
        .lines
        .join("\n");
    assert!(
        listed.contains("POOL") && listed.contains("by hand: --from DIR"),
        "{listed}"
    );
    assert!(server.requests().is_empty());
    assert!(!root.path().join("data/cache").exists());
    assert!(stale.is_dir());
}

#[test]
fn what_a_killed_run_left_is_resumed_or_cleaned() {
    let body = toy_dataset(false);
    let server = serve(HashMap::from([(
        "/toy.zip".to_string(),
        Route {
            body: body.clone(),
            ..Default::default()
        },
    )]));
    let root = tempfile::tempdir().unwrap();
    let downloads = root.path().join("data/cache/downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let half = body.len() / 2;
    std::fs::write(downloads.join(".toy.zip.part"), &body[..half]).unwrap();
    std::fs::write(
        downloads.join(".toy.zip.part.source"),
        format!("{}/toy.zip\n\"e{}\"\n", server.url, body.len()),
    )
    .unwrap();
    // A half-built dataset folder of a process that no longer exists.
    let stale = root.path().join("data/.TOY.scfnet-999999999.tmp");
    std::fs::create_dir_all(stale.join("image")).unwrap();
    let manifest = TOY.replace("\"SERVER/missing/toy.zip\", ", "");
    run(root.path(), &server, &manifest, &[]).unwrap();
    assert_eq!(
        server.requests(),
        [format!("/toy.zip Some({half})")],
        "only the missing half is asked for"
    );
    assert_eq!(std::fs::read(downloads.join("toy.zip")).unwrap(), body);
    assert!(!stale.exists());
    assert_eq!(files_in(&downloads), ["toy.zip"]);
}

#[test]
fn an_error_page_instead_of_an_archive_is_refused_and_not_pinned() {
    let server = serve(HashMap::from([(
        "/toy.zip".to_string(),
        Route {
            body: b"<html>Quota exceeded</html>".to_vec(),
            content_type: Some("text/html".into()),
            ..Default::default()
        },
    )]));
    let root = tempfile::tempdir().unwrap();
    let err = run(root.path(), &server, TOY, &[]).unwrap_err().to_string();
    assert!(err.contains("not a readable zip archive"), "{err}");
    assert!(!root.path().join("data/download.lock").exists());
    assert!(files_in(&root.path().join("data/cache/downloads")).is_empty());
    assert!(!root.path().join("data/TOY").exists());
}

#[test]
fn a_folder_without_the_completion_marker_is_not_touched() {
    let server = toy_server(false);
    let root = tempfile::tempdir().unwrap();
    // Somebody's own folder where the dataset would go: no `.complete` marker.
    let theirs = root.path().join("data/TOY");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("notes.txt"), b"mine").unwrap();
    let err = run(root.path(), &server, TOY, &[]).unwrap_err().to_string();
    assert!(
        err.contains("exists but is not a finished download") && err.contains("move it away"),
        "{err}"
    );
    // Nothing was fetched into it, and what was there is intact.
    assert_eq!(files_in(&theirs), ["notes.txt"]);
    assert_eq!(std::fs::read(theirs.join("notes.txt")).unwrap(), b"mine");
}
