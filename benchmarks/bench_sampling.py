"""Reproduces the sampling figures quoted in docs/layers.md and docs/uci.md (CPU, one thread).

    python benchmarks/bench_sampling.py [--reps 50] [--samples 100]

1. Bernoulli draws by geometric gaps (the default at drop rate <= 0.12) against the 31-bit path
   (forced by ``GAP_MAX_DROP = 0``), same process: ratio gaps / bits; the 31-bit path against
   ``Tensor.bernoulli_`` at p = 0.2 and 0.5; then the gaps themselves,
   ``Tensor.geometric_`` against the vectorised ``ceil(-log(1 - u) / lambda)`` of
   ``sampling.bernoulli.bernoulli_gaps``, and a fill of a fresh 8 MB tensor against a kept one (the
   page faults ``ensemble._NoisePool`` avoids by redrawing its blocks in place).
2. ``stacked_predictive`` of 36 models x 1475 rows (kin8nm's validation size, 8-50-1 networks,
   MC dropout's four rates) in blocks of 2^21 activations (the default) against one 2^24 block.
3. The cost of a ``+tau`` method's scoring against its base method's on the same models, as the
   runner does it: the precision fitted on ``samples`` draws (``stacked_fit_tau``, on all rows
   and on each half) plus ``10 x samples`` draws scored at four taus (grid, fitted, and the two
   halves' for the cross-fitted score), against ``10 x samples`` draws at one (the runner's
   1000 : 10,000).
4. The table sampler of Beta and inverse-Nakagami noise (``shrinkdrop.sampling.rwt``): 2^20 float32
   draws, and the share of their time spent on the remainder (the rejection sampler of the caps
   and tails), timed alone for the number of remainder draws 2^20 draws make on average; the
   same draws with torch's random words (``_rwt.NUMPY_MIN`` raised past 2^20) against NumPy's
   SFC64 words (the default from 2^15 elements on), and the words alone.
5. Small Beta / inverse-Nakagami draws: the table against torch's gamma kernel (the crossover
   behind ``sampling.rwt.TABLE_MIN``), the table's NumPy form against its tensor form
   (``sampling.rwt.SMALL_MAX``), ``sampling.gamma.gamma``'s rejection loop against torch's gamma
   kernel, the SFC64 seeding, 10 remainder draws both ways, and per law the table's build time
   and remainder mass.

    python benchmarks/bench_sampling.py --only 5     # one part
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _timing import time_pair

from shrinkdrop import functional as F
from shrinkdrop.ensemble import StackedNoisyMLP, stacked_fit_tau, stacked_predictive
from shrinkdrop.noise import Bernoulli, Beta, InverseNakagami
from shrinkdrop.sampling import bernoulli as SB
from shrinkdrop.sampling import gamma as SG
from shrinkdrop.sampling import rwt as _rwt


def _median(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--only", type=int, choices=(4, 5), default=None,
                    help="run only part 4 or part 5 (the others take minutes)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    if args.only:
        (table_sampler if args.only == 4 else small_draws)(g, args.reps)
        return
    n = 36 * 128 * 58
    default = SB.GAP_MAX_DROP
    print(f"Bernoulli draws of {n} elements, median of {args.reps}")
    for drop in (0.005, 0.01, 0.05, 0.1, 0.12, 0.15, 0.2):
        nz = Bernoulli(1 - drop)
        SB.GAP_MAX_DROP = 0.0
        bits = _median(lambda nz=nz: F.draw_noise(nz, (n,), generator=g), args.reps)
        SB.GAP_MAX_DROP = 1.0
        gaps = _median(lambda nz=nz: F.draw_noise(nz, (n,), generator=g), args.reps)
        SB.GAP_MAX_DROP = default
        print(f"  p = {drop:<6} bits {bits * 1e6:7.0f} us  gaps {gaps * 1e6:7.0f} us  "
              f"gaps/bits {gaps / bits:5.2f}")
    for drop in (0.2, 0.5):  # the 31-bit words against torch's bernoulli_, both normalised
        nz = Bernoulli(1 - drop)
        bits = _median(lambda nz=nz: F.draw_noise(nz, (n,), generator=g), args.reps)
        ber = _median(lambda k=1 - drop: torch.empty(n).bernoulli_(k, generator=g).div_(k),
                      args.reps)
        print(f"  p = {drop:<6} bits {bits * 1e6:7.0f} us  bernoulli_ {ber * 1e6:7.0f} us  "
              f"bernoulli_/bits {ber / bits:5.2f}")
    import math

    m = int(n * 0.05)
    pos = torch.empty(m, dtype=torch.float64)
    inv = 1.0 / math.log1p(-0.05)
    geo = _median(lambda: pos.geometric_(0.05, generator=g), args.reps)
    vec = _median(lambda: pos.uniform_(generator=g).neg_().log1p_().mul_(inv).ceil_()
                  .clamp_min_(1.0), args.reps)
    print(f"  {m} Geometric(0.05) gaps: geometric_ {geo * 1e6:7.0f} us  vectorised "
          f"{vec * 1e6:7.0f} us  ratio {vec / geo:5.2f}")
    kept = torch.empty(2 ** 21)
    fresh = _median(lambda: torch.empty(2 ** 21).fill_(1.0), args.reps)
    reuse = _median(lambda: kept.fill_(1.0), args.reps)
    print(f"  fill of 2^21 floats: fresh tensor {fresh * 1e6:7.0f} us  kept {reuse * 1e6:7.0f}"
          f" us  ratio {fresh / reuse:5.2f}")
    K, G, n_rows = 36, 3, 1475
    laws = [Bernoulli(1 - p) for p in (0.005, 0.01, 0.05, 0.1)]
    net = StackedNoisyMLP([8, 50, 1], [laws[(k // 3) % 4] for k in range(K)],
                          generator=torch.Generator().manual_seed(0))
    X, y = torch.randn(G, n_rows, 8), torch.randn(G, n_rows)
    times = {}
    for me in (2 ** 24, 2 ** 21):
        t = time.perf_counter()
        stacked_predictive(net, X, y, args.samples, data_of=[k % G for k in range(K)], tau=1.0,
                           max_elements=me)
        times[me] = (time.perf_counter() - t) / args.samples
    print(f"stacked_predictive, {K} models x {n_rows} rows: one 2^24 block "
          f"{times[2 ** 24] * 1e4:.0f} s per 10,000 samples, 2^21 blocks "
          f"{times[2 ** 21] * 1e4:.0f} s; ratio {times[2 ** 21] / times[2 ** 24]:.2f}")
    data_of = [k % G for k in range(K)]
    S = 10 * args.samples

    def plain():
        stacked_predictive(net, X, y, S, data_of=data_of, tau=1.0)

    even = torch.arange(n_rows) % 2 == 0

    def fitted():  # as the runner: fitted on all rows and on each half (cross-fitting)
        tau = stacked_fit_tau(net, X, y, args.samples, data_of=data_of,
                              rows=[torch.ones(n_rows, dtype=torch.bool), even, ~even])
        stacked_predictive(net, X, y, S, data_of=data_of,
                           tau=torch.cat([torch.ones(K, 1, dtype=torch.float64), tau], 1))

    t_plain, t_fit = time_pair(plain, fitted, 3)
    print(f"+tau scoring ({args.samples} draws fitted on all rows and on each half, {S} scored "
          f"at 4 taus) against {S} at one: {t_fit:.2f} s vs {t_plain:.2f} s, ratio "
          f"{t_fit / t_plain:.2f}")
    table_sampler(g, args.reps)
    small_draws(g, args.reps)


def table_sampler(g, reps: int) -> None:
    """Part 4."""
    n = 2 ** 20
    print(f"table sampler, {n} float32 draws, median of {reps}:")
    for name, tab in (("Beta(2, 2)", _rwt.table("beta", 2.0, 2.0)),
                      ("inverse Nakagami(5, 1)", _rwt.table("inv_sqrt_gamma", 2.5))):
        m = round(tab.remainder_mass * n)
        whole = _median(lambda tab=tab: _rwt.sample(tab, n, torch.float32, 1.0, g), reps)
        rem = _median(lambda tab=tab, m=m: _rwt._remainder(tab, m, g), reps)
        default, _rwt.NUMPY_MIN = _rwt.NUMPY_MIN, n + 1  # torch's words throughout
        try:
            tw = _median(lambda tab=tab: _rwt.sample(tab, n, torch.float32, 1.0, g), reps)
        finally:
            _rwt.NUMPY_MIN = default
        print(f"  {name}: {whole * 1e3:6.2f} ms, of which the remainder ({m} draws) "
              f"{rem * 1e3:5.2f} ms = {rem / whole:.0%}; with torch's random words "
              f"{tw * 1e3:6.2f} ms (SFC64 / torch {whole / tw:.2f})")
    buf = torch.empty(n // 2, dtype=torch.int64)
    bg = np.random.SFC64(0)
    t_torch = _median(lambda: buf.random_(generator=g), reps)
    t_np = _median(lambda: torch.from_numpy(bg.random_raw(n // 2).view(np.int64)), reps)
    print(f"  the {n // 2} 64-bit words alone: torch random_ {t_torch * 1e3:5.2f} ms, NumPy "
          f"SFC64 {t_np * 1e3:5.2f} ms (ratio {t_np / t_torch:.2f})")


def small_draws(g, reps: int) -> None:
    """Part 5: where the table stops paying (``sampling.rwt.TABLE_MIN``) and where its NumPy
    form hands over to the tensor form (``sampling.rwt.SMALL_MAX``)."""
    print(f"small float32 draws through draw_noise, median of {reps} (table against torch's "
          "gamma kernel, forced either way):")
    default = _rwt.TABLE_MIN
    for name, law in (("Beta(2, 2)", Beta(2.0, 2.0)), ("inverse Nakagami(5, 1)",
                                                       InverseNakagami(5.0, 1.0))):
        cells = []
        for n in (16, 64, 256, 1000, 4000, 16000):
            try:
                _rwt.TABLE_MIN = 0
                tab = _median(lambda n=n, law=law: F.draw_noise(law, (n,), generator=g), reps)
                _rwt.TABLE_MIN = 1 << 62
                nat = _median(lambda n=n, law=law: F.draw_noise(law, (n,), generator=g), reps)
            finally:
                _rwt.TABLE_MIN = default
            cells.append(f"{n}: {tab * 1e6:.0f}/{nat * 1e6:.0f}")
        print(f"  {name}, n: table/gamma us  " + "  ".join(cells))
    default = _rwt.SMALL_MAX
    for name, tab in (("Beta(2, 2)", _rwt.table("beta", 2.0, 2.0)),
                      ("inverse Nakagami(5, 1)", _rwt.table("inv_sqrt_gamma", 2.5))):
        cells = []
        for n in (1000, 4000, 16000, 32000):
            try:
                _rwt.SMALL_MAX = 1 << 62
                small = _median(lambda n=n, tab=tab: _rwt.sample(tab, n, torch.float32, 1.0, g),
                                reps)
                _rwt.SMALL_MAX = 0
                big = _median(lambda n=n, tab=tab: _rwt.sample(tab, n, torch.float32, 1.0, g),
                              reps)
            finally:
                _rwt.SMALL_MAX = default
            cells.append(f"{n}: {small * 1e6:.0f}/{big * 1e6:.0f}")
        print(f"  {name}, n: NumPy form/tensor form us  " + "  ".join(cells))
    # above NATIVE_GAMMA_MAX, where no table is built, sampling.gamma.gamma runs its own
    # Marsaglia-Tsang loop rather than torch's kernel
    cells = []
    for alpha in (0.5, 2.0, 5.0):
        for n in (1 << 14, 1 << 20):
            mt = _median(lambda a=alpha, n=n: SG.gamma(a, n, torch.float32, None, g), reps)
            nat = _median(lambda a=alpha, n=n: torch._standard_gamma(
                torch.full((n,), a), generator=g), reps)
            cells.append(f"a={alpha} n={n}: {nat / mt:.1f}x")
    print("  Gamma(a, 1) float32, torch's kernel / sampling.gamma.gamma's loop: "
          + "  ".join(cells))
    cells = []
    for name, kind, args in (("Beta(2, 2)", "beta", (2.0, 2.0)), ("Beta(0.3, 0.5)", "beta",
                                                                  (0.3, 0.5)),
                             ("inverse Nakagami(5, 1)", "inv_sqrt_gamma", (2.5,)),
                             ("inverse Nakagami(0.5, 1)", "inv_sqrt_gamma", (0.25,))):
        t0 = time.perf_counter()
        law = _rwt._BetaLaw(*args) if kind == "beta" else _rwt._InvNakagamiLaw(*args)
        built = _rwt._build(law)  # not the cached table: the build itself
        cells.append(f"{name}: {time.perf_counter() - t0:.2f} s, remainder "
                     f"{100 * built.remainder_mass:.3f}%")
    print(f"  tables (K = {_rwt.K}): " + "; ".join(cells))
    tab = _rwt.table("beta", 2.0, 2.0)
    seed = _median(lambda: _rwt.words_source(_rwt.NUMPY_MIN, g, 1), reps)
    rem = _median(lambda: _rwt._remainder(tab, 10, g), reps)
    py1 = _median(lambda: _rwt._remainder_py(tab, 1, g), reps)
    py = _median(lambda: _rwt._remainder_py(tab, 10, g), reps)
    print(f"  SFC64 seeding {seed * 1e6:.1f} us; remainder draws (Beta(2, 2)): 10 by tensor "
          f"rounds {rem * 1e6:.0f} us, one at a time in Python 1: {py1 * 1e6:.0f} us, "
          f"10: {py * 1e6:.0f} us")


if __name__ == "__main__":
    main()
