"""``sd.fit`` against a hand-written PyTorch loop with ``nn.Dropout`` (same data, epochs, batch
size and Adam), in one process, interleaved.

Run: ``python benchmarks/bench_fit.py [--reps 15] [--threads 1]``. Two networks: a 13-50-1 MLP
(batch 128, regression, Gaussian likelihood) and a 784-1024-1024-10 MLP (batch 256,
classification). Three sides per network, called in turn each round:

* ``peer``: the hand-written loop (``randperm``, index, forward, ``mse_loss`` /
  ``cross_entropy``, ``zero_grad``, ``backward``, ``step``) on the net with ``nn.Dropout``;
* ``peer(fused Adam)``: the same loop with ``torch.optim.Adam(..., fused=True)``;
* ``fit(nn.Dropout)``: ``sd.fit`` on the same net (the loop's own overhead);
* ``fit(UnitNoise)``: ``sd.fit`` with ``sd.nn.UnitNoise(Bernoulli)`` in place of ``nn.Dropout``
  (the loop plus the layer; the layer's speed is benchmarked in ``bench_layers.py``).

Prints, per side, the min and the median over rounds of the ratio to the peer of the same round,
of wall time and of the thread's CPU time (``time.thread_time``; with one torch thread all the
work is on this thread, and CPU time is less disturbed by other processes on a shared machine)
(target: ``fit(nn.Dropout)`` <= 1.0x). ``peer(fused Adam)`` is the same hand loop with
``Adam(fused=True)``, the kernel ``sd.fit`` uses, to show how much of the gain is that.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import shrinkdrop as sd

NETS = {
    # name: (sizes, batch, rows, epochs, likelihood)
    "13-50-1": ((13, 50, 1), 128, 1024, 4, "gaussian"),
    "784-1024-1024-10": ((784, 1024, 1024, 10), 256, 1024, 1, "categorical"),
}


def mlp(sizes, noise):
    """``Linear -> ReLU -> noise`` per hidden layer, then the output ``Linear``."""
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU(), noise()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def hand_loop(model, X, y, epochs, batch, lr, loss_fn, seed=0, **adam):
    """The peer: what a user writes by hand."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, **adam)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(X.shape[0], generator=gen)
        for i in range(0, X.shape[0], batch):
            idx = perm[i:i + batch]
            loss = loss_fn(model(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()


def bench(name, reps, rate=0.1):
    sizes, batch, n, epochs, lik = NETS[name]
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, sizes[0], generator=g)
    if lik == "gaussian":
        y = torch.randn(n, 1, generator=g)
        loss_fn = F.mse_loss
    else:
        y = torch.randint(0, sizes[-1], (n,), generator=g)
        loss_fn = F.cross_entropy
    torch.manual_seed(0)
    m_peer = mlp(sizes, lambda: nn.Dropout(rate))
    m_fit = mlp(sizes, lambda: nn.Dropout(rate))
    m_unit = mlp(sizes, lambda: sd.nn.UnitNoise(sd.noise.Bernoulli(1 - rate)))
    kw = dict(likelihood=lik, tau=1.0 if lik == "gaussian" else None, epochs=epochs,
              batch_size=batch, lr=1e-3, progress=False)
    m_fused = mlp(sizes, lambda: nn.Dropout(rate))
    sides = {
        "peer": lambda: hand_loop(m_peer, X, y, epochs, batch, 1e-3, loss_fn),
        "peer(fused Adam)": lambda: hand_loop(m_fused, X, y, epochs, batch, 1e-3, loss_fn,
                                              fused=True),
        "fit(nn.Dropout)": lambda: sd.fit(m_fit, X, y, **kw),
        "fit(UnitNoise)": lambda: sd.fit(m_unit, X, y, **kw),
    }
    for f in sides.values():  # warm-up
        f()
    wall = {k: [] for k in sides}
    cpu = {k: [] for k in sides}
    for _ in range(reps):
        for k, f in sides.items():
            t, c = time.perf_counter(), time.thread_time()
            f()
            cpu[k].append(time.thread_time() - c)
            wall[k].append(time.perf_counter() - t)
    steps = epochs * -(-n // batch)
    print(f"{name}: batch {batch}, {steps} steps per call, {torch.get_num_threads()} thread(s), "
          f"{reps} rounds; ratio to the peer of the same round")
    print(f"  {'side':18s} {'ms/step (med)':>13s} {'wall min':>9s} {'wall med':>9s} "
          f"{'cpu min':>8s} {'cpu med':>8s}")
    out = {}
    for k in sides:
        rw = [a / b for a, b in zip(wall[k], wall["peer"])]
        rc = [a / b for a, b in zip(cpu[k], cpu["peer"])]
        out[k] = {"wall": (min(rw), statistics.median(rw)), "cpu": (min(rc), statistics.median(rc))}
        print(f"  {k:18s} {statistics.median(wall[k]) / steps * 1e3:13.3f} {min(rw):8.2f}x "
              f"{statistics.median(rw):8.2f}x {min(rc):7.2f}x {statistics.median(rc):7.2f}x")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--nets", default=",".join(NETS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.nets.split(","):
        bench(name, args.reps)


if __name__ == "__main__":
    main()
