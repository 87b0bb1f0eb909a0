"""The ``shrinkdrop mcmc`` verb end to end on tiny settings (seconds, not a statistical check)."""

import json

import pytest

from shrinkdrop.cli import main

TINY = ["--warmup", "8", "--samples", "8", "--chains", "2", "--hidden", "3",
        "--train-size", "40", "--max-tree-depth", "3", "--no-progress"]
KEYS = {"divergences", "min_ess", "max_rhat", "ess_per_second", "test_ll", "test_rmse",
        "seconds", "table"}


@pytest.mark.parametrize("param", ["ep", "hp"])
def test_nuts_run_writes_summary(tmp_path, param):
    out = tmp_path / param
    rc = main(["mcmc", "--data", "diabetes", "--noise", "half_cauchy", "--param", param,
               "--out", str(out), *TINY])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert KEYS <= set(s)
    assert len([r for r in s["table"] if r["site"] == "xi_0"]) == 10
    assert all(0 <= r["relevance"] <= 1 for r in s["table"])
    assert (out / "trace.png").stat().st_size > 0 and (out / "posterior.png").stat().st_size > 0
    sec = json.loads((out / "section.json").read_text())  # the report section (make demo)
    kinds = [b["kind"] for b in sec["blocks"]]
    assert kinds.count("table") == 2 and kinds.count("figure") == 2


def test_depth_zero_is_a_linear_ard_model(tmp_path):
    rc = main(["mcmc", "--data", "diabetes", "--noise", "half_cauchy", "--depth", "0",
               "--out", str(tmp_path), *TINY])
    assert rc == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["layers"] == [10, 1] and set(s["per_site"]) == {"xi_0", "v_0", "b_0", "precision"}
    assert len(s["table"]) == 10


def test_gibbs_run_with_noise_features_and_iw(tmp_path):
    rc = main(["mcmc", "--data", "diabetes", "--noise", "bernoulli", "--noise-features", "3",
               "--precision", "2", "--iw-samples", "64", "--out", str(tmp_path), *TINY])
    assert rc == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert 0 <= s["auc"] <= 1 and 0 <= s["iw"]["auc"] <= 1
    assert s["iw"]["method"] == "conditional" and 0 <= s["iw"]["joint"]["auc"] <= 1
    assert s["iw"]["joint"]["ess"] >= 1 and s["iw"]["ess_min"] >= 1
    assert {r["inclusion"] for r in s["table"]} <= {x / 16 for x in range(17)}


def test_iw_only(tmp_path):
    rc = main(["mcmc", "--data", "diabetes", "--noise", "half_cauchy", "--noise-features", "2",
               "--precision", "2", "--iw-samples", "16", "--iw-only", "--iw-grid", "3",
               "--iw-rounds", "2", "--out", str(tmp_path), *TINY])
    assert rc == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert "divergences" not in s and 0 <= s["iw"]["auc"] <= 1
    assert all(0 <= r["relevance"] <= 1 for r in s["iw"]["table"])


def test_errors_are_reported(tmp_path, capsys):
    assert main(["mcmc", "--data", "diabetes", "--noise", "bernoulli", "--param", "hp",
                 "--out", str(tmp_path)]) == 2
    assert "Gibbs in the EP only" in capsys.readouterr().err
    assert main(["mcmc", "--data", "diabetes", "--noise", "half_cauchy", "--structure", "add",
                 "--depth", "1", "--out", str(tmp_path)]) == 2
    capsys.readouterr()
    assert main(["mcmc", "--data", "diabetes", "--noise", "half_cauchy", "--depth", "-1",
                 "--out", str(tmp_path)]) == 2
    assert "--depth has to be >= 0" in capsys.readouterr().err
    assert main(["mcmc", "--data", "diabetes", "--noise", "half_cauchy", "--hidden", "0",
                 "--out", str(tmp_path)]) == 2
    assert "--hidden has to be >= 1" in capsys.readouterr().err
