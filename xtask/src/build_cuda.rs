//! `cargo xtask build-cuda`: builds the CUDA-enabled `scfnet` binary without a system CUDA
//! toolkit and without a GPU.
//!
//! 1. Fetches the pinned CUDA 13.0 toolkit wheels from PyPI (nvcc, headers, cuBLAS, cuRAND,
//!    NVRTC, cudart) into a cache folder, extracts them and makes the linker see them
//!    (unversioned `libX.so` links next to the versioned sonames).
//! 2. Generates `libcuda.a`, a lazy loader for the driver API: one trampoline per `cu*` function
//!    that cudarc declares, which `dlopen`s `libcuda.so.1` on first use. The binary therefore has
//!    no `DT_NEEDED` on the driver: it starts (and runs on the CPU) on machines without an NVIDIA
//!    driver, and CUDA calls there fail with `CUDA_ERROR_STUB_LIBRARY` and a clear message.
//! 3. Runs `cargo build --release -p scfnet-cli --features cuda` into `target/cuda` with the
//!    toolkit's `nvcc` first on `PATH` (fatbins compressed: `NVCC_APPEND_FLAGS`), and optionally
//!    strips a copy of the binary.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};

/// The CUDA 13.0 toolkit, as PyPI wheels. The PTX must come from nvcc 13.0: an R580 driver
/// (CUDA 13.0) refuses PTX of a newer toolkit.
const WHEELS: [&str; 8] = [
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-nvvm==13.0.88",
    "nvidia-cuda-crt==13.0.88",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-cccl==13.0.85",
    "nvidia-curand==10.4.0.35",
    "nvidia-cuda-nvrtc==13.0.88",
    "nvidia-cublas==13.0.2.14",
];

/// The wheels that hold the run-time libraries (for the hint printed at the end).
const RUNTIME_WHEELS: [&str; 3] = [
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cublas==13.0.2.14",
    "nvidia-curand==10.4.0.35",
];

/// `CUDARC_CUDA_VERSION` of the pinned toolkit, and what `nvcc --version` must report.
const CUDA_VERSION: (&str, &str) = ("13000", "release 13.0,");

/// Written last into the cache folder: an interrupted fetch has none and is redone.
const MARKER: &str = ".complete";

/// Extra nvcc flags of the kernel build (`NVCC_APPEND_FLAGS`).
const NVCC_APPEND_FLAGS: &str = "-compress-mode=size";

/// Where the wheels put the toolkit, relative to the cache folder.
const ROOT: &str = "nvidia/cu13";

/// Arguments of `build-cuda`.
#[derive(clap::Args)]
pub struct Args {
    /// Compute capability to compile the kernels for (`CUDA_COMPUTE_CAP`): 90 for H100/H200
    /// (nvcc target sm_90a), 80 for A100, 89 for L4/L40, ...
    #[arg(long, default_value = "90")]
    compute_cap: String,
    /// Cache folder of the downloaded toolkit [default: target/cuda-toolkit].
    #[arg(long)]
    toolkit_dir: Option<PathBuf>,
    /// Also write a stripped copy, `target/cuda/release/scfnet-stripped`.
    #[arg(long)]
    strip: bool,
    /// Extra features of scfnet-cli, besides `cuda` (comma-separated).
    #[arg(long)]
    features: Option<String>,
    /// Extra arguments for `cargo build` (after `--`).
    #[arg(last = true)]
    cargo_args: Vec<String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Fails with a clear message when `program` cannot be run at all.
fn require(program: &str, args: &[&str], why: &str) -> Result<()> {
    match Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("`{program} {}` failed ({s}): {why}", args.join(" ")),
        Err(e) => bail!("cannot run `{program}` ({e}): {why}"),
    }
}

/// Runs a command to completion, its output going to the terminal.
fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    ensure!(status.success(), "{cmd:?} failed ({status})");
    Ok(())
}

/// Downloads and extracts the wheels into `dir` unless a complete copy is there already.
/// Returns the toolkit root (`dir/nvidia/cu13`).
fn ensure_toolkit(dir: &Path) -> Result<PathBuf> {
    let root = dir.join(ROOT);
    let marker = dir.join(MARKER);
    let expected = WHEELS.join("\n") + "\n";
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(expected.as_str()) {
        println!("build-cuda: toolkit cached in {}", dir.display());
        return Ok(root);
    }
    require(
        "python3",
        &["-m", "pip", "--version"],
        "python3 with pip is needed to fetch the CUDA toolkit wheels from PyPI",
    )?;
    // Start from scratch: whatever is there is an interrupted or outdated fetch.
    for stale in [dir.join("nvidia"), dir.join("wheels"), marker.clone()] {
        if stale.is_dir() {
            std::fs::remove_dir_all(&stale)
        } else if stale.exists() {
            std::fs::remove_file(&stale)
        } else {
            Ok(())
        }
        .with_context(|| format!("cannot remove {}", stale.display()))?;
    }
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels)
        .with_context(|| format!("cannot create {}", wheels.display()))?;
    println!(
        "build-cuda: downloading the CUDA 13.0 toolkit wheels (~680 MB) into {}",
        wheels.display()
    );
    run_cmd(
        Command::new("python3")
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
            .args(["--disable-pip-version-check", "--progress-bar", "off"])
            .args(["--python-version", "3.11"])
            .args(["--platform", "manylinux_2_27_x86_64"])
            .args(["--platform", "manylinux2014_x86_64"])
            .args(["--platform", "manylinux_2_17_x86_64"])
            .args(WHEELS)
            .arg("-d")
            .arg(&wheels),
    )
    .context("pip could not download the CUDA toolkit wheels (is PyPI reachable?)")?;

    println!("build-cuda: extracting the wheels");
    // zipfile drops the permission bits: restore them from the archive.
    const EXTRACT: &str = r#"
import os, sys, zipfile
dest, files = sys.argv[1], sys.argv[2:]
for f in files:
    with zipfile.ZipFile(f) as z:
        for info in z.infolist():
            path = z.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(path, mode | 0o644)
"#;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&wheels)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "whl"));
    files.sort();
    ensure!(
        files.len() == WHEELS.len(),
        "expected {} wheels in {}, found {}",
        WHEELS.len(),
        wheels.display(),
        files.len()
    );
    run_cmd(
        Command::new("python3")
            .args(["-c", EXTRACT])
            .arg(dir)
            .args(&files),
    )
    .context("cannot extract the wheels")?;

    // The tools must be executable whatever the archive said.
    for sub in ["bin", "nvvm/bin"] {
        for entry in std::fs::read_dir(root.join(sub))
            .with_context(|| format!("{} missing after extraction", root.join(sub).display()))?
        {
            let path = entry?.path();
            if path.is_file() && path.extension().is_none() {
                set_executable(&path)?;
            }
        }
    }
    link_unversioned(&root.join("lib"))?;
    check_nvcc(&root)?;
    std::fs::remove_dir_all(&wheels).ok();
    std::fs::write(&marker, expected)?;
    Ok(root)
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(path)?.permissions();
    perm.set_mode(perm.mode() | 0o755);
    std::fs::set_permissions(path, perm).with_context(|| format!("chmod {}", path.display()))
}

/// The wheels hold only versioned sonames (`libcublas.so.13`); the linker wants `libcublas.so`.
fn link_unversioned(lib: &Path) -> Result<()> {
    for entry in std::fs::read_dir(lib)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some((stem, version)) = name.split_once(".so.") else {
            continue;
        };
        if !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
            continue;
        }
        let link = lib.join(format!("{stem}.so"));
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(&name, &link)
                .with_context(|| format!("cannot create {}", link.display()))?;
        }
    }
    Ok(())
}

fn check_nvcc(root: &Path) -> Result<()> {
    let nvcc = root.join("bin/nvcc");
    let out = Command::new(&nvcc)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {}", nvcc.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && text.contains(CUDA_VERSION.1),
        "{} --version does not report CUDA 13.0:\n{text}{}",
        nvcc.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The source of cudarc's driver bindings, located through `cargo metadata` (which also
/// downloads the crate when needed).
fn cudarc_driver_bindings(ws: &Path, features: &str) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(ws)
        .args(["metadata", "--format-version", "1"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
        .arg("--features")
        .arg(features)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo metadata")?;
    ensure!(out.status.success(), "cargo metadata failed");
    let json = String::from_utf8_lossy(&out.stdout);
    let key = "\"manifest_path\":\"";
    for (i, _) in json.match_indices(key) {
        let rest = &json[i + key.len()..];
        let Some(end) = rest.find('"') else { continue };
        let manifest = Path::new(&rest[..end]);
        let dir = manifest.parent().unwrap_or(manifest);
        let is_cudarc = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("cudarc-") || n == "cudarc");
        if is_cudarc {
            let path = dir.join("src/driver/sys/mod.rs");
            ensure!(path.is_file(), "{} not found", path.display());
            return Ok(path);
        }
    }
    bail!("cudarc is not among the dependencies of scfnet-cli with features {features}")
}

/// The driver API functions (`pub unsafe fn cuXxx(`) of cudarc's bindings.
fn driver_functions(bindings: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(bindings)
        .with_context(|| format!("cannot read {}", bindings.display()))?;
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("pub unsafe fn cu"))
        .filter_map(|rest| {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
            Some(format!("cu{}", &rest[..end]))
        })
        .collect();
    names.sort();
    names.dedup();
    ensure!(
        names.iter().any(|n| n == "cuInit") && names.len() > 100,
        "found only {} driver functions in {}",
        names.len(),
        bindings.display()
    );
    Ok(names)
}

/// C source of the lazy driver loader: one x86-64 trampoline per function, which jumps to the
/// real function once resolved; the first call of each goes through `scfnet_cuda_resolve`
/// (argument registers saved), which `dlopen`s `libcuda.so.1` once and `dlsym`s the name.
fn shim_source(names: &[String]) -> String {
    let mut s = String::from(
        r#"/* Generated by `cargo xtask build-cuda`: lazy loader of the CUDA driver (libcuda.so.1). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUDA_ERROR_STUB_LIBRARY 34
#define CUDA_ERROR_NOT_FOUND 500

static const char *const scfnet_cuda_names[] = {
"#,
    );
    for n in names {
        let _ = writeln!(s, "    \"{n}\",");
    }
    let _ = write!(
        s,
        r#"}};
#define SCFNET_CUDA_COUNT {count}
__attribute__((visibility("hidden"))) void *scfnet_cuda_slots[SCFNET_CUDA_COUNT];

static void *scfnet_cuda_handle;
static char scfnet_cuda_error[768];
static pthread_once_t scfnet_cuda_once = PTHREAD_ONCE_INIT;

static void scfnet_cuda_load(void) {{
    const char *path = getenv("SCFNET_LIBCUDA");
    if (path == NULL || *path == 0) path = "libcuda.so.1";
    scfnet_cuda_handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (scfnet_cuda_handle == NULL) {{
        const char *why = dlerror();
        snprintf(scfnet_cuda_error, sizeof scfnet_cuda_error,
                 "the NVIDIA driver library %s could not be loaded (%s): "
                 "install an NVIDIA driver (R580 or newer for CUDA 13) or run on the CPU",
                 path, why ? why : "unknown error");
    }}
}}

static int scfnet_cuda_unavailable(void) {{ return CUDA_ERROR_STUB_LIBRARY; }}
static int scfnet_cuda_missing(void) {{ return CUDA_ERROR_NOT_FOUND; }}
static int scfnet_cuda_error_string(int code, const char **s) {{
    *s = code == CUDA_ERROR_STUB_LIBRARY ? scfnet_cuda_error : "CUDA driver not loaded";
    return 0;
}}
static int scfnet_cuda_error_name(int code, const char **s) {{
    *s = code == CUDA_ERROR_STUB_LIBRARY ? "CUDA_ERROR_STUB_LIBRARY" : "CUDA_ERROR_UNKNOWN";
    return 0;
}}

__attribute__((visibility("hidden"), used)) void *scfnet_cuda_resolve(unsigned idx) {{
    pthread_once(&scfnet_cuda_once, scfnet_cuda_load);
    const char *name = scfnet_cuda_names[idx];
    void *f = scfnet_cuda_handle ? dlsym(scfnet_cuda_handle, name) : NULL;
    if (f == NULL) {{
        if (scfnet_cuda_handle == NULL && strcmp(name, "cuGetErrorString") == 0)
            f = (void *)scfnet_cuda_error_string;
        else if (scfnet_cuda_handle == NULL && strcmp(name, "cuGetErrorName") == 0)
            f = (void *)scfnet_cuda_error_name;
        else
            f = scfnet_cuda_handle ? (void *)scfnet_cuda_missing : (void *)scfnet_cuda_unavailable;
    }}
    __atomic_store_n(&scfnet_cuda_slots[idx], f, __ATOMIC_RELEASE);
    return f;
}}

/* Slow path: entered by a jump from a trampoline with the slot index in %eax and the caller's
   arguments untouched; saves the argument registers, resolves, restores them and jumps. The
   stack is 16-byte aligned at the call: 8 (return address) + 6 * 8 + 136 = 192. */
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".type scfnet_cuda_slow, @function\n"
    "scfnet_cuda_slow:\n"
    "    pushq %rdi\n    pushq %rsi\n    pushq %rdx\n    pushq %rcx\n    pushq %r8\n    pushq %r9\n"
    "    subq $136, %rsp\n"
    "    movdqu %xmm0, 0(%rsp)\n    movdqu %xmm1, 16(%rsp)\n"
    "    movdqu %xmm2, 32(%rsp)\n    movdqu %xmm3, 48(%rsp)\n"
    "    movdqu %xmm4, 64(%rsp)\n    movdqu %xmm5, 80(%rsp)\n"
    "    movdqu %xmm6, 96(%rsp)\n    movdqu %xmm7, 112(%rsp)\n"
    "    movl %eax, %edi\n"
    "    call scfnet_cuda_resolve\n"
    "    movdqu 0(%rsp), %xmm0\n    movdqu 16(%rsp), %xmm1\n"
    "    movdqu 32(%rsp), %xmm2\n    movdqu 48(%rsp), %xmm3\n"
    "    movdqu 64(%rsp), %xmm4\n    movdqu 80(%rsp), %xmm5\n"
    "    movdqu 96(%rsp), %xmm6\n    movdqu 112(%rsp), %xmm7\n"
    "    addq $136, %rsp\n"
    "    popq %r9\n    popq %r8\n    popq %rcx\n    popq %rdx\n    popq %rsi\n    popq %rdi\n"
    "    jmp *%rax\n"
    ".size scfnet_cuda_slow, .-scfnet_cuda_slow\n"
);

#define TRAMPOLINE(name, idx) __asm__( \
    ".text\n.p2align 4\n.globl " #name "\n.type " #name ", @function\n" #name ":\n" \
    "    movq scfnet_cuda_slots+8*" #idx "(%rip), %rax\n" \
    "    testq %rax, %rax\n    jz 1f\n    jmp *%rax\n" \
    "1:  movl $" #idx ", %eax\n    jmp scfnet_cuda_slow\n" \
    ".size " #name ", .-" #name "\n");

"#,
        count = names.len()
    );
    for (i, n) in names.iter().enumerate() {
        let _ = writeln!(s, "TRAMPOLINE({n}, {i})");
    }
    s
}

/// Writes `lib/stubs/libcuda.a` (the lazy driver loader) under the toolkit root. Returns whether
/// it changed (then the binary must be relinked).
fn build_driver_shim(root: &Path, cache: &Path, names: &[String]) -> Result<bool> {
    let dir = cache.join("shim");
    std::fs::create_dir_all(&dir)?;
    let src = dir.join("cuda_shim.c");
    let obj = dir.join("cuda_shim.o");
    let stubs = root.join("lib/stubs");
    let lib = stubs.join("libcuda.a");
    let text = shim_source(names);
    if lib.is_file() && std::fs::read_to_string(&src).ok().as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    std::fs::create_dir_all(&stubs)?;
    std::fs::write(&src, &text)?;
    run_cmd(
        Command::new("gcc")
            .args(["-O2", "-fPIC", "-Wall", "-c", "-o"])
            .arg(&obj)
            .arg(&src),
    )
    .context("gcc could not compile the CUDA driver loader")?;
    let _ = std::fs::remove_file(&lib);
    run_cmd(Command::new("ar").arg("rcs").arg(&lib).arg(&obj))
        .context("ar could not write libcuda.a")?;
    println!(
        "build-cuda: wrote {} (lazy loader of libcuda.so.1, {} driver functions)",
        lib.display(),
        names.len()
    );
    Ok(true)
}

fn valid_compute_cap(cap: &str) -> bool {
    let digits = cap.trim_end_matches(['a', 'f']);
    (2..=3).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
}

/// The nvcc target that cudaforge derives from `CUDA_COMPUTE_CAP` (suffix `a` from sm_90 on,
/// `f` after sm_120).
fn nvcc_arch(cap: &str) -> String {
    if cap.ends_with(['a', 'f']) {
        return format!("sm_{cap}");
    }
    let base: u32 = cap.parse().unwrap_or(0);
    let suffix = match base {
        121.. => "f",
        90..=120 => "a",
        _ => "",
    };
    format!("sm_{base}{suffix}")
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The libraries of the toolkit that `binary` loads at start (directly or through another one),
/// as `ldd` resolves them with `LD_LIBRARY_PATH=lib`; None when ldd fails.
fn toolkit_libs(binary: &Path, lib: &Path) -> Option<Vec<String>> {
    let out = Command::new("ldd")
        .arg(binary)
        .env("LD_LIBRARY_PATH", lib)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let lib = lib.to_string_lossy();
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().split_once(" => "))
        .filter(|(_, path)| path.starts_with(lib.as_ref()))
        .map(|(name, _)| name.to_string())
        .collect();
    names.sort();
    Some(names)
}

/// Removes candle-kernels' build-script output and fingerprints in `target_dir` when the nvcc
/// flags differ from those of the last build: neither cargo nor cudaforge tracks
/// `NVCC_APPEND_FLAGS`, so the kernels would silently keep the old flags.
fn invalidate_kernels(target_dir: &Path, stamp_text: &str) -> Result<()> {
    let stamp = target_dir.join("build-cuda.stamp");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(stamp_text) {
        return Ok(());
    }
    for sub in ["release/build", "release/.fingerprint"] {
        let Ok(entries) = std::fs::read_dir(target_dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            let is_kernels = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("candle-kernels-"));
            if is_kernels && path.is_dir() {
                println!(
                    "build-cuda: nvcc flags changed, removing {}",
                    path.display()
                );
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
    }
    std::fs::create_dir_all(target_dir)?;
    std::fs::write(&stamp, stamp_text)?;
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    ensure!(
        cfg!(all(target_os = "linux", target_arch = "x86_64")),
        "build-cuda supports x86-64 Linux only"
    );
    ensure!(
        valid_compute_cap(&args.compute_cap),
        "--compute-cap {}: expected a compute capability such as 80, 89, 90 or 90a",
        args.compute_cap
    );
    let t0 = std::time::Instant::now();
    let ws = workspace_root();
    let cache = match &args.toolkit_dir {
        Some(d) => std::path::absolute(d)?,
        None => ws.join("target/cuda-toolkit"),
    };
    require(
        "gcc",
        &["--version"],
        "gcc is needed for the driver loader and as nvcc's host compiler",
    )?;
    require(
        "g++",
        &["--version"],
        "g++ is needed as nvcc's host compiler",
    )?;
    require("ar", &["--version"], "ar (binutils) is needed")?;
    if args.strip {
        require(
            "strip",
            &["--version"],
            "strip (binutils) is needed for --strip",
        )?;
    }

    let root = ensure_toolkit(&cache)?;
    check_nvcc(&root)?;

    let mut features = String::from("scfnet-cli/cuda");
    for f in args.features.iter().flat_map(|f| f.split([',', ' '])) {
        if !f.is_empty() {
            features.push_str(",scfnet-cli/");
            features.push_str(f.trim_start_matches("scfnet-cli/"));
        }
    }
    let bindings = cudarc_driver_bindings(&ws, &features)?;
    let names = driver_functions(&bindings)?;
    let relink = build_driver_shim(&root, &cache, &names)?;

    let target_dir = ws.join("target/cuda");
    let binary = target_dir.join("release/scfnet");
    if relink {
        // Cargo does not track native libraries: a missing output makes it link again.
        let _ = std::fs::remove_file(&binary);
    }
    // Compressed fatbins: the static quantized-matmul kernels of candle-kernels shrink ~6x
    // (the binary from ~61 to ~33 MiB stripped); the PTX is unaffected.
    let nvcc_flags = match std::env::var("NVCC_APPEND_FLAGS") {
        Ok(f) if !f.trim().is_empty() => format!("{} {NVCC_APPEND_FLAGS}", f.trim()),
        _ => NVCC_APPEND_FLAGS.to_string(),
    };
    invalidate_kernels(
        &target_dir,
        &format!("NVCC_APPEND_FLAGS={nvcc_flags}\n{}\n", WHEELS.join("\n")),
    )?;

    let mut path = OsString::from(root.join("bin"));
    if let Some(old) = std::env::var_os("PATH") {
        path.push(":");
        path.push(old);
    }
    let root_s = root.to_string_lossy().into_owned();
    // cudarc adds `lib` and `lib/stubs` of every one of these that is set to its link search
    // path: all point at the downloaded toolkit, so that no system CUDA gets mixed in.
    let env: Vec<(&str, String)> = vec![
        (
            "CARGO_TARGET_DIR",
            target_dir.to_string_lossy().into_owned(),
        ),
        ("CUDA_COMPUTE_CAP", args.compute_cap.clone()),
        ("CUDARC_CUDA_VERSION", CUDA_VERSION.0.to_string()),
        ("NVCC", root.join("bin/nvcc").to_string_lossy().into_owned()),
        ("NVCC_APPEND_FLAGS", nvcc_flags),
        ("CUDA_ROOT", root_s.clone()),
        ("CUDA_PATH", root_s.clone()),
        ("CUDA_HOME", root_s.clone()),
        ("CUDA_TOOLKIT_ROOT_DIR", root_s),
    ];
    println!("build-cuda: environment of the build:");
    println!("  PATH={}:$PATH", root.join("bin").display());
    for (k, v) in &env {
        println!("  {k}={v}");
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ws)
        .args(["build", "--release", "-p", "scfnet-cli", "--bin", "scfnet"])
        .arg("--features")
        .arg(&features)
        .args(&args.cargo_args)
        .env("PATH", path)
        .env_remove("CUDNN_LIB");
    for (k, v) in &env {
        cmd.env(k, v);
    }
    println!("build-cuda: {cmd:?}");
    run_cmd(&mut cmd).context("the CUDA build of scfnet failed")?;
    ensure!(
        binary.is_file(),
        "{} missing after the build",
        binary.display()
    );

    let size = std::fs::metadata(&binary)?.len();
    println!("build-cuda: built {} ({})", binary.display(), mib(size));
    if args.strip {
        let stripped = target_dir.join("release/scfnet-stripped");
        run_cmd(Command::new("strip").arg("-o").arg(&stripped).arg(&binary))?;
        let size = std::fs::metadata(&stripped)?.len();
        println!(
            "build-cuda: stripped copy {} ({})",
            stripped.display(),
            mib(size)
        );
    }

    println!("\nRun-time requirements of this binary:");
    println!(
        "  - for --device cuda: an NVIDIA driver supporting CUDA 13.0 (R580+), loaded lazily as \
         libcuda.so.1, and a GPU of compute capability {} (kernels built for {})",
        args.compute_cap,
        nvcc_arch(&args.compute_cap)
    );
    let libs = toolkit_libs(&binary, &root.join("lib")).unwrap_or_else(|| {
        [
            "libcudart.so.13",
            "libcublas.so.13",
            "libcublasLt.so.13",
            "libcurand.so.10",
        ]
        .map(String::from)
        .to_vec()
    });
    println!(
        "  - always, even on the CPU (loaded at start): {}",
        libs.join(", ")
    );
    println!(
        "    e.g. LD_LIBRARY_PATH={}, or `pip install {}` and its site-packages/nvidia/cu13/lib, \
         or a PyTorch cu130 install's nvidia/cu13/lib",
        root.join("lib").display(),
        RUNTIME_WHEELS.join(" ")
    );
    println!("build-cuda: done in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}
