"""``shrinkdrop relevance`` and ``shrinkdrop prune``: end to end at toy sizes, and their errors."""

import csv
import json

import numpy as np
import pytest
import torch

from shrinkdrop.cli import main
from shrinkdrop.data import load_builtin
from shrinkdrop.experiments.relevance import prepare

TINY = ["--epochs", "60", "--restarts", "1", "--gibbs-warmup", "4", "--gibbs-samples", "4",
        "--gibbs-chains", "1", "--ss-sweeps", "50", "--epochs-multiplier", "0.5",
        "--test-samples", "40", "--no-progress"]


def test_relevance_writes_table_auc_plot_and_baselines(tmp_path):
    out = tmp_path / "rel"
    assert main(["relevance", "--data", "diabetes", "--noise-features", "4", *TINY,
                 "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    for key in ("svi", "ard", "gibbs", "linear_ss"):
        assert 0.0 <= s[key]["auc"] <= 1.0 and np.isfinite(s[key]["test_ll"])
    assert s["linear_ss"]["method"] == "enumeration"       # 14 inputs: all 2^14 models
    assert set(s["linear_ss"]) >= {"auc", "test_ll", "test_rmse", "seconds", "method"}
    assert set(s["mc_dropout"]) >= {"bernoulli-mc", "bernoulli-mc+tau"}
    assert set(s["targets"]) == {"AUC >= 0.95", "AUC >= ARDRegression's",
                                 "test LL >= MC dropout's"}
    # the default learns the inclusion rate (keep ~ Beta(1, 1)) in VI and the linear reference
    assert s["svi"]["inclusion_prior"] == s["linear_ss"]["inclusion_prior"] == "uniform"
    (rate,) = s["svi"]["keep_posterior_mean"]
    assert 0.0 < rate < 1.0
    with (out / "relevance.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 14 and sum(r["real"] == "True" for r in rows) == 10
    assert all(0.0 <= float(r["linear SS p(on)"]) <= 1.0 for r in rows)
    assert (out / "relevance.png").stat().st_size > 1000
    assert json.loads((out / "section.json").read_text())["title"].startswith("Relevance")


def test_relevance_continuous_prior_skips_gibbs(tmp_path):
    out = tmp_path / "hc"
    assert main(["relevance", "--data", "diabetes", "--noise-features", "3", "--noise",
                 "half_cauchy", "--no-mc-dropout", *TINY, "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert "gibbs" not in s and s["svi"]["what"] == "1 - E[kappa]"
    assert s["linear_ss"]["method"] == "enumeration"
    assert s["targets"]["test LL >= MC dropout's"] is None


def test_relevance_linear_ss_gibbs_and_skip(tmp_path):
    out = tmp_path / "g"
    assert main(["relevance", "--data", "diabetes", "--noise-features", "6", "--no-mc-dropout",
                 "--no-gibbs", "--ss-g", "2", *TINY, "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    ls = s["linear_ss"]
    assert ls["method"] == "collapsed Gibbs" and ls["g"] == 2.0 and ls["sweeps"] == 50
    assert len(ls["relevance"]) == 16 and ls["auc"] > 0.5
    out = tmp_path / "n"
    assert main(["relevance", "--data", "diabetes", "--noise-features", "2", "--no-mc-dropout",
                 "--no-gibbs", "--no-linear-ss", "--inclusion-prior", "fixed", *TINY,
                 "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert "linear_ss" not in s
    assert s["svi"]["inclusion_prior"] == "fixed" and s["svi"]["keep_posterior_mean"] is None


def test_prepare_appends_noise_columns_standardized_on_train_rows():
    d = prepare(load_builtin("diabetes"), 2, 5, seed=0)
    assert d["X"].shape[1] == 15 and d["is_real"].sum() == 10
    assert np.allclose(d["X"].mean(0).numpy(), 0, atol=1e-12)
    assert d["Xte"].shape[0] + d["X"].shape[0] == 442


@pytest.mark.parametrize("argv, msg", [
    (["--noise-features", "0"], "--noise-features has to be >= 1"),
    (["--keep", "1.5"], "--keep has to be in"),
    (["--restarts", "0"], "--restarts has to be >= 1"),
    (["--ss-g", "0"], "--ss-g has to be a finite number > 0"),
    (["--ss-sweeps", "0"], "--ss-sweeps has to be >= 1"),
    (["--split", "99"], "--split has to be in"),
])
def test_relevance_errors_name_the_argument(tmp_path, capsys, argv, msg):
    assert main(["relevance", "--data", "diabetes", *argv, "--out", str(tmp_path)]) == 2
    assert msg in capsys.readouterr().err


def test_relevance_refuses_classification(tmp_path, capsys):
    assert main(["relevance", "--data", "iris", "--out", str(tmp_path)]) == 2
    assert "needs a regression data set" in capsys.readouterr().err


def test_prune_depth_and_channels(tmp_path):
    out = tmp_path / "d"
    assert main(["prune", "--what", "depth", "--blocks", "2", "--width", "8", "--epochs", "40",
                 "--seeds", "2", "--test-samples", "30", "--no-progress",
                 "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert len(s["rows"]) == 2 and len(s["rows"][0]["p_on"]) == 2
    assert {"ll_full", "ll_pruned", "ll_shallow", "pruned_within_one_se"} <= set(s)
    out = tmp_path / "c"
    assert main(["prune", "--what", "channels", "--channels", "4", "--epochs", "2",
                 "--seeds", "2", "--test-samples", "20", "--no-progress",
                 "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert 0 <= s["removed"][0] <= 4 and 0 < s["acc_full"][0] <= 1
    assert (out / "seeds.csv").exists() and (out / "section.json").exists()


def test_refit_rule_takes_the_largest_removal_within_one_se_of_the_best():
    """Constructed candidates (per-row log-likelihoods, SE of the best 0.1): the best is
    candidate 1; 3 is 0.05 below it (kept), 4 is 0.3 below (not); and a candidate 2 far below
    does not stop the search (the rule looks at each candidate, not at a path)."""
    from shrinkdrop.experiments.prune import largest_within_one_se

    g = torch.Generator().manual_seed(0)
    z = torch.randn(400, generator=g, dtype=torch.float64)
    z = (z - z.mean()) / z.std()  # per-row SD 1 -> SE 0.05 at n = 400

    def cand(m, sd=1.0):
        return m + sd * z

    lls = [cand(-1.0), cand(-0.8, 2.0), cand(-2.0), cand(-0.85), cand(-1.1)]
    assert largest_within_one_se(lls) == 3
    assert largest_within_one_se(lls[:3]) == 1
    assert largest_within_one_se([cand(0.0)]) == 0


def test_prune_errors(tmp_path, capsys):
    assert main(["prune", "--what", "depth", "--blocks", "1", "--out", str(tmp_path)]) == 2
    assert "--blocks has to be >= 2" in capsys.readouterr().err
    assert main(["prune", "--what", "depth", "--fit", "svi", "--out", str(tmp_path)]) == 2
    assert "--rule refit" in capsys.readouterr().err
    assert main(["prune", "--what", "channels", "--threshold", "0", "--out",
                 str(tmp_path)]) == 2
    assert "--threshold has to be in (0, 1)" in capsys.readouterr().err
