#!/usr/bin/env bash
# Runs scfnet's CUDA paths on the fake GPU (build.sh; docs/cuda.md, "A fake GPU on the CPU"), by
# hand, from the repository root, after `cargo xtask build-cuda --strip` (the CPU runs it
# compares with use the same binary, with the fake libraries loaded and unused):
#
#   bash tests/gpu/fake_cuda/check.sh                  # every part (about 15 minutes on 2 cores)
#   bash tests/gpu/fake_cuda/check.sh train predict    # some: check bench train predict distill
#
# The checks of the outputs run in python3 ($PYTHON); predict's comparison of maps needs numpy and
# Pillow (`pip install numpy pillow`).
# check:   `check-device --side 64`: every op case (cuDNN's included) and each network's map and
#          training step against the CPU (about 8 minutes);
# bench:   `check-device --bench-only` at side 64 in every timing mode (f32, tf32, conv-tf32,
#          cudnn, batch-columns, batch-wgrad, bf16, f32-events, f32-generic), the student's
#          inference and training step: each mode's code path runs and gives a first-step loss
#          near f32's (the timings are the emulation's, not a GPU's) and records the device memory
#          it took at most (the fake pool's count); BENCH_TRAIN=
#          student:2,r50:1,swinb:1@64 adds the teachers (about 2 minutes a mode more);
# train:   `train --device cuda --precision f32` (student, 3 steps at 64, synthetic data): its
#          first loss against the same run on the CPU;
# predict: `predict --device cuda` with the CPU run's weights: its maps against the CPU's;
# distill: `distill --device cuda` (student from an R50 teacher trained one step on the CPU), one
#          epoch, which ends with the device memory it took at most.
# Everything lands in $OUT (default target/fake-cuda/check); a part run again replaces its own
# outputs (train, predict and distill share their data: any of them replaces all three's), the
# others' stay. Exit status 1 if a part failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
SCFNET=${SCFNET:-target/cuda/release/scfnet-stripped}
OUT=${OUT:-target/fake-cuda/check}
PY=${PYTHON:-python3}
export FAKE_CUDA=${FAKE_CUDA:-$root/target/fake-cuda}
parts=" ${*:-check bench train predict distill} "
want() { [[ "$parts" == *" $1 "* ]]; }
bash tests/gpu/fake_cuda/build.sh || exit 1
# $OUT is ours alone: a folder this script did not make (no .fake-cuda-check mark) is refused,
# so that nothing of a user's is replaced.
if [ -e "$OUT" ] && [ ! -f "$OUT/.fake-cuda-check" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
  echo "check.sh: $OUT exists and was not made by check.sh (no .fake-cuda-check in it); set OUT" >&2
  exit 1
fi
mkdir -p "$OUT" && touch "$OUT/.fake-cuda-check"
# The outputs of the parts run now go (train, predict and distill share data); the others stay.
want check && rm -f "$OUT"/check.json "$OUT"/check-device.log
want bench && rm -f "$OUT"/bench.json "$OUT"/bench.log "$OUT"/bench-losses.log
if want train || want predict || want distill; then
  rm -rf "$OUT"/data "$OUT"/train-* "$OUT"/predict-* "$OUT"/maps-* "$OUT"/teacher* "$OUT"/distill* "$OUT"/synth.log
fi
export RUST_BACKTRACE=0
fake() { LD_LIBRARY_PATH="$FAKE_CUDA" "$SCFNET" "$@"; }
failed=()
stage() {  # stage NAME COMMAND...: runs it with its output in $OUT/NAME.log
  local name=$1
  shift
  local t0=$SECONDS
  if "$@" > "$OUT/$name.log" 2>&1; then
    echo "ok    $name ($((SECONDS - t0)) s)"
  else
    echo "FAIL  $name ($((SECONDS - t0)) s): see $OUT/$name.log"
    failed+=("$name")
  fi
}

bench_losses='
import json, sys
bench = json.load(open(sys.argv[1]))["bench"]
base = {s["model"]: s["first_loss"] for s in bench["f32"]["train_step"]}
worst = 0.0
for mode, runs in bench.items():
    for s in runs["train_step"]:
        d = abs(s["first_loss"] - base[s["model"]]) / abs(base[s["model"]])
        worst = max(worst, d)
        print("%-14s %-8s first loss %.6f (%.1e from f32)" % (mode, s["model"], s["first_loss"], d))
sys.exit(0 if worst < 1e-2 else 1)
'
# Every timing records the most device memory it took: at least the student'"'"'s weights and their
# momentum (2 × 0.8 M f32 values, 6 MiB) in a training step, more than nothing in inference.
bench_peaks='
import json, sys
bench = json.load(open(sys.argv[1]))["bench"]
bad = []
for mode, runs in bench.items():
    for kind, floor in (("inference", 0.0), ("train_step", 6.0)):
        for s in runs[kind]:
            peak = s.get("peak_mib")
            print("%-14s %-10s %-8s b%-3d peak %s MiB" % (mode, kind, s["model"], s["batch"], peak))
            if not isinstance(peak, (int, float)) or not peak > floor:
                bad.append((mode, kind, s["model"]))
sys.exit(1 if bad else 0)
'
train_losses='
import json, sys
cpu, gpu = ([json.loads(l)["loss"] for l in open(p) if "\"loss\"" in l] for p in sys.argv[1:3])
print("cpu ", cpu)
print("cuda", gpu)
# The first loss comes from the forward pass alone: the same up to f32 rounding.
sys.exit(0 if len(cpu) == len(gpu) == 3 and abs(cpu[0] - gpu[0]) <= 1e-4 * abs(cpu[0]) else 1)
'
same_maps='
import os, sys
import numpy as np
from PIL import Image
a, b = sys.argv[1:3]
names = sorted(os.listdir(a))
worst = max(int(np.abs(np.asarray(Image.open(os.path.join(a, n)), dtype=np.int32)
                       - np.asarray(Image.open(os.path.join(b, n)), dtype=np.int32)).max())
            for n in names)
print(f"{len(names)} maps, largest difference {worst} grey levels")
sys.exit(0 if names and sorted(os.listdir(b)) == names and worst <= 1 else 1)
'

if want check; then
  stage check-device fake check-device --side 64 --json "$OUT/check.json"
fi
if want bench; then
  stage bench fake check-device --bench-only --bench-size 64 \
    --train "${BENCH_TRAIN:-student:2}" --infer-batches 1 --repeat 1 \
    --bench-modes f32,tf32,conv-tf32,cudnn,batch-columns,batch-wgrad,bf16,f32-events,f32-generic \
    --json "$OUT/bench.json"
  stage bench-losses "$PY" -c "$bench_losses" "$OUT/bench.json"
  stage bench-peaks "$PY" -c "$bench_peaks" "$OUT/bench.json"
fi
if want train || want predict || want distill; then
  fake synth --out "$OUT/data" --n 24 --seed 3 --min-side 80 --max-side 120 > "$OUT/synth.log" 2>&1
fi
common=(--model student --data "$OUT/data" --batch 4 --sizes 64 --test-size 64 --epochs 1 --max-steps 3 --seed 5)
if want train || want predict; then
  stage train-cpu fake train --device cpu "${common[@]}" --out "$OUT/train-cpu"
fi
if want train; then
  stage train-cuda fake train --device cuda --precision f32 "${common[@]}" --out "$OUT/train-cuda"
  stage train-losses "$PY" -c "$train_losses" "$OUT/train-cpu/log.jsonl" "$OUT/train-cuda/log.jsonl"
fi
if want predict; then
  for dev in cpu cuda; do
    stage "predict-$dev" fake predict --device "$dev" --precision f32 --model student \
      --weights "$OUT/train-cpu/model.safetensors" --input "$OUT/data/image" \
      --output "$OUT/maps-$dev" --size 64 --batch 4
  done
  stage predict-maps "$PY" -c "$same_maps" "$OUT/maps-cpu" "$OUT/maps-cuda"
fi
if want distill; then
  stage teacher-cpu fake train --device cpu --model r50 --data "$OUT/data" --batch 2 \
    --sizes 64 --test-size 64 --epochs 1 --max-steps 1 --out "$OUT/teacher"
  stage distill-cuda fake distill --device cuda --teacher r50 \
    --teacher-weights "$OUT/teacher/model.safetensors" --data "$OUT/data" --batch 4 --sizes 64 \
    --test-size 64 --epochs 1 --out "$OUT/distill"
  # A whole epoch: its closing line says how much device memory it took.
  stage distill-peak grep -E "epoch 1/1 done: .*, peak GPU memory [0-9.]+ (MiB|GiB)" "$OUT/distill-cuda.log"
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "every part passed"
