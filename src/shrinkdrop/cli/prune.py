"""``shrinkdrop prune``: which residual blocks and conv channels the data switched off
(:mod:`shrinkdrop.experiments.prune`)."""

from __future__ import annotations

import argparse

from ..experiments.prune import HELP, PruneOptions, What
from ..experiments.prune import run as run_prune
from .options import (
    add_quick,
    add_run_options,
    command_of,
    count,
    enum_choices,
    require_at_least_one,
    require_open_unit,
    to_options,
)

__all__ = ["HELP", "add_arguments", "run", "options_from_args"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``shrinkdrop prune``."""
    p.add_argument("--what", required=True, choices=enum_choices(What))
    p.add_argument("--data", default="diabetes",
                   help="depth: built-in regression set or UCI-layout directory (default "
                   "diabetes); channels always uses scikit-learn's digits")
    p.add_argument("--blocks", type=int, default=4, help="residual blocks (depth; default 4)")
    p.add_argument("--width", type=int, default=32, help="residual width (depth; default 32)")
    p.add_argument("--channels", type=int, default=16, help="conv channels (default 16)")
    p.add_argument("--keep", type=float, default=0.5, help="Bernoulli prior p(on) (0.5)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="remove a block / channel when its p(on) is below this (the median "
                   "probability model: 0.5)")
    p.add_argument("--rule", default="refit", choices=["refit", "one-se", "median"],
                   help="depth: which blocks to remove: refit (default: for each removal in "
                   "p(on) order the compacted net trained on, the largest whose validation "
                   "log-likelihood is within one SE of the best one's), one-se (the largest "
                   "removal whose validation log-likelihood, not refitted, stays within one SE "
                   "of the full net's) or median (p(on) < --threshold)")
    p.add_argument("--fit", default="point", choices=["point", "svi"],
                   help="depth: point (default: VI over the block scales with MAP weights, "
                   "minibatches of 256) or svi (fit_svi: mean-field weights, full batch, whose "
                   "weight KL switches every block off on kin8nm)")
    p.add_argument("--epochs", type=count(1), default=None,
                   help="VI epochs (default: depth 3000 full batch, channels 150 of batch 256)")
    p.add_argument("--seeds", type=int, default=5, help="seeds = splits (default 5)")
    p.add_argument("--test-samples", type=int, default=1000)
    add_quick(p, "demo size: 2 seeds, 300 test samples; depth: a fifth of the epochs "
                   "(channels keep theirs: fewer leave the channels at the prior)")
    add_run_options(p, seed=False)



def _check(args: argparse.Namespace) -> None:
    require_at_least_one(args, ("blocks", "width", "channels", "seeds", "test_samples"))
    if args.what == "depth" and args.blocks < 2:
        raise ValueError(f"--blocks has to be >= 2 (the shallow net has half), but got "
                         f"{args.blocks}")
    require_open_unit("--keep", args.keep)
    require_open_unit("--threshold", args.threshold)
    if args.what == "depth" and args.rule == "refit" and args.fit != "point":
        raise ValueError("--rule refit compacts the net at its fitted scales: it needs --fit "
                         "point, but got --fit svi (use --rule one-se or median with it)")
    if args.what == "depth":  # channels always uses scikit-learn's digits
        from ..data import resolve_data

        data = resolve_data(args.data)[0]
        if data.task != "regression":
            raise ValueError(f"--data has to be a regression data set for --what depth, but "
                             f"{data.name!r} is {data.task}")


def options_from_args(args: argparse.Namespace) -> PruneOptions:
    """The checked options of the run: the default epochs and ``--quick``'s sizes applied."""
    _check(args)
    default = (3000 if args.fit == "svi" else 100) if args.what == "depth" else 150
    epochs = args.epochs if args.epochs is not None else default
    seeds, test_samples = args.seeds, args.test_samples
    if args.quick:
        seeds = min(seeds, 2)
        if args.what == "depth":  # channels keep their 150 epochs: at 30 (a fifth) no channel
            epochs = max(1, epochs // 5)  # had left the prior (p(on) 0.62-0.69),
            # at 75 half were removed with the pruned net not yet recovered (LL -0.20)
        test_samples = min(test_samples, 300)
    return to_options(PruneOptions, args, epochs=epochs, seeds=seeds, test_samples=test_samples)


def run(args: argparse.Namespace) -> int:
    """``shrinkdrop prune``."""
    return run_prune(options_from_args(args), command=command_of(args))
