#!/usr/bin/env python3
"""Counts, per training step, the candle storage operations and custom ops of `scfnet train` on
the CPU: each is one kernel launch (or memset) on CUDA, where the backends mirror each other, so
the count says without a GPU how many launches a change saves. By hand, as root on Linux with
`perf`, `nm` and `readelf`, against a release build (its symbol table names the functions):

    python3 tests/gpu/kernel_census.py --binary target/release/scfnet --json census.json -- \\
        --model swinb --data DIR --batch 1 --sizes 384 --test-size 384 --drop-path 0

It places a uprobe on every `<CpuStorage as BackendStorage>` method, `<CpuDevice as
BackendDevice>::{zeros_impl, alloc_uninit}` and every custom op's `cpu_fwd` (group
`scfnet_census`, removed afterwards), runs `scfnet train ... --max-steps 1` and `--max-steps 2`
under `perf stat`, and reports the difference: one step, without start-up. Not run by CI."""
import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

UPROBES = "/sys/kernel/tracing/uprobe_events"
GROUP = "scfnet_census"
PATTERNS = [
    (r"^<candle_core::cpu_backend::CpuStorage as candle_core::backend::BackendStorage>::(\w+)$", "storage"),
    (r"^<candle_core::cpu_backend::CpuDevice as candle_core::backend::BackendDevice>::(zeros_impl|alloc_uninit)$", "device"),
    (r"^<([\w:]+) as candle_core::custom_op::(?:CustomOp\d|InplaceOp\d)>::cpu_fwd$", "custom"),
]


def symbols(binary):
    """(address, kind, name) of every function to count, from the symbol table."""
    raw = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    dem = subprocess.run(["nm", "-C", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    out, seen = [], set()
    for a, d in zip(raw.splitlines(), dem.splitlines()):
        parts = d.split(" ", 2)
        if len(parts) < 3 or parts[1] not in "tT":
            continue
        name = re.sub(r"::h[0-9a-f]{16}$", "", parts[2])
        for pattern, kind in PATTERNS:
            m = re.match(pattern, name)
            if m:
                addr = int(a.split()[0], 16)
                if addr not in seen:
                    seen.add(addr)
                    out.append((addr, kind, m.group(1)))
                break
    return out


def probe(line):
    """One command to the kernel's uprobe list (one write per line: the kernel parses each write)."""
    try:
        # os.open, not open(): Python seeks an appended file, which tracefs refuses.
        fd = os.open(UPROBES, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise SystemExit(f"kernel_census: {UPROBES} refused {line!r}: {e} (root, tracefs mounted?)")


def file_offset(binary, addr):
    """The file offset of a virtual address in an executable LOAD segment."""
    text = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True, check=True).stdout
    for line in text.splitlines():
        f = line.split()
        if f and f[0] == "LOAD" and "E" in f[6:-1]:
            off, vaddr, size = int(f[1], 16), int(f[2], 16), int(f[5], 16)
            if vaddr <= addr < vaddr + size:
                return addr - vaddr + off
    raise SystemExit(f"kernel_census: address {addr:#x} is in no executable segment of {binary}")


def count(binary, events, train_args, steps, workdir):
    """Every event's count over a run of `steps` steps."""
    out = os.path.join(workdir, f"run{steps}")
    stat = os.path.join(workdir, f"stat{steps}.csv")
    cmd = ["perf", "stat", "-x,", "-o", stat, "-e", f"{GROUP}:*", binary, "train", *train_args,
           "--out", out, "--epochs", "1", "--max-steps", str(steps), "--seed", "7", "--quiet"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    counts = {}
    with open(stat) as f:
        for row in csv.reader(l for l in f if l.strip() and not l.startswith("#")):
            if len(row) > 2 and row[2].startswith(GROUP + ":"):
                counts[row[2].split(":", 1)[1]] = int(row[0])
    return counts


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("train_args", nargs=argparse.REMAINDER)
    a = p.parse_args()
    train_args = [x for x in a.train_args if x != "--"]
    syms = symbols(a.binary)
    if not syms:
        raise SystemExit("kernel_census: no candle functions in the symbol table (a stripped binary?)")
    events = {}
    binary = os.path.abspath(a.binary)
    for i, (addr, kind, name) in enumerate(syms):
        ev = f"e{i}"
        events[ev] = (kind, name)
        probe(f"p:{GROUP}/{ev} {binary}:{file_offset(binary, addr):#x}")
    workdir = tempfile.mkdtemp(prefix="kernel-census-")
    try:
        one = count(a.binary, events, train_args, 1, workdir)
        two = count(a.binary, events, train_args, 2, workdir)
    finally:
        for ev in events:
            probe(f"-:{GROUP}/{ev}")
        shutil.rmtree(workdir, ignore_errors=True)
    per_step = {}
    for ev, (kind, name) in events.items():
        n = two.get(ev, 0) - one.get(ev, 0)
        if n:
            key = f"{kind}:{name}"
            per_step[key] = per_step.get(key, 0) + n
    launches = sum(n for k, n in per_step.items() if k != "device:alloc_uninit")
    report = {"binary": a.binary, "train_args": train_args, "per_step": dict(sorted(per_step.items())),
              "launches_per_step": launches, "note": "device:alloc_uninit counts buffers, not launches"}
    with open(a.json, "w") as f:
        json.dump(report, f, indent=1)
    for k, n in sorted(per_step.items(), key=lambda kv: -kv[1]):
        print(f"{n:7d}  {k}")
    print(f"{launches:7d}  launches per step (every count above but device:alloc_uninit)")


if __name__ == "__main__":
    sys.exit(main())
