"""``shrinkdrop priors``: Table 1 and Figure 1 as measured
(:mod:`shrinkdrop.experiments.priors`)."""

from __future__ import annotations

import argparse

from ..experiments.priors import HELP, PriorsOptions
from ..experiments.priors import run as run_priors
from .options import add_out, add_quick, add_seed, command_of, to_options

__all__ = ["HELP", "add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``shrinkdrop priors``."""
    add_out(p, help="output folder (created if missing)")
    p.add_argument("--samples", type=int, default=20_000,
                   help="draws of xi * v per goodness-of-fit test (default 20000)")
    add_seed(p, help="random seed (default 0)")
    add_quick(p, "fewer Monte Carlo draws for Figure 1 (the table is unchanged)")



def run(args: argparse.Namespace) -> int:
    """``shrinkdrop priors``."""
    if args.samples < 100:
        raise ValueError(f"--samples has to be at least 100, but got {args.samples}")
    return run_priors(to_options(PriorsOptions, args), command=command_of(args))
