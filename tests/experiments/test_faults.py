"""Faults a long ``shrinkdrop uci`` run survives: bad part files, ``kill -9`` at any point (here,
with ``--jobs 2`` and on Dask), and the worker processes of a killed driver.

Every run is tiny (a 30-row data set in the UCI layout, 2 splits) and most use a fast fake
trainer, so the file costs a few seconds; one test runs the real stacked engine, where the
splits trained together set the numbers and the notes.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from shrinkdrop.data import resolve_data
from shrinkdrop.experiments import uci
from shrinkdrop.experiments.runner import PartFileWarning, ResultStore, atomic_write_text

_spec = importlib.util.spec_from_file_location(
    "_shrinkdrop_test_data", Path(__file__).resolve().parents[1] / "test_data.py")
_td = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_td)
make_uci = _td.make_uci

SRC = Path(__file__).resolve().parents[2] / "src"
METHODS = ["bernoulli-mc", "bernoulli-mc+tau", "gaussian-mc"]
CALLS: list[str] = []


def fake(task: uci.UnitTask) -> dict:
    """A deterministic stand-in for training (the numbers depend on the split and method)."""
    CALLS.append(task.key)
    h = zlib.crc32(task.method.encode()) % 1000 / 1000.0
    return {"config": task.configs[0].label(), "val_ll": -h - 0.01 * task.split,
            "test_rmse": float(np.std(task.y_test)) + h, "test_ll": -1.0 - h,
            "test_rmse_mean": float("nan"), "test_error": float("nan"), "seconds": 0.0}


def table(out: Path) -> list[dict]:
    """``results.csv`` without the measured seconds."""
    with open(out / "results.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


@pytest.fixture
def toy(tmp_path):
    return resolve_data(make_uci(tmp_path / "data", n=30, d=3, n_splits=2))


def _run(data, out, **kw):
    kw.setdefault("train_eval", fake)
    return uci.run_uci(data, out, methods=METHODS, progress=False, **kw)


def test_bad_parts_are_reported_set_aside_and_recomputed(tmp_path, toy):
    ref = tmp_path / "ref"
    _run(toy, ref)
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    parts = sorted((out / "parts").glob("*.json"))
    assert len(parts) == 6
    truncated, edited, misnamed = parts[0], parts[1], parts[2]
    truncated.write_text(truncated.read_text()[:40])
    rec = json.loads(edited.read_text())
    rec["row"]["test_ll"] = 0.0  # a better number typed in by hand: the checksum catches it
    edited.write_text(json.dumps(rec))
    shutil.copy(parts[3], misnamed)  # a part under another unit's name
    stray = out / "parts" / "notes.json"
    stray.write_text("{not json")
    (out / "parts" / ".x.json.123.tmp").write_text("half")  # an interrupted write
    CALLS.clear()
    with pytest.warns(PartFileWarning) as caught:
        _run(toy, out)
    said = " ".join(str(w.message) for w in caught)
    for f in (truncated, edited, misnamed, stray):
        assert f.name in said and (f.parent / (f.name + ".bad")).exists()
    assert "checksum" in said and "not a readable JSON part" in said
    # the three units whose parts were not sound, nothing else
    assert sorted(CALLS) == sorted(json.loads((ref / "parts" / f.name).read_text())["key"]
                                   for f in (truncated, edited, misnamed))
    assert table(out) == table(ref)
    assert not list((out / "parts").glob(".*.tmp"))
    CALLS.clear()
    _run(toy, out)  # a clean resume: nothing left to do, nothing reported
    assert CALLS == []


def test_kill_at_any_point_then_resume_gives_the_same_table(tmp_path, toy):
    """``kill -9`` between any two atomic writes leaves some finished parts, a stale table and
    maybe a temporary file: every such state resumes to the uninterrupted table."""
    ref = tmp_path / "ref"
    _run(toy, ref)
    order = sorted((ref / "parts").glob("*.json"), key=lambda f: f.stat().st_mtime_ns)
    for k in range(len(order) + 1):
        out = tmp_path / f"k{k}"
        (out / "parts").mkdir(parents=True)
        shutil.copy(ref / "run.json", out / "run.json")
        for f in order[:k]:
            shutil.copy(f, out / "parts" / f.name)
        (out / "results.csv").write_text("dataset,split\n")  # stale
        (out / "parts" / f".{order[-1].name}.x.tmp").write_text('{"key": "trunc')
        CALLS.clear()
        _run(toy, out)
        assert len(CALLS) == len(order) - k
        assert table(out) == table(ref), k


def test_stacked_group_and_its_tau_twin_rerun_whole(tmp_path, toy):
    """The real stacked engine: a truncated part of MC dropout is recomputed together with its
    group (both splits, the +tau twin): the same numbers and the same notes as before."""
    s = uci.Settings(quick=True, epochs_multiplier=0.5, test_samples=10, train_samples=2)
    kw = dict(methods=["bernoulli-mc", "bernoulli-mc+tau"], settings=s, progress=False)
    ref = tmp_path / "ref"
    uci.run_uci(toy, ref, **kw)
    rows = table(ref)
    assert any("networks shared with bernoulli-mc" in r["note"] for r in rows)
    for hit in ("killed", "toy_split=1_method=bernoulli-mc.json"):
        out = tmp_path / hit
        shutil.copytree(ref, out)
        if hit == "killed":  # killed while the group's parts were written: one is missing
            (out / "parts" / "toy_split=0_method=bernoulli-mc_tau.json").unlink()
        else:
            f = out / "parts" / hit
            f.write_text(f.read_text()[:-10])
        before = {f.name: f.stat().st_mtime_ns for f in (out / "parts").glob("*.json")}
        if hit == "killed":
            uci.run_uci(toy, out, **kw)
        else:
            with pytest.warns(PartFileWarning, match="bernoulli-mc.json"):
                uci.run_uci(toy, out, **kw)
        after = {f.name: f.stat().st_mtime_ns for f in (out / "parts").glob("*.json")}
        assert all(after[k] != v for k, v in before.items())  # the whole group ran again
        assert table(out) == rows


def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] not in ("Z", "X")
    except FileNotFoundError:
        return False


SLOW = '''
import os, time, zlib
import numpy as np


def slow(task):
    time.sleep(float(os.environ.get("SLOWFAKE_SLEEP", "0")))  # 1 s in the killed run
    h = zlib.crc32(task.method.encode()) % 1000 / 1000.0
    return {"config": task.configs[0].label(), "val_ll": -h - 0.01 * task.split,
            "test_rmse": float(np.std(task.y_test)) + h, "test_ll": -1.0 - h,
            "test_rmse_mean": float("nan"), "test_error": float("nan"), "seconds": 0.0}
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_with_jobs_2_leaves_no_worker_and_resumes(tmp_path, toy, monkeypatch):
    """``shrinkdrop uci --jobs 2`` killed with SIGKILL mid-run: its two worker processes are
    gone within seconds, and the same command resumes to the uninterrupted table."""
    (tmp_path / "slowfake.py").write_text(SLOW)
    data_dir = tmp_path / "data" / "toy"
    out = tmp_path / "out"
    argv = ["uci", "--data", str(data_dir), "--out", str(out), "--engine", "sequential",
            "--methods", ",".join(METHODS), "--jobs", "2", "--no-progress"]
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import sys
        if __name__ == "__main__":  # the spawned workers import this file too
            import slowfake
            from shrinkdrop.experiments.uci import run
            from shrinkdrop.cli import main
            run.evaluate_unit = slowfake.slow
            sys.exit(main({argv!r}))
    """))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{SRC}", "OMP_NUM_THREADS": "1",
           "SLOWFAKE_SLEEP": "1.0"}
    proc = subprocess.Popen([sys.executable, str(driver)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        t_end = time.monotonic() + 90
        while time.monotonic() < t_end and not list((out / "parts").glob("*.json")):
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        workers = [p for p in _children(proc.pid) if _alive(p)]
        assert len(workers) >= 2, workers  # the pool (and its resource tracker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        t_end = time.monotonic() + 5
        while time.monotonic() < t_end and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not [p for p in workers if _alive(p)], "workers outlived their driver"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()
    done = len(list((out / "parts").glob("*.json")))
    assert 0 < done < 6
    # resume in this process (the same trainer), and an uninterrupted run to compare with
    monkeypatch.syspath_prepend(str(tmp_path))
    import slowfake

    monkeypatch.setattr(uci.run, "evaluate_unit", slowfake.slow)
    from shrinkdrop.cli import main

    # the same command but --jobs 1 (the sequential engine's units do not depend on it; two
    # more spawned workers would double the test's time)
    one = argv[:argv.index("--jobs")] + ["--no-progress"]
    assert main(one) == 0
    assert main([*one[:4], str(tmp_path / "ref"), *one[5:]]) == 0
    assert table(out) == table(tmp_path / "ref")


def test_dask_resume_after_a_kill_gives_the_same_table(tmp_path, toy):
    """On the Dask executor (an in-process cluster): a run cut short (a unit that dies) resumes
    to the table of an uninterrupted run."""
    distributed = pytest.importorskip("distributed")

    ref = tmp_path / "ref"
    _run(toy, ref)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as cluster:
        out = tmp_path / "out"
        shutil.copytree(ref, out)
        for f in sorted((out / "parts").glob("*.json"))[::2]:
            f.unlink()  # what a kill leaves: some parts written, some not
        (out / "parts" / sorted((ref / "parts").glob("*.json"))[1].name).write_text("{")
        CALLS.clear()
        with pytest.warns(PartFileWarning):
            _run(toy, out, executor="dask", scheduler=cluster.scheduler_address)
    assert table(out) == table(ref)


def test_output_files_get_the_umask(tmp_path, toy):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        _run(toy, tmp_path / "o")
    finally:
        os.umask(old)
    files = [tmp_path / "a.txt", tmp_path / "o" / "results.csv", tmp_path / "o" / "run.json",
             *(tmp_path / "o" / "parts").glob("*.json")]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o640, f
    old = os.umask(0o002)
    try:
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o664


def test_a_second_run_into_the_same_out_is_refused(tmp_path, toy):
    from shrinkdrop.errors import RunMismatchError

    store = ResultStore(tmp_path / "o", {}, {})
    with store.locked():
        with pytest.raises(RunMismatchError, match="in use by another run"):
            _run(toy, tmp_path / "o")
    _run(toy, tmp_path / "o")  # the lock is gone with the first run
