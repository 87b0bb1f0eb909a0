"""Machinery for long experiment runs: atomic result files, resume, a process pool, a progress bar.

A run is a list of independent *units* (for the UCI benchmark: one data set x split x method).
Each finished unit is one JSON file under ``OUT/parts/``, written atomically (temporary file in the
same directory + :func:`os.replace`), so an interrupted run leaves only complete results and a
rerun with the same arguments skips them. ``OUT/run.json`` records the settings that affect
results; a rerun into the same ``OUT`` with different settings raises :class:`RunMismatchError`
instead of mixing results. Tables assembled from the parts (``results.csv``) are replaced
atomically too.

Nothing here knows about networks or data: it runs ``fn(task)`` for picklable tasks.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from ..errors import ShrinkdropError

__all__ = [
    "RunMismatchError",
    "atomic_write_text",
    "write_csv_atomic",
    "ResultStore",
    "run_units",
]


class RunMismatchError(ShrinkdropError):
    """``OUT`` holds results of a run with different settings."""


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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


def write_csv_atomic(path, rows: Iterable[dict], columns: Sequence[str]) -> None:
    """Write ``rows`` (dicts; missing keys empty) as CSV with header ``columns``, atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([_fmt(row.get(c)) for c in columns])
    atomic_write_text(path, buf.getvalue())


class ResultStore:
    """Finished units of a run as one JSON file each under ``out/parts/``.

    Args:
        out: the run's output directory (created by :meth:`open`, not before).
        settings: JSON-serialisable settings that affect every result (epochs, sample counts,
            seeds, protocol version). They must equal those of any earlier run in ``out``.
        inputs: name -> fingerprint of the inputs (data sets). A name already recorded in
            ``out`` must have the same fingerprint; new names are added.
    """

    MANIFEST = "run.json"

    def __init__(self, out, settings: dict, inputs: dict[str, str]):
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
        """Raise :class:`RunMismatchError` if ``out`` holds a run with other settings or inputs.

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

    def get(self, key: str) -> dict | None:
        f = self._path(key)
        try:
            rec = json.loads(f.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return rec["row"] if rec.get("key") == key else None

    def done(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, key: str, row: dict) -> None:
        atomic_write_text(self._path(key), json.dumps({"key": key, "row": row}, sort_keys=True))

    def rows(self) -> list[dict]:
        """All finished rows, in file-name order."""
        out = []
        for f in sorted(self.parts.glob("*.json")):
            try:
                rec = json.loads(f.read_text())
            except json.JSONDecodeError:  # pragma: no cover - parts are written atomically
                continue
            out.append(rec["row"])
        return out


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_units(fn: Callable, tasks: Sequence, *, jobs: int = 1,
              on_result: Callable | None = None, progress: bool = True,
              describe: Callable = str, desc: str = "units") -> None:
    """Run ``fn(task)`` for every task; ``on_result(task, result)`` in this process as each ends.

    ``jobs > 1`` uses a :class:`~concurrent.futures.ProcessPoolExecutor` with the ``spawn``
    context (workers run ``torch.set_num_threads(1)``); ``fn`` and the tasks must be picklable.
    The first exception (or Ctrl-C) cancels the tasks not yet started and is re-raised; results
    already handed to ``on_result`` stay.
    """
    from tqdm.auto import tqdm

    if jobs < 1:
        raise ValueError(f"jobs has to be at least 1, but got {jobs}")
    bar = tqdm(total=len(tasks), desc=desc, disable=not progress or not tasks, unit="unit",
               dynamic_ncols=True)
    try:
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
