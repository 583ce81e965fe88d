"""Helpers shared by the backbone reference scripts."""

import numpy as np

SAMPLES = 512


def summarise_array(a):
    """Shape, statistics and a strided sample of an array (flat, row-major)."""
    flat = np.asarray(a, dtype=np.float64).reshape(-1)
    n = flat.size
    step = max(1, n // SAMPLES)
    return dict(shape=list(a.shape), mean=float(flat.mean()), std=float(flat.std(ddof=1)),
                absmax=float(np.abs(flat).max()), step=step, sample=[float(v) for v in flat[::step][:SAMPLES]])


def summarise(t):
    """summarise_array for a torch tensor."""
    return summarise_array(t.detach().double().cpu().numpy())
