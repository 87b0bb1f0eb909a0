"""``shrinkdrop uci``: the UCI regression benchmark of MC dropout, over every noise family.

Protocol (Gal & Ghahramani 2016, their ``DropoutUncertaintyExps`` code; see ``docs/uci.md``):
per split, the training rows are cut in index order into an inner 80/20 train/validation split;
every configuration (noise parameter x tau) is trained on the inner 80% with inputs and targets
standardised on it and scored on the 20% by MC-averaged log-likelihood; the best configuration is
refitted on the whole training split (standardised on it) and evaluated on the test split: RMSE of
the MC predictive mean and log-likelihood by MC averaging (logsumexp over samples), both in the
target's original units. Network: noise on the inputs -> n_hidden ReLU units -> noise -> linear
output, i.e. MC dropout's network with dropout replaced by ARD noise of each family. Weight decay
is Gal's ``l^2 (1 - p) / (2 N tau)`` with length scale ``l = 1e-2``; batch size 128; Adam.

A *method* is ``<family>-<objective>`` (``bernoulli-mc`` is MC dropout). Every run unit
(data set x split x method) is written atomically to ``OUT/parts/``; ``results.csv`` and
``summary.md`` are rebuilt from the parts after each unit. Rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..data import UCIData, resolve_data
from ..errors import DataError
from ..noise import FAMILIES
from .runner import ResultStore, run_units, write_csv_atomic

HELP = ("Run the UCI benchmark protocol (MC dropout's grid search and refit) for every noise "
        "family and objective; writes results.csv and summary.md.")

__all__ = [
    "HELP", "add_arguments", "run", "METHODS", "OBJECTIVES", "Settings", "Config", "UnitTask",
    "matched_noise", "method_configs", "make_tasks", "evaluate_unit", "run_uci",
    "select_rows", "write_summary", "COLUMNS", "PROTOCOL_VERSION",
]

PROTOCOL_VERSION = "uci-1"

#: the training objectives (names of ``shrinkdrop.objectives.Objective``)
OBJECTIVES: tuple[str, ...] = ("mc", "marginal_map", "tail_adaptive")

#: every method: ``<family>-<objective>``; ``bernoulli-mc`` is MC dropout
METHODS: tuple[str, ...] = tuple(f"{f}-{o}" for f in FAMILIES for o in OBJECTIVES)

QUICK_METHODS = ("bernoulli-mc", "gaussian-marginal_map")
QUICK_SPLITS = 2

#: half-Cauchy noise cannot be normalised to mean 1; it gets its own scale grid
HALF_CAUCHY_SCALES = (0.5, 1.0, 2.0)

COLUMNS = ("dataset", "split", "method", "test_rmse", "test_ll", "selected", "config", "val_ll",
           "test_rmse_mean", "test_error", "epochs", "seconds")


@dataclass(frozen=True)
class Settings:
    """Everything besides the data that affects a result (recorded in ``OUT/run.json``)."""

    epochs_multiplier: float = 100.0
    test_samples: int = 10_000
    train_samples: int = 5
    quick: bool = False
    seed: int = 0
    length_scale: float = 1e-2
    batch_size: int = 128
    lr: float = 1e-3
    train_eval: str = ""  # filled in by run_uci: the function that trains and evaluates

    def epochs(self, data: UCIData) -> int:
        return max(1, int(math.ceil(data.n_epochs * self.epochs_multiplier - 1e-9)))

    def record(self) -> dict:
        return {"protocol": PROTOCOL_VERSION, **asdict(self)}


@dataclass(frozen=True)
class Config:
    """One grid point: a noise law (with its matched dropout rate) and tau."""

    family: str
    params: tuple[tuple[str, float], ...]
    rate: float  # the dropout rate this noise is matched to (enters the weight decay)
    tau: float
    normalize: bool = True

    def label(self) -> str:
        ps = ",".join(f"{k}={v:.6g}" for k, v in self.params)
        return f"{self.family}({ps}) rate={self.rate:g} tau={self.tau:g}"

    def noise(self):
        cls = FAMILIES[self.family]
        return cls(**dict(self.params))


@dataclass(frozen=True)
class UnitTask:
    """One unit of work: fit one method on one split (grid search, refit, test)."""

    dataset: str
    split: int
    method: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    configs: tuple[Config, ...]
    n_hidden: int
    epochs: int
    settings: Settings
    task: str = "regression"
    n_classes: int = 0
    seed: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.dataset}|split={self.split}|method={self.method}"

    @property
    def family(self) -> str:
        return self.method.split("-", 1)[0]

    @property
    def objective(self) -> str:
        return self.method.split("-", 1)[1]

    def __str__(self) -> str:
        return f"{self.dataset} split {self.split} {self.method}"


# --------------------------------------------------------------------------------------------
# grids
# --------------------------------------------------------------------------------------------

def _cv2(noise) -> float:
    """Squared coefficient of variation Var[xi] / E[xi]^2 from the family's own moments."""
    return float(noise.variance) / float(noise.mean) ** 2


#: one-parameter paths through each continuous family, mean-free (normalisation divides by E xi)
_PATHS = {
    "gaussian": (lambda t: {"mean": 1.0, "std": t}, (1e-6, 1e3)),
    "inverse_nakagami": (lambda t: {"df": t, "scale": 1.0}, (2.0 + 1e-6, 1e5)),
    "beta": (lambda t: {"a": t, "b": t}, (1e-3, 1e6)),
    "uniform": (lambda t: {"low": 1.0 - t, "high": 1.0 + t}, (1e-6, 1.0)),
}


def matched_noise(family: str, rate: float) -> dict[str, float] | None:
    """Noise parameters whose mean-normalised noise has the variance of dropout at ``rate``.

    Inverted dropout of rate ``p`` has ``Var[xi] / E[xi]^2 = p / (1 - p)``. Bernoulli uses
    ``keep = 1 - p``; Gaussian is Gaussian dropout ``N(1, p / (1 - p))``; inverse-Nakagami
    (scale 1, solve for df), symmetric Beta(a, a) and Uniform(1 - h, 1 + h) are solved
    numerically against the family's own ``mean`` and ``variance``. Rayleigh's normalised
    variance is the constant (4 - pi) / pi whatever its scale, so it has one point (scale 1).
    Returns None where the family cannot reach that variance (e.g. Uniform needs
    ``p / (1 - p) <= 1/3``) or ``p = 0`` for a continuous family.
    """
    import torch
    from scipy.optimize import brentq

    if family == "bernoulli":
        return {"keep": 1.0 - rate}
    if family == "rayleigh":
        return {"scale": 1.0}
    if family == "half_cauchy":
        raise ValueError("half_cauchy noise cannot be normalised; it uses a scale grid")
    if family not in _PATHS:
        raise ValueError(f"family has to be one of {', '.join(FAMILIES)}, but got {family!r}")
    if rate <= 0:
        return None
    target = rate / (1.0 - rate)
    if family == "gaussian":
        g = FAMILIES["gaussian"].dropout(rate)
        return {"mean": 1.0, "std": float(g.std)}
    path, (lo, hi) = _PATHS[family]
    cls = FAMILIES[family]

    def f(t):  # float64 parameters: the moments are solved to high relative accuracy
        params = {k: torch.tensor(v, dtype=torch.float64) for k, v in path(t).items()}
        return math.log(_cv2(cls(**params))) - math.log(target)

    try:
        flo, fhi = f(lo), f(hi)
    except ValueError:  # pragma: no cover - a family rejecting an end of its path
        return None
    if not (np.isfinite(flo) and np.isfinite(fhi)) or flo * fhi > 0:
        return None
    t = brentq(f, lo, hi, xtol=1e-12, rtol=1e-10)
    return {k: float(v) for k, v in path(t).items()}


def method_configs(method: str, data: UCIData, quick: bool = False) -> tuple[Config, ...]:
    """The grid of one method on one data set: noise parameter x tau.

    Rates come from the data set's ``dropout_rates`` and taus from ``tau_values``. ``quick``
    keeps the smallest and largest rate and the middle tau.
    """
    family, _ = _split_method(method)
    rates = list(data.dropout_rates)
    taus = list(data.tau_values)
    if quick:
        rates = sorted({min(rates), max(rates)})
        taus = [sorted(taus)[len(taus) // 2]]
    noises: list[tuple[dict, float, bool]] = []
    if family == "half_cauchy":
        noises = [({"scale": s}, 0.0, False) for s in HALF_CAUCHY_SCALES]
        if quick:
            noises = noises[1:2]
    else:
        seen = set()
        for r in rates:
            params = matched_noise(family, r)
            if params is None:
                continue
            key = tuple(sorted(params.items()))
            if key in seen:  # Rayleigh: every rate gives the same normalised noise
                continue
            seen.add(key)
            noises.append((params, 0.0 if family == "rayleigh" else r, True))
    return tuple(Config(family, tuple(p.items()), rate, tau, norm)
                 for p, rate, norm in noises for tau in taus)


def _split_method(method: str) -> tuple[str, str]:
    if method not in METHODS:
        raise ValueError(f"method has to be one of {', '.join(METHODS)}, but got {method!r}")
    return method.split("-", 1)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# one unit: grid search on the inner split, refit, test (training/scoring from the library)
# --------------------------------------------------------------------------------------------

def _standardize(x: np.ndarray):
    mean = x.mean(0)
    std = x.std(0)
    std = np.where(std == 0, 1.0, std)
    return mean, std


def _fit_and_score(cfg: Config, task: UnitTask, x_tr, y_tr, x_ev, y_ev, seed: int) -> dict:
    """Train one configuration on (x_tr, y_tr) and score it on (x_ev, y_ev)."""
    import torch

    from ..objectives import fit, predict, predictive_log_likelihood

    try:
        from ..nn import UnitNoise
    except ImportError:  # pragma: no cover - before nn/__init__ exports it
        from ..nn.unit import UnitNoise

    s = task.settings
    xm, xs = _standardize(x_tr)
    regression = task.task == "regression"
    n = x_tr.shape[0]
    # Gal's Keras loss is  mse + reg * ||W||^2  with reg = l^2 (1 - p) / (2 N tau)  (tau in the
    # target's units, on standardised targets, weights only). fit() minimises
    # -mean(log-lik) + wd / 2 * ||W||^2 (weights only). With the Gaussian log-likelihood at the
    # model's precision in standardised units, tau_s = tau * std(y)^2, the data term is
    # tau_s / 2 * mse, so wd = tau_s * reg keeps Gal's ratio of data term to decay (Adam is
    # invariant to the overall scale of the loss). For categorical, CE + reg ||W||^2: wd = 2 reg.
    reg = s.length_scale ** 2 * (1.0 - cfg.rate) / (2.0 * n * cfg.tau)
    if regression:
        ym, ys = float(y_tr.mean()), float(y_tr.std()) or 1.0
        yt = torch.as_tensor((y_tr - ym) / ys, dtype=torch.float32).unsqueeze(-1)
        d_out, likelihood = 1, "gaussian"
        tau_s = cfg.tau * ys ** 2
        wd = tau_s * reg
    else:
        ym = ys = tau_s = None
        yt = torch.as_tensor(y_tr, dtype=torch.long)
        d_out, likelihood = task.n_classes, "categorical"
        wd = 2.0 * reg
    xt = torch.as_tensor((x_tr - xm) / xs, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the initial weights
        model = torch.nn.Sequential(
            UnitNoise(cfg.noise(), normalize=cfg.normalize, generator=gen),
            torch.nn.Linear(xt.shape[1], task.n_hidden),
            torch.nn.ReLU(),
            UnitNoise(cfg.noise(), normalize=cfg.normalize, generator=gen),
            torch.nn.Linear(task.n_hidden, d_out),
        )
    samples = 1 if task.objective == "mc" else s.train_samples
    fit(model, xt, yt, likelihood=likelihood, objective=task.objective, samples=samples,
        tau=tau_s, weight_decay=wd, epochs=task.epochs, batch_size=s.batch_size, lr=s.lr,
        seed=seed, progress=False)
    xe = torch.as_tensor((x_ev - xm) / xs, dtype=torch.float32)
    if regression:
        ye = torch.as_tensor(y_ev, dtype=torch.float32)
        ll = predictive_log_likelihood(model, xe, ye, s.test_samples, likelihood=likelihood,
                                       tau=cfg.tau, y_mean=ym, y_std=ys)
    else:
        ye = torch.as_tensor(y_ev, dtype=torch.long)
        ll = predictive_log_likelihood(model, xe, ye, s.test_samples, likelihood=likelihood)
    mc = predict(model, xe, s.test_samples, mode="mc", likelihood=likelihood)
    out = {"ll": float(ll), "rmse": float("nan"), "rmse_mean": float("nan"), "error": float("nan")}
    if regression:
        pred = mc.reshape(-1).double().numpy() * ys + ym
        out["rmse"] = float(np.sqrt(np.mean((y_ev - pred) ** 2)))
        if cfg.normalize:  # weight scaling (Gal's "test_rmse"); unnormalised noise has none
            mean = predict(model, xe, 1, mode="mean").reshape(-1).double().numpy() * ys + ym
            out["rmse_mean"] = float(np.sqrt(np.mean((y_ev - mean) ** 2)))
    else:
        out["error"] = float(np.mean(mc.argmax(-1).numpy() != y_ev))
    return out


def evaluate_unit(task: UnitTask) -> dict:
    """Grid search on the inner 80/20 split, refit on the whole training split, test.

    Returns the result row (without ``selected``).
    """
    t0 = time.perf_counter()
    n_inner = int(0.8 * task.x_train.shape[0])
    xi, yi = task.x_train[:n_inner], task.y_train[:n_inner]
    xv, yv = task.x_train[n_inner:], task.y_train[n_inner:]
    best, best_ll = None, -math.inf
    for i, cfg in enumerate(task.configs):
        score = _fit_and_score(cfg, task, xi, yi, xv, yv, seed=task.seed + i)
        if best is None or (np.isfinite(score["ll"]) and score["ll"] > best_ll):
            best, best_ll = cfg, score["ll"]
    test = _fit_and_score(best, task, task.x_train, task.y_train, task.x_test, task.y_test,
                          seed=task.seed + 10_000)
    return {
        "config": best.label(), "val_ll": best_ll, "test_rmse": test["rmse"],
        "test_ll": test["ll"], "test_rmse_mean": test["rmse_mean"], "test_error": test["error"],
        "seconds": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------

def _unit_seed(settings: Settings, dataset: str, split: int, method: str) -> int:
    # zlib.crc32, not hash(): Python salts str hashes per process
    return (settings.seed * 1_000_003 + zlib.crc32(f"{dataset}/{split}/{method}".encode())) \
        % (2 ** 31 - 20_000)


def make_tasks(datasets: list[UCIData], splits: list[int] | None, methods: list[str],
               settings: Settings) -> list[UnitTask]:
    """All units, split-major (so ``--jobs`` spreads splits over processes)."""
    tasks = []
    for data in datasets:
        chosen = _check_splits(data, splits, settings.quick)
        for k in chosen:
            sp = data.splits[k]
            for m in methods:
                tasks.append(UnitTask(
                    dataset=data.name, split=k, method=m,
                    x_train=data.features[sp.train], y_train=data.target[sp.train],
                    x_test=data.features[sp.test], y_test=data.target[sp.test],
                    configs=method_configs(m, data, settings.quick), n_hidden=data.n_hidden,
                    epochs=settings.epochs(data), settings=settings, task=data.task,
                    n_classes=data.n_classes, seed=_unit_seed(settings, data.name, k, m)))
    return tasks


def _check_splits(data: UCIData, splits: list[int] | None, quick: bool) -> list[int]:
    if splits is None:
        n = min(QUICK_SPLITS, data.n_splits) if quick else data.n_splits
        return list(range(n))
    for k in splits:
        if not 0 <= k < data.n_splits:
            where = f" ({data.source}/n_splits.txt)" if not data.source.startswith("builtin:") \
                else ""
            raise DataError(f"split {k} requested but {data.name} has {data.n_splits} splits "
                            f"(0-{data.n_splits - 1}){where}")
    return list(splits)


def select_rows(rows: list[dict], methods_order: list[str] | None = None) -> list[dict]:
    """Sort rows and mark, per (dataset, split), the one with the best validation LL selected.

    Exactly one row per (dataset, split) gets ``selected = 1`` (ties and NaNs: the first in
    method order).
    """
    order = {m: i for i, m in enumerate(methods_order or METHODS)}
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


def run_uci(datasets: list[UCIData], out, *, splits: list[int] | None = None,
            methods: list[str] | None = None, settings: Settings = Settings(), jobs: int = 1,
            train_eval=None, progress: bool = True, command: str = "") -> Path:
    """Run the protocol; returns the path of ``results.csv``.

    Everything is validated (data, splits, methods, ``OUT``'s previous settings) before anything
    is written. ``train_eval(task) -> dict`` defaults to :func:`evaluate_unit`; tests inject a
    fast fake. Its qualified name is part of the recorded settings, so results never mix.
    """
    if methods is None:
        methods = list(QUICK_METHODS if settings.quick else METHODS)
    for m in methods:
        _split_method(m)
    if jobs < 1:
        raise ValueError(f"jobs has to be at least 1, but got {jobs}")
    if train_eval is None:
        train_eval = globals()["evaluate_unit"]  # looked up at call time (tests patch it)
    settings = replace(settings,
                       train_eval=f"{train_eval.__module__}.{train_eval.__qualname__}")
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise DataError(f"two data sets are named alike: {names}")
    tasks = make_tasks(datasets, splits, methods, settings)
    out = Path(out)
    store = ResultStore(out, settings.record(), {d.name: d.fingerprint() for d in datasets})
    store.check()
    store.open()
    todo = [t for t in tasks if not store.done(t.key)]
    by_name = {d.name: d for d in datasets}

    def publish():
        rows = select_rows(store.rows(), methods)
        write_csv_atomic(out / "results.csv", rows, COLUMNS)
        write_summary(out, rows, by_name, settings, command=command)

    def on_result(task: UnitTask, result: dict):
        row = {"dataset": task.dataset, "split": task.split, "method": task.method,
               "epochs": task.epochs, **result}
        store.put(task.key, row)
        publish()

    publish()
    run_units(train_eval, todo, jobs=jobs, on_result=on_result, progress=progress,
              desc="uci")
    publish()
    return out / "results.csv"


# --------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------

def _mean_se(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return float(v.mean()), se


def _pm(mean: float, se: float, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "-"
    if not math.isfinite(se):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


_REF = re.compile(r"test_ll_(?P<tag>(?P<mult>[0-9.]+)_xepochs_(?P<layers>\d+)_hidden_layers)$")


def _references(data: UCIData | None) -> list[dict]:
    """Reference result files paired as (test LL, test MC RMSE) by their epoch/layer tag."""
    if data is None:
        return []
    out = []
    for stem, ll in sorted(data.reference.items()):
        m = _REF.match(stem)
        if not m:
            continue
        rmse = data.reference.get(f"test_MC_rmse_{m['tag']}")
        out.append({"tag": m["tag"], "multiplier": float(m["mult"]), "layers": int(m["layers"]),
                    "ll": ll, "rmse": rmse})
    return out


PROTOCOL_TEXT = (
    "Protocol (MC dropout's, Gal & Ghahramani 2016): per split an inner 80/20 train/validation "
    "split (training rows in index order) chooses the configuration (noise parameter and tau; "
    "across methods, the selected row) by validation log-likelihood; refit on the whole training "
    "split; inputs and targets standardised on the training data; one hidden layer of n_hidden "
    "ReLU units, ARD noise of the method's family on the network's inputs and on the hidden "
    "units (where MC dropout has dropout); weight decay "
    "l^2 (1 - p) / (2 N tau), l = 1e-2; batch 128; Adam. Test RMSE is of the MC predictive mean "
    "and test LL is logsumexp over MC samples (both in the target's units). Mean ± standard "
    "error over splits.")


def write_summary(out, rows: list[dict], datasets: dict[str, UCIData], settings: Settings,
                  command: str = "") -> Path:
    """``summary.md`` (and ``section.json`` for the report) from the assembled rows."""
    from .report import Section, write_section

    out = Path(out)
    lines = ["# UCI benchmark", "", PROTOCOL_TEXT, ""]
    lines.append(f"Settings: epochs = n_epochs x {settings.epochs_multiplier:g}; "
                 f"{settings.test_samples} MC samples at validation and test; "
                 f"{settings.train_samples} noise samples per step for marginal_map and "
                 f"tail_adaptive (1 for mc); seed {settings.seed}"
                 + ("; QUICK run (reduced grid, epochs and samples: not comparable to the "
                    "references)" if settings.quick else "") + ".")
    if command:
        lines += ["", f"Command: `{command}`"]
    lines.append("")
    section = Section(title="UCI benchmark", command=command, seconds=0.0)
    section.p(PROTOCOL_TEXT)
    for name in sorted({r["dataset"] for r in rows}):
        drows = [r for r in rows if r["dataset"] == name]
        data = datasets.get(name)
        split_ids = sorted({int(r["split"]) for r in drows})
        epochs = sorted({int(r["epochs"]) for r in drows})
        lines += [f"## {name}", "",
                  f"{len(split_ids)} split(s): {', '.join(map(str, split_ids))}; "
                  f"{'/'.join(map(str, epochs))} epochs.", ""]
        table = []
        # classification rows have no RMSE: show the test error rate in that column instead
        metric = "test_rmse" if any(math.isfinite(float(r["test_rmse"])) for r in drows) \
            else "test_error"
        sel = {int(r["split"]): r for r in drows if int(r["selected"]) == 1}
        table.append(["selected on validation", len(sel),
                      _pm(*_mean_se([float(r[metric]) for r in sel.values()])),
                      _pm(*_mean_se([float(r["test_ll"]) for r in sel.values()])), len(sel)])
        methods = [m for m in METHODS if any(r["method"] == m for r in drows)]
        for m in methods:
            mr = [r for r in drows if r["method"] == m]
            table.append([m, len(mr), _pm(*_mean_se([float(r[metric]) for r in mr])),
                          _pm(*_mean_se([float(r["test_ll"]) for r in mr])),
                          sum(int(r["selected"]) for r in mr)])
        refs = _references(data)
        wins = []
        for ref in refs:
            idx = [k for k in split_ids if k < len(ref["ll"])]
            label = (f"reference MC dropout ({ref['multiplier']:g}x epochs, {ref['layers']} "
                     f"hidden layer(s)), same splits")
            rm = ref["rmse"]
            table.append([label, len(idx),
                          _pm(*_mean_se([rm[k] for k in idx if k < len(rm)])) if rm is not None
                          else "-", _pm(*_mean_se([ref["ll"][k] for k in idx])), "-"])
            for who, rr in [("selected", sel)] + [
                    (m, {int(r["split"]): r for r in drows if r["method"] == m})
                    for m in ("bernoulli-mc",) if m in methods]:
                common = [k for k in idx if k in rr]
                if not common:
                    continue
                ll_w = sum(float(rr[k]["test_ll"]) > ref["ll"][k] for k in common)
                rm_w = sum(float(rr[k]["test_rmse"]) < rm[k] for k in common
                           if rm is not None and k < len(rm))
                wins.append(f"- {who} vs reference ({ref['tag']}): better test LL on {ll_w}/"
                            f"{len(common)} splits, lower RMSE on {rm_w}/{len(common)}")
        header = ["method", "splits", "test RMSE" if metric == "test_rmse" else "test error",
                  "test LL", "times selected"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for row in table:
            lines.append("| " + " | ".join(str(c) for c in row) + " |")
        lines.append("")
        if wins:
            lines += ["Per-split wins:", "", *wins, ""]
        section.p(f"**{name}**: {len(split_ids)} split(s), {'/'.join(map(str, epochs))} epochs.")
        section.table(header, table)
        for w in wins:
            section.p(w[2:])
    from .runner import atomic_write_text

    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    write_section(out, section)
    return out / "summary.md"


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def _int_list(text: str) -> list[int]:
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated split numbers like 0,1,2, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError("expected at least one split number")
    return out


def _method_list(text: str) -> list[str]:
    out = []
    for t in (t.strip() for t in text.split(",")):
        if not t:
            continue
        if t in FAMILIES:  # a family alone means all its objectives
            out += [f"{t}-{o}" for o in OBJECTIVES]
        elif t in METHODS:
            out.append(t)
        elif t == "all":
            out += list(METHODS)
        else:
            raise argparse.ArgumentTypeError(
                f"unknown method {t!r}; methods are <family>-<objective> with family in "
                f"{', '.join(FAMILIES)} and objective in {', '.join(OBJECTIVES)} (or a family "
                "alone, or 'all')")
    return list(dict.fromkeys(out))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="a data set directory in the UCI layout, a directory of them, or a "
                        "built-in name (diabetes, iris, wine, breast_cancer, digits)")
    p.add_argument("--out", required=True, help="output folder (created; reruns resume)")
    p.add_argument("--splits", type=_int_list, default=None,
                   help="comma-separated split numbers (default: all; --quick: the first 2)")
    p.add_argument("--methods", type=_method_list, default=None,
                   help="comma-separated <family>-<objective> (e.g. bernoulli-mc = MC dropout), "
                        "families alone, or 'all' (default: all; --quick: "
                        + ",".join(QUICK_METHODS) + ")")
    p.add_argument("--epochs-multiplier", type=float, default=None,
                   help="epochs = n_epochs.txt x this (default 100, the reference files' "
                        "'100_xepochs'; --quick: 0.25)")
    p.add_argument("--test-samples", type=int, default=None,
                   help="MC samples for validation and test (default 10000; --quick: 100)")
    p.add_argument("--train-samples", type=int, default=None,
                   help="noise samples per step for marginal_map / tail_adaptive "
                        "(default 5; --quick: 2)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 2 splits, 2 methods, reduced grid, few epochs and samples")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def settings_from_args(args) -> Settings:
    q = args.quick
    em = args.epochs_multiplier if args.epochs_multiplier is not None else (0.25 if q else 100.0)
    ts = args.test_samples if args.test_samples is not None else (100 if q else 10_000)
    tr = args.train_samples if args.train_samples is not None else (2 if q else 5)
    for name, v in (("--epochs-multiplier", em), ("--test-samples", ts),
                    ("--train-samples", tr)):
        if not v > 0:
            raise ValueError(f"{name} has to be positive, but got {v}")
    return Settings(epochs_multiplier=float(em), test_samples=int(ts), train_samples=int(tr),
                    quick=q, seed=args.seed)


def _command(args) -> str:
    parts = ["shrinkdrop", "uci", "--data", str(args.data), "--out", str(args.out)]
    if args.splits is not None:
        parts += ["--splits", ",".join(map(str, args.splits))]
    if args.methods is not None:
        parts += ["--methods", ",".join(args.methods)]
    for opt in ("epochs_multiplier", "test_samples", "train_samples"):
        if getattr(args, opt) is not None:
            parts += ["--" + opt.replace("_", "-"), f"{getattr(args, opt):g}"]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    if args.jobs != 1:
        parts += ["--jobs", str(args.jobs)]
    if args.quick:
        parts.append("--quick")
    return " ".join(shlex.quote(p) for p in parts)


def run(args) -> int:
    settings = settings_from_args(args)
    if args.jobs < 1:
        raise ValueError(f"--jobs has to be at least 1, but got {args.jobs}")
    datasets = resolve_data(args.data)
    t0 = time.perf_counter()
    path = run_uci(datasets, args.out, splits=args.splits, methods=args.methods,
                   settings=settings, jobs=args.jobs, progress=not args.no_progress,
                   command=_command(args))
    print(f"[uci] wrote {path} and {Path(args.out) / 'summary.md'} in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0
