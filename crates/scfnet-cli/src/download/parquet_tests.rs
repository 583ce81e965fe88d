//! The parquet source end to end: a loopback hub serves the `refs/convert/parquet` listing and
//! shards made here with the parquet writer, as the Hugging Face hub does; the rows land in our
//! layout, the lock pins them, a second item from the same repository comes from the hub cache,
//! and every way it can go wrong is named.

use std::collections::HashMap;
use std::sync::Arc;

use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::test_server::{serve, Route, Server};
use super::tests::{files_in, jpg, png, run, run_with};

/// One row: the image's `path` (if any), its bytes, the mask's bytes.
type Row = (Option<&'static str>, Vec<u8>, Vec<u8>);

/// A parquet file of `rows` with the `datasets` library's `Image` struct in columns `image` and
/// `mask` (optional groups of optional `bytes` and `path`, as the hub's conversion writes them).
fn parquet_of(rows: &[Row]) -> Vec<u8> {
    let schema = Arc::new(
        parse_message_type(
            "message schema {
               optional group image { optional binary bytes; optional binary path (UTF8); }
               optional group mask { optional binary bytes; optional binary path (UTF8); }
             }",
        )
        .unwrap(),
    );
    // The leaf columns in schema order: image.bytes, image.path, mask.bytes, mask.path.
    let columns: [Vec<Option<Vec<u8>>>; 4] = [
        rows.iter().map(|r| Some(r.1.clone())).collect(),
        rows.iter()
            .map(|r| r.0.map(|p| p.as_bytes().to_vec()))
            .collect(),
        rows.iter().map(|r| Some(r.2.clone())).collect(),
        rows.iter().map(|_| None).collect(),
    ];
    let mut buf = Vec::new();
    let props = Arc::new(WriterProperties::builder().build());
    let mut w = SerializedFileWriter::new(&mut buf, schema, props).unwrap();
    let mut group = w.next_row_group().unwrap();
    let mut k = 0;
    while let Some(mut col) = group.next_column().unwrap() {
        let cells = &columns[k];
        let values: Vec<ByteArray> = cells.iter().flatten().map(|v| v.clone().into()).collect();
        // Definition level 2: the struct and the field present; 1: the struct only.
        let defs: Vec<i16> = cells
            .iter()
            .map(|c| if c.is_some() { 2 } else { 1 })
            .collect();
        col.typed::<ByteArrayType>()
            .write_batch(&values, Some(&defs), None)
            .unwrap();
        col.close().unwrap();
        k += 1;
    }
    group.close().unwrap();
    w.close().unwrap();
    buf
}

const LISTING: &str = "/api/datasets/org/toy/revision/refs%2Fconvert%2Fparquet";
const RESOLVE: &str = "/datasets/org/toy/resolve/refs%2Fconvert%2Fparquet";

/// A hub holding `org/toy` with a `train` and a `test` shard (and a README, which is not read).
fn hub(train: Vec<u8>, test: Vec<u8>) -> Server {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let listing = serde_json::json!({
        "id": "org/toy",
        "sha": commit,
        "siblings": [
            {"rfilename": "README.md"},
            {"rfilename": "default/train/0000.parquet"},
            {"rfilename": "default/test/0000.parquet"},
        ],
    });
    let shard = |body: Vec<u8>, etag: &str| Route {
        body,
        headers: vec![
            ("ETag".into(), format!("\"{etag}\"")),
            ("X-Repo-Commit".into(), commit.into()),
        ],
        ..Default::default()
    };
    serve(HashMap::from([
        (
            LISTING.to_string(),
            Route {
                body: listing.to_string().into_bytes(),
                content_type: Some("application/json".into()),
                ..Default::default()
            },
        ),
        (
            format!("{RESOLVE}/default/train/0000.parquet"),
            shard(train, "train-etag"),
        ),
        (
            format!("{RESOLVE}/default/test/0000.parquet"),
            shard(test, "test-etag"),
        ),
    ]))
}

fn test_rows() -> Vec<Row> {
    vec![
        (Some("a.jpg"), jpg(1), png(255)),
        (Some("DUTS-TE/Imgs/b.jpg"), jpg(2), png(0)),
        (Some("c.jpg"), jpg(3), png(128)),
    ]
}

fn train_rows() -> Vec<Row> {
    vec![(None, jpg(4), png(10)), (None, jpg(5), png(20))]
}

/// Items of the test and train splits, plus one whose split or column is absent.
fn manifest(test_split: &str, image_column: &str) -> String {
    format!(
        r#"
[[item]]
name = "TOY-TE"
kind = "dataset"
list = "test.txt"
count = 3
[[item.sources]]
parquet = {{ dataset = "org/toy", split = "{test_split}", image = "{image_column}" }}

[[item]]
name = "TOY-TR"
kind = "dataset"
list = "train.txt"
count = 2
[[item.sources]]
parquet = {{ dataset = "org/toy", split = "train" }}
"#
    )
}

#[test]
fn a_parquet_dataset_lands_in_our_layout_and_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let server = hub(parquet_of(&train_rows()), parquet_of(&test_rows()));
    let m = manifest("test", "image");
    // The plan names the source and where the listing is; it asks the hub for nothing.
    let plan = run_with(root, &server, &m, &["TOY-TE"], |o| o.dry_run = true).unwrap();
    let plan = plan.lines.join("\n");
    assert!(
        plan.contains("hf-parquet://org/toy/default/test (columns image, mask)")
            && plan.contains(&format!(
                "{}/datasets/org/toy/tree/refs%2Fconvert%2Fparquet/default/test",
                server.url
            )),
        "{plan}"
    );
    assert!(server.requests().is_empty());
    let report = run(root, &server, &m, &["TOY-TE", "TOY-TR"]).unwrap();
    assert_eq!(report.made, ["TOY-TE", "TOY-TR"]);

    // The rows, named by their paths' stems, as files of our layout; the list file names them.
    let te = root.join("data/TOY-TE");
    assert_eq!(files_in(&te.join("image")), ["a.jpg", "b.jpg", "c.jpg"]);
    assert_eq!(files_in(&te.join("mask")), ["a.png", "b.png", "c.png"]);
    assert_eq!(std::fs::read(te.join("image/b.jpg")).unwrap(), jpg(2));
    assert_eq!(std::fs::read(te.join("mask/c.png")).unwrap(), png(128));
    let list = std::fs::read_to_string(te.join("test.txt")).unwrap();
    assert_eq!(list.lines().count(), 3, "{list}");
    // Rows without a path are named by their index.
    let tr = root.join("data/TOY-TR");
    assert_eq!(files_in(&tr.join("image")), ["000000.jpg", "000001.jpg"]);
    assert_eq!(std::fs::read(tr.join("mask/000001.png")).unwrap(), png(20));

    // Each split pinned by what its rows hold.
    let lock = std::fs::read_to_string(root.join("data/download.lock")).unwrap();
    assert!(lock.contains("hf-parquet://org/toy/default/test"), "{lock}");
    assert!(
        lock.contains("hf-parquet://org/toy/default/train"),
        "{lock}"
    );

    // Each shard fetched once (a HEAD, a GET) by the first item; the second read both from the
    // hub cache.
    let gets = |shard: &str| {
        server
            .requests()
            .iter()
            .filter(|r| r.starts_with(&format!("{RESOLVE}/default/{shard}/")))
            .count()
    };
    assert_eq!(
        (gets("train"), gets("test")),
        (2, 2),
        "{:?}",
        server.requests()
    );

    // A second run does nothing, not even a request.
    let before = server.requests().len();
    let again = run(root, &server, &m, &["TOY-TE", "TOY-TR"]).unwrap();
    assert_eq!(again.present, ["TOY-TE", "TOY-TR"]);
    assert_eq!(server.requests().len(), before);

    // Made again from the cache: the same rows, the same pin; no shard asked for again.
    std::fs::remove_dir_all(&te).unwrap();
    run(root, &server, &m, &["TOY-TE"]).unwrap();
    assert_eq!((gets("train"), gets("test")), (2, 2));
    assert_eq!(
        std::fs::read_to_string(root.join("data/download.lock")).unwrap(),
        lock
    );

    // A source whose rows changed is refused by the pin, and nothing lands.
    std::fs::remove_dir_all(&te).unwrap();
    let tampered = lock.replacen("sha256 = \"", "sha256 = \"00", 1);
    std::fs::write(root.join("data/download.lock"), tampered).unwrap();
    let e = format!("{:#}", run(root, &server, &m, &["TOY-TE"]).unwrap_err());
    assert!(e.contains("differs from the pinned"), "{e}");
    assert!(!te.exists());
}

#[test]
fn what_is_wrong_with_a_parquet_source_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let server = hub(parquet_of(&train_rows()), parquet_of(&test_rows()));

    // A split the repository does not have: what it has is said.
    let e = format!(
        "{:#}",
        run(root, &server, &manifest("validation", "image"), &["TOY-TE"]).unwrap_err()
    );
    assert!(
        e.contains("no shards of default/validation") && e.contains("default/test, default/train"),
        "{e}"
    );

    // A column the rows do not have: the columns are named.
    let e = format!(
        "{:#}",
        run(root, &server, &manifest("test", "picture"), &["TOY-TE"]).unwrap_err()
    );
    assert!(
        e.contains("no column \"picture\"") && e.contains("image, mask"),
        "{e}"
    );

    // A wrong count, as for an archive.
    let e = format!(
        "{:#}",
        run(
            root,
            &server,
            &manifest("test", "image").replace("count = 3", "count = 4"),
            &["TOY-TE"]
        )
        .unwrap_err()
    );
    assert!(
        e.contains("holds 3 image/mask pairs; 4 are published"),
        "{e}"
    );
    assert!(!root.join("data/TOY-TE").exists());

    // A shard that is not parquet: an error naming the repository, not a crash.
    let broken = hub(
        b"PAR1 not really parquet PAR1".to_vec(),
        parquet_of(&test_rows()),
    );
    let e = format!(
        "{:#}",
        run(
            &root.join("other"),
            &broken,
            &manifest("test", "image"),
            &["TOY-TE"]
        )
        .unwrap_err()
    );
    assert!(e.contains("fetching the parquet shards of org/toy"), "{e}");
}

#[test]
fn rows_that_are_not_images_are_named_by_shard_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut rows = test_rows();
    rows[1].1 = b"<html>not an image</html>".to_vec();
    let mut dup = test_rows();
    dup[2].0 = Some("other/a.jpg");
    let server = hub(parquet_of(&dup), parquet_of(&rows));
    let e = format!(
        "{:#}",
        run(root, &server, &manifest("test", "image"), &["TOY-TE"]).unwrap_err()
    );
    assert!(
        e.contains("default/test/0000.parquet: row 1") && e.contains("no image format"),
        "{e}"
    );
    // Two rows with one name would overwrite each other: refused.
    let m = manifest("test", "image").replace("count = 2", "count = 3");
    let e = format!("{:#}", run(root, &server, &m, &["TOY-TR"]).unwrap_err());
    assert!(
        e.contains("default/train/0000.parquet: row 2") && e.contains("a second image named \"a\""),
        "{e}"
    );
    assert!(!root.join("data/TOY-TE").exists() && !root.join("data/TOY-TR").exists());
}

#[test]
fn parquet_sources_are_checked_in_the_manifest() {
    use super::manifest::Manifest;
    let item = |source: &str| {
        format!(
            "[[item]]\nname = \"D\"\nkind = \"dataset\"\nlist = \"test.txt\"\ncount = 1\n\
             [[item.sources]]\n{source}\n"
        )
    };
    for (source, want) in [
        (
            "parquet = { dataset = \"toy\", split = \"test\" }",
            "must be ORG/NAME",
        ),
        (
            "parquet = { dataset = \"a/b/c\", split = \"test\" }",
            "must be ORG/NAME",
        ),
        (
            "parquet = { dataset = \"../b\", split = \"test\" }",
            "must be ORG/NAME",
        ),
        (
            "parquet = { dataset = \"a/b\", split = \"../x\" }",
            "split \"../x\" must be a plain name",
        ),
        (
            "parquet = { dataset = \"a/b\", split = \"t\", image = \"m\", mask = \"m\" }",
            "both \"m\"",
        ),
        (
            "parquet = { dataset = \"a/b\", split = \"t\" }\nimages = [\"x\"]",
            "takes no `files`, `images` or `masks`",
        ),
        (
            "images = [\"x\"]\nmasks = [\"y\"]",
            "needs `files` or `parquet`",
        ),
    ] {
        let m: Manifest = toml::from_str(&item(source)).unwrap();
        let e = m.check().unwrap_err().to_string();
        assert!(e.contains(want), "{source}: {e}");
    }
    let ok: Manifest =
        toml::from_str(&item("parquet = { dataset = \"a/b\", split = \"test\" }")).unwrap();
    ok.check().unwrap();
    let weights =
        "[[item]]\nname = \"W\"\nkind = \"weights\"\ntarget = \"weights/w.safetensors\"\n\
                   [[item.sources]]\nparquet = { dataset = \"a/b\", split = \"t\" }\n";
    let m: Manifest = toml::from_str(weights).unwrap();
    assert!(m.check().unwrap_err().to_string().contains("datasets only"));
}
