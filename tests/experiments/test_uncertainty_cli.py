"""``shrinkdrop uncertainty`` on digits (0-4 in, 5-9 out), tiny: outputs, resume, bad input."""

import json

import pytest

from shrinkdrop.cli import main
from shrinkdrop.experiments.uncertainty import build_model, method_names, summarize

TINY = ["uncertainty", "--data", "digits", "--quick", "--epochs", "2", "--samples", "4",
        "--ensemble", "2", "--methods", "plain,mc-dropout,ensemble-2,beta-channel",
        "--no-progress"]


def test_uncertainty_digits_writes_results_and_resumes(tmp_path, capsys):
    out = tmp_path / "u"
    assert main(TINY + ["--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert set(s["methods"]) == {"plain", "mc-dropout", "ensemble-2", "beta-channel"}
    for m in s["methods"].values():
        assert 0 <= m["ece"][0] <= 1 and 0 <= m["auroc_entropy"][0] <= 1 and m["nll"][0] > 0
        assert m["seeds"] == [0, 1]
    assert s["methods"]["plain"]["auroc_mi"][0] == 0.5  # one deterministic pass: MI = 0
    assert s["methods"]["mc-dropout"]["auroc_mi"][0] != 0.5  # MC dropout draws
    assert (out / "reliability.png").stat().st_size > 1000
    sec = json.loads((out / "section.json").read_text())
    assert any(b["kind"] == "figure" for b in sec["blocks"])
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 * 2
    # resume: nothing left to run, same summary; other settings: refused
    before = (out / "results.csv").read_text()
    assert main(TINY + ["--out", str(out)]) == 0
    assert (out / "results.csv").read_text() == before
    capsys.readouterr()
    assert main(TINY[:-1] + ["--rate", "0.4", "--no-progress", "--out", str(out)]) == 2
    assert "different settings" in capsys.readouterr().err


@pytest.mark.parametrize("argv, match", [
    (["--methods", "bernoulli-layer"], "--methods has to be some of"),
    (["--rate", "1.5"], "--rate"),
    (["--seeds", "0"], "--seeds: has to be an integer >= 1"),
])
def test_uncertainty_bad_arguments(tmp_path, capsys, argv, match):
    try:
        rc = main(["uncertainty", "--data", "digits", *argv, "--out", str(tmp_path)])
    except SystemExit as e:  # an option's type refused it (argparse: one line, exit 2)
        rc = e.code
    assert rc == 2
    assert match in capsys.readouterr().err


def test_every_family_and_structure_builds_and_the_summary_flags_wins():
    names = method_names(5)
    from shrinkdrop.noise import FAMILIES

    assert len(names) == 3 + len(FAMILIES) * 2
    for m in names:
        net = build_model(m, 8, 5)
        assert net(__import__("torch").zeros(2, 1, 8, 8)).shape == (2, 5)
    rows = [{"method": m, "seed": s, "accuracy": a, "nll": n, "ece": e, "brier": 0.1,
             "auroc_entropy": u, "auroc_mi": u, "train_seconds": 1.0}
            for s in range(3) for m, a, n, e, u in [
                ("mc-dropout", 0.9, 0.5 + 0.01 * s, 0.05, 0.8),
                ("x", 0.9, 0.4 + 0.02 * s, 0.03, 0.85 + 0.001 * s)]]
    s = summarize(rows, ["mc-dropout", "x"])
    assert s["beat_dropout"] == ["x"] and s["methods"]["x"]["nll_vs_dropout"][0] > 0
