"""ONNX Runtime timing of exported SCFNet models (`cargo xtask bench-models --onnx`; by hand).

    python3 tests/reference/model/bench_onnx.py --threads 2 --size 352 --repeat 5 \
        --model student=target/bench-onnx/student.onnx --batches 1,8

The files are the project's own export (`scfnet export`, `Scfnet::to_onnx`). CPU execution
provider, all graph optimisations, `--threads` intra-op threads, one inter-op thread; the map is
returned to the caller as numpy. Prints `onnx NAME bB: X ms` (best of `--repeat`, after one warm-up).

    pip install onnxruntime==1.32.0 numpy
"""

import argparse
import time

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=352)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--model", action="append", required=True, help="NAME=PATH, repeatable")
    a = p.parse_args()
    for spec in a.model:
        name, path = spec.split("=", 1)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = a.threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        for batch in map(int, a.batches.split(",")):
            x = np.random.default_rng(0).standard_normal((batch, 3, a.size, a.size), dtype=np.float32)
            sess.run(["saliency"], {"image": x})
            best = float("inf")
            for _ in range(a.repeat):
                t = time.perf_counter()
                sess.run(["saliency"], {"image": x})
                best = min(best, time.perf_counter() - t)
            print(f"onnx {name} b{batch}: {best * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
