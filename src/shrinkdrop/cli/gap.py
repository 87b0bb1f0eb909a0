"""``shrinkdrop gap``: Jensen gaps against shrinkage strength
(:mod:`shrinkdrop.experiments.gap`)."""

from __future__ import annotations

import argparse

from ..experiments.gap import HELP, GapOptions
from ..experiments.gap import run as run_gap
from ..noise import FAMILIES
from .options import (
    add_out,
    add_quick,
    add_seed,
    command_of,
    count,
    positive_float,
    to_options,
)

__all__ = ["HELP", "add_arguments", "run", "options_from_args"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``shrinkdrop gap``."""
    add_out(p, default="results/gap", help="output folder (default: results/gap)")
    add_quick(p, "5 sweep points, fewer draws (< 3 min)")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help="comma-separated noise families (default: all)")
    p.add_argument("--points", type=count(1), default=None,
                   help="sweep points (default 9; quick 5)")
    p.add_argument("--samples", type=count(2), default=None,
                   help="MC draws for J_EP (default 2048; quick 512); J_HP uses 4x")
    p.add_argument("--epochs", type=count(1), default=None, help="training epochs (default 300)")
    p.add_argument("--tau", type=positive_float, default=2.0,
                   help="noise precision of the standardised target (default 2)")
    p.add_argument("--sigma0", type=positive_float, default=1.0, help="prior scale (default 1)")
    add_seed(p)



def options_from_args(args: argparse.Namespace) -> GapOptions:
    """The checked options of the run, ``--quick``'s sizes applied."""
    fams = tuple(dict.fromkeys(f.strip() for f in args.families.split(",") if f.strip()))
    if not fams:
        raise ValueError(f"--families has to name at least one of "
                         f"{', '.join(repr(k) for k in FAMILIES)}, but got {args.families!r}")
    for f in fams:
        if f not in FAMILIES:
            raise ValueError(f"--families: family has to be one of "
                             f"{', '.join(repr(k) for k in FAMILIES)}, but got {f!r}")
    return to_options(GapOptions, args, families=fams,
                      points=_given(args.points, 5 if args.quick else 9),
                      samples=_given(args.samples, 512 if args.quick else 2048),
                      epochs=_given(args.epochs, 150 if args.quick else 300))


def _given(value: int | None, default: int) -> int:
    """``value`` unless it was not given (a 0 given is refused by the parser, never replaced)."""
    return default if value is None else value


def run(args: argparse.Namespace) -> int:
    """``shrinkdrop gap``."""
    return run_gap(options_from_args(args), command=command_of(args))
