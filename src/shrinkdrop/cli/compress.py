"""``shrinkdrop compress``: dense, structured VI read-outs, SBP and magnitude pruning as
smaller, faster LeNets (:mod:`shrinkdrop.experiments.compress`)."""

from __future__ import annotations

import argparse

from ..experiments.compress import ARCHS, HELP, METHODS, CompressOptions
from ..experiments.compress import run as run_compress
from .options import (
    add_quick,
    add_run_options,
    command_of,
    count,
    finite_float,
    positive_float,
    to_options,
)

__all__ = ["HELP", "add_arguments", "run", "options_from_args"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``shrinkdrop compress``."""
    p.add_argument("--data", required=True,
                   help="fashion-mnist, mnist5k, digits or a folder of IDX files")
    p.add_argument("--arch", required=True, choices=ARCHS)
    p.add_argument("--epochs", type=count(1), default=6, help="dense training epochs (default 6)")
    p.add_argument("--finetune", type=count(1), default=4,
                   help="epochs of every other method, from the dense net (default 4)")
    p.add_argument("--retrain", type=count(0), default=0,
                   help="epochs of training the compacted VI nets after the removal; magnitude "
                   "pruning then fine-tunes --finetune + --retrain epochs (default 0)")
    p.add_argument("--seeds", type=count(1), default=3, help="seeds (default 3)")
    p.add_argument("--batch-size", type=count(1), default=128)
    p.add_argument("--lr", type=positive_float, default=1e-3,
                   help="Adam's learning rate of the weights (default 0.001)")
    p.add_argument("--q-lr", type=positive_float, default=1e-2,
                   help="Adam's learning rate of the scales' q (default 0.01; the weights' is "
                   "0.001)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated, of {', '.join(METHODS)} (default all)")
    p.add_argument("--train-limit", type=count(0), default=0,
                   help="use at most this many training rows (0: all)")
    p.add_argument("--flops-target", type=finite_float, default=0.0,
                   help="VI read-outs: instead of the one-SE rule, remove units in posterior "
                   "order until the FLOPs fall by this factor (e.g. 5; default 0: one-SE rule)")
    p.add_argument("--allocation", default="uniform", choices=["uniform", "validation"],
                   help="with --flops-target, how many units each site loses: uniform = one "
                   "kept fraction for every site (default); validation = greedy, the site whose "
                   "next units cost the least validation LL per FLOP saved (fewer FLOPs for the "
                   "error, but slower on CPU: docs/compress.md)")
    p.add_argument("--val", type=count(1), default=5000,
                   help="validation rows split off the training rows (the one-SE rule's; at "
                   "most a fifth of them; default 5000)")
    add_quick(p, "demo size: 2 seeds, 3 + 2 epochs, at most 3000 training rows, 5 timing "
                 "repeats")
    add_run_options(p, seed=False)


def options_from_args(args: argparse.Namespace) -> CompressOptions:
    """The checked options (``--quick`` applied)."""
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"--methods has to list some of {', '.join(METHODS)}, but got "
                         f"{args.methods!r}")
    if "magnitude" in methods and not {"ss", "hs", "sbp"} & set(methods):
        raise ValueError("--methods: magnitude prunes to a VI method's FLOPs; add ss, hs or sbp")
    if "dense" not in methods:
        raise ValueError("--methods has to include dense (the others start from it)")
    for name in ("epochs", "finetune", "seeds", "batch_size", "val"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} has to be >= 1, but got "
                             f"{getattr(args, name)}")
    for name in ("lr", "q_lr"):
        if not getattr(args, name) > 0:
            raise ValueError(f"--{name.replace('_', '-')} has to be > 0, but got "
                             f"{getattr(args, name)}")
    if args.flops_target and args.flops_target <= 1:
        raise ValueError(f"--flops-target has to be > 1 (a factor) or 0, but got "
                         f"{args.flops_target}")
    if args.retrain < 0:
        raise ValueError(f"--retrain has to be >= 0, but got {args.retrain}")
    if args.train_limit < 0:
        raise ValueError(f"--train-limit has to be >= 0, but got {args.train_limit}")
    over: dict = {"methods": methods}
    if args.quick:
        over.update(seeds=min(args.seeds, 2), epochs=min(args.epochs, 3),
                    finetune=min(args.finetune, 2), timing_repeats=5,
                    train_limit=min(args.train_limit or 3000, 3000), val=min(args.val, 500))
    return to_options(CompressOptions, args, **over)


def run(args: argparse.Namespace) -> int:
    """``shrinkdrop compress``."""
    return run_compress(options_from_args(args), command=command_of(args))
