"""The ``shrinkdrop`` command itself: every verb's parser, and the command a run records."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from shrinkdrop.cli import VERBS, build_parser
from shrinkdrop.cli.options import command_of

RESULTS = Path(__file__).resolve().parents[2] / "results"


def test_every_verb_has_help_and_parses():
    parser = build_parser()
    for verb in VERBS:
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([verb, "--help"])
        assert exc.value.code == 0


@pytest.mark.parametrize("line", [
    "shrinkdrop uci --data diabetes --out o --methods bernoulli-mc,bernoulli-mc+tau "
    "--epochs-multiplier 2 --test-samples 1000",
    "shrinkdrop uci --data d --out 'a b' --splits 0,3 --engine sequential --seed 1 --quick",
    "shrinkdrop mcmc --data diabetes --noise half_cauchy --param ep --quick --out o",
    "shrinkdrop gap --out o --quick",
    "shrinkdrop architectures --out o --quick --only resnet,cnn",
])
def test_recorded_command_is_canonical(line):
    """Non-default options in the parser's order, values as given: a line round-trips."""
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert command_of(args, **({"always": ("param",)} if args.verb == "mcmc" else {})) == line


def test_committed_uci_commands_are_recorded_alike():
    """Rerunning a command of a committed results folder records the same line (resume adds
    no second line to commands.txt)."""
    lines = sorted({c for f in RESULTS.glob("**/commands.txt")
                    for c in f.read_text().splitlines() if c.strip()})
    if not lines:
        pytest.skip("no committed commands.txt")
    parser = build_parser()
    for line in lines:
        assert command_of(parser.parse_args(shlex.split(line)[1:])) == line


def test_no_progress_is_not_recorded():
    args = build_parser().parse_args(["uci", "--data", "d", "--out", "o", "--no-progress"])
    assert command_of(args) == "shrinkdrop uci --data d --out o"
