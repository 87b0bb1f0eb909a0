"""A UCI run: validate, list the units, run them (one engine or the other, here, in worker
processes or on a Dask cluster), keep every finished unit, rebuild ``results.csv`` and
``summary.md`` after each; rerunning the same run resumes it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from ...data import UCIData
from ...errors import DataError
from ..runner import (
    ResultStore,
    atomic_write_text,
    cluster_slots,
    dask_client,
    run_units,
    write_csv_atomic,
)
from .methods import ALL_METHODS, DEFAULT_METHODS, QUICK_METHODS, base_method, fits_tau
from .settings import COLUMNS, DEFAULT_SETTINGS, Settings, UnitTask, make_tasks
from .stacked import evaluate_stacked
from .summary import COMMANDS_FILE, write_summary
from .unit import evaluate_unit, skipped_row
from .validation import check_device, check_run, plain

__all__ = ["run_uci", "plan_run", "execute", "Plan", "select_rows", "make_groups",
           "run_group"]


def select_rows(rows: list[dict], methods_order: Sequence[str] | None = None) -> list[dict]:
    """Sort rows and mark, per (dataset, split), the one with the best validation LL selected.

    Exactly one row per (dataset, split) gets ``selected = 1`` (ties and NaNs: the first in
    method order).
    """
    order = {m: i for i, m in enumerate(methods_order or ALL_METHODS)}
    rows = sorted((dict(r) for r in rows),
                  key=lambda r: (r["dataset"], int(r["split"]), order.get(r["method"], 1 << 30),
                                 r["method"]))
    best: dict[tuple, int] = {}
    for i, r in enumerate(rows):
        r["selected"] = 0
        k = (r["dataset"], int(r["split"]))
        v = float(r["val_ll"])
        v = v if math.isfinite(v) else -math.inf
        if k not in best or v > float(rows[best[k]]["val_ll"]) or \
                not math.isfinite(float(rows[best[k]]["val_ll"])) and math.isfinite(v):
            best[k] = i
    for i in best.values():
        rows[i]["selected"] = 1
    return rows


def _recorded_name(fn: Callable) -> str:
    """The trainer's qualified name as ``run.json`` records it: this package's own functions
    under the package's name (where they are exported), whichever module defines them."""
    module = fn.__module__
    if module.startswith(__package__ + "."):
        module = __package__
    return f"{module}.{fn.__qualname__}"


@dataclass(frozen=True)
class Plan:
    """A validated run: its units, its result store and how to run them (:func:`execute`)."""

    store: ResultStore
    out: Path
    tasks: list[UnitTask]
    datasets: list[UCIData]
    methods: list[str]
    settings: Settings
    train_eval: Callable[[UnitTask], dict]
    stacked: bool
    jobs: int | None
    progress: bool
    command: str
    stack_splits: int
    executor: str
    scheduler: str | None


def plan_run(datasets: list[UCIData], out: str | Path, *, splits: list[int] | None = None,
             methods: list[str] | None = None, settings: Settings = DEFAULT_SETTINGS,
             jobs: int | None = None, train_eval: Callable[[UnitTask], dict] | None = None,
             progress: bool = True, command: str = "", stack_splits: int = 0,
             executor: str = "local", scheduler: str | None = None,
             flag: Callable[[str], str] = plain) -> Plan:
    """Validate a run (arguments, data, splits, ``OUT``'s previous settings) and list its
    units; nothing is written. ``flag`` spells parameter names in the error messages."""
    if methods is None:  # the +tau quick method only where every data set is a regression
        methods = [m for m in (QUICK_METHODS if settings.quick else DEFAULT_METHODS)
                   if not fits_tau(m) or all(d.task == "regression" for d in datasets)]
    check_run(datasets, methods, settings, jobs, stack_splits, executor, scheduler, flag)
    stacked = train_eval is None and settings.engine == "stacked"
    if train_eval is None:
        train_eval = evaluate_unit  # this module's name: tests patch it
    else:  # an injected train_eval is called unit by unit
        settings = replace(settings, engine="sequential")
    named = evaluate_stacked if stacked else train_eval
    settings = replace(settings, train_eval=_recorded_name(named))
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise DataError(f"two data sets are named alike: {names}")
    tasks = make_tasks(datasets, splits, methods, settings, flag("splits"))
    out = Path(out)
    store = ResultStore(out, settings.record(), {d.name: d.fingerprint() for d in datasets})
    store.check()
    return Plan(store, out, tasks, list(datasets), list(methods), settings, train_eval, stacked,
                jobs, progress, command, stack_splits, executor, scheduler)


def execute(plan: Plan) -> Path:
    """Run a :func:`plan_run` plan; returns the path of ``results.csv``."""
    with ExitStack() as stack:
        client, jobs = None, plan.jobs
        if plan.executor == "dask":  # connect (and check the device there) before writing
            client = stack.enter_context(dask_client(plan.scheduler, n_workers=jobs or 1))
            slots = cluster_slots(client)  # a scheduler without workers: an error, not a hang
            if jobs is None:
                jobs = slots
            if plan.settings.device != "cpu":
                client.run(check_device, plan.settings.device)
        return _run_store(plan, jobs or 1, client)


def run_uci(datasets: list[UCIData], out: str | Path, *, splits: list[int] | None = None,
            methods: list[str] | None = None, settings: Settings = DEFAULT_SETTINGS,
            jobs: int | None = None, train_eval: Callable[[UnitTask], dict] | None = None,
            progress: bool = True, command: str = "", stack_splits: int = 0,
            executor: str = "local", scheduler: str | None = None) -> Path:
    """Run the protocol; returns the path of ``results.csv``.

    Everything is validated (data, splits, methods, ``OUT``'s previous settings) before anything
    is written. ``train_eval(task) -> dict`` defaults to :func:`evaluate_unit`; tests inject a
    fast fake. Its qualified name is part of the recorded settings, so results never mix.

    ``executor="local"`` runs the work items here (``jobs`` processes; None: 1).
    ``executor="dask"`` submits them to the Dask scheduler at ``scheduler`` (None: a local
    cluster of ``jobs`` processes on 127.0.0.1); the tasks carry their data arrays, results
    come back here and are written here. ``jobs`` also sets how the stacked engine groups
    splits (see :func:`make_groups`); for ``dask`` it defaults to the cluster's worker
    threads. The same ``jobs`` and ``stack_splits`` give the same numbers on either executor.
    """
    return execute(plan_run(datasets, out, splits=splits, methods=methods, settings=settings,
                            jobs=jobs, train_eval=train_eval, progress=progress,
                            command=command, stack_splits=stack_splits, executor=executor,
                            scheduler=scheduler))


def _run_store(plan: Plan, jobs: int, client) -> Path:
    with plan.store.locked():
        return _run_locked(plan, jobs, client)


def _run_locked(plan: Plan, jobs: int, client) -> Path:
    store, out, settings, progress = plan.store, plan.out, plan.settings, plan.progress
    store.open()
    store.audit()  # stray, truncated or edited parts: reported, set aside, computed again
    commands = _remember_command(out, plan.command)
    done = {t.key for t in plan.tasks if store.done(t.key)}
    todo = [t for t in plan.tasks if t.key not in done]
    by_name = {d.name: d for d in plan.datasets}

    def publish():
        rows = select_rows(store.rows(), plan.methods)
        write_csv_atomic(out / "results.csv", rows, COLUMNS)
        write_summary(out, rows, by_name, settings, command=plan.command, commands=commands)

    def record(task: UnitTask, result: dict, group: list[str] | None = None):
        store.put(task.key, {"dataset": task.dataset, "split": task.split,
                             "method": task.method, "epochs": task.epochs, **result}, group)

    def on_result(task: UnitTask, result: dict):
        record(task, result)
        publish()

    for t in todo:  # skipped units are recorded, never handed to train_eval
        if t.skip:
            record(t, skipped_row(t))
    publish()
    runnable = [t for t in todo if not t.skip]
    if not plan.stacked:
        run_units(plan.train_eval, runnable, jobs=jobs, on_result=on_result, progress=progress,
                  desc="uci", client=client)
    else:
        groups = _resume_groups(plan, store, done, runnable, jobs, client)

        def on_group(group: tuple, result: list[dict]):
            keys = [t.key for t in group[1]] if len(group[1]) > 1 else None
            for t, r in zip(group[1], result):
                record(t, r, keys)
            publish()

        run_units(run_group, groups, jobs=jobs, on_result=on_group, progress=progress,
                  describe=_describe_group, desc="uci", client=client)
    publish()
    return out / "results.csv"


def _resume_groups(plan: Plan, store: ResultStore, done: set[str], runnable: list[UnitTask],
                   jobs: int, client) -> list[tuple]:
    """The stacked engine's work items for the units not done, grouped as an uninterrupted run
    would group them (the splits trained together set the noise draws and the notes):

    * a recorded group with a unit missing (killed while its parts were written, or a part set
      aside by :meth:`ResultStore.audit`) runs whole again, with the same units in the same
      order (its ``+tau`` twins too, so their "networks shared" notes stay true);
    * a group of this run (:func:`make_groups` over all its units) that nothing has touched
      runs as it is;
    * the units left (a group partly done by an earlier run with other splits) are grouped
      among themselves: finished units are never redone for them.
    """
    inner = plan.progress and jobs == 1 and client is None
    by_key = {t.key: t for t in plan.tasks}
    missing = {t.key for t in runnable}
    out: list[tuple] = []
    for key in sorted(done):
        g = store.group(key)
        if g and any(k in missing for k in g) and all(k in by_key for k in g):
            whole = tuple(replace(by_key[k], extra={**by_key[k].extra, "progress": inner})
                          for k in g)
            out.append(("stacked", whole))
            missing -= set(g)
    every = [t for t in plan.tasks if not t.skip]
    left = []
    for g in make_groups(every, jobs, plan.stack_splits, inner_progress=inner):
        keys = {t.key for t in g[1]}
        if keys <= missing:
            out.append(g)
        else:
            left += [t for t in g[1] if t.key in missing]
        missing -= keys
    return out + make_groups([by_key[t.key] for t in left], jobs, plan.stack_splits,
                             inner_progress=inner)


def make_groups(tasks: list[UnitTask], jobs: int = 1, stack_splits: int = 0,
                inner_progress: bool = False) -> list[tuple]:
    """Work items for the stacked engine: ``("stacked", units)`` for the training units of one
    data set, method (with its ``+tau`` twin: they share their networks) and split size, at
    most ``stack_splits`` splits each (0: as many as fit ``jobs`` workers), and ``("unit",
    (task,))`` for MCMC units."""
    out: list[tuple] = []
    by: dict[tuple, dict[int, list[UnitTask]]] = {}
    for t in tasks:
        if t.objective == "mcmc":
            out.append(("unit", (t,)))
        else:
            key = (t.dataset, base_method(t.method), t.x_train.shape[0], t.x_test.shape[0])
            by.setdefault(key, {}).setdefault(t.split, []).append(t)
    stacked = []
    for per_split in by.values():
        splits = list(per_split.values())
        size = stack_splits if stack_splits > 0 else math.ceil(len(splits) / max(1, jobs))
        for i in range(0, len(splits), size):
            chunk = tuple(replace(t, extra={**t.extra, "progress": inner_progress})
                          for ts in splits[i: i + size] for t in ts)
            stacked.append(("stacked", chunk))
    return stacked + out


def run_group(group: tuple) -> list[dict]:
    """Run one work item of :func:`make_groups` (module level: picklable for ``--jobs``)."""
    kind, tasks = group
    if kind == "stacked":
        return evaluate_stacked(tasks)
    return [evaluate_unit(t) for t in tasks]


def _describe_group(group: tuple) -> str:
    kind, tasks = group
    t = tasks[0]
    return f"{t.dataset} {t.method} split(s) {','.join(str(u.split) for u in tasks)}"


def _remember_command(out: Path, command: str) -> list[str]:
    """Append ``command`` to ``OUT/commands.txt`` unless it is there (atomically); return all.

    One folder collects the methods of several commands (a later ``--methods`` adds methods;
    rerunning a command resumes it), so the summary names every command, not only the last."""
    path = out / COMMANDS_FILE
    seen = path.read_text().splitlines() if path.exists() else []
    seen = [c for c in seen if c.strip()]
    if command and command not in seen:
        seen.append(command)
        atomic_write_text(path, "\n".join(seen) + "\n")
    return seen

