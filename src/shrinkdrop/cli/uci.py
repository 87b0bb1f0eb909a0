"""``shrinkdrop uci``: the UCI benchmark protocol (:mod:`shrinkdrop.experiments.uci`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..data import resolve_data
from ..ensemble import INITS
from ..experiments.runner import Executor
from ..experiments.uci import (
    DEFAULT_METHODS,
    QUICK_METHODS,
    Engine,
    Settings,
    parse_methods,
)
from ..experiments.uci.run import execute, plan_run
from .options import (
    add_jobs,
    add_out,
    add_progress,
    add_quick,
    add_seed,
    command_of,
    count,
    enum_choices,
    positive_float,
    split_list,
)

HELP = ("Run the UCI benchmark protocol (MC dropout's grid search and refit) for every noise "
        "family and objective; writes results.csv and summary.md.")

__all__ = ["HELP", "add_arguments", "run", "settings_from_args"]

_MCMC_OPTIONS = ("mcmc_max_rows", "mcmc_warmup", "mcmc_samples", "mcmc_chains",
                 "mcmc_tree_depth", "mcmc_sigma0", "mcmc_backend")


def _methods(text: str) -> list[str]:
    try:
        methods = parse_methods(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not methods:
        raise argparse.ArgumentTypeError(f"has to name at least one method, but got {text!r}")
    return methods


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``shrinkdrop uci``."""
    p.add_argument("--data", required=True,
                   help="a data set directory in the UCI layout, a directory of them, or a "
                        "built-in name (diabetes, iris, wine, breast_cancer, digits)")
    add_out(p, help="output folder (created; reruns resume)")
    p.add_argument("--splits", type=split_list, default=None,
                   help="comma-separated split numbers (default: all; --quick: the first 2)")
    p.add_argument("--methods", type=_methods, default=None,
                   help="comma-separated <family>-<objective> (e.g. bernoulli-mc = MC dropout), "
                        "<family>-<objective>+tau (the same networks, the likelihood's precision "
                        "fitted on the validation rows instead of the tau grid; regression), "
                        "<family>-mcmc (posterior sampling, small data sets only), families "
                        "alone (their training objectives; <family>+tau likewise), 'all' "
                        "(every training method), 'all+tau' or "
                        "'mcmc' (every MCMC method). Default: " + ",".join(DEFAULT_METHODS)
                        + " (MC dropout and its +tau twin: one shared training; 3 splits of "
                        "energy, 768 rows, take under a minute on one core, of wine-quality-red, "
                        "1599 rows, about two; 'all' takes about 50 minutes on energy's 3 splits: "
                        "each of its 21 methods trains on its own, the marginal_map and "
                        "tail_adaptive ones on 5 draws per row; docs/uci.md); --quick: "
                        + ",".join(QUICK_METHODS))
    p.add_argument("--epochs-multiplier", type=positive_float, default=None,
                   help="epochs = n_epochs.txt x this (default 100, the reference files' "
                        "'100_xepochs'; --quick: 0.25)")
    p.add_argument("--test-samples", type=count(1), default=None,
                   help="MC samples for validation and test (default 10000; --quick: 100)")
    p.add_argument("--train-samples", type=count(1), default=None,
                   help="noise samples per step for marginal_map / tail_adaptive "
                        "(default 5; --quick: 2)")
    p.add_argument("--mcmc-max-rows", type=count(1), default=None,
                   help="run <family>-mcmc methods only where the training split has at most "
                        "this many rows; other units are recorded as skipped (default 1000)")
    p.add_argument("--mcmc-warmup", type=count(0), default=None,
                   help="MCMC warm-up iterations per chain (default 300; --quick: 20)")
    p.add_argument("--mcmc-samples", type=count(1), default=None,
                   help="MCMC draws kept per chain (default 300; --quick: 20)")
    p.add_argument("--mcmc-chains", type=count(1), default=None,
                   help="MCMC chains, one after the other (default 2; --quick: 1)")
    p.add_argument("--mcmc-tree-depth", type=count(1), default=None,
                   help="NUTS' maximum tree depth (default 7; --quick: 4)")
    p.add_argument("--mcmc-sigma0", type=positive_float, default=None,
                   help="prior std of the Gaussian part v of w = xi v in the MCMC models "
                        "(standardised units; divided by E[xi] for normalised noise; default 1)")
    p.add_argument("--mcmc-backend", choices=("pyro", "jax"), default=None,
                   help="MCMC sampler: 'pyro' (the reference models; default) or 'jax' "
                        "(NumPyro's compiled NUTS, chains vectorised, target acceptance 0.9; "
                        "extra mcmc-jax)")
    p.add_argument("--engine", choices=enum_choices(Engine), default="stacked",
                   help="how training methods run: 'stacked' trains every grid point of every "
                        "split of a (data set, method) at once as one batched ensemble "
                        "(shrinkdrop.ensemble; default; a training step about 10x faster than K "
                        "separate networks': benchmarks/bench_ensemble.py), 'sequential' one "
                        "network at a time; same protocol and per-model computation")
    p.add_argument("--init", choices=INITS, default="torch",
                   help="weight initialisation: 'torch' (nn.Linear's default) or 'keras' "
                        "(Glorot-uniform weights, zero biases: Keras' Dense default, as in MC "
                        "dropout's published UCI code)")
    p.add_argument("--device", default="cpu",
                   help="torch device for the training methods: 'cpu' (default), 'cuda', "
                        "'cuda:1', ... (MCMC methods always run on the CPU; the noise streams "
                        "differ between devices, so results are recorded with the device)")
    p.add_argument("--stack-splits", type=count(0), default=0,
                   help="stacked engine: at most this many splits per batched run (the unit "
                        "of resume; default 0: all requested splits, divided over --jobs)")
    add_seed(p, help="base seed (default 0)")
    add_jobs(p, help="parallel worker processes (default 1); with --executor dask: the "
                        "local cluster's worker processes, and in any case how many groups "
                        "the stacked engine divides the splits into (default: the cluster's "
                        "worker threads)")
    p.add_argument("--executor", choices=enum_choices(Executor), default="local",
                   help="where work items run: 'local' (this machine, --jobs processes; "
                        "default) or 'dask' (a Dask distributed cluster: --scheduler, or a "
                        "local cluster on 127.0.0.1; needs the 'cluster' extra: pip install "
                        "'shrinkdrop[cluster]'); results are written here either way")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="with --executor dask: the address of a running Dask scheduler, e.g. "
                        "tcp://host:8786 (default: start a local cluster of --jobs processes)")
    add_quick(p, "a smoke run: 2 splits, 2 methods, reduced grid, few epochs and samples")
    add_progress(p, "no progress bar")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The run's :class:`~shrinkdrop.experiments.uci.Settings`: the options given, and for the
    others their defaults (smaller with ``--quick``). Checked by the run, not here."""
    q = args.quick
    em = args.epochs_multiplier if args.epochs_multiplier is not None else (0.25 if q else 100.0)
    ts = args.test_samples if args.test_samples is not None else (100 if q else 10_000)
    tr = args.train_samples if args.train_samples is not None else (2 if q else 5)
    mc = {k: getattr(args, k) for k in _MCMC_OPTIONS if getattr(args, k) is not None}
    return Settings(epochs_multiplier=float(em), test_samples=int(ts), train_samples=int(tr),
                    quick=q, seed=args.seed, engine=args.engine, init=args.init,
                    device=args.device, **mc)


def run(args: argparse.Namespace) -> int:
    """``shrinkdrop uci``: validate once (:func:`~shrinkdrop.experiments.uci.run.plan_run`),
    then run."""
    datasets = resolve_data(args.data)
    t0 = time.perf_counter()
    plan = plan_run(datasets, args.out, splits=args.splits, methods=args.methods,
                    settings=settings_from_args(args), jobs=args.jobs,
                    progress=not args.no_progress, command=command_of(args),
                    stack_splits=args.stack_splits, executor=args.executor,
                    scheduler=args.scheduler, flag=_flag)
    path = execute(plan)
    print(f"[uci] wrote {path} and {Path(args.out) / 'summary.md'} in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0
