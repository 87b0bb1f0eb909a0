"""The exact linear spike-and-slab posterior on the rows `shrinkdrop relevance` uses.

Per split: the AUC of the posterior inclusion probabilities (real vs added noise inputs), the
test log-likelihood per point in the target's units, and the largest Monte Carlo standard
error of an inclusion probability; mean ± SE over splits. The rows and noise columns are
``prepare(data, split, noise_features, seed)``, as the verb draws them::

    python benchmarks/relevance_ceiling.py --data diabetes --seed split
    python benchmarks/relevance_ceiling.py --data /work/shared/data/uci/bostonHousing --seed 0
    python benchmarks/relevance_ceiling.py --data diabetes --seed split --inclusion-prior fixed

``--seed split`` uses seed = split (the runs under ``results/relevance-2026-12-02/``).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from shrinkdrop.data import resolve_data
from shrinkdrop.experiments.relevance import prepare
from shrinkdrop.inference import linear_spike_slab, relevance_auc


def _ms(v) -> str:
    m = float(np.mean(v))
    se = float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return f"{m:.3f} ± {se:.3f}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="diabetes")
    p.add_argument("--splits", default="0,1,2,3,4")
    p.add_argument("--noise-features", type=int, default=20)
    p.add_argument("--seed", default="0", help="an integer, or 'split' for seed = split")
    p.add_argument("--inclusion-prior", default="uniform", choices=["uniform", "fixed"],
                   help="uniform: keep ~ Beta(1, 1) integrated out (the verb's default); "
                   "fixed: --keep")
    p.add_argument("--keep", type=float, default=0.5)
    p.add_argument("--g", type=float, default=1.0)
    p.add_argument("--sweeps", type=int, default=2000)
    a = p.parse_args(argv)
    data = resolve_data(a.data)[0]
    prior = (1.0, 1.0) if a.inclusion_prior == "uniform" else None
    what = "keep ~ Beta(1, 1)" if prior else f"keep {a.keep}"
    print(f"{data.name} + {a.noise_features} noise features, {what}, g {a.g}, seed {a.seed}")
    print("| split | method | AUC | test LL | max MC SE | real inputs' inclusion | "
          "largest noise inclusion | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    aucs, lls = [], []
    for split in (int(s) for s in a.splits.split(",")):
        seed = split if a.seed == "split" else int(a.seed)
        d = prepare(data, split, a.noise_features, seed)
        t0 = time.perf_counter()
        res = linear_spike_slab(d["X"].numpy(), d["y"].numpy(), keep=a.keep, g=a.g,
                                sweeps=a.sweeps, seed=seed, inclusion_prior=prior)
        ll = float(np.mean(res.predictive_logpdf(d["Xte"].numpy(), d["yte"].numpy()))
                   - math.log(d["y_scale"]))
        auc = relevance_auc(res.inclusion, d["is_real"])
        aucs.append(auc)
        lls.append(ll)
        real = " ".join(f"{v:.2f}" for v in res.inclusion[d["is_real"]])
        print(f"| {split} | {res.method} | {auc:.3f} | {ll:.3f} | {res.se.max():.4f} | {real} | "
              f"{res.inclusion[~d['is_real']].max():.2f} | {time.perf_counter() - t0:.1f} |")
    print(f"mean ± SE over {len(aucs)} splits: AUC {_ms(aucs)}, test LL {_ms(lls)}")


if __name__ == "__main__":
    main()
