"""Python twin of crates/scfnet-backbones/src/synthetic.rs: weights from names alone.

seed = FNV-1a 64 of the UTF-8 name; one SplitMix64 step per element; u = (z >> 11) * 2**-53;
v = 2u - 1. Then: running_var 1 + 0.5v, running_mean 0.1v, relative_position_bias_table 0.02v,
bias 0.1v, other rank-1 tensors 1 + 0.2v, rank >= 2 tensors v * sqrt(6 / fan_in).
"""

import math

import numpy as np

MASK = (1 << 64) - 1


def fnv1a(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def uniform(name, n):
    """n values v in [-1, 1) for `name` (vectorised SplitMix64)."""
    seed = np.uint64(fnv1a(name))
    with np.errstate(over="ignore"):
        state = seed + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = state
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return 2.0 * u - 1.0


def values(name, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    v = uniform(name, n)
    if name.endswith("running_var"):
        out = 1.0 + 0.5 * v
    elif name.endswith("running_mean"):
        out = 0.1 * v
    elif name.endswith("relative_position_bias_table"):
        out = 0.02 * v
    elif name.endswith("bias"):
        out = 0.1 * v
    elif len(shape) == 1:
        out = 1.0 + 0.2 * v
    else:
        fan_in = int(np.prod(shape[1:])) or 1
        out = v * math.sqrt(6.0 / fan_in)
    return out.reshape(shape)


def fill(module, skip=("num_batches_tracked",)):
    """Overwrite every tensor of module.state_dict() with its synthetic values; returns the names."""
    import torch

    state = module.state_dict()
    names = []
    for name, t in state.items():
        if any(name.endswith(s) for s in skip):
            continue
        t.copy_(torch.from_numpy(values(name, tuple(t.shape))).to(t.dtype))
        names.append(name)
    return names


def image(name, shape):
    """A synthetic input image: 2v in [-2, 2)."""
    return (2.0 * uniform(name, int(np.prod(shape)))).reshape(shape)
