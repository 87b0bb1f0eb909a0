"""``shrinkdrop uci``: resume, atomic results, selection, bad input, --jobs (with a fake trainer).

The runner machinery is tested with a fast deterministic fake in place of training
(``train_eval``), so these tests do not depend on training speed; one small real smoke run
checks the integration with ``shrinkdrop.fit``.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from shrinkdrop.cli import main
from shrinkdrop.data import resolve_data
from shrinkdrop.errors import RunMismatchError
from shrinkdrop.experiments import uci
from shrinkdrop.experiments.runner import write_csv_atomic

_spec = importlib.util.spec_from_file_location(
    "_shrinkdrop_test_data", Path(__file__).resolve().parents[1] / "test_data.py")
_td = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_td)
make_uci = _td.make_uci


def fake_train_eval(task: uci.UnitTask) -> dict:
    """Deterministic stand-in for training: numbers depend on the split's data and the method."""
    h = zlib.crc32(task.method.encode()) % 1000 / 1000.0
    return {"config": task.configs[0].label(), "val_ll": -h - 0.01 * task.split,
            "test_rmse": float(np.std(task.y_test)) + h, "test_ll": -1.0 - h,
            "test_rmse_mean": float("nan"), "test_error": float("nan"), "seconds": 0.0}


CALLS: list[str] = []


def counting_train_eval(task):
    CALLS.append(task.key)
    return fake_train_eval(task)


class Boom(RuntimeError):
    pass


def exploding_after(k):
    def f(task):
        if len(CALLS) >= k:
            raise Boom("simulated interruption")
        return counting_train_eval(task)
    return f


def read_rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


METHODS = ["bernoulli-mc", "gaussian-marginal_map", "beta-tail_adaptive"]


def _run(tmp_path, out, train_eval=fake_train_eval, jobs=1, **kw):
    data = resolve_data(tmp_path / "toy")
    kw.setdefault("methods", METHODS)
    return uci.run_uci(data, out, settings=uci.Settings(epochs_multiplier=1, test_samples=10),
                       jobs=jobs, train_eval=train_eval, progress=False, **kw)


def test_results_and_selection(tmp_path):
    make_uci(tmp_path, n_splits=3)
    out = tmp_path / "out"
    _run(tmp_path, out)
    rows = read_rows(out)
    assert len(rows) == 9
    for col in ("dataset", "split", "method", "test_rmse", "test_ll", "selected", "config"):
        assert col in rows[0]
    for k in range(3):
        sel = [r for r in rows if r["split"] == str(k) and r["selected"] == "1"]
        assert len(sel) == 1
        best = max((r for r in rows if r["split"] == str(k)), key=lambda r: float(r["val_ll"]))
        assert sel[0]["method"] == best["method"]
    summary = (out / "summary.md").read_text()
    assert "reference MC dropout (100x epochs" in summary
    assert "Per-split wins" in summary and "Protocol" in summary
    assert (out / "section.json").is_file()


def test_interrupt_then_resume_without_duplicates(tmp_path):
    make_uci(tmp_path, n_splits=2)
    out = tmp_path / "out"
    CALLS.clear()
    with pytest.raises(Boom):
        _run(tmp_path, out, train_eval=exploding_after(4))
    assert len(read_rows(out)) == 4  # only finished units, each complete
    assert not list(out.rglob("*.tmp"))
    done = list(CALLS)
    CALLS.clear()
    # the same arguments resume: only the 2 missing units run (same function name recorded)
    data = resolve_data(tmp_path / "toy")
    s = uci.Settings(epochs_multiplier=1, test_samples=10)
    uci.run_uci(data, out, settings=s, methods=METHODS, progress=False,
                train_eval=_named_like(counting_train_eval, exploding_after(99)))
    assert len(CALLS) == 2 and not set(CALLS) & set(done)
    rows = read_rows(out)
    keys = [(r["split"], r["method"]) for r in rows]
    assert len(rows) == 6 and len(set(keys)) == 6
    assert sum(r["selected"] == "1" for r in rows) == 2
    # a third run has nothing to do
    CALLS.clear()
    uci.run_uci(data, out, settings=s, methods=METHODS, progress=False,
                train_eval=_named_like(counting_train_eval, exploding_after(99)))
    assert CALLS == [] and len(read_rows(out)) == 6


def _named_like(fn, like):
    """``fn`` under ``like``'s qualified name (the recorded trainer must match to resume)."""
    def g(task):
        return fn(task)
    g.__module__, g.__qualname__ = like.__module__, like.__qualname__
    return g


def test_mismatched_settings_refused(tmp_path):
    make_uci(tmp_path)
    out = tmp_path / "out"
    _run(tmp_path, out)
    before = (out / "results.csv").read_text()
    data = resolve_data(tmp_path / "toy")
    with pytest.raises(RunMismatchError, match="epochs_multiplier"):
        uci.run_uci(data, out, settings=uci.Settings(epochs_multiplier=2, test_samples=10),
                    methods=METHODS, train_eval=fake_train_eval, progress=False)
    assert (out / "results.csv").read_text() == before


def test_jobs_2_equals_jobs_1(tmp_path):
    make_uci(tmp_path, n_splits=2)
    _run(tmp_path, tmp_path / "one", methods=METHODS[:2])
    _run(tmp_path, tmp_path / "two", jobs=2, methods=METHODS[:2])
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in read_rows(tmp_path / "one")]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"}
                     for r in read_rows(tmp_path / "two")]


# ---------------------------------------------------------------------------- CLI, bad input
def _cli_bad(tmp_path, capsys, edit, message, extra=()):
    root = make_uci(tmp_path)
    edit(root / "data")
    out = tmp_path / "out"
    rc = main(["uci", "--data", str(root), "--out", str(out), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err
    assert not out.exists()  # nothing half-written
    return err


def _set(name, lineno, text):
    def edit(ddir):
        _td._edit(ddir / name, lineno, text)
    return edit


@pytest.mark.parametrize("edit,message", [
    (lambda d: (d / "data.txt").unlink(), "data.txt: file not found"),
    (_set("data.txt", 9, "1 2 3"), "data.txt line 9: expected 4 numbers, got 3"),
    (_set("data.txt", 4, "1 x 3 4"), "data.txt line 4: 'x' is not a number"),
    (_set("index_train_0.txt", 5, "600"),
     "index_train_0.txt line 5: index 600 out of range for 30 rows"),
    (lambda d: (d / "index_test_1.txt").write_text(""), "split 1 has an empty test set"),
])
def test_cli_bad_input(tmp_path, capsys, edit, message):
    _cli_bad(tmp_path, capsys, edit, message)


def test_cli_split_that_does_not_exist(tmp_path, capsys):
    _cli_bad(tmp_path, capsys, lambda d: None,
             "split 7 requested but toy has 2 splits (0-1)", extra=["--splits", "0,7"])


def test_cli_missing_data_dir(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["uci", "--data", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "no such directory" in capsys.readouterr().err and not out.exists()


def test_cli_trailing_blank_line_and_fake_run(tmp_path, monkeypatch, capsys):
    root = make_uci(tmp_path)
    f = root / "data" / "data.txt"
    f.write_text(f.read_text() + "\n")
    monkeypatch.setattr(uci.run, "evaluate_unit", fake_train_eval)
    out = tmp_path / "out"
    assert main(["uci", "--data", str(root), "--out", str(out), "--quick", "--no-progress",
                 "--engine", "sequential"]) == 0
    rows = read_rows(out)
    assert {r["method"] for r in rows} == set(uci.QUICK_METHODS)
    assert sorted({r["split"] for r in rows}) == ["0", "1"]


def test_matched_noise_variances():
    from shrinkdrop.noise import FAMILIES

    for fam in ("bernoulli", "gaussian", "inverse_nakagami", "beta", "uniform"):
        for p in (0.005, 0.05, 0.1):
            n = FAMILIES[fam](**uci.matched_noise(fam, p))
            cv2 = float(n.variance) / float(n.mean) ** 2
            assert cv2 == pytest.approx(p / (1 - p), rel=2e-3), (fam, p)
    assert uci.matched_noise("uniform", 0.3) is None  # needs p / (1 - p) <= 1/3


def test_real_smoke(tmp_path):
    """Two real units through shrinkdrop.fit on a tiny set (a few seconds)."""
    make_uci(tmp_path, n=40, n_splits=1)
    data = resolve_data(tmp_path / "toy")
    out = tmp_path / "out"
    uci.run_uci(data, out, settings=uci.Settings(epochs_multiplier=1, test_samples=20,
                                                 train_samples=2, quick=True),
                methods=["bernoulli-mc", "half_cauchy-marginal_map"], progress=False)
    rows = read_rows(out)
    assert len(rows) == 2 and sum(r["selected"] == "1" for r in rows) == 1
    for r in rows:
        assert np.isfinite(float(r["test_ll"])) and np.isfinite(float(r["val_ll"]))


# ---------------------------------------------------------------------------- MCMC methods
def test_mcmc_method_end_to_end(tmp_path):
    """half_cauchy-mcmc (NUTS) and bernoulli-mcmc (Gibbs + NUTS) at --quick-like sizes."""
    import torch

    torch.set_num_threads(1)
    make_uci(tmp_path, n=40, n_splits=1)
    data = resolve_data(tmp_path / "toy")
    out = tmp_path / "out"
    # engine "sequential": the resume check below injects a train_eval (called unit by unit)
    s = uci.Settings(epochs_multiplier=1, test_samples=10, quick=True, mcmc_warmup=10,
                     mcmc_samples=10, engine="sequential")
    methods = ["half_cauchy-mcmc", "bernoulli-mcmc"]
    uci.run_uci(data, out, settings=s, methods=methods, progress=False)
    rows = read_rows(out)
    assert [r["method"] for r in rows] == methods
    assert sum(r["selected"] == "1" for r in rows) == 1
    for r in rows:
        for col in ("test_ll", "val_ll", "test_rmse"):
            assert np.isfinite(float(r[col])), (r["method"], col)
        assert "precision learnt" in r["config"] and r["epochs"] == "0"
        assert "chain(s) x (10 warm-up + 10 draws), tree depth 4" in r["note"]
    assert rows[1]["note"].startswith("Gibbs+NUTS")
    summary = (out / "summary.md").read_text()
    assert "MCMC settings: 1 chain(s) x (10 warm-up + 10 draws)" in summary
    assert "MCMC only" in summary and "Skipped" not in summary
    # resumable: a rerun finds every unit done and changes nothing
    parts = {f.name: f.read_text() for f in (out / "parts").iterdir()}
    uci.run_uci(data, out, settings=s, methods=methods, progress=False,
                train_eval=_named_like(exploding_after(0), uci.evaluate_unit))
    assert {f.name: f.read_text() for f in (out / "parts").iterdir()} == parts


def test_mcmc_skipped_above_row_threshold(tmp_path, monkeypatch):
    make_uci(tmp_path, n_splits=2)  # 24 training rows per split
    monkeypatch.setattr(uci.run, "evaluate_unit", counting_train_eval)
    CALLS.clear()
    out = tmp_path / "out"
    assert main(["uci", "--data", str(tmp_path / "toy"), "--out", str(out), "--no-progress",
                 "--methods", "bernoulli-mc,half_cauchy-mcmc", "--mcmc-max-rows", "10",
                 "--engine", "sequential",
                 "--epochs-multiplier", "1", "--test-samples", "10"]) == 0
    assert sorted(CALLS) == ["toy|split=0|method=bernoulli-mc", "toy|split=1|method=bernoulli-mc"]
    rows = read_rows(out)
    assert len(rows) == 4  # still one row per (split, method)
    for k in ("0", "1"):
        sel = [r for r in rows if r["split"] == k and r["selected"] == "1"]
        assert len(sel) == 1 and sel[0]["method"] == "bernoulli-mc"
    skipped = [r for r in rows if r["method"] == "half_cauchy-mcmc"]
    reason = "skipped: the training split has 24 rows > --mcmc-max-rows 10"
    for r in skipped:
        assert r["note"].startswith(reason) and np.isnan(float(r["test_ll"]))
    summary = (out / "summary.md").read_text()
    assert "half_cauchy-mcmc (skipped on 2 split(s))" in summary
    assert f"- half_cauchy-mcmc, split(s) 0, 1: {reason}" in summary
    assert '"mcmc_max_rows": 10' in (out / "run.json").read_text()
    # under the threshold the same unit runs
    CALLS.clear()
    assert main(["uci", "--data", str(tmp_path / "toy"), "--out", str(tmp_path / "o2"),
                 "--no-progress", "--methods", "half_cauchy-mcmc", "--splits", "0",
                 "--mcmc-max-rows", "24", "--epochs-multiplier", "1"]) == 0
    assert CALLS == ["toy|split=0|method=half_cauchy-mcmc"]


def test_bad_method_lists_valid_ones(tmp_path, capsys):
    root = make_uci(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["uci", "--data", str(root), "--out", str(tmp_path / "out"),
              "--methods", "half_cauchy-mcmcc"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown method 'half_cauchy-mcmcc'" in err
    for m in ("bernoulli-mc", "half_cauchy-mcmc", "inverse_nakagami-mcmc", "bernoulli-mcmc"):
        assert m in err
    with pytest.raises(ValueError, match="inverse_nakagami-mcmc.*but got 'nope-mcmc'"):
        uci.run_uci(resolve_data(root), tmp_path / "out", methods=["nope-mcmc"],
                    progress=False)
    assert not (tmp_path / "out").exists()


def test_mcmc_method_names_and_settings():
    assert {"half_cauchy-mcmc", "inverse_nakagami-mcmc", "bernoulli-mcmc"} <= set(
        uci.MCMC_METHODS)
    assert uci.parse_methods("all") == list(uci.METHODS)  # MCMC is not in 'all'
    assert uci.parse_methods("mcmc") == list(uci.MCMC_METHODS)
    assert uci.parse_methods("rayleigh") == [f"rayleigh-{o}" for o in uci.OBJECTIVES]
    # the MCMC fields stay out of run.json at their defaults (older runs still resume)
    assert not any(k.startswith("mcmc_") for k in uci.Settings().record())
    assert uci.Settings(mcmc_chains=3).record()["mcmc_chains"] == 3
    assert uci.Settings().mcmc_sizes() == uci.MCMC_DEFAULTS
    assert uci.Settings(quick=True, mcmc_samples=7).mcmc_sizes() == {**uci.MCMC_QUICK,
                                                                     "samples": 7}
    data = resolve_data("diabetes")[0]
    cfgs = uci.method_configs("inverse_nakagami-mcmc", data)
    assert len(cfgs) == len(data.dropout_rates) and all(np.isnan(c.tau) for c in cfgs)
    assert len(uci.method_configs("half_cauchy-mcmc", data)) == len(uci.HALF_CAUCHY_SCALES)


def test_cli_builtin_classification_stacked(tmp_path):
    """A built-in classification set through the stacked engine (categorical likelihood)."""
    out = tmp_path / "out"
    assert main(["uci", "--data", "iris", "--out", str(out), "--quick", "--no-progress",
                 "--splits", "3"]) == 0
    rows = read_rows(out)
    assert {r["split"] for r in rows} == {"3"} and sum(r["selected"] == "1" for r in rows) == 1
    assert "## iris" in (out / "summary.md").read_text()



# ------------------------------------------------------------------------- the stacked engine
def _noise_off(task: uci.UnitTask) -> uci.UnitTask:
    """The task with noise-free configurations (Bernoulli keep = 1) at two taus and two
    'rates' (the rate enters the weight decay): training is then deterministic."""
    from dataclasses import replace

    cfgs = tuple(uci.Config("bernoulli", (("keep", 1.0),), rate, tau)
                 for rate in (0.0, 0.5) for tau in (0.5, 2.0))
    return replace(task, configs=cfgs)


@pytest.mark.parametrize("init", ["torch", "keras"])
def test_stacked_engine_equals_sequential_without_noise(tmp_path, init):
    """With the noise switched off both engines are deterministic and must agree: the same
    initialisation seeds, shuffling, loss, weight decay, Adam, selection and scoring."""
    make_uci(tmp_path, n=60, n_splits=3)
    data = resolve_data(tmp_path / "toy")
    s = uci.Settings(epochs_multiplier=0.1, test_samples=3, init=init)
    tasks = [_noise_off(t) for t in uci.make_tasks(data, [0, 1, 2], ["bernoulli-mc"], s)]
    stacked = uci.evaluate_stacked(tasks)
    for t, row in zip(tasks, stacked):
        seq = uci.evaluate_unit(t)
        assert row["config"] == seq["config"]
        for k in ("val_ll", "test_ll", "test_rmse", "test_rmse_mean"):
            assert row[k] == pytest.approx(seq[k], rel=1e-4, abs=1e-5), k


def test_stacked_engine_runs_resumes_and_groups(tmp_path):
    make_uci(tmp_path, n=40, n_splits=3)
    data = resolve_data(tmp_path / "toy")
    out = tmp_path / "out"
    s = uci.Settings(epochs_multiplier=0.25, test_samples=20, train_samples=2, quick=True)
    tasks = uci.make_tasks(data, [0, 1, 2], ["bernoulli-mc", "half_cauchy-marginal_map"], s)
    groups = uci.make_groups(tasks, jobs=2)
    assert sorted(len(g[1]) for g in groups) == [1, 1, 2, 2]  # 3 splits over 2 workers
    assert {g[0] for g in groups} == {"stacked"}
    assert len(uci.make_groups(tasks, stack_splits=1)) == 6
    uci.run_uci(data, out, splits=[0, 1], settings=s,
                methods=["bernoulli-mc", "half_cauchy-marginal_map"], progress=False)
    rows = read_rows(out)
    assert len(rows) == 4 and sum(r["selected"] == "1" for r in rows) == 2
    assert all("stacked engine" in r["note"] for r in rows)
    import json

    took = json.loads((out / "section.json").read_text())["seconds"]  # the report's "took"
    assert took == pytest.approx(sum(float(r["seconds"]) for r in rows)) and took > 0
    for r in rows:
        assert np.isfinite(float(r["test_ll"])) and np.isfinite(float(r["test_rmse"]))
        if r["method"].startswith("half_cauchy"):  # no weight-scaling rule: infinite mean
            assert r["test_rmse_mean"] == "nan"
    before = {f.name: f.stat().st_mtime_ns for f in (out / "parts").glob("*.json")}
    uci.run_uci(data, out, splits=[0, 1, 2], settings=s,
                methods=["bernoulli-mc", "half_cauchy-marginal_map"], progress=False)
    after = {f.name: f.stat().st_mtime_ns for f in (out / "parts").glob("*.json")}
    assert all(after[k] == v for k, v in before.items())  # finished units not redone
    assert len(read_rows(out)) == 6
    with pytest.raises(RunMismatchError, match="engine"):
        uci.run_uci(data, out, settings=replace_engine(s, "sequential"),
                    methods=["bernoulli-mc"], progress=False)
    with pytest.raises(ValueError, match="stack_splits"):
        uci.run_uci(data, tmp_path / "o2", settings=s, progress=False, stack_splits=-1)


# ------------------------------------------------------------ +tau: the precision fitted
def test_tau_method_names_and_seeds():
    assert uci.parse_methods("all+tau") == list(uci.TAU_METHODS)
    assert uci.parse_methods("bernoulli+tau") == [f"bernoulli-{o}+tau" for o in uci.OBJECTIVES]
    assert uci.parse_methods("bernoulli-mc,bernoulli-mc+tau") == ["bernoulli-mc",
                                                                 "bernoulli-mc+tau"]
    for bad in ("bernoulli-mcmc+tau", "bernoulli-mc+tau+tau"):
        with pytest.raises(Exception, match="unknown method"):
            uci.parse_methods(bad)
    assert uci.base_method("gaussian-marginal_map+tau") == "gaussian-marginal_map"
    s = uci.Settings()
    # the twin has its base method's seed: the same networks
    assert uci.unit_seed(s, "d", 3, "bernoulli-mc+tau") == uci.unit_seed(s, "d", 3,
                                                                           "bernoulli-mc")
    assert uci.unit_seed(s, "d", 3, "gaussian-mc") != uci.unit_seed(s, "d", 3, "bernoulli-mc")
    i = uci.ALL_METHODS.index("bernoulli-mc")
    assert uci.ALL_METHODS[i + 1] == "bernoulli-mc+tau"  # tables show the twins side by side


def test_tau_refused_for_classification(tmp_path, capsys):
    with pytest.raises(ValueError, match="precision, but data set iris is classification"):
        uci.run_uci(resolve_data("iris"), tmp_path / "o", methods=["bernoulli-mc+tau"],
                    progress=False)
    assert not (tmp_path / "o").exists()
    assert main(["uci", "--data", "iris", "--out", str(tmp_path / "o"), "--methods",
                 "bernoulli+tau", "--no-progress"]) == 2
    assert "use bernoulli-mc, bernoulli-marginal_map" in capsys.readouterr().err


def test_tau_twins_share_one_training(tmp_path, monkeypatch):
    """A method and its +tau twin on the same splits are one stacked training (grid + refit)
    whose networks both rows use: where they choose the same grid point, the refit is the same
    network scored on the same draws, so the MC and weight-scaling RMSEs are identical."""
    import shrinkdrop.ensemble as E

    calls = []
    real = E.fit_stacked

    def counting(net, *a, **k):
        calls.append(net.n_models)
        return real(net, *a, **k)

    monkeypatch.setattr(E, "fit_stacked", counting)
    make_uci(tmp_path, n=50, n_splits=2)
    data = resolve_data(tmp_path / "toy")
    s = uci.Settings(epochs_multiplier=0.25, test_samples=30, quick=True)
    methods = ["bernoulli-mc", "bernoulli-mc+tau"]
    tasks = uci.make_tasks(data, [0, 1], methods, s)
    groups = uci.make_groups(tasks, stack_splits=1)
    assert [sorted(t.method for t in g[1]) for g in groups] == [methods, methods]
    out = tmp_path / "out"
    uci.run_uci(data, out, settings=s, methods=methods, progress=False)
    n_grid = len(uci.method_configs("bernoulli-mc", data[0], quick=True))
    assert calls[0] == 2 * n_grid and len(calls) == 2 and calls[1] <= 4  # one grid, one refit
    rows = read_rows(out)
    assert len(rows) == 4 and sum(r["selected"] == "1" for r in rows) == 2
    for k in ("0", "1"):
        plain, fitted = (next(r for r in rows if r["split"] == k and r["method"] == m)
                         for m in methods)
        tau = float(fitted["config"].split("fitted_tau=")[1])
        assert tau > 0 and "fitted_tau" not in plain["config"]
        if fitted["config"].startswith(plain["config"] + " "):
            assert fitted["test_rmse"] == plain["test_rmse"]
            assert fitted["test_rmse_mean"] == plain["test_rmse_mean"]
    assert "bernoulli-mc+tau" in (out / "summary.md").read_text()


def test_tau_twin_both_engines_without_noise(tmp_path, monkeypatch):
    """Noise off, every draw is the same, so the fitted precision is the Gaussian maximum
    1 / mse. The +tau validation score is cross-fitted (each half of the rows at the tau of
    the other half): below the in-sample maximum -log(2 pi e / tau) / 2, which it equals when
    both 'halves' are all rows. The sequential and stacked engines agree on all of it."""
    make_uci(tmp_path, n=60, n_splits=2)
    data = resolve_data(tmp_path / "toy")
    s = uci.Settings(epochs_multiplier=0.1, test_samples=3)
    tasks = [_noise_off(t) for t in uci.make_tasks(data, [0, 1], ["bernoulli-mc",
                                                                  "bernoulli-mc+tau"], s)]

    def in_sample(row):
        tau = float(row["config"].split("fitted_tau=")[1])
        return 0.5 * math.log(tau / (2 * math.pi)) - 0.5

    stacked = uci.evaluate_stacked(tasks)
    by = {(t.split, t.method): r for t, r in zip(tasks, stacked)}
    for k in (0, 1):
        fitted = by[(k, "bernoulli-mc+tau")]
        assert fitted["val_ll"] < in_sample(fitted) - 1e-4
    for t, row in zip(tasks, stacked):
        seq = uci.evaluate_unit(t)
        assert row["config"].split(" fitted_tau=")[0] == seq["config"].split(" fitted_tau=")[0]
        if t.fit_tau:
            assert float(row["config"].split("=")[-1]) == pytest.approx(
                float(seq["config"].split("=")[-1]), rel=1e-3)
        for key in ("val_ll", "test_ll", "test_rmse", "test_rmse_mean"):
            assert row[key] == pytest.approx(seq[key], rel=1e-3, abs=1e-4), (t.method, key)
    with pytest.raises(ValueError, match="needs at least 2 validation rows"):
        uci.scoring.tau_folds(1)
    monkeypatch.setattr(uci.stacked, "tau_folds", lambda n: (np.ones(n, bool), np.ones(n, bool)))
    for t, row in zip(tasks, uci.evaluate_stacked(tasks)):
        if t.fit_tau:
            assert row["val_ll"] == pytest.approx(in_sample(row), abs=1e-4)
            assert row["val_ll"] >= by[(t.split, "bernoulli-mc")]["val_ll"] - 1e-9


def replace_engine(s, engine):
    from dataclasses import replace

    return replace(s, engine=engine)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_init_is_recorded_only_when_not_the_default(tmp_path):
    """Runs from before ``--init`` existed (torch's initialisation) still resume; a Keras-init
    run records it, so the two never mix in one OUT."""
    assert "init" not in uci.Settings().record()
    assert uci.Settings(init="keras").record()["init"] == "keras"
    with pytest.raises(ValueError, match="init has to be one of"):
        uci.run_uci(resolve_data("diabetes"), tmp_path / "o", settings=uci.Settings(init="he"))
    assert not (tmp_path / "o").exists()


def test_summary_numbers_keep_two_significant_figures_of_the_error():
    """naval's RMSE (0.0008 +- 0.00005) once printed as "0.001 ± 0.000": the decimals follow the
    standard error, never fewer than 3."""
    from shrinkdrop.experiments.stats import pm as _pm

    assert _pm(0.000813, 0.0000487) == "0.000813 ± 0.000049"
    assert _pm(-2.40912, 0.04981) == "-2.409 ± 0.050"
    assert _pm(4.4489, 0.0031) == "4.4489 ± 0.0031"
    assert _pm(-2.892, float("nan")) == "-2.892"
    assert _pm(0.000813, float("nan")) == "0.00081"
    assert _pm(float("nan"), 0.1) == "-"
    assert _pm(1.0, 0.0) == "1.000 ± 0.000"


def _load_uci_table():
    spec = importlib.util.spec_from_file_location(
        "_uci_table", Path(__file__).resolve().parents[2] / "benchmarks" / "uci_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write_table_inputs(data, res, ref_ll, ref_rm, ours):
    """Reference files under ``data/<name>/reference`` and a results.csv under ``res/<name>``
    with, per split, a selected gaussian-mc row and an unselected bernoulli-mc row."""
    for name in ours:
        (data / name / "reference").mkdir(parents=True)
        np.savetxt(data / name / "reference" / "test_ll_100_xepochs_1_hidden_layers.txt",
                   ref_ll[name])
        np.savetxt(data / name / "reference" / "test_MC_rmse_100_xepochs_1_hidden_layers.txt",
                   ref_rm[name])
        (res / name).mkdir(parents=True)
        with open(res / name / "results.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["dataset", "split", "method", "test_rmse",
                                               "test_ll", "selected", "epochs", "note"])
            w.writeheader()
            for k, (sel, mc, rm) in enumerate(ours[name]):
                w.writerow(dict(dataset=name, split=k, method="gaussian-mc", test_rmse=rm,
                                test_ll=sel, selected=1, epochs=4000, note=""))
                w.writerow(dict(dataset=name, split=k, method="bernoulli-mc", test_rmse=rm,
                                test_ll=mc, selected=0, epochs=4000, note=""))


def test_uci_table_counts_wins_against_the_reference_on_the_same_splits(tmp_path):
    """The README's table: selected vs reference on the splits run (not all reference splits),
    paired differences, a win is a higher mean LL, an RMSE is ok within one reference SE."""
    ut = _load_uci_table()
    data, res = tmp_path / "data", tmp_path / "res"
    ref_ll = {"a": [-1.0, -2.0, -9.0], "b": [1.0, 1.2, 0.0]}
    ref_rm = {"a": [1.0, 1.2, 5.0], "b": [0.00080, 0.00070, 0.0]}
    ours = {"a": [(-0.9, -1.0, 1.1), (-1.9, -2.1, 1.5)],  # (selected LL, mc LL, RMSE)
            "b": [(0.9, 0.9, 0.00081), (1.1, 1.1, 0.00072)]}
    _write_table_inputs(data, res, ref_ll, ref_rm, ours)
    text = ut.table(res, data)
    a = next(line for line in text.splitlines() if line.startswith("| a |"))
    b = next(line for line in text.splitlines() if line.startswith("| b |"))
    # a: selected -1.4 vs reference -1.5 on splits 0, 1 (split 2's -9 must not count)
    assert "| -1.400 ± 0.500 | -1.550 ± 0.550 | -1.500 ± 0.500 | 0.100 ± 0.000 | yes |" in a
    assert a.endswith("| 1.300 ± 0.200 | 1.100 ± 0.100 | no |")  # 1.3 > 1.1 + 0.1
    # b: LL loses by 0.1; RMSE 0.000765 within 0.00075 +- 0.00005, printed with enough decimals
    assert "| no | 0.000765 ± 0.000045 |" in b and b.endswith("| yes |")
    assert "Selected beats the reference test LL on 1/2 data sets; RMSE within one reference " \
           "standard error on 1/2 (" in text


def test_uci_table_counts_sets_not_run_or_partial_as_not_met(tmp_path):
    """A data set of the data root without results is a 'not run' row; one run on fewer than
    its standard splits (data/n_splits.txt) is shown as partial; neither counts as met, so the
    count is always out of every data set (here 1/3, where a and c alone would say 2/2)."""
    ut = _load_uci_table()
    data, res = tmp_path / "data", tmp_path / "res"
    ours = {"a": [(-0.9, -1.0, 1.0), (-1.9, -2.1, 1.0)], "c": [(0.0, 0.0, 1.0)]}
    _write_table_inputs(data, res, {"a": [-1.0, -2.0], "c": [-1.0, -1.0]},
                        {"a": [1.0, 1.0], "c": [1.0, 1.0]}, ours)
    for name, n_splits in (("a", 2), ("c", 2), ("d", 20)):
        (data / name / "data").mkdir(parents=True)
        (data / name / "data" / "n_splits.txt").write_text(f"{n_splits}\n")
    text = ut.table(res, data)
    rows = {line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| ")}
    assert rows["a"].split(" | ")[1] == "2" and "| yes |" in rows["a"]
    assert rows["c"].split(" | ")[1] == "1 of 2 (partial)" and "| yes |" not in rows["c"]
    assert "not run" in rows["d"] and rows["d"].endswith("| no |")
    assert "on 1/3 data sets; RMSE within one reference standard error on 1/3 (" in text


def test_uci_table_pairs_two_methods_with_a_paired_t_test(tmp_path):
    """``uci_table.py --pair A,B``: B - A per split, mean ± SE and the paired t-test p-value
    (checked against scipy.stats.ttest_rel), beside the reference on the same splits."""
    from scipy import stats

    ut = _load_uci_table()
    data, res = tmp_path / "data", tmp_path / "res"
    sel = [-0.90, -1.95, -1.40, -1.02]
    mc = [-1.00, -2.00, -1.50, -1.00]
    _write_table_inputs(data, res, {"a": [-1.0, -2.0, -1.5, -1.1, -9.0]},
                        {"a": [1.0, 1.2, 1.1, 1.0, 5.0]},
                        {"a": [(s, m, 1.0) for s, m in zip(sel, mc)]})
    text = ut.paired_table(res, res, data, ("mc", "gauss"), ("bernoulli-mc", "gaussian-mc"))
    row = next(line for line in text.splitlines() if line.startswith("| a |")).split(" | ")
    d = np.subtract(sel, mc)
    p = stats.ttest_rel(sel, mc).pvalue
    assert row[1] == "4"
    assert row[4] == f"{d.mean():.3f} ± {d.std(ddof=1) / 2:.3f}" == "0.058 ± 0.028"
    assert row[5] == f"{p:.2g}"
    assert row[6] == "-1.400 ± 0.227"  # reference on splits 0-3 only (split 4's -9 left out)
    # the same method on both sides: no difference
    same = ut.paired_table(res, res, data, ("x", "y"))
    assert "| 0.000 ± 0.000 |" in same


def test_uci_table_by_method_pairs_every_method_with_mc_dropout(tmp_path):
    """``uci_table.py --by-method``: per data set and method, mean ± SE test LL, the paired
    difference to bernoulli-mc with scipy's paired t-test, and the times selected."""
    from scipy import stats

    ut = _load_uci_table()
    data, res = tmp_path / "data", tmp_path / "res"
    sel = [-0.90, -1.95, -1.40, -1.02]
    mc = [-1.00, -2.00, -1.50, -1.00]
    _write_table_inputs(data, res, {"a": [-1.0] * 4}, {"a": [1.0] * 4},
                        {"a": [(s, m, 1.0) for s, m in zip(sel, mc)]})
    rows = [line.split(" | ") for line in ut.methods_table(res).splitlines()[2:]]
    assert [r[1] for r in rows] == ["bernoulli-mc", "gaussian-mc"]  # MC dropout first
    base, gauss = rows
    assert base[4:6] == ["-", "-"] and base[7] == "0/4 |"
    d = np.subtract(sel, mc)
    assert gauss[3] == f"{np.mean(sel):.3f} ± {np.std(sel, ddof=1) / 2:.3f}"
    assert gauss[4] == f"{d.mean():.3f} ± {d.std(ddof=1) / 2:.3f}"
    assert gauss[5] == f"{stats.ttest_rel(sel, mc).pvalue:.2g}"
    assert gauss[7] == "4/4 |"


def test_summary_names_every_command_run_into_the_folder(tmp_path):
    """A second command with other --methods adds them to the folder; summary.md names both
    commands (commands.txt, in order, no repeats when a command is rerun to resume)."""
    make_uci(tmp_path, n_splits=2)
    out = tmp_path / "out"
    _run(tmp_path, out, methods=["bernoulli-mc"], command="shrinkdrop uci A")
    assert "Command: `shrinkdrop uci A`" in (out / "summary.md").read_text()
    _run(tmp_path, out, methods=["gaussian-marginal_map"], command="shrinkdrop uci B")
    _run(tmp_path, out, methods=["bernoulli-mc"], command="shrinkdrop uci A")
    assert (out / "commands.txt").read_text().splitlines() == ["shrinkdrop uci A",
                                                               "shrinkdrop uci B"]
    text = (out / "summary.md").read_text()
    assert "Commands run into this folder" in text
    assert text.index("- `shrinkdrop uci B`") < text.index("- `shrinkdrop uci A`")  # last: A
    assert {r["method"] for r in read_rows(out)} == {"bernoulli-mc", "gaussian-marginal_map"}


def test_uci_table_write_replaces_only_the_marked_block(tmp_path):
    """``uci_table.py --write FILE``: the lines between the markers are replaced, the rest of
    the file kept byte for byte; a file without the markers is an error naming them and is
    left untouched."""
    ut = _load_uci_table()
    doc = tmp_path / "README.md"
    doc.write_text("head\n<!-- uci-table -->\nold 1\nold 2\n<!-- /uci-table -->\ntail\n")
    ut.write_block(doc, "uci-table", "| new |\n")
    assert doc.read_text() == "head\n<!-- uci-table -->\n| new |\n<!-- /uci-table -->\ntail\n"
    ut.write_block(doc, "uci-table", "| newer |")
    assert doc.read_text() == "head\n<!-- uci-table -->\n| newer |\n<!-- /uci-table -->\ntail\n"
    bare = tmp_path / "bare.md"
    bare.write_text("no markers\n")
    with pytest.raises(SystemExit, match="<!-- uci-by-method -->"):
        ut.write_block(bare, "uci-by-method", "x")
    assert bare.read_text() == "no markers\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "bare.md"]  # no temp


def test_parts_rebuilt_from_results_csv_resume(tmp_path):
    """``benchmarks/restore_parts.py``: a folder whose ``parts/`` is gone (a fresh checkout has
    only results.csv) gets them back from results.csv; republishing is byte-identical, and a
    resume with more splits runs only the new units and keeps the old rows."""
    spec = importlib.util.spec_from_file_location(
        "_restore_parts", Path(__file__).resolve().parents[2] / "benchmarks" / "restore_parts.py")
    rp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rp)
    make_uci(tmp_path, n_splits=3)
    out = tmp_path / "out"
    _run(tmp_path, out, splits=[0, 1])
    before = (out / "results.csv").read_bytes()
    shutil.rmtree(out / "parts")
    assert rp.restore(out)
    assert (out / "results.csv").read_bytes() == before
    CALLS.clear()
    _run(tmp_path, out, splits=[0, 1, 2],
         train_eval=_named_like(counting_train_eval, fake_train_eval))
    assert sorted(CALLS) == sorted(f"toy|split=2|method={m}" for m in METHODS)
    rows = read_rows(out)
    assert len(rows) == 9 and sum(r["selected"] == "1" for r in rows) == 3
    # a results.csv the runner would not have written (a flipped selection) is refused and
    # leaves no parts
    shutil.rmtree(out / "parts")
    rows[0]["selected"] = "0" if rows[0]["selected"] == "1" else "1"
    write_csv_atomic(out / "results.csv", rows, uci.COLUMNS)
    assert not rp.restore(out)
    assert not (out / "parts").exists()
