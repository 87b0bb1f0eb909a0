"""Every bad input ends in a clear error (the table: ``cases.py`` next to this file).

Library: the expected exception type, with a message that names the argument and says what was
expected. CLI (``shrinkdrop.cli.main`` in this process): exit code 2, exactly one line on stderr
naming the option, no traceback. Cases whose fix lives in another branch's files are strict
xfails (``owner``); ``tools/bad_input_census.py`` counts clear / unclear / silent outcomes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from shrinkdrop.cli import VERBS, main

_spec = importlib.util.spec_from_file_location("_bad_input_cases",
                                               Path(__file__).with_name("cases.py"))
cases = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = cases
_spec.loader.exec_module(cases)


def _marks(c) -> list:
    return [pytest.mark.xfail(strict=True, reason=c.owner)] if c.owner else []


@pytest.mark.parametrize("c", [pytest.param(c, id=c.id, marks=_marks(c)) for c in cases.LIB])
def test_library_bad_input(c):
    torch.manual_seed(0)
    outcome, detail = cases.classify_lib(c)
    assert outcome == "clear", f"{outcome}: {detail}"


@pytest.mark.parametrize("c", [pytest.param(c, id=c.id, marks=_marks(c)) for c in cases.CLI])
def test_cli_bad_input(c, tmp_path, capsys):
    scratch = cases.make_scratch(tmp_path)
    argv = [a.format(**scratch) for a in c.argv]
    with cases.cli_sandbox():
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse
            rc = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("shrinkdrop"), lines[0]
    assert cases._holds(lines[0], c.words), (lines[0], c.words)


def test_the_table_is_big_and_covers_every_verb():
    assert len(cases.LIB) + len(cases.CLI) >= 250
    verbs = {c.id.split(".")[0] for c in cases.CLI}
    assert set(VERBS) <= verbs, set(VERBS) - verbs
    kinds = {c.id.split(".")[0] for c in cases.LIB}
    assert {"noise", "priors", "functional", "nn", "train", "ensemble", "gaps", "inference",
            "data"} <= kinds


def test_classify_sorts_the_three_outcomes():
    """The census' classifier itself: a clear error, an unclear one and a silent return."""
    clear = cases.Case("c", lambda: (_ for _ in ()).throw(ValueError("k has to be > 0")),
                       ValueError, ("k",))
    unclear = cases.Case("u", lambda: [][1], ValueError, ("k",))
    vague = cases.Case("v", lambda: (_ for _ in ()).throw(ValueError("bad")), ValueError, ("k",))
    silent = cases.Case("s", lambda: 1, ValueError, ("k",))
    assert cases.classify_lib(clear)[0] == "clear"
    assert cases.classify_lib(unclear)[0] == "unclear"
    assert cases.classify_lib(vague)[0] == "unclear"
    assert cases.classify_lib(silent)[0] == "silent"
