"""``shrinkdrop architectures``: the structured priors of section 5 on real data
(:mod:`shrinkdrop.experiments.architectures`)."""

from __future__ import annotations

import argparse

from ..experiments import architectures as A
from ..experiments.architectures import HELP, ArchitecturesOptions, Experiment
from .options import add_out, add_quick, command_of, enum_choices

__all__ = ["HELP", "add_arguments", "run", "options_from_args", "parse_only"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``shrinkdrop architectures``."""
    add_out(p, help="output folder (created if missing)")
    add_quick(p, "few epochs and Monte Carlo samples, 2 seeds (under 90 s on 2 cores)")
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds per model (default 5; 2 with --quick)")
    p.add_argument("--only", default=None,
                   help="comma-separated subset of " + ", ".join(enum_choices(Experiment))
                   + " (default: all)")


def parse_only(only: str | None) -> list[Experiment]:
    """The experiments ``--only`` names, in order (None: all); a ValueError names the valid
    ones."""
    if only is None:
        return list(Experiment)
    names = [s.strip() for s in only.split(",") if s.strip()]
    valid = ", ".join(repr(e.value) for e in Experiment)
    if not names:
        raise ValueError(f"--only has to name at least one of {valid}, but got {only!r}")
    out = []
    for n in names:
        try:
            e = Experiment(n)
        except ValueError:
            raise ValueError(f"--only has to be a comma-separated subset of {valid}, but got "
                             f"{n!r}") from None
        if e not in out:
            out.append(e)
    return out


def options_from_args(args: argparse.Namespace) -> ArchitecturesOptions:
    """The checked options of the run: the experiments and the settings (``--quick``'s small
    ones, or the defaults), ``--seeds`` applied."""
    experiments = parse_only(args.only)
    seeds = args.seeds
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int)
                              or seeds < 1):
        raise ValueError(f"--seeds has to be a positive integer, but got {seeds!r}")
    if args.quick:
        settings = A.Settings.quick(seeds if seeds is not None else 2)
    else:
        settings = A.Settings(seeds=seeds) if seeds is not None else A.Settings()
    return ArchitecturesOptions(out=args.out, experiments=tuple(experiments), settings=settings,
                                quick=args.quick, strict=args.only is not None)


def run(args: argparse.Namespace) -> int:
    """``shrinkdrop architectures``."""
    return A.run(options_from_args(args), command=command_of(args))
