#!/usr/bin/env bash
# Builds tests/gpu/kernel_profile.c into $1 (default target/cuda/libkernel_profile.so), a CUPTI
# injection library for tests/gpu/check.sh, on a machine without a GPU: the CUPTI headers come
# from the pinned PyPI wheel (downloaded once into target/cuda-toolkit/cupti).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-target/cuda/libkernel_profile.so}
CACHE=target/cuda-toolkit/cupti
if [ ! -f "$CACHE/nvidia/cu13/include/cupti_activity.h" ]; then
  mkdir -p "$CACHE"
  python3 -m pip download --no-deps --quiet "nvidia-cuda-cupti==13.0.85" -d "$CACHE"
  (cd "$CACHE" && python3 -m zipfile -e nvidia_cuda_cupti-13.0.85-*.whl .)
fi
INC="$CACHE/nvidia/cu13/include"
CUDA_INC=target/cuda-toolkit/nvidia/cu13/include
mkdir -p "$(dirname "$OUT")"
gcc -O2 -Wall -Wextra -shared -fPIC -I"$INC" -I"$CUDA_INC" tests/gpu/kernel_profile.c -o "$OUT" -ldl
strip "$OUT"
echo "built $OUT"
