//! Hostile and careless inputs on the command line (docs/robustness.md). Every bad input is built
//! here at test time. For each case: the command ends within a time limit (no hang), never
//! panics, fails with a message naming the file and the problem when nothing useful could be done,
//! and leaves every file that existed before unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scfnet_model::ModelKind;

mod common;

/// Outcome of one command.
struct Run {
    code: i32,
    text: String,
    args: Vec<String>,
}

impl Run {
    /// The outcome of `scfnet ARGS` from its finished process.
    fn of(args: &[&str], o: std::process::Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            text: format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Failed cleanly (not a panic, not a kill) and said every one of `needles`.
    fn refused(&self, needles: &[&str]) {
        assert!(
            self.code != 0 && self.code != 101,
            "expected a clean failure, got exit {} for {:?}:\n{}",
            self.code,
            self.args,
            self.text
        );
        self.no_panic();
        for n in needles {
            assert!(
                self.text.contains(n),
                "{n:?} missing from the message of {:?}:\n{}",
                self.args,
                self.text
            );
        }
    }

    fn succeeded(&self) {
        assert_eq!(self.code, 0, "{:?}:\n{}", self.args, self.text);
        self.no_panic();
    }

    fn no_panic(&self) {
        assert!(
            !self.text.contains("panicked"),
            "{:?} panicked:\n{}",
            self.args,
            self.text
        );
    }
}

/// Runs `scfnet ARGS`; a run longer than `limit` is killed and fails the test (a hang).
fn scfnet_within(args: &[&str], limit: Duration, envs: &[(&str, &str)]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scfnet {args:?} hung (killed after {limit:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::of(args, child.wait_with_output().unwrap())
}

fn scfnet(args: &[&str]) -> Run {
    scfnet_within(args, Duration::from_secs(120), &[])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every regular file under `dir` with its bytes (links are not followed).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                pending.push(e.path());
            } else if t.is_file() {
                out.insert(e.path(), std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// Every file of `before` is still there, byte for byte.
fn unchanged(before: &BTreeMap<PathBuf, Vec<u8>>) {
    for (path, bytes) in before {
        let now = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(&now == bytes, "{} was changed", path.display());
    }
}

/// A small RGB PNG.
fn png(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]))
        .save(path)
        .unwrap();
}

/// A labeled synthetic dataset of `n` 64×64 images.
fn synth(root: &Path, n: usize) {
    scfnet(&[
        "synth",
        "--out",
        s(root),
        "--n",
        &n.to_string(),
        "--min-side",
        "64",
        "--max-side",
        "64",
        "--test-fraction",
        "0",
    ])
    .succeeded();
}

const TINY_TRAIN: [&str; 10] = [
    "--batch",
    "2",
    "--sizes",
    "64",
    "--test-size",
    "64",
    "--epochs",
    "1",
    "--quiet",
    "--no-augment",
];

// ---------------------------------------------------------------- class 1: pickle bombs

/// A protocol-2 pickle around `body`, as a `.pdparams` file.
fn pdparams(path: &Path, body: &[u8]) {
    let mut p = vec![0x80, 2];
    p.extend_from_slice(body);
    p.push(b'.');
    std::fs::write(path, p).unwrap();
}

fn convert(input: &Path, output: &Path) -> Run {
    scfnet_within(
        &[
            "convert",
            "--from",
            "paddle",
            "--model",
            "student",
            s(input),
            s(output),
        ],
        Duration::from_secs(30),
        &[],
    )
}

#[test]
fn pickle_bombs_are_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    // Memo references copied 2^64 times.
    let mut body = vec![b']', b'q', 0];
    for _ in 0..64 {
        body.extend_from_slice(&[b'(', b'h', 0, b'h', 0, b'l', b'q', 0]);
    }
    let bomb = dir.path().join("bomb.pdparams");
    pdparams(&bomb, &body);
    let out = dir.path().join("out.safetensors");
    convert(&bomb, &out).refused(&["bomb.pdparams", "pickle bomb"]);
    // A million nested lists (a stack overflow in a recursive reader).
    let mut body = vec![b'('; 1_000_000];
    body.extend(std::iter::repeat_n(b'l', 1_000_000));
    let deep = dir.path().join("deep.pdparams");
    pdparams(&deep, &body);
    convert(&deep, &out).refused(&["deep.pdparams", "nested more than"]);
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no temporaries"
    );
}

/// `{"w": ndarray(shape (2, 3), float32)}` whose data holds `bytes` bytes.
fn one_array_pdparams(bytes: usize) -> Vec<u8> {
    let mut b = vec![b'}', b'('];
    b.extend_from_slice(&[0x8c, 1, b'w']);
    b.extend_from_slice(b"cnumpy.core.multiarray\n_reconstruct\n");
    b.extend_from_slice(b"cnumpy\nndarray\n");
    b.extend_from_slice(&[b'K', 0, 0x85, b'C', 1, b'b', 0x87, b'R']);
    // state: (1, (2, 3), dtype('f4'), False, data)
    b.extend_from_slice(&[b'(', b'K', 1, b'K', 2, b'K', 3, 0x86]);
    b.extend_from_slice(b"cnumpy\ndtype\n");
    b.extend_from_slice(&[0x8c, 2, b'f', b'4', 0x89, 0x88, 0x87, b'R']);
    b.extend_from_slice(&[b'(', b'K', 3, 0x8c, 1, b'<', b'N', b'N', b'N', b'J']);
    b.extend_from_slice(&(-1i32).to_le_bytes());
    b.push(b'J');
    b.extend_from_slice(&(-1i32).to_le_bytes());
    b.extend_from_slice(&[b'K', 0, b't', b'b', 0x89, b'C', bytes as u8]);
    b.extend(std::iter::repeat_n(0u8, bytes));
    b.extend_from_slice(b"tbu");
    b
}

#[test]
fn a_short_tensor_names_the_file_and_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.pdparams");
    pdparams(&short, &one_array_pdparams(8));
    let out = dir.path().join("out.safetensors");
    convert(&short, &out).refused(&["short.pdparams", "tensor w", "needs 24 bytes", "holds 8"]);
    // The same file with all 24 bytes is read (and then refused as not the student's tensors).
    let whole = dir.path().join("whole.pdparams");
    pdparams(&whole, &one_array_pdparams(24));
    convert(&whole, &out).refused(&["whole.pdparams", "unexpected tensor(s): w"]);
}

// ---------------------------------------------------------------- class 2: folder walks

#[cfg(unix)]
#[test]
fn link_loops_and_fifos_in_an_input_folder_neither_hang_nor_loop() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    png(&input.join("a.png"), 40, 30);
    std::os::unix::fs::symlink(".", input.join("loop")).unwrap();
    std::os::unix::fs::symlink(&input, input.join("back")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(input.join("blocked.png"))
        .status()
        .unwrap()
        .success());
    let out = dir.path().join("out");
    let r = scfnet_within(
        &[
            "predict",
            "--random-weights",
            "--size",
            "64",
            "--input",
            s(&input),
            "--output",
            s(&out),
        ],
        Duration::from_secs(60),
        &[],
    );
    r.succeeded();
    assert!(
        r.text.contains("blocked.png"),
        "the FIFO is reported:\n{}",
        r.text
    );
    assert!(
        r.text.contains("not followed"),
        "the loop is reported:\n{}",
        r.text
    );
    let written: Vec<_> = snapshot(&out).into_keys().collect();
    assert_eq!(written, [out.join("a.png")]);
}

// ---------------------------------------------------------------- class 3: predict's outputs

#[test]
fn predict_never_writes_over_or_into_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    png(&input.join("x.png"), 32, 32);
    png(&input.join("sub/y.png"), 32, 32);
    let before = snapshot(dir.path());
    let predict = |output: &Path, extra: &[&str]| {
        let mut a = vec![
            "predict",
            "--random-weights",
            "--size",
            "64",
            "--input",
            s(&input),
            "--output",
            s(output),
        ];
        a.extend_from_slice(extra);
        scfnet(&a)
    };
    predict(&input, &[]).refused(&["in", "input folder"]);
    predict(&input.join("maps"), &[]).refused(&["maps", "inside the input folder"]);
    predict(&input.join("sub"), &[]).refused(&["inside the input folder"]);
    // One image as input, its own folder as output: x.png would be replaced by its map.
    let one = scfnet(&[
        "predict",
        "--random-weights",
        "--size",
        "64",
        "--input",
        s(&input.join("x.png")),
        "--output",
        s(&input),
    ]);
    one.refused(&["x.png", "overwrite this input"]);
    unchanged(&before);
    assert_eq!(
        snapshot(dir.path()).len(),
        before.len(),
        "nothing new written"
    );
}

#[test]
fn colliding_output_names_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    png(&input.join("a.png"), 32, 32);
    image::RgbImage::new(32, 32)
        .save(input.join("a.jpg"))
        .unwrap();
    png(&input.join("b.png"), 32, 32);
    png(&input.join("b_cutout.png"), 32, 32);
    let out = dir.path().join("out");
    let r = scfnet(&[
        "predict",
        "--random-weights",
        "--size",
        "64",
        "--cutout",
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    r.refused(&["a.jpg", "a.png", "b_cutout.png", "collision"]);
    assert!(!out.exists(), "nothing written");
}

#[test]
fn outputs_never_replace_links_devices_or_their_own_inputs() {
    let dir = tempfile::tempdir().unwrap();
    // A run's weights to export and maps to score.
    let data = dir.path().join("data");
    synth(&data, 4);
    let run = dir.path().join("run");
    let mut a = vec![
        "train",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--max-steps",
        "1",
    ];
    a.extend_from_slice(&TINY_TRAIN);
    scfnet(&a).succeeded();
    let weights = run.join("model.safetensors");
    let target = dir.path().join("kept.onnx");
    std::fs::write(&target, b"keep").unwrap();
    let link = dir.path().join("link.onnx");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let before = snapshot(dir.path());

    let export = |onnx: &Path, weights: &Path| {
        scfnet(&[
            "export",
            "--model",
            "student",
            "--weights",
            s(weights),
            "--onnx",
            s(onnx),
        ])
    };
    export(&weights, &weights).refused(&["--onnx", "weights file", "reads"]);
    export(&weights, &run).refused(&["--onnx", "weights file", "reads"]);
    export(&link, &weights).refused(&["link.onnx", "symbolic link"]);
    export(Path::new("/dev/null"), &weights).refused(&["/dev/null", "not a regular file"]);
    unchanged(&before);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    // eval: two reports on one file, or a report over a mask it reads.
    let masks = data.join("mask");
    let mask = masks.join("00000.png");
    let eval = |extra: &[&str]| {
        let mut e = vec!["eval", "--pred", s(&masks), "--gt", s(&masks), "--quiet"];
        e.extend_from_slice(extra);
        scfnet(&e)
    };
    let report = dir.path().join("r.json");
    eval(&["--json", s(&report), "--csv", s(&report)]).refused(&["--json", "--csv", "own file"]);
    eval(&["--json", s(&mask)]).refused(&["--json", "00000.png", "input of this evaluation"]);
    unchanged(&before);
}

// ---------------------------------------------------------------- class 4: non-finite values

#[test]
fn nan_weights_are_refused_where_they_enter() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("nan.safetensors");
    common::synthetic_weights_file(ModelKind::Student, &weights, Some("de1.cv2.0.weight"));
    png(&dir.path().join("in/a.png"), 32, 32);
    let out = dir.path().join("out");
    scfnet(&[
        "predict",
        "--weights",
        s(&weights),
        "--size",
        "64",
        "--input",
        s(&dir.path().join("in")),
        "--output",
        s(&out),
    ])
    .refused(&["nan.safetensors", "de1.cv2.0.weight", "NaN"]);
    assert!(!out.exists());

    let data = dir.path().join("data");
    synth(&data, 4);
    let run = dir.path().join("run");
    let mut a = vec![
        "train",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--init-weights",
        s(&weights),
    ];
    a.extend_from_slice(&TINY_TRAIN);
    scfnet(&a).refused(&["nan.safetensors", "de1.cv2.0.weight", "NaN"]);
    assert!(!run.join("model.safetensors").exists());
}

#[test]
fn non_finite_settings_and_diverging_runs_fail_without_writing_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synth(&data, 4);
    for (flag, value, needle) in [
        ("--warmup-epochs", "NaN", "warm-up"),
        ("--lr", "inf", "learning rate"),
        ("--lr", "0", "learning rate"),
        ("--min-lr", "1", "learning rate"),
        ("--drop-path", "1.5", "stochastic-depth"),
        (
            "--stop-after-epochs",
            "0",
            "--stop-after-epochs must be at least 1",
        ),
        ("--max-steps", "0", "--max-steps must be at least 1"),
    ] {
        let run = dir.path().join(format!("run{flag}{value}"));
        let mut a = vec!["train", "--data", s(&data), "--out", s(&run), flag, value];
        a.extend_from_slice(&TINY_TRAIN);
        scfnet(&a).refused(&[needle]);
        assert!(!run.exists(), "{flag} {value}: nothing written");
    }
    // A finite but absurd learning rate: the weights overflow; nothing NaN is written.
    let run = dir.path().join("diverge");
    let mut a = vec![
        "train",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--lr",
        "1e30",
        "--warmup-epochs",
        "0",
        "--epochs",
        "2",
    ];
    a.extend_from_slice(&TINY_TRAIN[..6]);
    a.extend_from_slice(&["--quiet", "--no-augment"]);
    scfnet(&a).refused(&["stopping"]);
    assert!(
        !run.join("model.safetensors").exists(),
        "no non-finite model.safetensors"
    );
    // The same with a checkpoint due right after the diverging update: its (finite but huge)
    // weights give the NaN loss of the next step, so that checkpoint is removed again and
    // neither `latest` nor model.safetensors holds the diverged step.
    let run = dir.path().join("diverge-checkpoint");
    let mut b = a.clone();
    b[4] = s(&run);
    b.extend_from_slice(&["--checkpoint-every", "1"]);
    scfnet(&b).refused(&["stopping", "diverged"]);
    assert!(!run.join("model.safetensors").exists());
    assert!(!run.join("checkpoints/latest").exists());
    assert!(!run.join("checkpoints/step-00000001").exists());
}

// ---------------------------------------------------------------- class 5: earlier runs

#[test]
fn a_new_run_does_not_replace_an_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synth(&data, 4);
    let run = dir.path().join("run");
    let mut a = vec![
        "train",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--max-steps",
        "1",
    ];
    a.extend_from_slice(&TINY_TRAIN);
    scfnet(&a).succeeded();
    let before = snapshot(&run);
    assert!(before.contains_key(&run.join("model.safetensors")));
    scfnet(&a).refused(&["earlier run", "--resume", "--overwrite"]);
    unchanged(&before);
    let mut over = a.clone();
    over.push("--overwrite");
    scfnet(&over).succeeded();

    // --resume with weights and a log but no checkpoint (say, the checkpoints were pruned):
    // nothing to continue, and a fresh start would replace both; refused, both kept.
    std::fs::remove_dir_all(run.join("checkpoints")).unwrap();
    let before = snapshot(&run);
    let mut resume = a.clone();
    resume.push("--resume");
    scfnet(&resume).refused(&[
        "no checkpoint to resume from",
        "model.safetensors",
        "log.jsonl",
        "--overwrite",
    ]);
    unchanged(&before);
    // --overwrite would delete the run's own inputs when they live among the earlier outputs:
    // refused before anything is removed.
    let weights = run.join("model.safetensors");
    let mut init = a.clone();
    init.extend(["--overwrite", "--init-weights", s(&weights)]);
    scfnet(&init).refused(&[
        "--init-weights",
        "model.safetensors",
        "--overwrite would delete",
    ]);
    unchanged(&before);
    let images = data.join("image");
    let mut distill = vec![
        "distill",
        "--teacher",
        "student",
        "--teacher-weights",
        s(&weights),
        "--data",
        s(&images),
        "--out",
        s(&run),
        "--max-steps",
        "1",
        "--overwrite",
    ];
    distill.extend_from_slice(&TINY_TRAIN);
    scfnet(&distill).refused(&[
        "--teacher-weights",
        "model.safetensors",
        "--overwrite would delete",
    ]);
    unchanged(&before);
    // Another process holds the run folder (PID 1 runs on every Linux): a second run there,
    // even with --overwrite, is refused naming it, and nothing is touched.
    std::fs::write(run.join(".scfnet-lock"), "1\n").unwrap();
    let before = snapshot(&run);
    let mut over = a.clone();
    over.push("--overwrite");
    scfnet(&over).refused(&["in use by process 1"]);
    unchanged(&before);
    // A lock left by a killed run is taken over, and released when the run ends.
    std::fs::write(run.join(".scfnet-lock"), "999999999\n").unwrap();
    scfnet(&over).succeeded();
    assert!(!run.join(".scfnet-lock").exists());
}

#[test]
fn synth_and_demo_do_not_write_into_what_they_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synth(&data, 4);
    let before = snapshot(&data);
    scfnet(&["synth", "--out", s(&data), "--n", "6", "--seed", "5"]).refused(&[
        "already holds",
        "image",
        "new or empty",
    ]);
    unchanged(&before);
    // The demo refuses a folder with files that it did not make, before any work.
    scfnet(&["demo", "--out", s(&data)]).refused(&["not a demo's folder"]);
    unchanged(&before);
}

// ---------------------------------------------------------------- class 6: absurd sizes

/// CRC-32 of PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A PNG whose header declares `w`×`h` pixels but which holds a single row.
fn lying_png(path: &Path, w: u32, h: u32) {
    let mut small = Vec::new();
    image::RgbImage::new(1, 1)
        .write_to(
            &mut std::io::Cursor::new(&mut small),
            image::ImageFormat::Png,
        )
        .unwrap();
    // IHDR data starts after the 8-byte signature, length and type: bytes 16..29, CRC 29..33.
    small[16..20].copy_from_slice(&w.to_be_bytes());
    small[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&small[12..29]);
    small[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(path, small).unwrap();
}

#[test]
fn absurd_sizes_are_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    png(&input.join("a.png"), 32, 32);
    let out = dir.path().join("out");
    for size in ["4294967296", "65536", "0", "33"] {
        scfnet(&[
            "predict",
            "--random-weights",
            "--size",
            size,
            "--input",
            s(&input),
            "--output",
            s(&out),
        ])
        .refused(&["--size", "multiple of 32"]);
    }
    let data = dir.path().join("data");
    synth(&data, 2);
    let run = dir.path().join("run");
    scfnet(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--sizes",
        "65536",
        "--quiet",
    ])
    .refused(&["65536", "at most 4096"]);
    scfnet(&[
        "synth",
        "--out",
        s(&dir.path().join("huge")),
        "--n",
        "1",
        "--max-side",
        "18446744073709551615",
    ])
    .refused(&["18446744073709551615", "4096"]);
    // A thread count is checked when parsed, not after starting 100,000 threads.
    for threads in ["--threads=100000", "--threads=0", "--threads=-1"] {
        let r = scfnet_within(&[threads, "info"], Duration::from_secs(10), &[]);
        r.refused(&["--threads", "from 1 to 1024"]);
    }
    // 13000 × 13000 declared in 70 bytes: refused from the header, nothing allocated.
    let bomb = dir.path().join("bomb");
    std::fs::create_dir_all(&bomb).unwrap();
    lying_png(&bomb.join("big.png"), 13000, 13000);
    let r = scfnet_within(
        &[
            "predict",
            "--random-weights",
            "--size",
            "64",
            "--input",
            s(&bomb),
            "--output",
            s(&out),
        ],
        Duration::from_secs(30),
        &[],
    );
    r.refused(&["big.png", "13000x13000", "SCFNET_MAX_PIXELS"]);
    // The same file as a map to score.
    let gt = dir.path().join("gt");
    std::fs::create_dir_all(&gt).unwrap();
    image::GrayImage::new(8, 8)
        .save(gt.join("big.png"))
        .unwrap();
    let r = scfnet_within(
        &["eval", "--pred", s(&bomb), "--gt", s(&gt)],
        Duration::from_secs(30),
        &[],
    );
    r.refused(&["big.png", "13000x13000"]);
    // The limit comes from SCFNET_MAX_PIXELS (lowered here to 1).
    let r = scfnet_within(
        &["eval", "--pred", s(&bomb), "--gt", s(&gt)],
        Duration::from_secs(30),
        &[("SCFNET_MAX_PIXELS", "1")],
    );
    r.refused(&["big.png", "limit of 1"]);
    // A limit that is not a positive integer is an error naming the variable, not the default.
    for bad in ["abc", "0", "-1"] {
        let r = scfnet_within(
            &["eval", "--pred", s(&bomb), "--gt", s(&gt)],
            Duration::from_secs(30),
            &[("SCFNET_MAX_PIXELS", bad)],
        );
        r.refused(&["SCFNET_MAX_PIXELS", "not a positive integer"]);
    }
}

// ---------------------------------------------------------------- class 7: temporaries

#[test]
fn temporaries_are_never_left_and_stale_ones_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("student.pdparams");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/model/authors_student_f16.pdparams"),
        &checkpoint,
    )
    .unwrap();
    let onto = dir.path().join("a-folder");
    std::fs::create_dir(&onto).unwrap();
    convert(&checkpoint, &onto).refused(&["a-folder", "folder"]);
    convert(&checkpoint, &checkpoint).refused(&["overwrite this input"]);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temporary left: {names:?}");
    assert_eq!(std::fs::read_dir(&onto).unwrap().count(), 0);

    // A run killed while writing leaves temporaries; the next run of that folder removes them.
    let data = dir.path().join("data");
    synth(&data, 4);
    let run = dir.path().join("run");
    let mut a = vec![
        "train",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--max-steps",
        "1",
    ];
    a.extend_from_slice(&TINY_TRAIN);
    scfnet(&a).succeeded();
    // (PID 999999999: no process has it.)
    let stale_dir = run.join("checkpoints/.step-00000007.scfnet-999999999.tmp");
    std::fs::create_dir_all(&stale_dir).unwrap();
    std::fs::write(stale_dir.join("weights.safetensors"), b"half").unwrap();
    let stale_file = run.join(".model.safetensors.scfnet-999999999.tmp");
    std::fs::write(&stale_file, b"half").unwrap();
    // What the user keeps there, however temporary its name looks, is not ours to delete.
    let user_files = [
        run.join(".env.tmpl"),
        run.join(".notes.tmp"),
        run.join(".tmp_notes/todo.txt"),
        run.join("checkpoints/.model.safetensors.4242.tmp"),
    ];
    for f in &user_files {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"mine").unwrap();
    }
    let mut resume = a.clone();
    resume.push("--resume");
    scfnet(&resume).succeeded();
    assert!(!stale_dir.exists() && !stale_file.exists());
    for f in &user_files {
        assert_eq!(std::fs::read(f).unwrap(), b"mine", "{}", f.display());
    }
}

// ---------------------------------------------------------------- class 8: the rest

#[test]
fn truncated_jpegs_are_reported_not_decoded_as_grey() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut jpeg = Vec::new();
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 77]))
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    std::fs::write(input.join("cut.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    png(&input.join("fine.png"), 32, 32);
    let out = dir.path().join("out");
    let r = scfnet(&[
        "predict",
        "--random-weights",
        "--size",
        "64",
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    // The good image is written, the run still fails and names the bad one (our end-of-image
    // check or the decoder's header parser, whichever sees the cut first).
    r.refused(&["cut.jpg", "cannot decode image"]);
    assert!(out.join("fine.png").is_file() && !out.join("cut.png").exists());
}

#[test]
fn list_files_cannot_point_outside_the_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synth(&data, 2);
    for bad in ["../../etc/passwd", "/etc/passwd"] {
        std::fs::write(data.join("train.txt"), format!("00000\n{bad}\n")).unwrap();
        let run = dir.path().join("run");
        let mut a = vec!["train", "--data", s(&data), "--out", s(&run)];
        a.extend_from_slice(&TINY_TRAIN);
        scfnet(&a).refused(&["train.txt", "line 2", "inside the dataset"]);
    }
}

#[cfg(unix)]
#[test]
fn a_non_utf8_file_name_is_named_as_such() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synth(&data, 2);
    std::fs::remove_file(data.join("train.txt")).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
    png(&data.join("image").join(odd), 64, 64);
    png(&data.join("mask").join(odd), 64, 64);
    let run = dir.path().join("run");
    let mut a = vec!["train", "--data", s(&data), "--out", s(&run)];
    a.extend_from_slice(&TINY_TRAIN);
    let r = scfnet(&a);
    r.refused(&["not valid UTF-8"]);
    assert!(!r.text.contains("no mask"), "{}", r.text);
}

#[test]
fn eval_with_nothing_scorable_is_an_error_and_tiny_maps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (pred, gt) = (dir.path().join("pred"), dir.path().join("gt"));
    std::fs::create_dir_all(&pred).unwrap();
    std::fs::create_dir_all(&gt).unwrap();
    image::GrayImage::new(1, 1)
        .save(pred.join("a.png"))
        .unwrap();
    image::GrayImage::new(1, 1).save(gt.join("a.png")).unwrap();
    std::fs::write(pred.join("b.png"), b"not a png").unwrap();
    image::GrayImage::new(8, 8).save(gt.join("b.png")).unwrap();
    let r = scfnet(&[
        "eval",
        "--pred",
        s(&pred),
        "--gt",
        s(&gt),
        "--allow-missing",
    ]);
    r.refused(&[
        "a.png",
        "at least 2 pixels",
        "b.png",
        "nothing could be scored",
    ]);
    assert!(!r.text.contains("NaN"), "no NaN table:\n{}", r.text);
}

/// Class 4: a SIGTERM to the sweep (what `kill` and job managers send to it alone) stops the stage
/// it is running too, instead of leaving a trainer writing into the run folder that the next
/// attempt uses; the sweep itself then ends by that signal.
#[cfg(unix)]
#[test]
fn a_terminated_sweep_leaves_no_stage_running() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;

    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("trainer.pid");
    // A stand-in scfnet: data sets are two empty files; a training records its PID and sleeps.
    let fake = tmp.path().join("fake-scfnet");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncmd=$1\nshift\ncase $cmd in\n  synth) while [ $# -gt 0 ]; do if [ \"$1\" = --out ]; then \
             mkdir -p \"$2/image\" \"$2/mask\"; touch \"$2/image/a.jpg\" \"$2/mask/a.png\"; fi; shift; done;;\n  \
             train|distill) echo $$ > '{}.tmp'; mv '{0}.tmp' '{0}'; exec sleep 120;;\nesac\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps/tiny.toml");
    let out = tmp.path().join("out");
    let mut sweep = Command::new(env!("CARGO_BIN_EXE_scfnet"))
        .args([
            "sweep",
            "--plan",
            s(&plan),
            "--out",
            s(&out),
            "--scfnet",
            s(&fake),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !pid_file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the sweep never reached its training stage"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let trainer: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(Path::new(&format!("/proc/{trainer}")).exists());
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(sweep.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(status) = sweep.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = sweep.kill();
            // SAFETY: cleaning up the stand-in trainer this test started.
            unsafe { libc::kill(trainer, libc::SIGKILL) };
            panic!("the sweep did not end within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    let alive = Path::new(&format!("/proc/{trainer}")).exists();
    if alive {
        // SAFETY: cleaning up the stand-in trainer this test started.
        unsafe { libc::kill(trainer, libc::SIGKILL) };
    }
    assert!(!alive, "the training stage {trainer} outlived the sweep");
}

/// Classes 5 and 6: a FIFO or `/dev/zero` named where a file is read (weights, a weights folder's
/// `config.json`, a plan, a manifest, `checkpoints/latest`) is refused naming it, neither waited
/// on nor read without end; a checkpoint pointer naming a folder outside `checkpoints/` is
/// refused too.
#[cfg(unix)]
#[test]
fn fifos_devices_and_escaping_pointers_are_refused_where_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let mkfifo = |path: &Path| {
        let c = std::ffi::CString::new(s(path)).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    };
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let image = dir.path().join("in/a.png");
    png(&image, 64, 64);
    let out = dir.path().join("out");
    let limit = Duration::from_secs(60);
    for bad in [fifo.as_path(), Path::new("/dev/zero")] {
        let what = if bad == fifo {
            "a FIFO"
        } else {
            "a character device"
        };
        let predict = |weights: &Path| {
            scfnet_within(
                &[
                    "predict",
                    "--weights",
                    s(weights),
                    "--input",
                    s(&image),
                    "--output",
                    s(&out),
                ],
                limit,
                &[],
            )
        };
        predict(bad).refused(&[s(bad), what]);
        // A weights folder whose config.json is a link to it.
        let folder = dir.path().join(format!(
            "folder-{}",
            bad.file_name().unwrap().to_str().unwrap()
        ));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("model.safetensors"), b"").unwrap();
        std::os::unix::fs::symlink(bad, folder.join("config.json")).unwrap();
        predict(&folder).refused(&["config.json", what]);
        let sweep_out = dir.path().join("sweep");
        let args = [
            "sweep",
            "--plan",
            s(bad),
            "--out",
            s(&sweep_out),
            "--dry-run",
        ];
        scfnet_within(&args, limit, &[]).refused(&[s(bad), what]);
        let root = dir.path().join("root");
        let args = [
            "download",
            "--manifest",
            s(bad),
            "--root",
            s(&root),
            "--list",
        ];
        scfnet_within(&args, limit, &[]).refused(&[s(bad), what]);
    }
    assert!(!out.exists(), "nothing was written");

    let data = dir.path().join("data");
    synth(&data, 4);
    let run = dir.path().join("run");
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    let latest = run.join("checkpoints/latest");
    mkfifo(&latest);
    let mut a = vec!["train", "--data", s(&data), "--out", s(&run), "--resume"];
    a.extend_from_slice(&TINY_TRAIN);
    scfnet_within(&a, limit, &[]).refused(&["latest", "a FIFO"]);
    std::fs::remove_file(&latest).unwrap();
    // A pointer naming a folder elsewhere (which holds a state file) is not followed.
    std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
    std::fs::write(dir.path().join("elsewhere/state.json"), "{}").unwrap();
    std::fs::write(&latest, "../../elsewhere\n").unwrap();
    scfnet_within(&a, limit, &[]).refused(&["latest", "not a checkpoint folder beside it"]);
}

/// A zlib stream of `1 + 258·matches` zero bytes: one literal, then that many length-258
/// matches at distance 1 (fixed Huffman codes, 13 bits each), so it is ~1/160 of a byte a byte.
fn zlib_of_zeros(matches: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        /// `len` bits of `value`, least significant first.
        fn put(&mut self, value: u64, len: u32) {
            self.acc |= value << self.n;
            self.n += len;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// A Huffman code of `len` bits, most significant first.
        fn code(&mut self, code: u64, len: u32) {
            let reversed = (0..len).fold(0, |r, i| r | ((code >> i) & 1) << (len - 1 - i));
            self.put(reversed, len);
        }
    }
    let mut b = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        n: 0,
    };
    b.put(1, 1); // the last block
    b.put(1, 2); // fixed Huffman codes
    b.code(0x30, 8); // literal 0
    for _ in 0..matches {
        b.code(0xc5, 8); // length 258 (symbol 285)
        b.code(0, 5); // distance 1
    }
    b.code(0, 7); // end of block
    b.put(0, 7); // to a byte boundary
    let n = 1 + 258 * matches as u64;
    let adler = ((n % 65521) << 16) | 1;
    b.out.extend_from_slice(&(adler as u32).to_be_bytes());
    b.out
}

/// Class 5: a small PNG whose colour profile (`iCCP`) inflates to 512 MiB is decoded without
/// inflating it (it used to cost twice that in memory, whatever the pixel limit), and its map is
/// the map of the same image without the profile.
#[cfg(target_os = "linux")]
#[test]
fn a_png_profile_bomb_costs_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain/a.png");
    png(&plain, 64, 64);
    let bytes = std::fs::read(&plain).unwrap();
    let mut data = b"icc\0\0".to_vec();
    data.extend_from_slice(&zlib_of_zeros(2_080_000));
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    let mut typed = b"iCCP".to_vec();
    typed.extend_from_slice(&data);
    chunk.extend_from_slice(&typed);
    chunk.extend_from_slice(&crc32(&typed).to_be_bytes());
    // After the signature (8) and IHDR (25).
    let mut bomb = bytes[..33].to_vec();
    bomb.extend_from_slice(&chunk);
    bomb.extend_from_slice(&bytes[33..]);
    assert!(bomb.len() < 4 << 20, "{} bytes", bomb.len());
    let bomb_path = dir.path().join("bomb/a.png");
    std::fs::create_dir_all(bomb_path.parent().unwrap()).unwrap();
    std::fs::write(&bomb_path, &bomb).unwrap();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below, for its own rusage
    let predict = |input: &Path, out: &Path| {
        let child = Command::new(env!("CARGO_BIN_EXE_scfnet"))
            .args([
                "predict",
                "--random-weights",
                "--input",
                s(input),
                "--output",
                s(out),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
        // SAFETY: waits for our own child, whose rusage is then its own alone.
        let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        assert_eq!(pid, child.id() as i32);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status}"
        );
        usage.ru_maxrss as u64 * 1024
    };
    let (plain_out, bomb_out) = (dir.path().join("plain-out"), dir.path().join("bomb-out"));
    let plain_peak = predict(&plain, &plain_out);
    let bomb_peak = predict(&bomb_path, &bomb_out);
    assert!(
        bomb_peak < plain_peak + (128 << 20),
        "peak memory {bomb_peak} bytes with the profile, {plain_peak} without"
    );
    assert_eq!(
        std::fs::read(plain_out.join("a.png")).unwrap(),
        std::fs::read(bomb_out.join("a.png")).unwrap()
    );
}

/// Class 7: `--resume` with other training data than the run it continues is refused (its
/// sample order and schedule would change silently); with the same data it continues.
#[test]
fn a_resumed_run_must_read_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    synth(&first, 4);
    synth(&second, 6);
    let run = dir.path().join("run");
    fn args<'a>(data: &'a Path, run: &'a Path, resume: bool) -> Vec<&'a str> {
        let mut a = vec![
            "train",
            "--data",
            s(data),
            "--out",
            s(run),
            "--max-steps",
            "1",
        ];
        a.extend_from_slice(&TINY_TRAIN);
        if resume {
            a.push("--resume");
        }
        a
    }
    scfnet(&args(&first, &run, false)).succeeded();
    let before = snapshot(&run);
    scfnet(&args(&second, &run, true)).refused(&["this run trains on", "first", "second"]);
    unchanged(&before);
    scfnet(&args(&first, &run, true)).succeeded();
}

/// Runs `scfnet ARGS` with every file it writes limited to `bytes`: a write past the limit fails
/// (EFBIG, SIGXFSZ ignored) as a write onto a full disk fails.
#[cfg(unix)]
fn scfnet_with_file_limit(args: &[&str], bytes: u64) -> Run {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_scfnet"));
    command.args(args).env("RUST_BACKTRACE", "0");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Run::of(args, command.output().unwrap())
}

/// Class 7: a write that fails for want of space names the file, and `synth` leaves no half data
/// set (images without list files) behind.
#[cfg(unix)]
#[test]
fn a_full_disk_names_the_file_and_leaves_no_half_data_set() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("synth");
    let args = [
        "synth",
        "--out",
        s(&root),
        "--n",
        "24",
        "--min-side",
        "192",
        "--max-side",
        "256",
    ];
    let run = scfnet_with_file_limit(&args, 3000);
    run.refused(&[s(&root)]);
    let left: Vec<_> = std::fs::read_dir(&root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}\n{}", run.text);
    // The same folder takes a data set once there is room.
    scfnet(&args).succeeded();

    let pdparams = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/model/authors_student_f16.pdparams");
    let out = dir.path().join("student.safetensors");
    let args = [
        "convert",
        "--from",
        "paddle",
        "--model",
        "student",
        s(&pdparams),
        s(&out),
    ];
    scfnet_with_file_limit(&args, 64 << 10).refused(&["student.safetensors", "File too large"]);
    assert!(!out.exists());
    let strays: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
}

/// Class 7: a photo whose EXIF says "rotated 90°" (orientation 6) is read upright, as OpenCV
/// reads it: its map (and cutout) has the shown orientation, not the stored one.
#[test]
fn exif_orientation_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut jpeg = Vec::new();
    image::RgbImage::from_fn(64, 32, |x, _| image::Rgb([(x * 4) as u8, 60, 120]))
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    // APP1 "Exif": a little-endian TIFF header and one IFD entry, Orientation (0x0112) = 6.
    let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec();
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut photo = vec![0xff, 0xd8, 0xff, 0xe1];
    photo.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    photo.extend_from_slice(&app1);
    photo.extend_from_slice(&jpeg[2..]);
    let input = dir.path().join("in/photo.jpg");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    std::fs::write(&input, &photo).unwrap();
    let out = dir.path().join("out");
    scfnet(&[
        "predict",
        "--random-weights",
        "--input",
        s(&input),
        "--output",
        s(&out),
        "--cutout",
    ])
    .succeeded();
    for name in ["photo.png", "photo_cutout.png"] {
        let map = image::open(out.join(name)).unwrap();
        assert_eq!((map.width(), map.height()), (32, 64), "{name}: upright");
    }
}
