"""Shared timing for the benchmarks: peer and ours alternated in one process, medians."""

from __future__ import annotations

import statistics
import time


def time_pair(peer, ours, reps, sync=None):
    """Median seconds of ``peer()`` and ``ours()`` over ``reps`` alternating calls (3 warm-ups).

    ``sync``: called after each call before the clock stops (``torch.cuda.synchronize`` for CUDA
    work, whose kernels run asynchronously)."""
    sync = sync or (lambda: None)
    for _ in range(3):
        peer()
        ours()
    sync()
    tp, to = [], []
    for _ in range(reps):
        t = time.perf_counter()
        peer()
        sync()
        tp.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours()
        sync()
        to.append(time.perf_counter() - t)
    return statistics.median(tp), statistics.median(to)


def device_sync(device: str):
    """The ``sync`` of :func:`time_pair` for a torch device name (None on the CPU)."""
    import torch

    return torch.cuda.synchronize if torch.device(device).type == "cuda" else None


def time_all(fns, reps, sync=None):
    """Median seconds of each of ``fns`` over ``reps`` rounds, each round calling every function
    once in turn (3 warm-up rounds): :func:`time_pair` for any number of sides."""
    sync = sync or (lambda: None)
    for _ in range(3):
        for f in fns:
            f()
    sync()
    times = [[] for _ in fns]
    for _ in range(reps):
        for f, ts in zip(fns, times):
            t = time.perf_counter()
            f()
            sync()
            ts.append(time.perf_counter() - t)
    return [statistics.median(ts) for ts in times]


def bmm_of(flops: float, device="cpu"):
    """The roofline reference of the step benchmarks: a closure running one plain ``torch.bmm``
    of ``(b, 128, 128) x (b, 128, 128)`` with ``2 b 128^3`` as close to ``flops`` as an integer
    ``b`` allows, and its FLOP count."""
    import torch

    m = 128
    b = max(1, round(flops / (2 * m ** 3)))
    a, c = torch.randn(b, m, m, device=device), torch.randn(b, m, m, device=device)
    out = torch.empty(b, m, m, device=device)
    return (lambda: torch.bmm(a, c, out=out)), 2 * b * m ** 3
