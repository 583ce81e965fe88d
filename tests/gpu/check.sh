#!/usr/bin/env bash
# The GPU check of scfnet-rs: one script, run from the repository root on a machine with an
# NVIDIA GPU and no Rust, with a CUDA `scfnet` built elsewhere by `cargo xtask build-cuda`.
#
#   SCFNET=path/to/scfnet OUT=out/gpu bash tests/gpu/check.sh
#
# DEVICE (default cuda), N_IMAGES (512) and CHECK_ARGS (extra `check-device` flags) let the
# script's own logic be tried on a CPU: DEVICE=cpu N_IMAGES=8 CHECK_ARGS="--ops-only ..." .
#
# 1. `scfnet check-device --bench`: every op and each network's map and training step on the GPU
#    against the CPU, then the student's inference images/s (batch 1, 32) and training-step times
#    (student batch 128, R50 batch 32) at 352.
# 2. `scfnet predict` end to end on a folder of 512 synthetic 300-400 px PNG images, batch 1 and 32.
# 3. The PyTorch eager re-creation on the same GPU (tests/reference/{model,train}), if torch and
#    timm import.
# Everything lands in $OUT/gpu-check.json (plus the raw logs). Exit status: that of step 1.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${SCFNET:-target/cuda/release/scfnet}
OUT=${OUT:-out/gpu-check}
mkdir -p "$OUT"
WORK=$(mktemp -d)
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
N_IMAGES=${N_IMAGES:-512}

# The CUDA 13 libraries scfnet links (cudart, cuBLAS, cuBLASLt, cuRAND) from pip's nvidia wheels.
for d in $($PY -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
  for l in "$d"/nvidia/cu13/lib "$d"/nvidia/*/lib; do
    [ -d "$l" ] && LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$l"
  done
done
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/nvidia-smi.csv" 2>&1
"$BIN" --version > "$OUT/version.txt" 2>&1

t0=$(date +%s)
"$BIN" check-device --device "$DEVICE" --bench ${CHECK_ARGS:-} --json "$OUT/check.json" 2>&1 | tee "$OUT/check.log"
status=${PIPESTATUS[0]}
t1=$(date +%s)

# End-to-end predict on a folder (PNG decode/encode included), the network on the GPU.
"$BIN" synth --out "$WORK/synth" --n "$N_IMAGES" --min-side 300 --max-side 400 --test-fraction 0 > /dev/null 2>&1
for b in 1 32; do
  s=$(date +%s%N)
  "$BIN" predict --random-weights --model student --device "$DEVICE" --batch $b \
    --input "$WORK/synth/image" --output "$WORK/pred$b" > "$OUT/predict_b$b.log" 2>&1
  rc=$?
  echo "predict b$b rc=$rc ms=$(( ($(date +%s%N) - s) / 1000000 ))" >> "$OUT/predict.txt"
done

# PyTorch eager on the same GPU.
if [ "$DEVICE" != cpu ] && $PY -c 'import torch, timm; assert torch.cuda.is_available()' 2>/dev/null; then
  $PY tests/reference/model/bench_torch.py --device cuda --models student --batches 1,32 \
    --repeat 5 > "$OUT/torch_infer.txt" 2>&1
  $PY tests/reference/train/bench_torch_step.py --device cuda --runs student:128,r50:32 \
    --repeat 5 > "$OUT/torch_train.txt" 2>&1
fi

$PY - "$OUT" "$((t1 - t0))" "$N_IMAGES" <<'PYEOF'
import json, re, sys, pathlib
out = pathlib.Path(sys.argv[1])
def read(name):
    p = out / name
    return p.read_text() if p.exists() else ""
report = {"check_seconds": int(sys.argv[2]), "gpu": read("nvidia-smi.csv").strip()}
try:
    report["check"] = json.loads(read("check.json"))
except ValueError:
    report["check"] = None
n = int(sys.argv[3])
report["predict"] = [
    {"batch": int(m[0]), "rc": int(m[1]), "seconds": int(m[2]) / 1e3, "images_per_s": n * 1e3 / int(m[2])}
    for m in re.findall(r"predict b(\d+) rc=(\d+) ms=(\d+)", read("predict.txt"))
]
torch = {}
for f in ("torch_infer.txt", "torch_train.txt"):
    for label, ms in re.findall(r"torch (\S+ b\d+): ([\d.]+) ms", read(f)):
        torch[f.split("_")[1].split(".")[0] + " " + label] = float(ms)
report["torch_ms"] = torch
(out / "gpu-check.json").write_text(json.dumps(report, indent=2))
print(json.dumps({k: v for k, v in report.items() if k != "check"}, indent=2))
PYEOF
rm -rf "$WORK"
exit "$status"
