"""``shrinkdrop relevance``: which inputs the data switched off
(:mod:`shrinkdrop.experiments.relevance`)."""

from __future__ import annotations

import argparse
import math

from ..experiments.relevance import HELP, Family, RelevanceOptions
from ..experiments.relevance import run as run_relevance
from .options import (
    add_data,
    add_law_options,
    add_quick,
    add_run_options,
    command_of,
    count,
    enum_choices,
    positive_float,
    require_at_least_one,
    require_open_unit,
    to_options,
)

__all__ = ["HELP", "add_arguments", "run", "options_from_args"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``shrinkdrop relevance``."""
    add_data(p)
    p.add_argument("--noise-features", type=int, default=20,
                   help="pure-noise N(0, 1) columns appended to the inputs (default 20)")
    p.add_argument("--split", type=count(0), default=0, help="train/test split index (default 0)")
    p.add_argument("--noise", default="bernoulli", choices=enum_choices(Family),
                   help="prior law of the ARD scales (default bernoulli: spike-and-slab)")
    add_law_options(p, scale_help="scale of half-Cauchy / inverse Nakagami / Rayleigh (1.0)",
                    keep_help="Bernoulli prior inclusion of Gibbs, and of VI and the linear "
                    "reference with --inclusion-prior fixed (0.5)", keep_first=True)
    p.add_argument("--inclusion-prior", default="uniform", choices=["uniform", "fixed"],
                   help="Bernoulli inclusion rate of VI and the linear spike-and-slab: uniform = "
                   "learnt, keep ~ Beta(1, 1) (Scott & Berger's multiplicity correction; "
                   "default); fixed = --keep")
    p.add_argument("--hidden", type=int, default=10, help="hidden units (default 10)")
    p.add_argument("--epochs", type=int, default=3000, help="VI epochs, full batch (3000)")
    p.add_argument("--lr", type=positive_float, default=1e-2, help="VI learning rate (Adam, 0.01)")
    p.add_argument("--restarts", type=int, default=3,
                   help="independent VI fits (seeds seed..seed+R-1); relevances averaged, "
                   "predictive = their equal mixture (default 3)")
    p.add_argument("--no-gibbs", action="store_true", help="skip the Gibbs reference")
    p.add_argument("--gibbs-warmup", type=int, default=200)
    p.add_argument("--gibbs-samples", type=int, default=200)
    p.add_argument("--gibbs-chains", type=int, default=2)
    p.add_argument("--no-linear-ss", action="store_true",
                   help="skip the exact linear spike-and-slab reference")
    p.add_argument("--ss-g", type=float, default=1.0,
                   help="linear spike-and-slab slab variance / noise variance (default 1)")
    p.add_argument("--ss-sweeps", type=int, default=2000,
                   help="linear spike-and-slab collapsed Gibbs sweeps per chain, 2 chains, "
                   "after 500 warm-up sweeps (default 2000; exact enumeration up to 14 inputs)")
    p.add_argument("--no-mc-dropout", action="store_true",
                   help="skip the MC dropout baseline (Gal's grid + refit on the same rows)")
    p.add_argument("--epochs-multiplier", type=positive_float, default=100.0,
                   help="MC dropout epochs = the data set's base epochs x this (default 100: "
                   "the protocol of the UCI table)")
    p.add_argument("--test-samples", type=int, default=10_000,
                   help="MC samples for test log-likelihoods (default 10000)")
    add_quick(p, "a short run for the demo: 1000 VI epochs, 1 restart, Gibbs 60 + 60 x 1 "
                   "chain, linear spike-and-slab 300 + 100 sweeps, MC dropout at 10x epochs, "
                   "1000 test samples")
    add_run_options(p)



def _check(args: argparse.Namespace) -> None:
    if args.noise_features < 1:
        raise ValueError(f"--noise-features has to be >= 1 (the AUC needs noise inputs), but "
                         f"got {args.noise_features}")
    require_at_least_one(args, ("hidden", "epochs", "restarts", "gibbs_warmup", "gibbs_samples",
                                "gibbs_chains", "test_samples", "ss_sweeps"))
    require_open_unit("--keep", args.keep)
    if not (math.isfinite(args.ss_g) and args.ss_g > 0):
        raise ValueError(f"--ss-g has to be a finite number > 0, but got {args.ss_g}")


def options_from_args(args: argparse.Namespace) -> RelevanceOptions:
    """The checked options of the run, ``--quick``'s sizes applied."""
    _check(args)
    quick = {}
    if args.quick:
        quick = dict(epochs=min(args.epochs, 1000), restarts=1,
                     gibbs_warmup=min(args.gibbs_warmup, 60),
                     gibbs_samples=min(args.gibbs_samples, 60), gibbs_chains=1,
                     ss_sweeps=min(args.ss_sweeps, 300),
                     epochs_multiplier=min(args.epochs_multiplier, 10.0),
                     test_samples=min(args.test_samples, 1000))
    return to_options(RelevanceOptions, args, **quick)


def run(args: argparse.Namespace) -> int:
    """``shrinkdrop relevance``."""
    return run_relevance(options_from_args(args), command=command_of(args))
