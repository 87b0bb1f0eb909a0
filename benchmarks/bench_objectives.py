"""S = 32 noise draws in one batched pass vs 32 separate passes (UCI-sized MLP, CPU).

Run: ``python benchmarks/bench_objectives.py``. Prints the median time of each over repeats,
measured in the same process, and their ratio (target: <= 0.6).
"""

from __future__ import annotations

import torch
from _timing import time_pair  # sibling module: benchmarks run as scripts
from torch import nn

import shrinkdrop as sd
from shrinkdrop.train import noise_on, sample_outputs


def model(d_in=13, hidden=50):
    return nn.Sequential(
        sd.nn.UnitNoise(sd.noise.Bernoulli(0.95)), nn.Linear(d_in, hidden), nn.ReLU(),
        sd.nn.UnitNoise(sd.noise.Bernoulli(0.95)), nn.Linear(hidden, 1),
    ).eval()


def bench(S=32, batch=51, repeats=30):
    torch.manual_seed(0)
    m = model()
    x = torch.randn(batch, 13)

    def batched():
        with torch.no_grad():
            return sample_outputs(m, x, S)

    def separate():
        with torch.no_grad(), noise_on(m):
            return torch.stack([m(x) for _ in range(S)])

    ms, mb = time_pair(separate, batched, repeats)
    print(f"S={S}, batch={batch}, 13-50-1 MLP with ARD Bernoulli noise, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"one batched pass : {mb * 1e3:8.3f} ms (median of {repeats})")
    print(f"{S} separate passes: {ms * 1e3:8.3f} ms")
    print(f"ratio batched / separate = {mb / ms:.3f} (target <= 0.6)")
    return mb / ms


if __name__ == "__main__":
    # 51 rows: a Boston-housing test split (the UCI protocol's prediction pass); 512: a large one.
    # At 512 rows the separate passes are compute-bound already and batching gains little
    # (measured 0.8-1.0 with 2 threads, 1.1 with 1 thread); the target is met at UCI test sizes
    # (0.14-0.15 at 51 rows).
    for b in (51, 512):
        bench(batch=b)
