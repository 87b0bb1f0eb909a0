"""Stacked ensemble (``shrinkdrop.ensemble``) against K separate ``nn.Dropout`` networks, and
the stacked step's achieved GFLOP/s against a plain ``torch.bmm`` of the same FLOPs.

The UCI protocol trains K small networks (grid points x splits). The peer is what a user would
write: K ``nn.Sequential(nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear)`` networks, each
with its own Adam, one training step after the other. Ours is one ``StackedNoisyMLP`` of K
models with Bernoulli noise (MC dropout) trained by ``fit_stacked``: one "step" is a forward +
backward + Adam update of all K models on a minibatch of B rows each, timed as an epoch of
``--epochs`` epochs of ``--steps`` minibatches in one ``fit_stacked`` call divided by the
number of steps (shuffling, the epoch's row gather and the call's set-up included),
for both of its step implementations: ``manual`` (the default: hand-written backward, Adam on
one flat buffer) and ``autograd`` (autograd and ``torch.optim.Adam``: the engine before).
Everything is timed in this process, alternating (``_timing.time_all``), medians; ratios are
ours / peer (below 1: faster).

Roofline: the FLOPs of a step are counted as the two batched products of each layer's
forward pass and their two backward products, ``F = 3 x 2 x K x B x (d H + H)`` (the usual
convention; the manual step skips the input gradient of the first layer, so it does 2 x 2 x
K x B x d H + 3 x 2 x K x B x H), elementwise work not counted. ``bmm`` is one plain
``torch.bmm`` of ``(b, 128, 128) x (b, 128, 128)`` with ``2 b 128^3`` as close to ``F`` as an
integer ``b`` allows, measured in the same loop: the machine's practical rate for that much
matrix work. ``frac`` = (F / step time) / (bmm GFLOP/s).

Rows: the UCI shapes (K = 36: 12 grid points x 3 splits; 8 inputs as energy, 13 as
bostonHousing; 50 hidden units; batch 128), with one noise law for all K models, or the UCI
grid's four laws (dropout rates 0.005, 0.01, 0.05, 0.1, 9 models each: one draw call per law
and layer), then the earlier rows (K = 12 .. 240, 100 hidden, 32-row batches).

    python benchmarks/bench_ensemble.py [--threads 1] [--reps 20] [--steps 8] [--epochs 4]
        [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import bmm_of, device_sync, time_all  # noqa: E402

from shrinkdrop.ensemble import StackedNoisyMLP, fit_stacked  # noqa: E402
from shrinkdrop.noise import Bernoulli  # noqa: E402

#: the UCI grid's dropout rates (every data set's dropout_rates.txt)
UCI_RATES = (0.005, 0.01, 0.05, 0.1)


def peer_step(models, opts, xs, ys):
    def step():
        for m, o, x, y in zip(models, opts, xs, ys):
            loss = 0.5 * (m(x).squeeze(-1) - y).pow(2).mean()
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()
    return step


def ours_epoch(net, X, Y, step, epochs):
    """``epochs`` epochs of one ``fit_stacked`` call over ``X (K, steps B, d)``: ``epochs x
    steps`` training steps (the call's set-up, paid once per run of thousands of epochs in
    the UCI protocol, spread over them)."""
    def run():
        fit_stacked(net, X, Y, tau=1.0, weight_decay=1e-4, epochs=epochs, batch_size=128,
                    progress=False, step=step)
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--steps", type=int, default=8, help="minibatches per epoch")
    ap.add_argument("--epochs", type=int, default=4,
                    help="epochs per timed fit_stacked call (default 4)")
    ap.add_argument("--device", default="cpu", help="torch device of both sides (default cpu)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"device={args.device} ({name}) threads={args.threads} reps={args.reps} "
          f"steps/epoch={args.steps} epochs/call={args.epochs}; one step = forward + backward + "
          "Adam of all K models on B rows each; ms per step; ratio = ours / peer; "
          "GF/s = 3 x 2 K B (d H + H) / step time; bmm = GF/s of one torch.bmm of the same "
          "FLOPs; frac = step GF/s / bmm GF/s")
    print(f"{'K':>4} {'B':>4} {'d':>3} {'H':>4} {'laws':>4} {'peer':>7} {'autograd':>8} "
          f"{'manual':>7} {'r.autog':>7} {'r.manual':>8} {'GF/s a':>7} {'GF/s m':>7} "
          f"{'bmm':>6} {'frac a':>6} {'frac m':>6}")
    rows = [(36, 128, 8, 50, 1), (36, 128, 8, 50, 4), (36, 128, 13, 50, 1),
            (36, 128, 13, 50, 4), (12, 128, 8, 50, 1), (60, 128, 8, 50, 1),
            (240, 128, 8, 50, 1), (12, 128, 9, 100, 1), (60, 32, 13, 50, 1)]
    for K, B, d, H, n_laws in rows:
        p = 0.05
        models = [torch.nn.Sequential(torch.nn.Dropout(p), torch.nn.Linear(d, H),
                                      torch.nn.ReLU(), torch.nn.Dropout(p),
                                      torch.nn.Linear(H, 1)).train().to(dev)
                  for _ in range(K)]
        opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
        xs = torch.randn(K, B, d, device=dev)
        ys = torch.randn(K, B, device=dev)
        rates = [p] if n_laws == 1 else list(UCI_RATES)
        laws = [Bernoulli(1 - r) for r in rates]
        noises = [laws[k * len(laws) // K] for k in range(K)]  # consecutive runs of one law
        X = torch.randn(K, args.steps * B, d, device=dev)
        Y = torch.randn(K, args.steps * B, device=dev)
        gen = torch.Generator(device=dev).manual_seed(0)
        net_a = StackedNoisyMLP([d, H, 1], noises, generator=gen).to(dev)
        net_m = StackedNoisyMLP([d, H, 1], noises, generator=gen).to(dev)
        flops = 3 * 2 * K * B * (d * H + H * 1)
        bmm, bmm_flops = bmm_of(flops, dev)
        tp, ta, tm, tb = time_all([peer_step(models, opts, list(xs), list(ys)),
                                   ours_epoch(net_a, X, Y, "autograd", args.epochs),
                                   ours_epoch(net_m, X, Y, "manual", args.epochs), bmm],
                                  args.reps, device_sync(args.device))
        ta, tm = ta / (args.steps * args.epochs), tm / (args.steps * args.epochs)
        ga, gm, gb = flops / ta / 1e9, flops / tm / 1e9, bmm_flops / tb / 1e9
        print(f"{K:>4} {B:>4} {d:>3} {H:>4} {n_laws:>4} {tp * 1e3:>7.2f} {ta * 1e3:>8.3f} "
              f"{tm * 1e3:>7.3f} {ta / tp:>7.3f} {tm / tp:>8.3f} {ga:>7.2f} {gm:>7.2f} "
              f"{gb:>6.1f} {ga / gb:>6.3f} {gm / gb:>6.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
