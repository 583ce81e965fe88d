//! Finds every `src/cuda/*.cu` and writes `OUT_DIR/sources.rs` (their names, always). With the
//! `cuda` feature it also compiles each to PTX with nvcc (from `NVCC`, else `PATH`; `cargo
//! xtask build-cuda` sets both) for the compute capability in `CUDA_COMPUTE_CAP` (default 90),
//! and writes `OUT_DIR/ptx.rs`: one `Module` constant per source. The driver compiles the PTX
//! for the GPU at load time. `-fmad=false`: no multiply-add contraction, so that a kernel rounds
//! like the CPU kernel it mirrors (the kernels are memory-bound; the fused form gains nothing). Without the feature no CUDA toolkit is needed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/cuda");
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_CUDA");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let names = sources(Path::new("src/cuda"));
    let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let sources_rs = format!(
        "/// The stem of every `src/cuda/*.cu`, sorted: one PTX module each.\n\
         pub const SOURCES: &[&str] = &[{}];\n",
        list.join(", ")
    );
    std::fs::write(out.join("sources.rs"), sources_rs).expect("write sources.rs");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".to_string());
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".to_string());
    let cap: String = cap.chars().filter(char::is_ascii_digit).collect();
    let mut ptx_rs = String::new();
    for name in &names {
        let src = format!("src/cuda/{name}.cu");
        println!("cargo:rerun-if-changed={src}");
        let ptx = out.join(format!("{name}.ptx"));
        let status = Command::new(&nvcc)
            .args(["-ptx", &format!("-arch=compute_{cap}"), "-O3", "-fmad=false", &src, "-o"])
            .arg(&ptx)
            .status()
            .unwrap_or_else(|e| {
                panic!("scfnet-kernels (cuda feature): cannot run nvcc `{nvcc}`: {e}; use `cargo xtask build-cuda`")
            });
        assert!(status.success(), "scfnet-kernels: nvcc failed on {src}");
        writeln!(
            ptx_rs,
            "/// The PTX of `src/cuda/{name}.cu`.\n\
             pub const {upper}: crate::Module = crate::Module {{ name: \"scfnet_{name}\", ptx: include_str!(concat!(env!(\"OUT_DIR\"), \"/{name}.ptx\")) }};",
            upper = name.to_uppercase()
        )
        .expect("write to a String");
    }
    std::fs::write(out.join("ptx.rs"), ptx_rs).expect("write ptx.rs");
}

/// The stems of the `.cu` files in `dir`, sorted; each must be a Rust identifier.
fn sources(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("scfnet-kernels: cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .map(|p| {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            assert!(
                !stem.is_empty()
                    && stem
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && stem.starts_with(|c: char| c.is_ascii_lowercase()),
                "scfnet-kernels: {} needs a lower-case snake_case name (it becomes a constant)",
                p.display()
            );
            stem.to_string()
        })
        .collect();
    names.sort();
    names
}
