"""``shrinkdrop uci --executor dask``: the same units on a Dask cluster, the same results.

Every test here talks only to a cluster this module starts itself: one scheduler and two worker
processes (one thread each) listening on 127.0.0.1, nothing else. Starting it takes ~2 s.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
import time
import zlib
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

from shrinkdrop.cli import main
from shrinkdrop.data import resolve_data
from shrinkdrop.experiments import runner, uci

_spec = importlib.util.spec_from_file_location(
    "_shrinkdrop_test_data", Path(__file__).resolve().parents[1] / "test_data.py")
_td = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_td)
make_uci = _td.make_uci


def read_rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))

# functions of this module travel to the workers by value (the workers need not import it)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster():
    import distributed  # the 'cluster' extra; the Makefile installs it for the tests

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as c:
        assert c.scheduler_address.startswith("tcp://127.0.0.1:")
        yield c


def _parts(out: Path) -> dict[str, dict]:
    """Every part file's record, without the measured ``seconds`` (nor the checksum, which
    covers them)."""
    recs = {}
    for f in sorted((out / "parts").glob("*.json")):
        rec = json.loads(f.read_text())
        rec["row"].pop("seconds")
        rec.pop("sha256")
        recs[f.name] = rec
    return recs


def _csv_without_seconds(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_rows(out)]


TINY = ["--quick", "--splits", "0,1,2", "--epochs-multiplier", "0.05", "--test-samples", "20",
        "--no-progress", "--jobs", "2"]


def test_dask_executor_equals_local(tmp_path, cluster, capsys):
    """The real stacked engine on diabetes (3 splits, MC dropout, its +tau twin, Gaussian
    marginal MAP: 9 units in 4 stacks): the same numbers, bit for bit, on either executor."""
    t0 = time.perf_counter()
    assert main(["uci", "--data", "diabetes", "--out", str(tmp_path / "local"), *TINY]) == 0
    t_local = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert main(["uci", "--data", "diabetes", "--out", str(tmp_path / "dask"), *TINY,
                 "--executor", "dask", "--scheduler", cluster.scheduler_address]) == 0
    t_dask = time.perf_counter() - t0
    # without --jobs the splits are divided over the cluster's worker threads: 2 here
    assert main(["uci", "--data", "diabetes", "--out", str(tmp_path / "slots"), *TINY[:-2],
                 "--executor", "dask", "--scheduler", cluster.scheduler_address]) == 0
    local, dask = _parts(tmp_path / "local"), _parts(tmp_path / "dask")
    assert len(local) == 9 and local == dask and _parts(tmp_path / "slots") == local
    assert _csv_without_seconds(tmp_path / "local") == _csv_without_seconds(tmp_path / "dask")
    assert sum(r["selected"] == "1" for r in read_rows(tmp_path / "dask")) == 3
    assert "--executor dask --scheduler tcp://127.0.0.1:" in \
        (tmp_path / "dask" / "commands.txt").read_text()
    # same settings recorded: a run started on one executor resumes on the other
    assert (tmp_path / "local" / "run.json").read_text() == \
        (tmp_path / "dask" / "run.json").read_text()
    with capsys.disabled():  # the timings the report quotes (pytest -s shows them)
        print(f"\n[tiny uci run] local --jobs 2: {t_local:.1f} s, dask (2 workers, cluster "
              f"already up): {t_dask:.1f} s")


def fake_train_eval(task: uci.UnitTask) -> dict:
    """Deterministic stand-in for training (runs on the workers)."""
    h = zlib.crc32(task.method.encode()) % 1000 / 1000.0
    return {"config": task.configs[0].label(), "val_ll": -h - 0.01 * task.split,
            "test_rmse": float(np.std(task.y_test)) + h, "test_ll": -1.0 - h,
            "test_rmse_mean": float("nan"), "test_error": float("nan"), "seconds": 0.0}


def failing_on_split_1(task: uci.UnitTask) -> dict:
    if task.split == 1:
        raise RuntimeError(f"simulated failure in {task}")
    return fake_train_eval(task)


def _named_like(fn, like):
    """``fn`` under ``like``'s recorded name (the name of train_eval is a recorded setting)."""
    def g(task):
        return fn(task)
    g.__module__, g.__qualname__ = like.__module__, like.__qualname__
    return g


def test_dask_failure_keeps_finished_parts_and_resume_submits_only_the_rest(
        tmp_path, cluster, monkeypatch):
    make_uci(tmp_path, n_splits=3)
    data = resolve_data(tmp_path / "toy")
    out = tmp_path / "out"
    s = uci.Settings(epochs_multiplier=1, test_samples=10)
    methods = ["bernoulli-mc", "gaussian-marginal_map"]
    submitted: list[list[str]] = []
    real = uci.run.run_units

    def spy(fn, tasks, **kw):
        submitted.append([t.key for t in tasks])
        return real(fn, tasks, **kw)

    monkeypatch.setattr(uci.run, "run_units", spy)
    kw = dict(settings=s, methods=methods, progress=False, executor="dask",
              scheduler=cluster.scheduler_address)
    with pytest.raises(RuntimeError, match="simulated failure in toy split 1"):
        uci.run_uci(data, out, train_eval=failing_on_split_1, **kw)
    done = {f"toy|split={r['split']}|method={r['method']}" for r in read_rows(out)}
    assert len(submitted[0]) == 6 and len(done) <= 4
    assert not any("split=1" in k for k in done)  # the failing units left no part
    assert len(list((out / "parts").glob("*.json"))) == len(done)
    assert not list(out.rglob("*.tmp"))
    # the same run again (same recorded train_eval name) submits only the missing units
    uci.run_uci(data, out, train_eval=_named_like(fake_train_eval, failing_on_split_1), **kw)
    assert sorted(submitted[1]) == sorted(set(submitted[0]) - done)
    rows = read_rows(out)
    assert len(rows) == 6 and sum(r["selected"] == "1" for r in rows) == 3
    # a third run has nothing to submit
    uci.run_uci(data, out, train_eval=_named_like(fake_train_eval, failing_on_split_1), **kw)
    assert submitted[2] == []
    # ... and the results match a local run of the same units
    uci.run_uci(data, tmp_path / "local", settings=s, methods=methods, progress=False,
                train_eval=_named_like(fake_train_eval, failing_on_split_1))
    assert _csv_without_seconds(out) == _csv_without_seconds(tmp_path / "local")


def _slow(x):
    time.sleep(0.3)
    return x


def test_interrupt_cancels_the_futures_not_yet_finished(cluster):
    """Ctrl-C (here: raised by on_result at the first result) cancels every other future."""
    import distributed

    got = []

    def on_result(task, result):
        got.append(result)
        raise KeyboardInterrupt

    with distributed.Client(cluster.scheduler_address, timeout=10) as client:
        with pytest.raises(KeyboardInterrupt) as info:
            runner.run_units(_slow, list(range(12)), client=client, on_result=on_result,
                             progress=False)
        assert len(got) == 1
        # the traceback (kept alive in `info`) still references run_units' futures: only an
        # explicit cancel empties the scheduler (12 tasks of 0.3 s on 2 workers: 1.8 s of work)
        t_end = time.monotonic() + 1.0
        while client.run_on_scheduler(_n_tasks) and time.monotonic() < t_end:
            time.sleep(0.05)
        assert client.run_on_scheduler(_n_tasks) == 0  # nothing left queued or held
        assert info.tb is not None


def _n_tasks(dask_scheduler=None) -> int:
    return len(dask_scheduler.tasks)


def test_dask_local_cluster_without_scheduler(tmp_path):
    """--executor dask without --scheduler starts (and closes) its own loopback cluster."""
    make_uci(tmp_path, n_splits=2)
    data = resolve_data(tmp_path / "toy")
    s = uci.Settings(epochs_multiplier=1, test_samples=10)
    uci.run_uci(data, tmp_path / "out", settings=s, methods=["bernoulli-mc"], progress=False,
                train_eval=fake_train_eval, executor="dask", jobs=1)
    assert len(read_rows(tmp_path / "out")) == 2


def test_missing_extra_is_one_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    out = tmp_path / "out"
    rc = main(["uci", "--data", "diabetes", "--out", str(out), "--quick", "--no-progress",
               "--executor", "dask", "--scheduler", "tcp://127.0.0.1:8786"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "pip install 'shrinkdrop[cluster]'" in err and "'cluster' extra" in err
    assert not out.exists()  # nothing written


def test_unreachable_scheduler_and_bad_flags(tmp_path, capsys):
    with pytest.raises(runner.ClusterError, match="could not reach the Dask scheduler at "
                                                   "'tcp://127.0.0.1:1' within 1 s"):
        with runner.dask_client("tcp://127.0.0.1:1", timeout=1):
            pass  # pragma: no cover
    out = tmp_path / "out"
    assert main(["uci", "--data", "diabetes", "--out", str(out), "--quick", "--no-progress",
                 "--scheduler", "tcp://127.0.0.1:8786"]) == 2
    assert "--scheduler tcp://127.0.0.1:8786 needs --executor dask" in capsys.readouterr().err
    assert not out.exists()
    data = resolve_data("diabetes")
    with pytest.raises(ValueError, match="executor has to be one of local, dask, but got 'ray'"):
        uci.run_uci(data, out, executor="ray")
