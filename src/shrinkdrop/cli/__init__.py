"""The ``shrinkdrop`` command: argument parsing over library calls, nothing else.

Each verb is one module ``shrinkdrop.cli.<verb>`` with ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``: it parses, validates once, and calls the
experiment (``shrinkdrop.experiments``) with plain Python arguments. Option groups the verbs
share are in :mod:`shrinkdrop.cli.options`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from pathlib import Path

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


#: argparse's own messages, reworded to say what was expected
_REWORD = (
    (re.compile(r"invalid int value: (.*)$"), r"has to be an integer, but got \1"),
    (re.compile(r"invalid float value: (.*)$"), r"has to be a number, but got \1"),
    (re.compile(r"invalid choice: (.*?) \(choose from (.*)\)$"),
     r"has to be one of \2, but got \1"),
    (re.compile(r"the following arguments are required: (.*)$"), r"\1 has to be given (required)"),
    (re.compile(r"unrecognized arguments: (.*)$"), r"\1: not an option of this verb"),
)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): ``shrinkdrop VERB: error: ...``, exit
    2. Options are never abbreviated (``--epochs`` is not ``--epochs-multiplier``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        message = " ".join(message.split())
        for pattern, repl in _REWORD:
            message = pattern.sub(repl, message)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _check_out(out: object) -> None:
    """A ValueError naming ``--out`` unless it is (or can be created as) a writable folder."""
    if not isinstance(out, (str, os.PathLike)) or not str(out).strip():
        raise ValueError(f"--out has to be a folder name, but got {out!r}")
    p = Path(out)
    if p.exists():
        if not p.is_dir():
            raise ValueError(f"--out has to be a folder, but {p} exists and is not one")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ValueError(f"--out has to be a folder you can write to, but {p} is not "
                             "writable")
        return
    anc = p.absolute().parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise ValueError(f"--out has to be a folder that can be created, but {anc} is a file, "
                         f"not a folder ({p})")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ValueError(f"--out has to be a folder that can be created, but {anc} is not "
                         f"writable ({p})")


def build_parser() -> argparse.ArgumentParser:
    """The ``shrinkdrop`` parser with one sub-parser per verb; a parse error is one line on
    stderr and exit code 2."""
    from .. import __version__

    parser = _Parser(
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
    0 done, 2 bad input (one line on stderr: what was wrong, what was expected), 130
    interrupted (finished results kept), or the verb's own code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the verb's parser says it (its name, its --help)
        args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if getattr(args, "out", None) is not None:
            _check_out(args.out)
        return int(args._run(args) or 0)
    except (ShrinkdropError, ValueError, TypeError, OSError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"shrinkdrop {args.verb}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"shrinkdrop {args.verb}: interrupted; finished results are kept, rerun the same "
              "command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
