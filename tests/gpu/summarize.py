#!/usr/bin/env python3
"""The decisions a GPU run of tests/gpu/check.sh is for, read from its JSON (stdlib only).

    python3 tests/gpu/summarize.py docs/gpu/<date>-h200.json > /tmp/summary.md
    python3 tests/gpu/summarize.py --failed-families check.json   # for check.sh

Prints markdown: the comparisons that failed; for every timing mode, each workload's time and
its ratio to PyTorch eager of the same run against issue 27's targets (and the bf16 stretch
target), with the most device memory each took beside PyTorch's; each opt-in mode (cudnn, batch-wgrad, batch-columns, bf16, f32-events) against the mode
it is an A/B of; each mode's first-step loss against f32's; the epoch's loop against its steps;
the demo's held-out scores in bf16 against f32's; the stages check.sh skipped; the five slowest
native ops of each training step in the default mode (else the first). It decides nothing by
itself: the numbers it prints come from the JSON, the choice of defaults stays with whoever
reads them.
"""
import json
import sys

# Issue 27's targets: the most time (or the least speed) against PyTorch eager, same run.
TARGETS = {
    "infer student b1": ("speed", 1.0),
    "infer student b32": ("speed", 1.0),
    "train student b128": ("time", 1.3),
    "train r50 b32": ("time", 1.3),
    "train swinb b8": ("time", 1.5),
}
# Each opt-in mode and the mode it differs from by one setting.
AB = {
    "cudnn": "conv-tf32",
    "batch-wgrad": "conv-tf32",
    "batch-columns": "conv-tf32",
    "bf16": "conv-tf32",
    "f32-events": "f32",
    "f32-generic": "f32",
}
DEFAULT_MODE = "conv-tf32"
# The stretch target: bf16 training of the student at least this many times PyTorch's speed.
BF16_STRETCH = ("train student b128", 2.0)
# The stretch target's other half: the demo's scores in bf16 within the noise of f32's. The noise:
# the sd of the held-out MAE over the seeds 0-3 (README.md, "The demo": a CPU, f32).
DEMO_SEED_SD_MAE = {
    "SCFNet-R50 (teacher)": 0.0036,
    "FS-SCFNet (student)": 0.0118,
    "KD-SCFNet (student)": 0.0057,
}


def workloads(mode):
    """{workload label: (ms, images/s or None, entry)} of one mode's timings."""
    out = {}
    for e in mode.get("inference", []):
        if "seconds" in e:
            label = f"infer {e['model']} b{e['batch']}"
            out[label] = (e["seconds"] * 1e3, e["images_per_s"], e)
    for e in mode.get("train_step", []):
        if "seconds" in e:
            label = f"train {e['model']} b{e['batch']}"
            out[label] = (e["seconds"] * 1e3, None, e)
    return out


def failed_families(check):
    """The op families to take off their kernels after a check-device report's comparisons: every
    family with a comparison out of tolerance, and the first family whose comparison raised an
    error (an error can leave the CUDA context unusable, so the errors after it may only echo
    it), in the order they ran."""
    out = []
    errored = False
    for o in (check or {}).get("ops", []):
        if o.get("ok"):
            continue
        if "error" in o:
            if errored:
                continue
            errored = True
        family = o.get("family")
        if family and family not in out:
            out.append(family)
    return out


def against_torch(label, ms, torch_ms):
    """The ratio to PyTorch in the target's sense, and whether it meets the target."""
    if label not in torch_ms or label not in TARGETS:
        return "", ""
    kind, limit = TARGETS[label]
    if kind == "speed":
        ratio = torch_ms[label] / ms
        return f"{ratio:.2f}× speed", "met" if ratio >= limit else f"missed (≥ {limit}×)"
    ratio = ms / torch_ms[label]
    return f"{ratio:.2f}× time", "met" if ratio <= limit else f"missed (≤ {limit}×)"


def demo_lines(demo):
    """The demo's held-out scores in each precision run, bf16's MAE against f32's and the seeds'
    spread."""
    if not demo:
        return ["Demo: not run."]
    out = []
    for prec, run in demo.items():
        out.append(f"Demo {prec}: rc {run['rc']}, {run['seconds']:.0f} s"
                   + (f"; {run['times']}" if run.get("times") else "") + ".")
    f32, bf16 = demo.get("f32", {}).get("scores"), demo.get("bf16", {}).get("scores")
    if f32 and bf16:
        out += ["", "| demo method | MAE f32 | MAE bf16 | difference | seeds' sd (f32) | within | Sm f32 | Sm bf16 |",
                "|---|---:|---:|---:|---:|---|---:|---:|"]
        for method, sd in DEMO_SEED_SD_MAE.items():
            if method in f32 and method in bf16:
                a, b = f32[method]["MAE"], bf16[method]["MAE"]
                mark = "✓" if abs(b - a) <= sd else "✗"
                out.append(f"| {method} | {a:.4f} | {b:.4f} | {b - a:+.4f} | {sd:.4f} | {mark} "
                           f"| {f32[method]['Sm']:.4f} | {bf16[method]['Sm']:.4f} |")
        out.append("")
    return out


def main(path):
    report = json.load(open(path))
    check = report.get("check") or {}
    bench = check.get("bench") or {}
    fallback_bench = ((report.get("fallback") or {}).get("check") or {}).get("bench")
    if fallback_bench:
        bench = fallback_bench
    torch_ms = report.get("torch_ms") or {}
    torch_peak = report.get("torch_peak_mib") or {}
    gpu = " / ".join(report.get("gpu", "?").splitlines())
    lines = [f"# GPU run {path}", "", f"GPU: {gpu}", ""]
    generic = check.get("generic_ops") or []
    if generic:
        lines += [f"**Run with SCFNET_GENERIC_OPS={','.join(generic)}**: these ops ran composed of "
                  "candle primitives, not their kernels, in every stage.", ""]

    failures = check.get("failures")
    if failures is None:
        lines.append("**No check-device report** (killed or not run): nothing is proven.")
    elif failures:
        lines.append(f"**Failed comparisons ({len(failures)}):**")
        lines += [f"- {f}" for f in failures]
        failed = failed_families(check)
        if failed:
            lines.append(f"Op families to take off their kernels: {', '.join(failed)} (out of "
                         "tolerance, and the first that raised an error: an error can leave the "
                         "CUDA context unusable, so later ones may only echo it).")
    else:
        ops = len(check.get("ops", []))
        nets = len(check.get("networks", []))
        which = "it finished" if check.get("complete") is False else ""
        lines.append(f"Every comparison {which} passed ({ops} op cases, {nets} networks).".replace("  ", " "))
    fallback = report.get("fallback")
    if fallback:
        ran = "its timings below" if fallback_bench else "it left no timings: those below are the first run's"
        lines.append(f"**check.sh fell back**: SCFNET_GENERIC_OPS={fallback['generic_ops']} for a "
                     f"second check-device (timings only; {ran}) and every later stage.")
    if check and check.get("complete") is False:
        lines.append("**check-device did not finish** (stopped by check.sh's budget?): what follows "
                     f"is what it wrote before, {len(check.get('bench') or {})} timing mode(s).")
    errors = [e for m in bench.values() for k in ("inference", "train_step")
              for e in m.get(k, []) if "error" in e]
    lines += [f"- timing failed: {e['what']}: {e['error']}" for e in errors]
    lines.append("")

    lines += ["## Timings against PyTorch eager (same run)", "",
              "| mode | workload | ms | PyTorch ms | ratio | target | peak MiB | PyTorch peak MiB |",
              "|---|---|---:|---:|---:|---|---:|---:|"]
    for name, mode in bench.items():
        for label, (ms, _, entry) in workloads(mode).items():
            ratio, verdict = against_torch(label, ms, torch_ms)
            t = f"{torch_ms[label]:.1f}" if label in torch_ms else ""
            peak = f"{entry['peak_mib']:.0f}" if entry.get("peak_mib") is not None else ""
            t_peak = f"{torch_peak[label]:.0f}" if label in torch_peak else ""
            lines.append(f"| {name} | {label} | {ms:.1f} | {t} | {ratio} | {verdict} | {peak} | {t_peak} |")
    lines.append("")
    label, limit = BF16_STRETCH
    bf16 = workloads(bench.get("bf16", {}))
    if label in bf16 and label in torch_ms:
        speed = torch_ms[label] / bf16[label][0]
        verdict = "met" if speed >= limit else "missed"
        lines += [f"Stretch: bf16 {label} {bf16[label][0]:.1f} ms against PyTorch's "
                  f"{torch_ms[label]:.1f} ms: {speed:.2f}× its speed (target ≥ {limit}×: {verdict})."]
        autocast = torch_ms.get("bf16 " + label)
        if autocast:
            lines.append(f"PyTorch under bf16 autocast: {autocast:.1f} ms "
                         f"(ours {bf16[label][0] / autocast:.2f}× its time).")
        lines.append("")

    lines += ["## Each opt-in mode against its base (time ratio; below 1 is faster)", "",
              "| mode | base | workload | mode ms | base ms | ratio |", "|---|---|---|---:|---:|---:|"]
    pairs = [(name, base) for name, base in AB.items() if name in bench and base in bench]
    if not pairs:
        lines.append("| (none of them in this run) | | | | | |")
    for name, base in pairs:
        a, b = workloads(bench[name]), workloads(bench[base])
        for label in a:
            if label in b:
                lines.append(f"| {name} | {base} | {label} | {a[label][0]:.1f} | {b[label][0]:.1f} "
                             f"| {a[label][0] / b[label][0]:.3f} |")
    lines.append("")

    # The first step's loss: the same weights and batch in every mode, so its distance from
    # f32's is what the mode's arithmetic does to the forward pass.
    strict = workloads(bench.get("f32", {}))
    rows = []
    for name, mode in bench.items():
        if name == "f32":
            continue
        for label, (_, _, e) in workloads(mode).items():
            ref = strict.get(label, (None, None, {}))[2].get("first_loss")
            if e.get("first_loss") is not None and ref:
                rows.append(f"| {name} | {label} | {e['first_loss']:.6g} | {ref:.6g} "
                            f"| {abs(e['first_loss'] - ref) / abs(ref):.2e} |")
    if rows:
        lines += ["## First step's loss against f32's (same weights and batch)", "",
                  "| mode | workload | loss | f32 loss | relative difference |",
                  "|---|---|---:|---:|---:|"] + rows + [""]

    for p in report.get("predict") or []:
        line = (f"Predict b{p['batch']}: {p['images_per_s']:.0f} img/s over the whole process "
                f"({p['seconds']:.2f} s, rc {p['rc']})")
        if "run_images_per_s" in p:
            line += (f"; {p['run_images_per_s']:.0f} img/s in the run itself "
                     f"(start-up {p['startup_seconds']:.2f} s)")
        if "network_seconds" in p:
            line += (f"; the network {p['network_seconds']:.2f} s, waiting for decoded images "
                     f"{p['waited_seconds']:.2f} s")
        if "cpu_ms_per_image" in p:
            line += f"; CPU {p['cpu_ms_per_image']:.2f} ms an image"
        lines.append(line + ".")
    epoch = report.get("train_epoch")
    if epoch and "loop_images_per_s" in epoch:
        share = epoch["loop_images_per_s"] / epoch["step_images_per_s"]
        verdict = "met" if share >= 0.9 else "missed"
        threads = epoch.get("loader_threads", "?")
        lines.append(f"Epoch: loop {epoch['loop_images_per_s']:.0f} img/s, steps alone "
                     f"{epoch['step_images_per_s']:.0f} img/s: {share:.1%} (target ≥ 90 %: {verdict}; "
                     f"{threads} loader threads).")
    elif epoch:
        lines.append(f"Epoch: {epoch}")
    else:
        lines.append("Epoch: not run.")
    estimate = report.get("estimate")
    if estimate and estimate.get("runs"):
        parts = []
        for r in estimate["runs"]:
            share = r["step_only_secs"] / r["secs_per_step"] if r.get("secs_per_step") else 0
            parts.append(f"{r['run']} {r['steps']} steps × {r['secs_per_step']:.3f} s = "
                         f"{r['projected_secs'] / 3600:.2f} h ({share:.0%} in the steps)")
        total = sum(r["projected_secs"] for r in estimate["runs"]) / 3600
        lines.append(f"Sweep estimate (check.sh's short plan, paper recipe): {'; '.join(parts)}; "
                     f"total {total:.2f} h.")
    elif estimate:
        lines.append(f"Sweep estimate: {estimate}")
    lines += demo_lines(report.get("demo") or {})
    skipped = report.get("skipped") or []
    if skipped:
        lines.append(f"Skipped by check.sh's budget: {', '.join(skipped)}.")
    if "script_seconds" in report:
        lines.append(f"check.sh took {report['script_seconds']} s (check-device {report.get('check_seconds')} s).")
    lines.append("")

    shown = DEFAULT_MODE if DEFAULT_MODE in bench else next(iter(bench), None)
    if shown:
        lines += [f"## Slowest native ops per training step ({shown})", ""]
        for label, (ms, _, e) in workloads(bench[shown]).items():
            prof = e.get("profile") or {}
            ops = sorted(prof.get("ops", []), key=lambda o: -o["ms"])[:5]
            if label.startswith("train") and ops:
                top = "; ".join(f"{o['op']} {o['ms']:.1f}" for o in ops)
                lines.append(f"- {label} ({ms:.1f} ms; profiled run {prof.get('total_ms', 0):.1f} ms, "
                             f"{prof.get('unlisted_ms', 0):.1f} of it outside native ops): {top}")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--failed-families":
        # For check.sh: the families of a check-device report to take off their kernels.
        try:
            print(",".join(failed_families(json.load(open(sys.argv[2])))))
        except (OSError, ValueError):
            pass
        sys.exit(0)
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
