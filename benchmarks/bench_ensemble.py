"""Stacked ensemble (``shrinkdrop.ensemble``) against K separate ``nn.Dropout`` networks.

The UCI protocol trains K small networks (grid points x splits). The peer is what a user would
write: K ``nn.Sequential(nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear)`` networks, each
with its own Adam, one training step after the other. Ours is one ``StackedNoisyMLP`` of K
models with Bernoulli noise (MC dropout) and one Adam. One "step" is a forward + backward + Adam
update of all K models on a minibatch of B rows each. Both are timed in this process,
alternating (``_timing.time_pair``); the ratio is ours / peer (below 1: faster).

    python benchmarks/bench_ensemble.py [--threads 1] [--reps 20] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import device_sync, time_pair  # noqa: E402

from shrinkdrop.ensemble import StackedNoisyMLP, stacked_loss  # noqa: E402
from shrinkdrop.noise import Bernoulli  # noqa: E402


def peer_step(models, opts, xs, ys):
    def step():
        for m, o, x, y in zip(models, opts, xs, ys):
            loss = 0.5 * (m(x).squeeze(-1) - y).pow(2).mean()
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()
    return step


def ours_step(net, opt, X, Y, tau):
    def step():
        out = net(X).unsqueeze(1)
        loss = stacked_loss(out, Y, tau=tau).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--device", default="cpu", help="torch device of both sides (default cpu)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"device={args.device} ({name}) threads={args.threads} reps={args.reps}; one step = "
          "forward + backward + Adam of all K models on B rows each")
    print(f"{'K':>5} {'B':>5} {'d':>4} {'H':>4} {'peer ms':>9} {'ours ms':>9} {'ratio':>7}")
    for K, B, d, H in [(12, 128, 8, 50), (60, 128, 8, 50), (240, 128, 8, 50),
                       (12, 128, 9, 100), (60, 32, 13, 50)]:
        p = 0.05
        models = [torch.nn.Sequential(torch.nn.Dropout(p), torch.nn.Linear(d, H),
                                      torch.nn.ReLU(), torch.nn.Dropout(p),
                                      torch.nn.Linear(H, 1)).train().to(dev)
                  for _ in range(K)]
        opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
        X = torch.randn(K, B, d, device=dev)
        Y = torch.randn(K, B, device=dev)
        net = StackedNoisyMLP([d, H, 1], [Bernoulli(1 - p)] * K,
                              generator=torch.Generator(device=dev).manual_seed(0)).to(dev)
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        tau = torch.ones(K, device=dev)
        tp, to = time_pair(peer_step(models, opts, list(X), list(Y)),
                           ours_step(net, opt, X, Y, tau), args.reps, device_sync(args.device))
        print(f"{K:>5} {B:>5} {d:>4} {H:>4} {tp * 1e3:>9.2f} {to * 1e3:>9.2f} {to / tp:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
