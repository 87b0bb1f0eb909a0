"""``shrinkdrop demo``: run every experiment in its quick form and write one report.

The demo is a list of ``shrinkdrop`` command lines, run one after the other through
:func:`shrinkdrop.cli.main`; their sections make one report
(:func:`shrinkdrop.experiments.report.build_report`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..experiments.report import build_report
from .options import add_out

HELP = "Run every experiment's quick version and write report/index.html (and index.md)."

__all__ = ["HELP", "add_arguments", "run", "STEPS"]

#: (folder, argv after the verb's own --out) in report order
STEPS: list[tuple[str, list[str]]] = [
    ("priors", ["priors", "--quick"]),
    ("gap", ["gap", "--quick"]),
    # the UCI protocol on built-in data: MC dropout against three relatives and against its own
    # networks with the likelihood's precision fitted on the validation rows (+tau: no extra
    # training), 80 epochs (the stacked engine trains each method's 12 grid points x 5 splits
    # at once)
    ("uci", ["uci", "--data", "diabetes", "--splits", "0,1,2,3,4", "--methods",
             "bernoulli-mc,bernoulli-mc+tau,bernoulli-marginal_map,gaussian-mc,rayleigh-mc",
             "--epochs-multiplier", "2", "--test-samples", "1000", "--no-progress"]),
    ("architectures", ["architectures", "--quick"]),
    ("mcmc", ["mcmc", "--data", "diabetes", "--noise", "half_cauchy", "--param", "ep",
              "--quick"]),
    # what the data switched off, without MCMC: structured VI read-outs of input units (vs
    # scikit-learn's ARDRegression and Gibbs), residual blocks (ADD) and conv channels
    ("relevance", ["relevance", "--data", "diabetes", "--noise-features", "20", "--quick",
                   "--no-progress"]),
    ("prune-depth", ["prune", "--what", "depth", "--quick", "--no-progress"]),
    ("prune-channels", ["prune", "--what", "channels", "--quick", "--no-progress"]),
    # from switched off to a smaller, faster net: VI read-outs, SBP and magnitude pruning
    # compacted side by side (LeNet-300 on digits; the LeNet-5 / Fashion-MNIST run is
    # docs/compress.md's)
    ("compress", ["compress", "--data", "digits", "--arch", "lenet300", "--quick",
                  "--no-progress"]),
    # classification uncertainty: every noise family x structure vs MC dropout, an ensemble
    # and a plain CNN on digits 0-4, with 5-9 as out-of-distribution inputs
    ("uncertainty", ["uncertainty", "--data", "digits", "--quick", "--no-progress"]),
]

INTRO = (
    "Dropout and its continuous relatives are structured shrinkage priors (Nalisnick & Smyth). "
    "Every section below was produced by `make demo` on this machine, with the command that "
    "reproduces it and the time it took."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``shrinkdrop demo``."""
    add_out(p, default="report", help="report folder (default: report)")
    p.add_argument("--only", default=None,
                   help="comma-separated subset of sections to run (default: all)")


def _only(text: str) -> set[str]:
    """The sections ``--only`` names; a ValueError names one that is not a section."""
    names = {s.strip() for s in text.split(",") if s.strip()}
    valid = [folder for folder, _ in STEPS]
    if not names:
        raise ValueError(f"--only has to name at least one of {', '.join(valid)}, but got "
                         f"{text!r}")
    for n in sorted(names):
        if n not in valid:
            raise ValueError(f"--only has to be a comma-separated subset of {', '.join(valid)}, "
                             f"but got {n!r}")
    return names


def run(args: argparse.Namespace) -> int:
    """Run the steps (all, or those ``--only`` names) and build the report; 1 if one failed."""
    from . import VERBS, main

    only = None if args.only is None else _only(args.only)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folders, failed = [], []
    t0 = time.perf_counter()
    for folder, argv in STEPS:
        if only is not None and folder not in only:
            continue
        verb = argv[0]
        if verb not in VERBS:
            print(f"[demo] {folder}: verb '{verb}' is not available in this version; skipped")
            folders.append(out / folder)
            continue
        print(f"[demo] {folder}: shrinkdrop {' '.join(argv)} --out {out / folder}", flush=True)
        t = time.perf_counter()
        rc = main(argv + ["--out", str(out / folder)])
        print(f"[demo] {folder}: exit {rc} in {time.perf_counter() - t:.1f} s", flush=True)
        if rc != 0:
            failed.append(folder)
        folders.append(out / folder)
    md, html = build_report(out, folders, title="shrinkdrop report", intro=INTRO)
    print(f"[demo] report: {html.resolve()} (and {md.name}); total "
          f"{time.perf_counter() - t0:.1f} s")
    if failed:
        print(f"[demo] sections that failed: {', '.join(failed)}")
        return 1
    return 0
