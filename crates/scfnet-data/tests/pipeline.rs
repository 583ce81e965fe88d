//! The data pipeline end to end on a small synthetic set: layout, validation, reproducible
//! loading with any number of workers, resuming mid-epoch, memory given back by the consumer,
//! the next epoch prepared ahead, and clear errors on bad files.

use std::path::Path;

use scfnet_data::synth::{generate, SynthConfig};
use scfnet_data::{validate, Augment, DataError, Loader, LoaderConfig, OnError, SodDataset};

fn synth(dir: &Path, count: usize) {
    let cfg = SynthConfig {
        count,
        seed: 3,
        side: (64, 96),
        test_fraction: 0.25,
        clutter: 0,
    };
    let s = generate(dir, &cfg, || {}).unwrap();
    assert_eq!(s.train.len() + s.test.len(), count);
    assert_eq!(s.test.len(), (count as f64 * 0.25).round() as usize);
}

fn config(workers: usize) -> LoaderConfig {
    LoaderConfig {
        batch: 3,
        sizes: vec![32, 64],
        workers,
        prefetch: 2,
        ..LoaderConfig::paper(11)
    }
}

#[test]
fn a_synthetic_set_is_never_written_over_or_into_another() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 4);
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let before: Vec<(std::path::PathBuf, Vec<u8>)> = walk(dir.path());
    let cfg = SynthConfig {
        count: 6,
        seed: 9,
        side: (64, 96),
        test_fraction: 0.0,
        clutter: 0,
    };
    let err = generate(dir.path(), &cfg, || {}).unwrap_err().to_string();
    assert!(
        err.contains("image, mask, train.txt, test.txt") && err.contains("new or empty"),
        "{err}"
    );
    assert_eq!(
        walk(dir.path()),
        before,
        "nothing written, nothing replaced"
    );
    // A folder holding only other files (or empty data folders) is fine.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("notes.txt"), "mine").unwrap();
    std::fs::create_dir(other.path().join("image")).unwrap();
    generate(other.path(), &cfg, || {}).unwrap();
    assert_eq!(
        std::fs::read(other.path().join("notes.txt")).unwrap(),
        b"mine"
    );
}

/// Every file under `dir` with its bytes, sorted.
fn walk(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn synthetic_set_has_the_layout_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 8);
    let train = SodDataset::labeled(dir.path(), Some(Path::new("train.txt"))).unwrap();
    let test = SodDataset::labeled(dir.path(), Some(Path::new("test.txt"))).unwrap();
    assert_eq!((train.len(), test.len()), (6, 2));
    let all = SodDataset::labeled(dir.path(), None).unwrap();
    assert_eq!(all.len(), 8);
    let report = validate(&all).unwrap();
    assert!(report.width.0 >= 64 && report.width.1 <= 96);
    // Masks are mostly 0 or 255 with soft edges, and have foreground.
    let m = scfnet_data::read_mask(&all.samples()[0].mask.clone().unwrap()).unwrap();
    let fg = m.data.iter().filter(|&&v| v > 128.0).count();
    assert!(fg > m.data.len() / 50 && fg < m.data.len() * 9 / 10, "{fg}");
    // Same seed, same files.
    let again = tempfile::tempdir().unwrap();
    synth(again.path(), 8);
    for f in ["image/00003.jpg", "mask/00005.png"] {
        assert_eq!(
            std::fs::read(dir.path().join(f)).unwrap(),
            std::fs::read(again.path().join(f)).unwrap()
        );
    }
}

#[test]
fn batches_do_not_depend_on_workers_and_resume_mid_epoch() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 8);
    let ds = SodDataset::labeled(dir.path(), None).unwrap();
    let one = Loader::new(ds.clone(), config(1)).unwrap();
    let three = Loader::new(ds, config(3)).unwrap();
    assert_eq!(one.batches_per_epoch(), 3);
    let a: Vec<_> = one.epoch(1, 0).map(Result::unwrap).collect();
    let b: Vec<_> = three.epoch(1, 0).map(Result::unwrap).collect();
    assert_eq!(a.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.index, x.size, &x.stems), (y.index, y.size, &y.stems));
        assert_eq!(x.images, y.images);
        assert_eq!(x.masks, y.masks);
    }
    assert_eq!(a.iter().map(|x| x.len()).collect::<Vec<_>>(), [3, 3, 2]);
    let t = a[0].images_tensor(&candle_core::Device::Cpu).unwrap();
    assert_eq!(t.dims(), &[3, 3, a[0].size, a[0].size]);
    // Starting at batch 1 gives batches 1 and 2 unchanged.
    let resumed: Vec<_> = three.epoch(1, 1).map(Result::unwrap).collect();
    assert_eq!(resumed.len(), 2);
    assert_eq!(resumed[1].images, a[2].images);
    // Another epoch: another order.
    let e2: Vec<_> = one.epoch(2, 0).map(Result::unwrap).collect();
    assert_ne!(
        a.iter().flat_map(|x| x.stems.clone()).collect::<Vec<_>>(),
        e2.iter().flat_map(|x| x.stems.clone()).collect::<Vec<_>>()
    );
}

#[test]
fn memory_given_back_is_written_over_and_changes_no_batch() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 8);
    let ds = SodDataset::labeled(dir.path(), None).unwrap();
    let recycling = Loader::new(ds.clone(), config(2)).unwrap();
    let fresh = Loader::new(ds, config(2)).unwrap();
    let mut given_back = std::collections::HashSet::new();
    let mut reused = 0;
    for epoch in 0..4 {
        let batches = recycling.epoch(epoch, 0);
        let buffers = batches.buffers();
        let expected: Vec<_> = fresh.epoch(epoch, 0).map(Result::unwrap).collect();
        for (mut got, want) in batches.map(Result::unwrap).zip(expected) {
            // Sides 32 and 64 alternate and the last batch is short: a vector written for one
            // batch holds more values than the next needs.
            assert_eq!(
                (got.index, got.size, &got.stems),
                (want.index, want.size, &want.stems)
            );
            let at = format!("epoch {epoch} batch {}", got.index);
            assert!(got.images == want.images, "{at}: images differ");
            assert!(got.masks == want.masks, "{at}: masks differ");
            reused += usize::from(given_back.contains(&got.images.as_ptr()));
            // What a consumer leaves in memory it gives back must not reach a later batch.
            got.images.fill(f32::NAN);
            got.masks.iter_mut().for_each(|m| m.fill(f32::NAN));
            given_back.insert(got.images.as_ptr());
            buffers.give_back(&mut got);
            assert!(got.images.is_empty() && got.masks.as_ref().is_some_and(Vec::is_empty));
        }
    }
    assert!(
        reused > 0,
        "later batches are written into memory given back"
    );
    assert!(recycling.buffers().shelved().0 > 0);
}

#[test]
fn a_prepared_epoch_is_taken_over_with_the_same_batches() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 8);
    let ds = SodDataset::labeled(dir.path(), None).unwrap();
    let loader = Loader::new(ds.clone(), config(2)).unwrap();
    let fresh = Loader::new(ds, config(1)).unwrap();
    let same = |got: Vec<scfnet_data::Batch>, epoch: usize, start: usize| {
        let want: Vec<_> = fresh.epoch(epoch, start).map(Result::unwrap).collect();
        assert_eq!(got.len(), want.len(), "epoch {epoch}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.index, g.size, &g.stems), (w.index, w.size, &w.stems));
            assert!(g.images == w.images && g.masks == w.masks, "epoch {epoch}");
        }
    };
    for epoch in 0..3 {
        assert_eq!(loader.is_prepared(epoch), epoch > 0, "epoch {epoch}");
        let batches = loader.epoch_preparing_next(epoch, 0);
        assert_eq!(batches.epoch(), epoch);
        assert_eq!(batches.was_prepared(), epoch > 0, "taken over");
        assert!(!loader.is_prepared(epoch));
        same(batches.map(Result::unwrap).collect(), epoch, 0);
        // At the latest when its last batch was handed out.
        assert!(loader.is_prepared(epoch + 1));
    }
    // Resuming inside the prepared epoch drops it and starts where asked.
    let resumed = loader.epoch(3, 1);
    assert!(!resumed.was_prepared());
    same(resumed.map(Result::unwrap).collect(), 3, 1);
    assert!(!loader.is_prepared(3));
    // Asking for another epoch drops a prepared one; preparing twice keeps the first.
    loader.prepare(5);
    loader.prepare(5);
    assert!(loader.is_prepared(5));
    same(loader.epoch(2, 0).map(Result::unwrap).collect(), 2, 0);
    assert!(!loader.is_prepared(5));
    // With `epoch` alone nothing is prepared.
    let _ = loader.epoch(4, 0).count();
    assert!(!loader.is_prepared(5));
}

#[test]
fn no_augmentation_gives_the_normalised_resized_image() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 2);
    let ds = SodDataset::labeled(dir.path(), None).unwrap();
    let cfg = LoaderConfig {
        shuffle: false,
        augment: Augment::none(),
        sizes: vec![64],
        ..config(1)
    };
    let loader = Loader::new(ds.clone(), cfg).unwrap();
    let b = loader.batch(0, 0).unwrap();
    // Without augmentation, a training batch is what the inference path feeds the network.
    let rgb = scfnet_data::decode_image(&ds.samples()[0].image)
        .unwrap()
        .to_rgb8();
    let image = scfnet_model::RgbRef {
        pixels: rgb.as_raw(),
        width: rgb.width() as usize,
        height: rgb.height() as usize,
    };
    let want = scfnet_model::preprocess(
        image,
        scfnet_model::InputSide::new(64).unwrap(),
        &candle_core::Device::Cpu,
        candle_core::DType::F32,
    )
    .unwrap()
    .flatten_all()
    .unwrap()
    .to_vec1::<f32>()
    .unwrap();
    let worst = b.images[..want.len()]
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst < 1e-4,
        "training and inference inputs differ by {worst}"
    );
    let m = b.masks.unwrap();
    assert!(m.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn bad_files_are_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 6);
    // A corrupt image, a missing mask, a listed stem without image.
    std::fs::write(dir.path().join("image/00001.jpg"), b"not a jpeg").unwrap();
    std::fs::remove_file(dir.path().join("mask/00002.png")).unwrap();
    std::fs::write(dir.path().join("list.txt"), "00000\n00001\n00002\nghost\n").unwrap();
    let err = SodDataset::labeled(dir.path(), Some(Path::new("list.txt"))).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("00002") && msg.contains("ghost"), "{msg}");
    // Without the missing ones, validation names the corrupt file.
    std::fs::write(dir.path().join("list.txt"), "00000\n00001\n00003\n").unwrap();
    let ds = SodDataset::labeled(dir.path(), Some(Path::new("list.txt"))).unwrap();
    let err = validate(&ds).unwrap_err();
    match &err {
        DataError::Invalid { problems, .. } => {
            assert_eq!(problems.len(), 1);
            assert!(problems[0].contains("00001.jpg"), "{}", problems[0]);
        }
        other => panic!("unexpected {other}"),
    }
    // Skip: the batch goes on without it; Fail: an error naming it.
    let skip = LoaderConfig {
        batch: 3,
        shuffle: false,
        ..config(1)
    };
    let b = Loader::new(ds.clone(), skip.clone())
        .unwrap()
        .batch(0, 0)
        .unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(b.skipped.len(), 1);
    let fail = LoaderConfig {
        on_error: OnError::Fail,
        ..skip
    };
    let e = Loader::new(ds, fail).unwrap().batch(0, 0).unwrap_err();
    assert!(e.to_string().contains("00001.jpg"), "{e}");
}

#[test]
fn unlabeled_folders_and_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 4);
    let ds = SodDataset::unlabeled(dir.path().join("image")).unwrap();
    assert_eq!(ds.len(), 4);
    assert!(!ds.is_labeled());
    let b = Loader::new(ds.clone(), config(2))
        .unwrap()
        .batch(0, 0)
        .unwrap();
    assert!(b.masks.is_none());
    let zero = LoaderConfig {
        batch: 0,
        ..config(1)
    };
    assert!(Loader::new(ds, zero)
        .unwrap_err()
        .to_string()
        .contains("batch"));
    let empty = tempfile::tempdir().unwrap();
    let e = SodDataset::labeled(empty.path(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("image"), "{e}");
}
