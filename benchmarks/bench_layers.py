"""Benchmarks of the shrinkdrop layers against their PyTorch peers (forward + backward).

Run: ``python benchmarks/bench_layers.py [--reps 30] [--runs 1] [--threads 1] [--only NAME]
[--device D]`` (device ``cpu`` by default; the targets are CPU targets). Each case times the
peer and the layer alternately in the same process and prints the medians and the ratio
(layer / peer) against the issue's target; with ``--runs R`` each case is timed R times and the
median and min of the R ratios are printed (``ratio``, ``min``; the times are the medians).
``--threads 0`` leaves torch's default thread count. Threads default to 1 for stable numbers on a
shared machine (both sides get the same threads). Memory: bytes held for backward (saved tensors)
plus the output, measured with ``torch.autograd.graph.saved_tensors_hooks``.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _timing import device_sync, time_pair  # sibling module: benchmarks run as scripts
from torch import nn

import shrinkdrop as sd
from shrinkdrop import noise as N


def _fb(module_fn, x, params=(), grad=None):
    """A closure running forward + backward of module_fn on x."""

    def run():
        x.grad = None
        for p in params:
            p.grad = None
        y = module_fn(x)
        if isinstance(y, tuple):
            y = y[0]
        y.backward(grad if grad is not None else torch.ones_like(y))

    return run


def _stochastic_depth_row(x, p, training=True):
    """torchvision.ops.stochastic_depth(x, p, "row"), copied (torchvision is not a dependency)."""
    if not training or p == 0.0:
        return x
    survival = 1.0 - p
    noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device)
    noise = noise.bernoulli_(survival)
    if survival > 0.0:
        noise.div_(survival)
    return x * noise


def cases(device="cpu"):
    """(name, peer closure, our closure, target) on ``device``."""
    torch.manual_seed(0)
    dv = dict(device=device)
    out = []
    # --- UnitNoise op alone on (256, 4096)
    x = torch.randn(256, 4096, **dv, requires_grad=True)
    g = torch.randn(256, 4096, **dv)
    drop = nn.Dropout(0.1)
    peer = _fb(drop, x, grad=g)
    fams = [("bernoulli", N.Bernoulli(0.9), 1.0), ("gaussian", N.Gaussian(1.0, 0.33), 1.0),
            ("rayleigh", N.Rayleigh(1.0), 1.0), ("uniform", N.Uniform(0.0, 2.0), 1.0),
            ("beta", N.Beta(2.0, 2.0), 1.0), ("inverse_nakagami", N.InverseNakagami(5.0, 1.0),
                                              1.0),
            # the horseshoe's half-Cauchy has no mean: un-normalised, as the library uses it
            ("half_cauchy", N.HalfCauchy(1.0), 1.0), ("log_normal", N.LogNormal(0.0, 0.33), 1.0)]

    def layer(name, fam):
        return sd.nn.UnitNoise(fam, normalize=name != "half_cauchy")

    for name, fam, target in fams:
        out.append((f"UnitNoise[{name}] (256,4096) vs nn.Dropout", peer,
                    _fb(layer(name, fam), x, grad=g), target))
    # --- small layers (the UCI networks' 8 inputs and 50 hidden units, batch 128): per-call
    # overhead, not elementwise cost. Issue 28 item 2: Bernoulli <= 1.0x nn.Dropout, every
    # other family <= 2x
    for shape in ((128, 8), (128, 50)):
        xs = torch.randn(*shape, **dv, requires_grad=True)
        gs = torch.randn(*shape, **dv)
        for name, fam, target in [("bernoulli", N.Bernoulli(0.9), 1.0)] + [
                (n, f, 2.0) for n, f, _ in fams[1:]]:
            out.append((f"UnitNoise[{name}] {shape} vs nn.Dropout", _fb(drop, xs, grad=gs),
                        _fb(layer(name, fam), xs, grad=gs), target))
    # --- small drop rates (MC dropout's UCI grid): drawn by geometric gaps, not bit by bit
    for rate in (0.005, 0.05):
        out.append((f"UnitNoise[bernoulli p={rate}] (256,4096) vs nn.Dropout({rate})",
                    _fb(nn.Dropout(rate), x, grad=g),
                    _fb(sd.nn.UnitNoise(N.Bernoulli(1 - rate)), x, grad=g), 0.6))
    # --- noise + Linear(1024, 1024), batch 256
    x = torch.randn(256, 1024, **dv, requires_grad=True)
    lin = nn.Linear(1024, 1024).to(device)
    pm = nn.Sequential(nn.Dropout(0.1), lin)
    om = nn.Sequential(sd.nn.UnitNoise(N.Bernoulli(0.9)), lin)
    out.append(("UnitNoise[bernoulli]+Linear(1024) b256 vs Dropout+Linear",
                _fb(pm, x, lin.parameters()), _fb(om, x, lin.parameters()), 1.02))
    # --- ChannelNoise on (64, 64, 32, 32)
    x = torch.randn(64, 64, 32, 32, **dv, requires_grad=True)
    g = torch.randn(64, 64, 32, 32, **dv)
    out.append(("ChannelNoise[bernoulli] (64,64,32,32) vs nn.Dropout2d",
                _fb(nn.Dropout2d(0.1), x, grad=g),
                _fb(sd.nn.ChannelNoise(N.Bernoulli(0.9)), x, grad=g), 1.05))
    # --- NoisyResidual vs row-mode stochastic depth, bias-free Linear(1024) + ReLU
    x = torch.randn(256, 1024, **dv, requires_grad=True)
    block = nn.Sequential(nn.Linear(1024, 1024, bias=False), nn.ReLU()).to(device)
    res = sd.nn.NoisyResidual(block, layer_noise=N.Bernoulli(0.8))
    out.append(("NoisyResidual[bernoulli] b256 d1024 vs stochastic depth row",
                _fb(lambda h: h + _stochastic_depth_row(block(h), 0.2), x, block.parameters()),
                _fb(res, x, block.parameters()), 1.1))
    # --- LSTM seq 35, batch 32, hidden 256 (input 256)
    x = torch.randn(35, 32, 256, **dv, requires_grad=True)
    ref = nn.LSTM(256, 256).to(device)
    dr = nn.Dropout(0.25)
    tied = sd.nn.NoisyLSTM(256, 256, N.Bernoulli(0.75), tie_gates=True).to(device)
    untied = sd.nn.NoisyLSTM(256, 256, N.Bernoulli(0.75), tie_gates=False).to(device)
    tied.load_state_dict(ref.state_dict())
    untied.load_state_dict(ref.state_dict())
    peer = _fb(lambda s: ref(dr(s)), x, ref.parameters())
    out.append(("NoisyLSTM tied (35,32,256) vs nn.LSTM+input dropout", peer,
                _fb(tied, x, tied.parameters()), 1.2))
    out.append(("NoisyLSTM untied (35,32,256) vs nn.LSTM+input dropout", peer,
                _fb(untied, x, untied.parameters()), 2.0))
    # --- WeightNoiseLinear vs nn.Linear, batch 256, 1024 -> 1024
    x = torch.randn(256, 1024, **dv, requires_grad=True)
    lin = nn.Linear(1024, 1024).to(device)
    shared = sd.nn.WeightNoiseLinear(1024, 1024, N.Bernoulli(0.5),
                                    share_across_batch=True).to(device)
    lrt = sd.nn.WeightNoiseLinear(1024, 1024, N.Gaussian(1.0, 1.0),
                                 local_reparameterization=True).to(device)
    out.append(("WeightNoiseLinear shared[bernoulli] vs nn.Linear", _fb(lin, x, lin.parameters()),
                _fb(shared, x, shared.parameters()), 1.3))
    out.append(("WeightNoiseLinear local reparam[gaussian] vs nn.Linear",
                _fb(lin, x, lin.parameters()), _fb(lrt, x, lrt.parameters()), 2.5))
    return out


def saved_bytes(fn, x):
    """Bytes of tensors saved for backward plus the output, for one forward of fn."""
    total = [0]
    seen = set()

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.dtype)
        if key not in seen:
            seen.add(key)
            total[0] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(x)
    return total[0] + y.untyped_storage().nbytes()


def memory_case():
    torch.manual_seed(0)
    x = torch.randn(256, 4096, requires_grad=True)
    return (saved_bytes(nn.Dropout(0.1), x),
            saved_bytes(sd.nn.UnitNoise(N.Bernoulli(0.9)), x))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--only", default=None,
                    help="substring of the case names to run ('a|b': either)")
    ap.add_argument("--runs", type=int, default=1,
                    help="repeat every case this many times (interleaved with its peer each "
                         "time) and print the min and median of the ratio")
    ap.add_argument("--device", default="cpu",
                    help="torch device of both sides (default cpu; 'cuda' synchronises per call)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, device {args.device} ({where}), "
          f"{torch.get_num_threads()} thread(s), {args.reps} reps, forward + backward, medians")
    header = (f"{'case':<62} {'peer ms':>8} {'ours ms':>8} {'ratio':>6} {'min':>6} "
              f"{'target':>6}  ok")
    print(header)
    print("-" * len(header))
    rows = []
    for name, peer, ours, target in cases(args.device):
        if args.only and not any(part in name for part in args.only.split("|")):
            continue
        ratios, mps, mos = [], [], []
        for _ in range(args.runs):
            mp, mo = time_pair(peer, ours, args.reps, device_sync(args.device))
            ratios.append(mo / mp)
            mps.append(mp)
            mos.append(mo)
        r, r_min = statistics.median(ratios), min(ratios)
        mp, mo = statistics.median(mps), statistics.median(mos)
        rows.append((name, r, target))
        verdict = "-" if target is None else "yes" if r <= target else "NO"
        shown = f"{'-':>6}" if target is None else f"{target:6.2f}"
        print(f"{name:<62} {mp * 1e3:8.3f} {mo * 1e3:8.3f} {r:6.2f} {r_min:6.2f} {shown}  "
              f"{verdict}", flush=True)
    if (not args.only or "memory" in args.only) and dev.type == "cpu":
        bp, bo = memory_case()
        r = bo / bp
        print(f"{'memory: UnitNoise[bernoulli] saved+output vs nn.Dropout':<62} "
              f"{bp / 2**20:7.2f}M {bo / 2**20:7.2f}M {r:6.2f} {1.1:6.2f}  "
              f"{'yes' if r <= 1.1 else 'NO'}")
    return rows


if __name__ == "__main__":
    main()
