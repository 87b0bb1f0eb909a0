"""The ``shrinkdrop priors`` verb end to end, and the report builder."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import pytest

from shrinkdrop.cli import main
from shrinkdrop.experiments.report import Section, build_report, write_section


@pytest.fixture(scope="module")
def priors_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("priors")
    assert main(["priors", "--out", str(out), "--quick", "--samples", "5000"]) == 0
    return out


def test_priors_writes_table_and_plots(priors_out):
    for name in ("table1.csv", "table1.md", "figure1.png", "densities.png", "section.json"):
        assert (priors_out / name).stat().st_size > 0, name
    rows = list(csv.DictReader((priors_out / "table1.csv").read_text().splitlines()))
    assert {r["family"] for r in rows} >= {"Bernoulli", "Rayleigh", "half-Cauchy"}
    for r in rows:
        # every claimed marginal survives its goodness-of-fit test (fixed seed; alpha 1e-3)
        assert float(r["gof_pvalue"]) > 1e-3, r
        assert r["second_moment"] != "nan" and r["var_inv_xi2"] != "nan"
    by = {r["family"]: r for r in rows}
    assert math.isinf(float(by["half-Cauchy"]["second_moment"]))
    assert math.isinf(float(by["Gaussian dropout"]["var_inv_xi2"]))
    assert float(by["inverse Nakagami"]["var_inv_xi2"]) == pytest.approx(2 / (5 * 0.6**2))
    text = (priors_out / "table1.md").read_text()
    assert "not GIG" in text or "not generalized hyperbolic" in text
    sec = json.loads((priors_out / "section.json").read_text())
    assert sum(b["kind"] == "note" for b in sec["blocks"]) >= 2


def test_priors_gof_detects_a_wrong_prior():
    """The p-value column can fail: a 10% wrong scale gives p ~ 0."""
    import torch

    from shrinkdrop import noise as N
    from shrinkdrop.experiments.priors import goodness_of_fit

    wrong = N.Rayleigh(0.55).marginal_prior(1.0)
    _, p = goodness_of_fit(N.Rayleigh(0.5), wrong, 1.0, 20_000, torch.Generator().manual_seed(0))
    assert p < 1e-3


def test_bad_argument_exit_code(tmp_path, capsys):
    assert main(["priors", "--out", str(tmp_path), "--samples", "3"]) == 2
    assert "--samples" in capsys.readouterr().err


def test_report_builder(tmp_path, priors_out):
    other = tmp_path / "other"
    other.mkdir()
    write_section(other, Section("Other", "shrinkdrop other", 1.0).p("hello & <b>").table(
        ["a", "b"], [[1, 2.5]]))
    md, html = build_report(tmp_path, [priors_out, other, tmp_path / "missing"], intro="x")
    text = html.read_text()
    assert "hello &amp; &lt;b&gt;" in text and "figure1.png" in text
    assert "did not produce results: missing" in md.read_text()


def test_report_renders_inline_marks(tmp_path):
    """Sections write Markdown inline marks; the HTML page renders them (escaped first)."""
    sec = tmp_path / "s"
    sec.mkdir()
    write_section(sec, Section("S", "cmd", 2.0).p("**diabetes**: run `shrinkdrop uci` <x>")
                  .note("a **b** c"))
    md, html = build_report(tmp_path, [sec])
    text = html.read_text()
    assert "<strong>diabetes</strong>: run <code>shrinkdrop uci</code> &lt;x&gt;" in text
    assert "a <strong>b</strong> c" in text and "**" not in text.split("<body>")[1]
    assert "**diabetes**" in md.read_text()  # Markdown keeps its marks


def test_python_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "shrinkdrop", "--help"], capture_output=True,
                       text=True, check=True)
    assert "priors" in r.stdout
