"""What a kept architecture buys on the CPU: LeNet-5 compacted to given widths vs the dense net.

For each target architecture (conv1 filters - conv2 filters - dense inputs - hidden units; the
published SBP / Bayesian-compression / L0 MNIST ones, and halvings), random units of a LeNet-5
with random weights are switched off (scales 0), the net is compacted
(:func:`shrinkdrop.compress.compact`, outputs checked against the masked net), and the
compacted and dense nets are timed interleaved in this process (batch 256, one thread):
FLOPs ratio, and time ratio min / median over the rounds. No training: this measures how FLOPs
turn into CPU time, not accuracy. The machine may be shared: the ratios, measured interleaved,
are what to read.

    PYTHONPATH=src python benchmarks/bench_compress.py [--repeats 30]
"""

from __future__ import annotations

import argparse

import torch

from shrinkdrop import compress as C
from shrinkdrop import noise as N
from shrinkdrop.experiments.compress import build_net
from shrinkdrop.inference import given_scales

ARCHS = ["20-50-800-500", "10-25-400-250", "5-18-300-250", "3-18-284-283", "5-10-76-16",
         "9-18-65-25"]


def _scales(arch: str, g: torch.Generator) -> dict[str, torch.Tensor]:
    widths = [int(v) for v in arch.split("-")]
    out = {}
    for name, full, keep in zip(["1.tau", "5.tau", "9.xi", "12.xi"], [20, 50, 800, 500],
                                widths):
        v = torch.zeros(full)
        v[torch.randperm(full, generator=g)[:keep]] = 1.0
        out[name] = v
    # dense inputs of removed conv2 filters are gone anyway; keep the count where it can
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    a = p.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    model = build_net("lenet5", N.Bernoulli(0.5)).eval()
    x = torch.rand(256, 1, 28, 28)
    dense = C.compact(model, None, x[:2])
    f_dense = C.count_flops(dense, x[:2])
    print("| target | compacted | FLOPs ratio | time ratio (min) | time ratio (median) | "
          "max abs diff |")
    print("|---|---|---|---|---|---|")
    for arch in ARCHS:
        sc = _scales(arch, g)
        small = C.compact(model, sc, x[:2])
        with torch.no_grad(), given_scales(model, sc):
            diff = float((small(x) - model(x)).abs().max())
        t = C.time_inference([dense, small], x, repeats=a.repeats, threads=1)
        kept = "-".join(str(m.out_channels if isinstance(m, torch.nn.Conv2d) else m.in_features)
                        for m in small.modules()
                        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
        print(f"| {arch} | {kept} | {f_dense / C.count_flops(small, x[:2]):.1f}x | "
              f"{t[0]['min'] / t[1]['min']:.2f}x | {t[0]['median'] / t[1]['median']:.2f}x | "
              f"{diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
