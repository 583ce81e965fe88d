//! With the `cuda` feature: compiles `src/cuda/*.cu` to PTX with nvcc (from `NVCC`, else `PATH`;
//! `cargo xtask build-cuda` sets both), for the compute capability in `CUDA_COMPUTE_CAP`
//! (default 90). The driver compiles the PTX for the GPU at load time. Without the feature,
//! nothing is done and no CUDA toolkit is needed.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_CUDA");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".to_string());
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".to_string());
    let cap: String = cap.chars().filter(char::is_ascii_digit).collect();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // One PTX module per source file under src/cuda.
    const SOURCES: &[&str] = &["pool"];
    for name in SOURCES {
        let src = format!("src/cuda/{name}.cu");
        println!("cargo:rerun-if-changed={src}");
        let ptx = out.join(format!("{name}.ptx"));
        let status = Command::new(&nvcc)
            .args(["-ptx", &format!("-arch=compute_{cap}"), "-O3", &src, "-o"])
            .arg(&ptx)
            .status()
            .unwrap_or_else(|e| {
                panic!("scfnet-ops (cuda feature): cannot run nvcc `{nvcc}`: {e}; use `cargo xtask build-cuda`")
            });
        assert!(status.success(), "scfnet-ops: nvcc failed on {src}");
    }
}
