"""``shrinkdrop gap`` end to end in a tiny configuration (deterministic: fixed seeds)."""

import csv
import json
import math

from shrinkdrop.cli import main
from shrinkdrop.experiments.gap import COLUMNS


def test_gap_verb_writes_csv_plot_and_section(tmp_path):
    out = tmp_path / "gap"
    rc = main(["gap", "--out", str(out), "--families", "bernoulli,inverse_nakagami,half_cauchy",
               "--points", "3", "--samples", "64", "--epochs", "3"])
    assert rc == 0
    rows = list(csv.DictReader((out / "gaps.csv").read_text().splitlines()))
    assert list(rows[0]) == COLUMNS and len(rows) == 9
    by = {(r["family"], float(r["second_moment"])): r for r in rows}
    # truths that are +inf are written as inf, never as a finite number
    assert all(r["gap_hp_exact"] == "inf" for r in rows if r["family"] == "half_cauchy")
    assert all(r["second_moment"] == "inf" for r in rows if r["family"] == "half_cauchy")
    assert by[("bernoulli", 0.001)]["gap_hp_exact"] == "inf"
    assert math.isfinite(float(by[("inverse_nakagami", 0.001)]["gap_hp_exact"]))
    # EP gap vanishes under strong shrinkage
    bern = [r for r in rows if r["family"] == "bernoulli"]
    assert float(bern[0]["gap_ep"]) < float(bern[1]["gap_ep"]) + 3 * float(bern[0]["gap_ep_se"])
    assert (out / "gaps.png").stat().st_size > 1000
    sec = json.loads((out / "section.json").read_text())
    kinds = [b["kind"] for b in sec["blocks"]]
    assert "figure" in kinds and "table" in kinds
    assert "J_EP -> 0" in (out / "verdicts.txt").read_text()


def test_gap_verb_rejects_unknown_family(tmp_path, capsys):
    assert main(["gap", "--out", str(tmp_path), "--families", "laplace"]) == 2
    assert "family has to be one of" in capsys.readouterr().err
