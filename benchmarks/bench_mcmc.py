"""NUTS over this library's EP model: Pyro (the reference, what ``--backend pyro`` runs) against
NumPyro (``--backend jax``: :func:`shrinkdrop.inference.jax_models.run_nuts_jax`), in one
process, on issue 29's setting: diabetes 10-10-1, 150 training rows, half-Cauchy(1) ARD, EP,
learnt noise precision, float64.

Two measurements:

1. the potential and its gradient alone (one call of each side's compiled / autograd function
   at the same point), in 5 blocks of ``--reps`` / 5 calls per side, the sides alternating block
   by block (calls interleaved one by one gave the JAX side 17 ms per call on the shared 2-core
   machine, against 60-140 us in a loop of its own: not understood, so not used): min, median;
2. whole NUTS runs: ``--chains`` chains x (``--warmup`` + ``--samples``), tree depth
   ``--depth``, each side ``--runs`` times alternated: wall seconds (NumPyro: its first run
   includes the compilation; later runs reuse it through ``JAX_COMPILATION_CACHE_DIR`` when that
   is set), wall and CPU seconds (CPU: ``time.process_time``, all threads; on a shared machine
   the CPU time is the robust figure) and microseconds per gradient (time / leapfrog
   steps of all chains; Pyro's steps are counted by wrapping its potential function, NumPyro's
   are the kernel's ``num_steps``). Pyro runs its chains one after the other; NumPyro vectorises
   them (one vmapped transition: a chain that needs fewer steps waits for the others, so its
   per-gradient figure is per chain-step, all chains' steps counted).

    python benchmarks/bench_mcmc.py [--reps 50] [--runs 2] [--chains 4] [--warmup 100]
        [--samples 100] [--depth 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _data(rows: int):
    from shrinkdrop.data import resolve_data, standardize

    d = resolve_data("diabetes")[0]
    tr = np.asarray(d.splits[0].train)[:rows]
    X = np.asarray(d.features, dtype=np.float64)
    y = np.asarray(d.target, dtype=np.float64)
    mu, sd = standardize(X[tr])
    X = (X[tr] - mu) / sd
    y = (y[tr] - y[tr].mean()) / y[tr].std()
    return torch.tensor(X), torch.tensor(y)


def _pyro_run(model, X, y, a):
    """Pyro NUTS over the library's potential; returns (seconds, gradients)."""
    from shrinkdrop.inference import models as m

    calls = [0]
    make = m.make_potential

    def counting(*args, **kw):
        pot, tr = make(*args, **kw)

        def f(z):
            calls[0] += 1
            return pot(z)

        return f, tr

    m.make_potential = counting
    try:
        t, c = time.perf_counter(), time.process_time()
        m.run_nuts(model, X, y, num_warmup=a.warmup, num_samples=a.samples, chains=a.chains,
                   max_tree_depth=a.depth, seed=0)
        return time.perf_counter() - t, time.process_time() - c, calls[0]
    finally:
        m.make_potential = make


def _jax_run(model, X, y, a, seed):
    from shrinkdrop.inference.jax_models import run_nuts_jax

    t, c = time.perf_counter(), time.process_time()
    res = run_nuts_jax(model, X, y, num_warmup=a.warmup, num_samples=a.samples,
                       chains=a.chains, max_tree_depth=a.depth, seed=seed)
    return time.perf_counter() - t, time.process_time() - c, res.gradients


def _potentials(model, X, y, reps):
    """Seconds per potential + gradient: Pyro's (torch autograd) and NumPyro's (jitted)."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import potential_energy

    from shrinkdrop.inference.jax_models import numpyro_model
    from shrinkdrop.inference.models import _init_params, make_potential

    pot, tr = make_potential(model, X, y)
    z = _init_params(model, tr, torch.Generator().manual_seed(0))
    nm = numpyro_model(model)
    args = (jnp.asarray(X.numpy()), jnp.asarray(y.numpy()))
    f = jax.jit(jax.value_and_grad(lambda p: potential_energy(nm, args, {}, p)))
    zj = {k: jnp.asarray(v.numpy()) for k, v in z.items()}

    def torch_side():
        zz = {k: v.clone().requires_grad_() for k, v in z.items()}
        pot(zz).backward()

    def jax_side():
        jax.block_until_ready(f(zj))

    jax_side()  # compile
    ts = {"pyro": [], "jax": []}
    block = max(5, reps // 5)
    for _ in range(5):  # blocks of calls, the sides alternating block by block
        for name, fn in (("pyro", torch_side), ("jax", jax_side)):
            for _ in range(block):
                t = time.perf_counter()
                fn()
                ts[name].append(time.perf_counter() - t)
    return ts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--rows", type=int, default=150)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    import shrinkdrop as sd
    from shrinkdrop.inference import NetSpec, make_model

    X, y = _data(a.rows)
    model = make_model(NetSpec([10, 10, 1]), sd.noise.HalfCauchy(1.0), "ep")
    ts = _potentials(model, X, y, a.reps)
    print("potential + gradient (microseconds per call):")
    for k, v in ts.items():
        print(f"  {k:5s} min {1e6 * min(v):8.1f}  median {1e6 * statistics.median(v):8.1f}")
    print(f"  ratio jax / pyro (medians): "
          f"{statistics.median(ts['jax']) / statistics.median(ts['pyro']):.3f}")
    rows = []
    for r in range(a.runs):
        rows.append(("pyro", r, *_pyro_run(model, X, y, a)))
        rows.append(("jax", r, *_jax_run(model, X, y, a, seed=r)))
        for side, run, sec, cpu, grads in rows[-2:]:
            print(f"run {run} {side:5s}: wall {sec:7.1f} s, CPU {cpu:7.1f} s, {grads} "
                  f"gradients, {1e6 * sec / grads:8.1f} us/gradient (wall), "
                  f"{1e6 * cpu / grads:8.1f} (CPU)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
