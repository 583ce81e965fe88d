//! The host builds of the CUDA kernels (`tests/gpu/host_*.cpp` at the repository root): each is
//! compiled with the system's C++ compiler and run; it runs the kernels' threads (their block
//! and warp reductions, barriers and shuffles emulated lane against lane by
//! `tests/gpu/host_cuda.h`), compares what they write with plain references and exits non-zero
//! on a mismatch or on what a GPU would leave undefined (a shuffle some lanes of a warp never
//! reach, a barrier some threads of a block never reach).
//! No GPU and no CUDA toolkit are needed. Without a C++ compiler the test says so and passes,
//! unless `SCFNET_REQUIRE_CXX=1` (set by `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root (two levels above this crate).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The C++ compiler: `CXX`, else the first of `c++` and `g++` that runs.
fn compiler() -> Option<String> {
    let candidates = std::env::var("CXX")
        .ok()
        .into_iter()
        .chain(["c++".to_string(), "g++".to_string()]);
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn every_host_build_matches_its_reference() {
    let Some(cxx) = compiler() else {
        assert!(
            std::env::var_os("SCFNET_REQUIRE_CXX").is_none(),
            "no C++ compiler (c++ or g++; apt-get install g++)"
        );
        eprintln!("SKIPPED: no C++ compiler; the kernels' host builds were not run");
        return;
    };
    let dir = repo().join("tests/gpu");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "cpp")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("host_"))
        })
        .collect();
    sources.sort();
    assert!(
        sources.len() >= 10,
        "host builds in {}: {sources:?}",
        dir.display()
    );
    let out = tempfile::tempdir().unwrap();
    for src in &sources {
        let exe = out.path().join(src.file_stem().unwrap());
        let built = Command::new(&cxx)
            .args(["-std=c++17", "-w", "-O1"])
            .arg(src)
            .arg("-o")
            .arg(&exe)
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "{cxx} {}:\n{}",
            src.display(),
            String::from_utf8_lossy(&built.stderr)
        );
        let run = Command::new(&exe).current_dir(repo()).output().unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{} failed:\n{stdout}{}",
            src.display(),
            String::from_utf8_lossy(&run.stderr)
        );
        eprintln!("{}: {}", src.display(), stdout.lines().last().unwrap_or(""));
    }
}
