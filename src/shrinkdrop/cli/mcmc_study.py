"""``shrinkdrop mcmc-study``: EP vs HP by NUTS on several data sets and seeds
(:mod:`shrinkdrop.experiments.mcmc_study`)."""

from __future__ import annotations

import argparse
import sys

from ..experiments.laws import ScaleFamily
from ..experiments.mcmc import BACKENDS, McmcOptions
from ..experiments.mcmc_study import DATASETS, HELP, run_study
from .options import (
    add_out,
    add_progress,
    count,
    enum_choices,
    finite_float,
    require_at_least_one,
    require_open_unit,
    split_list,
)

__all__ = ["HELP", "add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``shrinkdrop mcmc-study``: the data sets, seeds and the shared budget."""
    p.add_argument("--datasets", default=",".join(DATASETS),
                   help="comma-separated data sets (default: " + ",".join(DATASETS) + ")")
    p.add_argument("--seeds", type=split_list, default=[0, 1, 2],
                   help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--noise", default="half_cauchy",
                   choices=[f for f in enum_choices(ScaleFamily) if f != "bernoulli"],
                   help="law of the scales (continuous: HP has no Gibbs sampler)")
    p.add_argument("--hidden", type=count(1), default=10, help="hidden units (one hidden layer)")
    p.add_argument("--warmup", type=count(1), default=1000)
    p.add_argument("--samples", type=count(1), default=1000)
    p.add_argument("--chains", type=count(1), default=4)
    p.add_argument("--max-tree-depth", type=count(1), default=8)
    p.add_argument("--target-accept", type=finite_float, default=0.9)
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.add_argument("--train-size", type=count(1), default=None,
                   help="subsample each training split to this many rows")
    add_progress(p)
    add_out(p)


def run(args: argparse.Namespace) -> int:
    """``shrinkdrop mcmc-study``."""
    require_at_least_one(args, ("hidden", "warmup", "samples", "chains", "max_tree_depth"))
    require_open_unit("--target-accept", args.target_accept)
    datasets = tuple(t.strip() for t in args.datasets.split(",") if t.strip())
    if not datasets:
        raise ValueError(f"--datasets has to name at least one data set, but got "
                         f"{args.datasets!r}")
    seeds = tuple(args.seeds)
    base = McmcOptions(data=datasets[0], noise=args.noise, out=args.out, hidden=args.hidden,
                       warmup=args.warmup, samples=args.samples, chains=args.chains,
                       max_tree_depth=args.max_tree_depth, target_accept=args.target_accept,
                       backend=args.backend, train_size=args.train_size)
    table = run_study(base, args.out, datasets=datasets, seeds=seeds,
                      progress=not args.no_progress)
    print(f"mcmc-study: {sum(r['seeds'] for r in table)} runs -> {args.out}/table.md",
          file=sys.stderr)
    return 0
