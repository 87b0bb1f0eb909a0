"""``shrinkdrop mcmc``: posterior sampling of a small network
(:mod:`shrinkdrop.experiments.mcmc`)."""

from __future__ import annotations

import argparse

from .._validation import check_positive
from ..experiments.laws import ScaleFamily
from ..experiments.mcmc import BACKENDS, EXIT_NOT_MIXED, HELP, McmcOptions
from ..experiments.mcmc import run as run_mcmc
from ..inference import Param, Structure
from .options import (
    add_data,
    add_law_options,
    add_quick,
    add_run_options,
    canonical_command,
    command_of,
    enum_choices,
    require_at_least_one,
    to_options,
)

__all__ = ["HELP", "add_arguments", "run", "options_from_args"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``shrinkdrop mcmc``."""
    add_data(p)
    p.add_argument("--noise", required=True, choices=enum_choices(ScaleFamily),
                   help="law of the scales")
    p.add_argument("--param", default="ep", choices=enum_choices(Param),
                   help="expanded (non-centred) or hierarchical (centred) parametrization")
    p.add_argument("--structure", default="ard", choices=enum_choices(Structure))
    p.add_argument("--residual", action="store_true",
                   help="residual MLP (implied by --structure add / ard+add)")
    p.add_argument("--hidden", type=int, default=10,
                   help="hidden units per layer (ignored with --depth 0)")
    p.add_argument("--depth", type=int, default=1,
                   help="hidden layers; 0: a linear model y = sum_r xi_r v_r x_r + b (one ARD "
                   "scale per input)")
    add_law_options(p, scale_help="scale of half-Cauchy / inverse Nakagami / Rayleigh; std of "
                    "Gaussian noise", keep_help="Bernoulli keep probability")
    p.add_argument("--mean", type=float, default=1.0, help="Gaussian noise mean")
    p.add_argument("--sigma0", type=float, default=1.0, help="std of the Gaussian part")
    p.add_argument("--precision", type=float, default=None,
                   help="fixed Gaussian noise precision (standardized units); default: learnt")
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--max-tree-depth", type=int, default=8)
    p.add_argument("--target-accept", type=float, default=0.9,
                   help="NUTS' target acceptance probability (its step-size adaptation)")
    p.add_argument("--dense-mass", action="store_true",
                   help="adapt a dense mass matrix (jax backend; default diagonal)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="jax: NumPyro's compiled NUTS, chains vectorised (extra mcmc-jax); "
                   "pyro: the reference Pyro models (8x slower per gradient as measured in "
                   "docs/inference.md); auto: jax "
                   "when NumPyro is installed")
    p.add_argument("--split", type=int, default=0, help="train/test split index")
    p.add_argument("--train-size", type=int, default=None,
                   help="subsample the training split to this many rows (keeps NUTS cheap)")
    p.add_argument("--noise-features", type=int, default=0,
                   help="append this many pure-noise N(0, 1) input columns (relevance AUC)")
    p.add_argument("--iw-samples", type=int, default=0,
                   help="also the importance-weighted read-outs (joint and per-unit conditional) "
                   "of a MAP-with-noise network, with this many prior draws")
    p.add_argument("--iw-only", action="store_true",
                   help="only the IW read-outs (MAP fit, no MCMC); needs --iw-samples")
    p.add_argument("--iw-rounds", type=int, default=4,
                   help="adaptive rounds of the conditional IW read-out (each --iw-samples / "
                   "rounds draws; 1: prior draws only)")
    p.add_argument("--iw-grid", type=int, default=16,
                   help="prior quantiles per continuous scale in the conditional IW read-out")
    add_quick(p, "a short run (well under 3 minutes on 2 cores with the jax backend, compile "
                   "included): 500 warmup / 500 samples x 4 chains, tree depth 8, 150 training "
                   "rows; its verdict says whether it mixed")
    p.add_argument("--rhat-max", type=float, default=None,
                   help="mixed only if the max shared split R-hat is below this (default 1.1)")
    p.add_argument("--ess-min", type=float, default=None,
                   help="mixed only if the min shared ESS (all chains) is at least this "
                   "(default 100)")
    p.add_argument("--strict", action="store_true",
                   help=f"exit with code {EXIT_NOT_MIXED} (instead of 0) when the chains did not "
                   "mix; every output file is written either way")
    add_run_options(p)



def _check(args: argparse.Namespace) -> None:
    if args.depth < 0:
        raise ValueError(f"--depth has to be >= 0 (0: a linear model), but got {args.depth}")
    require_at_least_one(args, ("hidden", "warmup", "samples", "chains"))
    check_positive("--scale", args.scale)
    if not 0 < args.target_accept < 1:
        raise ValueError(f"--target-accept has to be in (0, 1), but got {args.target_accept}")
    if args.dense_mass and args.backend == "pyro":
        raise ValueError("--dense-mass needs --backend jax (or auto with NumPyro installed)")
    if args.iw_only and not args.iw_samples:
        raise ValueError("--iw-only needs --iw-samples > 0")
    if args.noise == "bernoulli" and args.param != "ep":
        raise ValueError("--noise bernoulli is sampled by Gibbs in the EP only; pass --param ep")
    residual = args.residual or args.structure != "ard"
    if residual and args.depth < 3:
        raise ValueError(f"a residual MLP needs --depth >= 3 (two residual layers and more), "
                         f"but got --depth {args.depth}")


def options_from_args(args: argparse.Namespace) -> McmcOptions:
    """The checked options of the run, ``--quick``'s sizes applied."""
    _check(args)
    quick = {}
    if args.quick:
        quick = dict(warmup=min(args.warmup, 500), samples=min(args.samples, 500), chains=4,
                     max_tree_depth=min(args.max_tree_depth, 8),
                     train_size=args.train_size or 150)
    return to_options(McmcOptions, args, **quick)


def run(args: argparse.Namespace) -> int:
    """``shrinkdrop mcmc``."""
    opts = options_from_args(args)

    def command(values: dict) -> str:
        return canonical_command(args._parser, values, "mcmc", always=("param",), skip=())

    return run_mcmc(opts, command=command_of(args, always=("param",)), command_of=command)
