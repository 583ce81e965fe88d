#!/usr/bin/env bash
# Builds the fake CUDA libraries (libcuda.so.1, libcublas.so.13, libcurand.so.10,
# libcudart.so.13, libcudnn.so.9) into $FAKE_CUDA (default target/fake-cuda), for running the CUDA build of
# scfnet on a machine without a GPU (docs/cuda.md, "A fake GPU on the CPU"). Needs a C++
# compiler and the CUDA toolkit's headers that `cargo xtask build-cuda` downloads
# (target/cuda-toolkit). By hand, from the repository root:
#
#   bash tests/gpu/fake_cuda/build.sh
#   LD_LIBRARY_PATH=$PWD/target/fake-cuda target/cuda/release/scfnet-stripped check-device --side 64 ...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${FAKE_CUDA:-$root/target/fake-cuda}
include=${CUDA_INCLUDE:-$root/target/cuda-toolkit/nvidia/cu13/include}
binary=${SCFNET:-$root/target/cuda/release/scfnet-stripped}
cxx=${CXX:-g++}
flags=(-std=c++17 -w -O1 -g -fPIC)
[ -f "$include/cuda.h" ] || { echo "build.sh: no cuda.h in $include (run cargo xtask build-cuda first)" >&2; exit 1; }
# $out is ours alone: a folder this script did not make (no .fake-cuda mark) is refused, not
# written into.
if [ -e "$out" ] && [ ! -f "$out/.fake-cuda" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  echo "build.sh: $out exists and was not made by build.sh (no .fake-cuda in it); set FAKE_CUDA" >&2
  exit 1
fi
mkdir -p "$out" && touch "$out/.fake-cuda"

# candle-kernels' sources, from cargo's registry (the version in Cargo.lock), each header made
# includable twice, our host shim for its compatibility.cuh; the half-precision kernels sit
# behind __CUDA_ARCH__ tests and drop out of a host build.
version=$(awk '/^name = "candle-kernels"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$root/Cargo.lock")
candle=${CANDLE_KERNELS:-$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/candle-kernels-"$version"/src 2>/dev/null | head -1)}
[ -f "$candle/cuda_utils.cuh" ] || { echo "build.sh: no candle-kernels $version sources (set CANDLE_KERNELS)" >&2; exit 1; }
rm -rf "$out/candle-kernels" && mkdir -p "$out/candle-kernels"
cp "$candle"/*.cu "$candle"/*.cuh "$out/candle-kernels/"
for h in "$out"/candle-kernels/*.cuh; do sed -i '1i #pragma once' "$h"; done
cp "$here/candle_compat.cuh" "$out/candle-kernels/compatibility.cuh"
: > "$out/candle_kernels.inc"
for k in affine binary cast fill indexing reduce ternary unary; do
  echo "#include \"candle-kernels/$k.cu\"" >> "$out/candle_kernels.inc"
done

# Every .cu of scfnet-kernels, as its build.rs compiles every one it finds.
for f in "$root"/crates/scfnet-kernels/src/cuda/*.cu; do echo "#include \"$f\""; done > "$out/scfnet_kernels.inc"

# The kernels' registry: every extern "C" function that kernels.cpp defines.
kflags=(-I"$include" -I"$include/cccl" -I"$out")
"$cxx" "${flags[@]}" "${kflags[@]}" -c "$here/kernels.cpp" -o "$out/kernels.o"
nm --defined-only "$out/kernels.o" | awk '$2 == "T" && $3 !~ /^_Z/ { print "REG(" $3 ")" }' > "$out/registry.inc"

# The runtime's stubs: every cuda* function the binary references but the four written out;
# the start-up registrations of nvcc-compiled objects do nothing, every other one is an error.
[ -f "$binary" ] || { echo "build.sh: no CUDA binary at $binary (cargo xtask build-cuda --strip, or set SCFNET)" >&2; exit 1; }
nm -D --undefined-only "$binary" | awk '{ print $2 }' | sed -n 's/@libcudart.*//p' |
  grep -vxE 'cudaGetLastError|cudaPeekAtLastError|cudaGetErrorName|cudaGetErrorString' |
  sed -E -e 's/^__cuda(Register|Unregister).*/QUIET(&)/' -e 's/^_*cuda.*/STUB(&)/' > "$out/cudart_stubs.inc"

lib() {  # lib NAME SOURCE [flags...]: a shared library whose symbols carry version NAME
  local name=$1 src=$2
  shift 2
  printf '%s { global: *; };\n' "$name" > "$out/$name.map"
  "$cxx" "${flags[@]}" -shared "$src" -o "$out/$name" -Wl,--version-script="$out/$name.map" \
    -Wl,-soname,"$name" "$@"
}
lib libcuda.so.1 "$here/fake_driver.cpp" "${kflags[@]}" -I"$here"
ln -sf libcuda.so.1 "$out/libcuda.so"
lib libcublas.so.13 "$here/fake_cublas.cpp" -O3
lib libcurand.so.10 "$here/fake_curand.cpp"
lib libcudnn.so.9 "$here/fake_cudnn.cpp" -O3
lib libcudart.so.13 "$here/fake_cudart.cpp" -I"$out"
echo "fake CUDA libraries in $out ($(wc -l < "$out/registry.inc") kernels)"
