"""Shared timing for the benchmarks: peer and ours alternated in one process, medians."""

from __future__ import annotations

import statistics
import time


def time_pair(peer, ours, reps):
    """Median seconds of ``peer()`` and ``ours()`` over ``reps`` alternating calls (3 warm-ups)."""
    for _ in range(3):
        peer()
        ours()
    tp, to = [], []
    for _ in range(reps):
        t = time.perf_counter()
        peer()
        tp.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours()
        to.append(time.perf_counter() - t)
    return statistics.median(tp), statistics.median(to)
