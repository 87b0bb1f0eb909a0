"""Option groups the verbs share, and the one way a run's command line is written down.

A verb's file adds its own options and the shared groups below, turns the parsed namespace into
the experiment's plain options (:func:`to_options`) and records :func:`canonical_command`: the
verb and every option that differs from its default, in the parser's order, so that the same
run always records the same line (rerunning it to resume adds no second line).
"""

from __future__ import annotations

import argparse
import enum
import math
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

__all__ = [
    "add_out", "add_quick", "add_seed", "add_progress", "add_data", "add_jobs",
    "split_list", "enum_choices", "to_options", "canonical_command", "command_of",
    "add_law_options", "add_run_options", "require_at_least_one", "require_open_unit",
    "count", "positive_float", "finite_float",
]

T = TypeVar("T")


def add_out(p: argparse.ArgumentParser, *, default: str | None = None,
            help: str = "output directory") -> None:
    """``--out``: the output folder (required when there is no default)."""
    if default is None:
        p.add_argument("--out", required=True, help=help)
    else:
        p.add_argument("--out", default=default, help=help)


def add_quick(p: argparse.ArgumentParser, help: str) -> None:
    """``--quick``: the verb's small, fast form (``help`` says what it shrinks)."""
    p.add_argument("--quick", action="store_true", help=help)


def count(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer ``>= low`` (a one-line error saying so otherwise)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"has to be an integer >= {low}, but got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"has to be an integer >= {low}, but got {v}")
        return v

    parse.__name__ = f"integer >= {low}"
    return parse


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0 (NaN, inf, 0 and below are refused)."""
    v = finite_float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"has to be a finite number > 0, but got {text!r}")
    return v


def finite_float(text: str) -> float:
    """An argparse ``type``: a finite number (NaN and inf are refused)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"has to be a number, but got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"has to be a finite number, but got {text!r}")
    return v


def add_seed(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--seed``: the base seed (an integer >= 0; default 0)."""
    p.add_argument("--seed", type=count(0), default=0, help=help)


def add_progress(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--no-progress``: no progress bar (never part of the recorded command)."""
    p.add_argument("--no-progress", action="store_true", help=help)


def add_data(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--data``: a built-in data set name or a UCI-layout directory (required)."""
    p.add_argument("--data", required=True, help=help or (
        "built-in data set name (e.g. diabetes) or a UCI-layout directory"))


def add_run_options(p: argparse.ArgumentParser, *, seed: bool = True) -> None:
    """The closing group of a verb that runs one experiment: ``--seed`` (unless ``seed`` is
    False), ``--no-progress`` and a required ``--out``."""
    if seed:
        add_seed(p)
    add_progress(p)
    add_out(p)


def add_jobs(p: argparse.ArgumentParser, help: str) -> None:
    """``--jobs``: parallel worker processes (None: the verb's default)."""
    p.add_argument("--jobs", type=count(1), default=None, help=help)


def split_list(text: str) -> list[int]:
    """``0,1,2`` -> ``[0, 1, 2]``: split numbers (an argparse ``type``; the range is checked against
    the data set later, where the number of splits is known)."""
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated split numbers like 0,1,2, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError("expected at least one split number")
    return out


def enum_choices(cls: type[enum.Enum]) -> list[str]:
    """The values of an enum, as argparse ``choices``."""
    return [e.value for e in cls]


def to_options(cls: type[T], args: argparse.Namespace, **override: Any) -> T:
    """The dataclass ``cls`` with every field taken from ``args`` (same names), or ``override``."""
    vals = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return cls(**{**vals, **override})


def _text(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def canonical_command(parser: argparse.ArgumentParser, values: Mapping[str, Any] |
                      argparse.Namespace, verb: str, *, always: Iterable[str] = (),
                      skip: Iterable[str] = ("no_progress",)) -> str:
    """``shrinkdrop VERB ...``: the options of ``values`` (dest -> value) that differ from the
    parser's defaults, in the parser's order; required options and those named in ``always``
    are written even at their default, None values and those in ``skip`` never."""
    if isinstance(values, argparse.Namespace):
        values = vars(values)
    always, skip = set(always), set(skip)
    parts = ["shrinkdrop", verb]
    for a in parser._actions:
        if not a.option_strings or a.dest in skip or a.dest not in values:
            continue
        v = values[a.dest]
        if v is None or (v == a.default and not a.required and a.dest not in always):
            continue
        if a.nargs == 0:  # flags
            if v:
                parts.append(a.option_strings[-1])
            continue
        parts += [a.option_strings[-1], _text(v)]
    return shlex.join(parts)


def command_of(args: argparse.Namespace, **kw: Any) -> str:
    """:func:`canonical_command` of a parsed verb (``main`` puts its parser in ``_parser``)."""
    return canonical_command(args._parser, args, args.verb, **kw)


def add_law_options(p: argparse.ArgumentParser, *, scale_help: str, keep_help: str,
                    keep_first: bool = False) -> None:
    """``--scale``, ``--df`` and ``--keep`` (first or last): the parameters of the scales' prior
    law (:func:`shrinkdrop.experiments.laws.scale_law`)."""
    if keep_first:
        p.add_argument("--keep", type=finite_float, default=0.5, help=keep_help)
    p.add_argument("--scale", type=positive_float, default=1.0, help=scale_help)
    p.add_argument("--df", type=positive_float, default=3.0,
                   help="inverse Nakagami degrees of freedom")
    if not keep_first:
        p.add_argument("--keep", type=finite_float, default=0.5, help=keep_help)


def require_at_least_one(args: argparse.Namespace, names: Iterable[str]) -> None:
    """Raise :class:`ValueError` naming the first option (a ``dest``) in ``names`` below 1."""
    for name in names:
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} has to be >= 1, but got "
                             f"{getattr(args, name)}")


def require_open_unit(flag: str, value: float) -> None:
    """Raise :class:`ValueError` unless ``0 < value < 1`` (``flag`` names the option)."""
    if not 0 < value < 1:  # NaN too
        raise ValueError(f"{flag} has to be in (0, 1), but got {value}")
