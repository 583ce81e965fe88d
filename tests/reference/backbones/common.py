"""Helpers shared by the backbone reference scripts."""

SAMPLES = 512


def summarise(t):
    """Shape, statistics and a strided sample of a float32 tensor (flat, row-major)."""
    flat = t.detach().double().reshape(-1)
    n = flat.numel()
    step = max(1, n // SAMPLES)
    idx = list(range(0, n, step))[:SAMPLES]
    return dict(shape=list(t.shape), mean=float(flat.mean()), std=float(flat.std()), absmax=float(flat.abs().max()),
                step=step, sample=[float(flat[i]) for i in idx])
