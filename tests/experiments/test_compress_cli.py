"""``shrinkdrop compress`` end to end at toy size (digits, LeNet-300, one seed), resume, and
its errors."""

from __future__ import annotations

import json

import pytest

from shrinkdrop.cli import main


def test_compress_quick_digits_and_resume(tmp_path, capsys):
    pytest.importorskip("torch_pruning")
    argv = ["compress", "--data", "digits", "--arch", "lenet300", "--quick", "--seeds", "1",
            "--methods", "dense,ss,magnitude", "--no-progress", "--out", str(tmp_path)]
    assert main(argv) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert set(s) == {"dense", "ss", "magnitude"}
    assert s["dense"]["arch"] == ["784-300-100"]
    # magnitude pruning was pruned to the spike-and-slab net's FLOPs (or just below)
    assert s["magnitude"]["flops"][0] <= s["ss"]["flops"][0] * 1.0001
    sec = json.loads((tmp_path / "section.json").read_text())
    assert any(b["kind"] == "table" for b in sec["blocks"])
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert len(rows) == 4 and "speedup_median" in rows[0]
    capsys.readouterr()
    assert main(argv) == 0  # resume: nothing left to run
    assert "compress seed" not in capsys.readouterr().err


def test_compress_flops_target_allocations_reach_the_target_and_are_recorded(tmp_path, capsys):
    """``--flops-target 2`` with either allocation: every VI net has at most half the dense
    FLOPs; ``validation`` is recorded in run.json (a run of the other rule refuses to resume)."""
    base = ["compress", "--data", "digits", "--arch", "lenet300", "--quick", "--seeds", "1",
            "--methods", "dense,ss", "--flops-target", "2", "--no-progress"]
    for alloc in ("uniform", "validation"):
        out = tmp_path / alloc
        assert main([*base, "--allocation", alloc, "--out", str(out)]) == 0
        s = json.loads((out / "summary.json").read_text())
        assert s["ss"]["flops"][0] <= s["dense"]["flops"][0] / 2
        settings = json.loads((out / "run.json").read_text())["settings"]
        assert settings.get("allocation") == (None if alloc == "uniform" else "validation")
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "validation")]) == 2  # default is uniform
    assert "allocation" in capsys.readouterr().err


@pytest.mark.parametrize("extra,msg", [
    (["--methods", "ss"], "dense"),
    (["--methods", "dense,magnitude"], "magnitude prunes"),
    (["--methods", "dense,nope"], "--methods"),
    (["--seeds", "0"], "--seeds"),
])
def test_compress_errors(tmp_path, capsys, extra, msg):
    argv = ["compress", "--data", "digits", "--arch", "lenet300", "--out", str(tmp_path), *extra]
    try:
        rc = main(argv)
    except SystemExit as e:  # an option's type refused it (argparse: one line, exit 2)
        rc = e.code
    assert rc == 2
    assert msg in capsys.readouterr().err
