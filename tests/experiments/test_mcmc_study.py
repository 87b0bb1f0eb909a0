"""``shrinkdrop mcmc-study`` on tiny settings: units seed-major, the table, resume, mismatch.
(Pyro backend: no compilation; the study itself is an experiment, not a test.)"""

import json

import pytest

from shrinkdrop.cli import main
from shrinkdrop.errors import RunMismatchError
from shrinkdrop.experiments import mcmc_study
from shrinkdrop.experiments.mcmc import McmcOptions

TINY = ["--datasets", "diabetes", "--seeds", "0", "--warmup", "4", "--samples", "4",
        "--chains", "2", "--hidden", "2", "--max-tree-depth", "2", "--train-size", "30",
        "--backend", "pyro", "--no-progress"]


def test_units_are_seed_major():
    base = McmcOptions(data="x", noise="half_cauchy", out="o")
    keys = [u.key for u in mcmc_study.study_units(base, "o", ("a", "/p/b"), (0, 1))]
    assert keys == ["a-ep-seed0", "a-hp-seed0", "b-ep-seed0", "b-hp-seed0",
                    "a-ep-seed1", "a-hp-seed1", "b-ep-seed1", "b-hp-seed1"]


def test_study_runs_resumes_and_refuses_other_settings(tmp_path, monkeypatch):
    out = tmp_path / "study"
    assert main(["mcmc-study", *TINY, "--out", str(out)]) == 0
    rows = [json.loads(f.read_text())["row"] for f in sorted((out / "parts").glob("*.json"))]
    assert [(r["data"], r["param"], r["seed"]) for r in rows] == [
        ("diabetes", "ep", 0), ("diabetes", "hp", 0)]
    assert all(r["n_train"] == 30 and r["divergences"] >= 0 for r in rows)
    table = (out / "table.md").read_text()
    assert "| diabetes | EP | 0 / 1 |" in table and "| diabetes | HP |" in table
    assert (out / "runs" / "diabetes-hp-seed0" / "summary.json").is_file()

    def boom(unit):  # a rerun has nothing left to do
        raise AssertionError(f"{unit.key} ran again")

    monkeypatch.setattr(mcmc_study, "_run_unit", boom)
    assert main(["mcmc-study", *TINY, "--out", str(out)]) == 0
    with pytest.raises(RunMismatchError, match="warmup"):
        mcmc_study.run_study(McmcOptions(data="diabetes", noise="half_cauchy", out=str(out),
                                         warmup=5, samples=4, chains=2, hidden=2,
                                         max_tree_depth=2, train_size=30, backend="pyro",
                                         target_accept=0.9), out, datasets=("diabetes",),
                             seeds=(0,), progress=False)
