"""Machinery for long experiment runs: atomic result files, resume, a process pool, a progress bar.

A run is a list of independent *units* (for the UCI benchmark: one data set x split x method).
Each finished unit is one JSON file under ``OUT/parts/``, written atomically (temporary file in the
same directory + :func:`os.replace`), so an interrupted run leaves only complete results and a
rerun with the same arguments skips them. ``OUT/run.json`` records the settings that affect
results; a rerun into the same ``OUT`` with different settings raises
:class:`~shrinkdrop.errors.RunMismatchError` instead of mixing results. Tables assembled from
the parts (``results.csv``) are replaced atomically too.

A part carries a SHA-256 checksum of its contents: a stray, truncated, edited or misnamed file
in ``OUT/parts/`` is reported (:class:`PartFileWarning`), renamed to ``*.bad`` and its unit
counts as not done (:meth:`ResultStore.audit`). A run holds ``OUT/.lock``
(:meth:`ResultStore.locked`), so two runs never write one ``OUT`` at once. Files are written
with the user's umask.

Work items run in this process, in local worker processes (``jobs > 1``, each ending with its
driver, ``kill -9`` included), or on a Dask
cluster (``client=``, :func:`dask_client`; the optional ``cluster`` extra): the results come back
to this process, which writes every result file, so workers need no access to ``OUT``.

Nothing here knows about networks or data: it runs ``fn(task)`` for picklable tasks.
"""

from __future__ import annotations

import csv
import enum
import hashlib
import io
import json
import math
import os
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ClusterError, MissingExtraError, PartFileWarning, RunMismatchError

if TYPE_CHECKING:  # the optional ``cluster`` extra
    import distributed

__all__ = [
    "Executor",
    "EXECUTORS",
    "CLUSTER_EXTRA",
    "dask_client",
    "cluster_slots",
    "atomic_write_text",
    "write_csv_atomic",
    "ResultStore",
    "PartFileWarning",
    "run_units",
]


class Executor(str, enum.Enum):
    """Where work items run: ``local`` (this process, or ``jobs`` local processes) or ``dask``
    (a Dask distributed cluster)."""

    LOCAL = "local"
    DASK = "dask"


#: the executors' names
EXECUTORS: tuple[str, ...] = tuple(e.value for e in Executor)

#: the optional dependency group that brings Dask's distributed scheduler
CLUSTER_EXTRA = "cluster"


def jsonable(x: object) -> object:
    """``x`` with numpy arrays and scalars as Python lists / numbers and non-finite floats as
    ``None`` (JSON has no NaN), through dicts, lists and tuples: what ``summary.json`` holds."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "tolist") and hasattr(x, "dtype"):  # numpy arrays and scalars
        return jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


_UMASK_LOCK = threading.Lock()


def _file_mode() -> int:
    """``0o666`` less the process' umask: the mode ``open()`` would give a new file
    (``tempfile.mkstemp`` creates 0600)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part.

    The file gets the mode a plain ``open(path, "w")`` would give it (``0o666`` less the
    umask), not the temporary file's 0600."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        anc = path.parent
        while not anc.exists():
            anc = anc.parent
        raise NotADirectoryError(f"{path}: cannot be written: {anc} is a file, not a directory "
                                 f"(the folder has to be a directory)") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return "" if value is None else str(value)


def write_csv_atomic(path: str | os.PathLike, rows: Iterable[dict],
                     columns: Sequence[str]) -> None:
    """Write ``rows`` (dicts; missing keys empty) as CSV with header ``columns``, atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([_fmt(row.get(c)) for c in columns])
    atomic_write_text(path, buf.getvalue())


def _digest(key: str, row: dict, group: list[str] | None = None) -> str:
    """The checksum a part file carries: SHA-256 of its key, row (and group) as canonical
    JSON."""
    rec = {"key": key, "row": row} if group is None else {"key": key, "row": row,
                                                           "group": group}
    return hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()


class ResultStore:
    """Finished units of a run as one JSON file each under ``out/parts/``.

    A part is ``{"key", "row", "sha256"}`` (the checksum of the key and the row), and
    ``"group"`` (the keys of the units computed together with it, in order) where the work item
    held several units. A file in
    ``parts/`` that does not parse, lacks a field, fails its checksum or is not named after its
    key (a stray, truncated or hand-edited file) is reported (:class:`PartFileWarning`, naming
    the file), renamed to ``<name>.bad`` and its unit counts as not done: it is computed again.

    Args:
        out: the run's output directory (created by :meth:`open`, not before).
        settings: JSON-serialisable settings that affect every result (epochs, sample counts,
            seeds, protocol version). They must equal those of any earlier run in ``out``.
        inputs: name -> fingerprint of the inputs (data sets). A name already recorded in
            ``out`` must have the same fingerprint; new names are added.
    """

    MANIFEST = "run.json"

    def __init__(self, out: str | os.PathLike, settings: dict,
                 inputs: dict[str, str]) -> None:
        self.out = Path(out)
        self.parts = self.out / "parts"
        self.settings = json.loads(json.dumps(settings))
        self.inputs = dict(inputs)

    def _manifest(self) -> dict | None:
        f = self.out / self.MANIFEST
        if not f.exists():
            return None
        try:
            return json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RunMismatchError(
                f"{f}: unreadable run manifest ({exc}); use another --out") from None

    def check(self) -> None:
        """Raise :class:`~shrinkdrop.errors.RunMismatchError` if ``out`` holds a run with other
        settings or inputs.

        Writes nothing.
        """
        if self.out.exists() and not self.out.is_dir():
            raise RunMismatchError(f"{self.out}: exists and is not a directory")
        old = self._manifest()
        if old is None:
            if self.parts.is_dir() and any(self.parts.glob("*.json")):
                raise RunMismatchError(f"{self.out}: holds results but no {self.MANIFEST}; "
                                       "use another --out")
            return
        diffs = [f"{k}: {old.get('settings', {}).get(k)!r} before, {v!r} now"
                 for k, v in self.settings.items() if old.get("settings", {}).get(k) != v]
        diffs += [f"{k}: recorded before but not set now"
                  for k in old.get("settings", {}) if k not in self.settings]
        for name, fp in self.inputs.items():
            was = old.get("inputs", {}).get(name)
            if was is not None and was != fp:
                diffs.append(f"data set {name!r} changed (fingerprint {was} before, {fp} now)")
        if diffs:
            raise RunMismatchError(
                f"{self.out} holds results of a run with different settings ("
                + "; ".join(diffs) + "); rerun with the same arguments to resume, or use "
                "another --out")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``out/.lock`` (an exclusive ``flock``) for the ``with`` block: a second run into
        the same ``out`` at the same time is refused (:class:`RunMismatchError`). The kernel
        drops the lock when the process ends, ``kill -9`` included."""
        self.out.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            yield
            return
        fh = open(self.out / ".lock", "a")  # noqa: SIM115 - held for the block
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunMismatchError(
                    f"{self.out} is in use by another run (it holds {self.out / '.lock'}); "
                    "wait for it to end or use another --out") from None
            yield
        finally:
            fh.close()

    def open(self) -> None:
        """Create ``out`` and record (or extend) the manifest. Call after :meth:`check`."""
        self.parts.mkdir(parents=True, exist_ok=True)
        old = self._manifest() or {}
        inputs = {**old.get("inputs", {}), **self.inputs}
        atomic_write_text(self.out / self.MANIFEST, json.dumps(
            {"settings": self.settings, "inputs": inputs}, indent=2, sort_keys=True) + "\n")

    def _path(self, key: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in key)
        return self.parts / f"{safe}.json"

    def _problem(self, f: Path) -> tuple[dict | None, str]:
        """``(record, "")`` for a sound part file, else ``(None, what is wrong)``."""
        try:
            rec = json.loads(f.read_text())
        except FileNotFoundError:
            return None, ""
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return None, f"not a readable JSON part ({type(exc).__name__}: {exc})"
        if not isinstance(rec, dict) or set(rec) - {"group"} != {"key", "row", "sha256"} or \
                not isinstance(rec["key"], str) or not isinstance(rec["row"], dict) or \
                not isinstance(rec.get("group", []), list):
            return None, "not a part record ({'key', 'row', 'sha256'} expected)"
        if rec["sha256"] != _digest(rec["key"], rec["row"], rec.get("group")):
            return None, "its checksum does not match its contents (truncated or edited)"
        if self._path(rec["key"]).name != f.name:
            return None, f"it holds unit {rec['key']!r}, whose part has another name"
        return rec, ""

    def _set_aside(self, f: Path, why: str) -> None:
        bad = f.with_name(f.name + ".bad")
        i = 1
        while bad.exists():
            bad, i = f.with_name(f"{f.name}.bad{i}"), i + 1
        try:
            os.replace(f, bad)
        except FileNotFoundError:  # pragma: no cover - gone meanwhile
            return
        warnings.warn(f"{f}: {why}; set aside as {bad.name}, its unit will be computed again",
                      PartFileWarning, stacklevel=3)

    def audit(self) -> list[Path]:
        """Check every ``*.json`` in ``parts/``; set aside (``*.bad``, a
        :class:`PartFileWarning` each) those that are not sound parts, and remove temporary
        files an interrupted write left. Returns the files set aside."""
        bad = []
        if not self.parts.is_dir():
            return bad
        for tmp in self.parts.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        for f in sorted(self.parts.glob("*.json")):
            rec, why = self._problem(f)
            if rec is None and why:
                self._set_aside(f, why)
                bad.append(f)
        return bad

    def get(self, key: str) -> dict | None:
        """The row of unit ``key``, or None if it is not done (a part file that is not sound
        is set aside, see :meth:`audit`)."""
        f = self._path(key)
        rec, why = self._problem(f)
        if rec is None:
            if why:
                self._set_aside(f, why)
            return None
        return rec["row"] if rec["key"] == key else None

    def done(self, key: str) -> bool:
        return self.get(key) is not None

    def group(self, key: str) -> tuple[str, ...] | None:
        """The keys computed together with unit ``key`` (its :meth:`put` ``group``), or None."""
        rec, _ = self._problem(self._path(key))
        if rec is None or rec["key"] != key or "group" not in rec:
            return None
        return tuple(rec["group"])

    def put(self, key: str, row: dict, group: Sequence[str] | None = None) -> None:
        """Record unit ``key``'s ``row`` (atomically, with its checksum); ``group``: the keys
        of the units computed together with it (a rerun computes an interrupted group
        whole)."""
        row = json.loads(json.dumps(row))  # what a reader gets back: the checksum's input
        g = None if group is None else [str(k) for k in group]
        rec = {"key": key, "row": row, "sha256": _digest(key, row, g)}
        if g is not None:
            rec["group"] = g
        atomic_write_text(self._path(key), json.dumps(rec, sort_keys=True))

    def rows(self) -> list[dict]:
        """All finished rows, in file-name order (files that are not sound parts are set
        aside, see :meth:`audit`)."""
        out = []
        for f in sorted(self.parts.glob("*.json")):
            rec, why = self._problem(f)
            if rec is None:
                if why:
                    self._set_aside(f, why)
                continue
            out.append(rec["row"])
        return out


_WATCHING: list[int] = []  # the parent pid a worker watches (started once per process)


def _exit_with_parent(interval: float = 0.5) -> None:
    """End this process (``os._exit``) within ``interval`` seconds of its parent's death: a
    daemon thread compares ``os.getppid()`` with the parent it started with. A worker of a
    driver killed with ``kill -9`` (no clean-up ran there) would otherwise compute on."""
    if _WATCHING:
        return
    parent = os.getppid()
    _WATCHING.append(parent)

    def watch() -> None:
        import time

        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(interval)

    threading.Thread(target=watch, name="shrinkdrop-parent-watch", daemon=True).start()


def _init_worker(watch: bool = True) -> None:
    """A worker's set-up: one torch thread; a local worker process (``watch``) also ends with
    its driver (:func:`_exit_with_parent`)."""
    import torch

    torch.set_num_threads(1)
    if watch:
        _exit_with_parent()


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise MissingExtraError(
            f"the dask executor needs Dask's distributed scheduler, which is not installed "
            f"({exc}); install the {CLUSTER_EXTRA!r} extra: pip install "
            f"'shrinkdrop[{CLUSTER_EXTRA}]' (on the driver and on every worker machine)"
        ) from None
    return distributed


@contextmanager
def dask_client(scheduler: str | None = None, *, n_workers: int = 1,
                timeout: float = 30.0) -> Iterator:
    """A :class:`distributed.Client` for the duration of the ``with`` block.

    Args:
        scheduler: address of a running Dask scheduler (``tcp://host:8786``). None starts a
            local cluster of ``n_workers`` worker processes (one thread each) listening on
            127.0.0.1 only, and closes it afterwards.
        n_workers: worker processes of the local cluster (ignored with ``scheduler``).
        timeout: seconds to wait for the scheduler to answer.

    Raises:
        MissingExtraError: ``distributed`` is not installed (names the extra to install).
        ClusterError: the scheduler does not answer within ``timeout``.
    """
    distributed = _import_distributed()
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers has to be an integer >= 1, but got {n_workers!r}")
    cluster = None
    if scheduler is None:
        # loopback only; the HTTP server (no dashboard without bokeh) on a free loopback port
        cluster = distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0")
        address = cluster.scheduler_address
    else:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise ValueError(f"scheduler has to be an address like 'tcp://host:8786', but got "
                             f"{scheduler!r}")
        address = scheduler.strip()
    try:
        try:
            client = distributed.Client(address, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"could not reach the Dask scheduler at {address!r} within {timeout:g} s "
                f"({type(exc).__name__}: {exc}); start one with 'dask scheduler' and workers "
                f"with 'dask worker {address}' (docs/uci.md)") from None
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def cluster_slots(client: distributed.Client, *, wait_s: float = 10.0) -> int:
    """Worker threads of the cluster behind ``client`` (waits up to ``wait_s`` for a worker)."""
    import time

    t_end = time.monotonic() + wait_s
    while True:
        workers = client.scheduler_info().get("workers", {})
        slots = sum(int(w.get("nthreads", 1)) for w in workers.values())
        if slots or time.monotonic() > t_end:
            break
        time.sleep(0.2)
    if not slots:
        raise ClusterError(f"the Dask scheduler at {client.scheduler.address} has no workers "
                           f"(waited {wait_s:g} s); start some with 'dask worker "
                           f"{client.scheduler.address}'")
    return slots


def _on_worker(fn: Callable, task):
    """What a Dask worker runs: ``fn(task)`` with one torch thread, as a local worker does."""
    _init_worker(watch=False)  # a Dask worker's life is its nanny's business
    return fn(task)


def _run_dask(fn, tasks, client, on_result, bar, describe) -> None:
    distributed = _import_distributed()
    run_id = uuid.uuid4().hex[:8]
    pending = {}
    try:
        # pure=False: every submission runs (no result cache); readable, unique keys
        for i, task in enumerate(tasks):
            f = client.submit(_on_worker, fn, task, pure=False, key=f"unit-{i}-{run_id}")
            pending[f] = task
        bar.set_postfix_str(f"on {len(client.scheduler_info().get('workers', {}))} dask "
                            "worker(s)")
        for f in distributed.as_completed(list(pending)):
            task = pending.pop(f)
            result = f.result()  # the task's own exception, re-raised here
            f.release()
            if on_result is not None:
                on_result(task, result)
            bar.set_postfix_str(f"finished {describe(task)}")
            bar.update(1)
    finally:
        if pending:  # an exception or Ctrl-C: nothing more is started; running ones discarded
            client.cancel(list(pending))


def run_units(fn: Callable, tasks: Sequence, *, jobs: int = 1,
              on_result: Callable | None = None, progress: bool = True,
              describe: Callable = str, desc: str = "units",
              client: distributed.Client | None = None) -> None:
    """Run ``fn(task)`` for every task; ``on_result(task, result)`` in this process as each ends.

    ``jobs > 1`` uses a :class:`~concurrent.futures.ProcessPoolExecutor` with the ``spawn``
    context (workers run ``torch.set_num_threads(1)``); ``fn`` and the tasks must be picklable.
    ``client`` (a :class:`distributed.Client`, see :func:`dask_client`) submits every task to
    its cluster instead (``jobs`` is then ignored; each task runs with one torch thread, and
    its result comes back here). The first exception (or Ctrl-C) cancels the tasks not yet
    started and is re-raised; results already handed to ``on_result`` stay.
    """
    from tqdm.auto import tqdm

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs has to be an integer >= 1, but got {jobs!r}")
    bar = tqdm(total=len(tasks), desc=desc, disable=not progress or not tasks, unit="unit",
               dynamic_ncols=True)
    try:
        if client is not None:
            if tasks:
                _run_dask(fn, tasks, client, on_result, bar, describe)
            return
        if jobs == 1:
            for task in tasks:
                bar.set_postfix_str(f"running {describe(task)}")
                result = fn(task)
                if on_result is not None:
                    on_result(task, result)
                bar.update(1)
            return
        ex = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                                 initializer=_init_worker)
        try:
            pending = {ex.submit(fn, t): t for t in tasks}
            while pending:
                running = [describe(t) for f, t in pending.items() if f.running()][:jobs]
                if running:
                    bar.set_postfix_str("running " + ", ".join(running))
                finished, _ = wait(pending, timeout=5.0, return_when=FIRST_COMPLETED)
                for f in finished:
                    task = pending.pop(f)
                    result = f.result()
                    if on_result is not None:
                        on_result(task, result)
                    bar.update(1)
        finally:
            ex.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
