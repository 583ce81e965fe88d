#!/usr/bin/env python3
"""Counts what one training step of `scfnet train --device cuda` asks of a GPU, on the fake GPU
(build.sh; docs/cuda.md, "A fake GPU on the CPU"): kernel launches by kernel, cuBLAS products,
cuDNN passes, copies each way with their bytes, memsets, allocations, synchronisations, events.
By hand, from the repository root, after `cargo xtask build-cuda --strip` and build.sh:

    python3 tests/gpu/fake_cuda/census.py --json census.json -- \\
        --model swinb --data DIR --batch 1 --sizes 384 --test-size 384 --drop-path 0

It runs `scfnet train --device cuda ARGS --max-steps 1` and `--max-steps 2` with the fake
libraries counting (FAKE_CUDA_CENSUS) and reports the difference: one step, without start-up,
the weights' upload or the checkpoint. The CUDA counterpart of ../kernel_census.py, which counts
candle's operations on the CPU: here the CUDA code path itself runs (the columns or cuDNN
convolutions, the one-hot bias products, the optimiser's chunks, the side-stream uploads), so the
counts are the launches a GPU would see. The same binary, libraries and arguments give the same
counts. Not run by CI."""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

# Driver calls that make the calling thread wait for the GPU (an event's wait returns at once
# when the event was never recorded: cudarc's page-locked buffers call it on every access).
SYNCHRONISING = {"cuCtxSynchronize", "cuStreamSynchronize", "cuEventSynchronize"}


def run(binary, fake, train_args, steps, workdir):
    """{(library, kind, name): (calls, amount)} over a run of `steps` training steps."""
    rows = os.path.join(workdir, f"census{steps}.tsv")
    cmd = [binary, "train", "--device", "cuda", *train_args, "--out", os.path.join(workdir, f"run{steps}"),
           "--epochs", "1", "--max-steps", str(steps), "--seed", "7", "--quiet"]
    env = dict(os.environ, LD_LIBRARY_PATH=fake, FAKE_CUDA_CENSUS=rows, RUST_BACKTRACE="0")
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"census: {' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    counts = {}
    with open(rows) as f:
        for line in f:
            library, kind, name, calls, amount = line.rstrip("\n").split("\t")
            if kind == "call" and name.endswith("_v2"):  # cuda.h's names for the current API
                name = name[: -len("_v2")]
            c, m = counts.get((library, kind, name), (0, 0))
            counts[(library, kind, name)] = (c + int(calls), m + int(amount))
    return counts


def per_step(one, two):
    """The rows of `two` minus those of `one`, where they differ."""
    out = {}
    for key in set(one) | set(two):
        c1, a1 = one.get(key, (0, 0))
        c2, a2 = two.get(key, (0, 0))
        if c2 != c1 or a2 != a1:
            out[key] = (c2 - c1, a2 - a1)
    return out


def summary(step):
    """The step's totals by what the GPU does. A copy to the host waits for the GPU too, Async
    or not, unless it goes to page-locked memory (scfnet's copies to the host do not)."""
    total = collections.Counter()
    for (library, kind, name), (calls, amount) in step.items():
        if kind == "launch":
            total["kernel launches"] += calls
        elif kind == "product":
            total["cuBLAS products"] += calls
            total["cuBLAS multiply-adds"] += amount
        elif kind == "convolution":
            total["cuDNN passes"] += calls
            total["cuDNN multiply-adds"] += amount
        elif name.startswith("cuMemcpy"):
            way = name[len("cuMemcpy"):].replace("Async", "")
            total[f"copies {way}"] += calls
            total[f"bytes {way}"] += amount
        elif name.startswith("cuMemset"):
            total["memsets"] += calls
        elif name in ("cuMemAlloc", "cuMemAllocAsync", "cuMemAllocFromPoolAsync"):
            total["device allocations"] += calls
            total["bytes allocated"] += amount
        elif name in ("cuMemFree", "cuMemFreeAsync"):
            total["device frees"] += calls
        elif name in ("cuMemHostAlloc", "cuMemAllocHost", "cuMemHostRegister"):
            total["page-locked allocations"] += calls
        elif name == "cuEventRecord":
            total["events recorded"] += calls
        elif name == "cuStreamWaitEvent":
            total["stream waits"] += calls
        if name in SYNCHRONISING:
            total["synchronise calls (context, stream, event)"] += calls
    total["GPU work items (launches + products + cuDNN passes + copies + memsets)"] = (
        total["kernel launches"] + total["cuBLAS products"] + total["cuDNN passes"]
        + sum(v for k, v in total.items() if k.startswith("copies ")) + total["memsets"])
    return dict(total)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", default=os.path.join(ROOT, "target/cuda/release/scfnet-stripped"))
    p.add_argument("--fake", default=os.environ.get("FAKE_CUDA", os.path.join(ROOT, "target/fake-cuda")),
                   help="the fake libraries' folder (build.sh)")
    p.add_argument("--json", required=True)
    p.add_argument("--top", type=int, default=25, help="kernels listed by launches")
    p.add_argument("train_args", nargs=argparse.REMAINDER)
    a = p.parse_args()
    train_args = [x for x in a.train_args if x != "--"]
    for flag in ("--out", "--max-steps", "--device", "--epochs"):
        if flag in train_args:
            raise SystemExit(f"census: {flag} is the census's own; leave it out")
    if not os.path.exists(os.path.join(a.fake, "libcuda.so.1")):
        raise SystemExit(f"census: no fake libcuda.so.1 in {a.fake} (bash tests/gpu/fake_cuda/build.sh)")
    workdir = tempfile.mkdtemp(prefix="fake-census-")
    try:
        one = run(a.binary, a.fake, train_args, 1, workdir)
        two = run(a.binary, a.fake, train_args, 2, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    step = per_step(one, two)
    totals = summary(step)
    rows = sorted(step.items(), key=lambda kv: (-kv[1][0], kv[0]))
    report = {
        "binary": a.binary,
        "train_args": train_args,
        "totals_per_step": totals,
        "per_step": [{"library": l, "kind": k, "name": n, "calls": c, "amount": m}
                     for (l, k, n), (c, m) in rows],
        "note": "amount: threads launched (launch), bytes (copies, memsets, allocations), "
                "multiply-adds (product, convolution)",
    }
    with open(a.json, "w") as f:
        json.dump(report, f, indent=1)
    print(f"one step of scfnet train --device cuda {' '.join(train_args)}")
    for k, v in totals.items():
        print(f"{v:14,d}  {k}")
    print(f"\nkernels by launches (first {a.top}):")
    launches = [(n, c, m) for (l, k, n), (c, m) in rows if k == "launch"]
    for name, calls, threads in launches[: a.top]:
        print(f"{calls:8d}  {name}  ({threads / max(calls, 1):,.0f} threads a launch)")
    others = [(l, n, c, m) for (l, k, n), (c, m) in rows if k != "launch"]
    print("\nother calls:")
    for library, name, calls, amount in others:
        print(f"{calls:8d}  {library} {name}  (amount {amount:,})")


if __name__ == "__main__":
    sys.exit(main())
