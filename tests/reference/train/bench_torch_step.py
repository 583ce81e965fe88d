"""PyTorch timing of one SCFNet training step (`cargo xtask bench-train --python`; by hand).

    python3 tests/reference/train/bench_torch_step.py --threads 2 --size 352 --repeat 3

The eager re-creation of tests/reference/model/bench_torch.py in train mode: forward, the
deep-supervision Dice + boundary Dice loss (band 13), backward, SGD with momentum 0.9 and weight
decay 5e-4. Student at batch 16, R50 at batch 4 (`--runs`). Prints `torch NAME bB: X ms` (on a
GPU with `, peak N MiB`: PyTorch's most memory in use, from the model's creation on).
`--device cuda` times it on a GPU (tests/gpu/check.sh); `--autocast bf16` runs the forward pass
and the loss under `torch.autocast` in bf16 (f32 master weights; bf16 needs no loss scaling).
"""

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "model"))
from bench_torch import build, peak_text  # noqa: E402


def dice(a, b):
    n = a.shape[0]
    a, b = a.reshape(n, -1), b.reshape(n, -1)
    return (1 - (2 * (a * b).sum(1) + 1) / (a.sum(1) + b.sum(1) + 1)).mean()


def boundary(m, k=13):
    e = F.max_pool2d(1 - m, 3, 1, 1) - (1 - m)
    return F.max_pool2d(e, k, 1, k // 2)


def loss_fn(outs, mask):
    total = 0
    for w, p in zip((1, 0.5, 0.25, 0.125), outs):
        q = torch.sigmoid(p)
        total = total + w * (dice(q, mask) + dice(boundary(q), boundary(mask)))
    return total


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=352)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu or cuda (the GPU check)")
    p.add_argument("--runs", default="student:16,r50:4", help="MODEL:BATCH[@SIDE] (swinb: 384)")
    p.add_argument("--profile", help="also write PREFIX_MODEL.txt: torch.profiler's CUDA kernel table of 3 steps")
    p.add_argument("--autocast", choices=["off", "bf16"], default="off",
                   help="bf16: forward pass and loss under torch.autocast(dtype=bfloat16)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for run in a.runs.split(","):
        kind, batch = run.split(":")
        batch, _, side = batch.partition("@")
        batch, size = int(batch), int(side or a.size)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        m = build(kind).train().to(dev)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        x = torch.randn(batch, 3, size, size, device=dev)
        mask = (torch.rand(batch, 1, size, size, device=dev) > 0.5).float()
        def step():
            opt.zero_grad()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.autocast == "bf16"):
                loss = loss_fn(m(x), mask)
            loss.backward()
            opt.step()
            loss.item()

        best = float("inf")
        for i in range(a.repeat + 1):
            sync()
            t = time.perf_counter()
            step()
            sync()
            if i > 0:
                best = min(best, time.perf_counter() - t)
        print(f"torch {kind} b{batch}: {best * 1e3:.1f} ms{peak_text(dev)}", flush=True)
        if a.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(3):
                    step()
                sync()
            table = None
            for key in ("device_time_total", "cuda_time_total"):
                try:
                    table = prof.key_averages().table(sort_by=key, row_limit=40)
                    break
                except Exception:  # noqa: BLE001 - the key's name changed across versions
                    continue
            Path(f"{a.profile}_{kind}.txt").write_text(table or "no table")
        # Nothing of this run counts in the next one's peak.
        del m, opt, x, mask, step


if __name__ == "__main__":
    main()
