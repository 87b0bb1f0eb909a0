"""``shrinkdrop mcmc-study``: the paper's EP-versus-HP claim on posteriors that mix.

One unit is one ``shrinkdrop mcmc`` run (:func:`shrinkdrop.experiments.mcmc.run`) of a data set
x parametrization x seed, all with the same sampler budget (warm-up, draws, chains, tree depth,
target acceptance): EP and HP differ only in the parametrization. Each unit's run folder
(``OUT/runs/<unit>/``: ``summary.json``, ``posterior.nc``, plots) is written by the verb; its row
(ESS/s, divergences, R-hat, test LL, seconds, gradients) goes to ``OUT/parts/`` through
:class:`~shrinkdrop.experiments.runner.ResultStore`, so an interrupted study resumes where it
stopped. ``OUT/results.csv`` and ``OUT/table.md`` (per data set and parametrization: the mean
over seeds) are rewritten after every unit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

from .mcmc import McmcOptions, resolve_backend
from .mcmc import run as run_mcmc
from .runner import ResultStore, atomic_write_text, run_units, write_csv_atomic

HELP = "EP vs HP by NUTS on several data sets and seeds, the same budget (resumable)"

#: the data sets of the claim (issue 29): small regression sets (the UCI ones as folders in the
#: layout of :func:`shrinkdrop.data.resolve_data`, e.g. ``/work/shared/data/uci/yacht``)
DATASETS = ("diabetes", "bostonHousing", "yacht", "wine-quality-red")

#: the columns of ``results.csv``
COLUMNS = ("data", "param", "seed", "mixed", "max_rhat_shared", "min_ess_shared",
           "ess_per_second_shared", "divergences", "test_ll", "test_rmse", "seconds",
           "sample_seconds", "gradients", "n_train")

__all__ = ["HELP", "DATASETS", "COLUMNS", "StudyUnit", "study_units", "run_study",
           "summary_table"]


@dataclass(frozen=True)
class StudyUnit:
    """One run of the study: ``options`` with its own ``out`` folder."""

    key: str
    options: McmcOptions


def study_units(base: McmcOptions, out: str | Path, datasets: tuple[str, ...],
                seeds: tuple[int, ...], params: tuple[str, ...] = ("ep", "hp")
                ) -> list[StudyUnit]:
    """The units, seed-major (a partial study has every data set and parametrization)."""
    out = Path(out)
    units = []
    for seed in seeds:
        for data in datasets:
            for param in params:
                key = f"{Path(data).name}-{param}-seed{seed}"
                units.append(StudyUnit(key, replace(
                    base, data=data, param=param, seed=seed, out=str(out / "runs" / key),
                    no_progress=True, strict=False)))
    return units


def _run_unit(unit: StudyUnit) -> dict:
    opts = unit.options
    run_mcmc(opts, command=f"mcmc-study unit {unit.key}", command_of=lambda v: "")
    s = json.loads((Path(opts.out) / "summary.json").read_text())
    row = {"data": Path(opts.data).name, "param": opts.param, "seed": opts.seed}
    row.update({k: s.get(k) for k in COLUMNS if k not in row})
    return row


def summary_table(rows: list[dict]) -> list[dict]:
    """Per data set and parametrization: seeds, how many mixed, and the mean of each number."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["data"], r["param"]), []).append(r)
    out = []
    for (data, param), rs in sorted(groups.items()):
        def mean(k, rs=rs):
            v = [float(r[k]) for r in rs if r.get(k) is not None and math.isfinite(float(r[k]))]
            return sum(v) / len(v) if v else math.nan

        out.append({"data": data, "param": param, "seeds": len(rs),
                    "mixed": sum(bool(r["mixed"]) for r in rs),
                    **{k: mean(k) for k in ("max_rhat_shared", "min_ess_shared",
                                            "ess_per_second_shared", "divergences", "test_ll",
                                            "test_rmse", "seconds")}})
    return out


def _markdown(table: list[dict]) -> str:
    head = ["data", "param", "mixed / seeds", "max R-hat", "min ESS", "ESS/s", "divergences",
            "test LL", "test RMSE", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        lines.append(
            f"| {r['data']} | {r['param'].upper()} | {r['mixed']} / {r['seeds']} | "
            f"{r['max_rhat_shared']:.3f} | {r['min_ess_shared']:.0f} | "
            f"{r['ess_per_second_shared']:.2f} | {r['divergences']:.0f} | {r['test_ll']:.3f} | "
            f"{r['test_rmse']:.3f} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def run_study(base: McmcOptions, out: str | Path, *, datasets: tuple[str, ...] = DATASETS,
              seeds: tuple[int, ...] = (0, 1, 2), progress: bool = True) -> list[dict]:
    """Run (or resume) the study into ``out``; returns the summary table.

    ``base`` carries the shared budget (its ``data``, ``param``, ``seed`` and ``out`` are set
    per unit). A rerun with other settings into the same ``out`` raises
    :class:`~shrinkdrop.errors.RunMismatchError`.
    """
    out = Path(out)
    settings = {k: v for k, v in vars(base).items()
                if k not in ("data", "param", "seed", "out", "no_progress", "strict")}
    settings["backend"] = resolve_backend(base.backend)
    store = ResultStore(out, settings, {})
    store.check()
    store.open()
    todo = [u for u in study_units(base, out, tuple(datasets), tuple(seeds))
            if not store.done(u.key)]

    def on_result(unit: StudyUnit, row: dict) -> None:
        store.put(unit.key, row)
        rows = store.rows()
        write_csv_atomic(out / "results.csv", rows, list(COLUMNS))
        atomic_write_text(out / "table.md", _markdown(summary_table(rows)))

    run_units(_run_unit, todo, on_result=on_result, progress=progress,
              describe=lambda u: u.key, desc="mcmc-study")
    rows = store.rows()
    table = summary_table(rows)
    if rows:
        atomic_write_text(out / "table.md", _markdown(table))
    return table
