"""The ``shrinkdrop`` command: argument parsing over library calls, nothing else.

Each verb is one module ``shrinkdrop.cli.<verb>`` with ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``: it parses, validates once, and calls the
experiment (``shrinkdrop.experiments``) with plain Python arguments. Option groups the verbs
share are in :mod:`shrinkdrop.cli.options`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import ShrinkdropError

__all__ = ["main", "build_parser", "VERBS"]

#: verb -> module under shrinkdrop.cli
VERBS: dict[str, str] = {
    "priors": "priors",
    "demo": "demo",
    "architectures": "architectures",
    "uci": "uci",
    "gap": "gap",
    "mcmc": "mcmc",
    "relevance": "relevance",
    "prune": "prune",
    "compress": "compress",
    "mcmc-study": "mcmc_study",
    "uncertainty": "uncertainty",
}


def build_parser() -> argparse.ArgumentParser:
    """The ``shrinkdrop`` parser with one sub-parser per verb."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="shrinkdrop",
        description="Dropout and multiplicative noise as structured shrinkage priors.",
    )
    parser.add_argument("--version", action="version", version=f"shrinkdrop {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, modname in VERBS.items():
        mod = importlib.import_module(f"{__name__}.{modname}")
        p = sub.add_parser(verb, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``shrinkdrop`` on ``argv`` (default: the process's arguments); the exit code:
    0 done, 2 bad input (the message on stderr), 130 interrupted (finished results kept), or
    the verb's own code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ShrinkdropError, ValueError, FileNotFoundError) as exc:
        print(f"shrinkdrop {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"shrinkdrop {args.verb}: interrupted; finished results are kept, rerun the same "
              "command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
