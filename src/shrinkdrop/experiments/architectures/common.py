"""What the three architecture experiments share: their settings, the grid of (model, seed),
MC outputs, regression scores with the noise precision picked on validation, plots."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from ... import noise as N
from ... import train as O
from ..stats import mean_se
from .data import Regression

__all__ = ["Experiment", "Settings", "Log", "grid", "mc_outputs", "regression_scores", "fit",
           "fit_row", "log_fit", "bernoulli_or_gaussian",
           "pm", "pyplot", "errorbar_plot", "model_table", "seed_mean_se", "TAU_GRID"]

#: a progress line printer
Log = Callable[[str], None]


class Experiment(str, enum.Enum):
    """The experiments of ``shrinkdrop architectures``."""

    RESNET = "resnet"
    CNN = "cnn"
    LSTM = "lstm"


@dataclass(frozen=True)
class Settings:
    """Everything that changes the numbers (``--quick`` picks the small one)."""

    seeds: int = 5
    resnet_epochs: int = 200
    cnn_epochs: int = 40
    lstm_epochs: int = 300
    eval_samples: int = 64
    lr: float = 2e-3

    @classmethod
    def quick(cls, seeds: int = 2) -> Settings:
        """The small settings of ``--quick``."""
        return cls(seeds=seeds, resnet_epochs=25, cnn_epochs=4, lstm_epochs=30,
                   eval_samples=8, lr=4e-3)



def grid(models: list[tuple[str, str, dict]], seeds: int) -> Iterator[tuple[str, dict, int]]:
    """``(name, kw, seed)`` for every model and seed, torch's global seed set to ``seed``
    before each (the initial weights)."""
    for name, _, kw in models:
        for seed in range(seeds):
            torch.manual_seed(seed)
            yield name, kw, seed


def mc_outputs(model: torch.nn.Module, x: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """(S, N, ...) outputs with every noise source on (shrinkdrop layers and nn.Dropout*).

    The models hold no batch norm, so train mode is exactly "noise on".
    """
    model.train()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return O.sample_outputs(model, x, samples)
    finally:
        model.eval()


#: TAU_GRID * (1 / residual variance on validation) is searched for the noise precision
TAU_GRID = np.geomspace(0.05, 20.0, 121)


def gaussian_ll(outs: torch.Tensor, y: torch.Tensor, tau: float) -> float:
    """Mean MC predictive log-likelihood ``log mean_s N(y; out_s, 1/tau)`` (original units)."""
    return float(O.marginal_map(O.gaussian_log_likelihood(outs, y, tau)).mean())


def regression_scores(model: torch.nn.Module, data: Regression, samples: int,
                      seed: int) -> dict:
    """Test log-likelihood and RMSEs (original units), the noise precision picked on the
    validation split from :data:`TAU_GRID` and its validation log-likelihood."""
    def raw(outs):
        return outs * data.y_std + data.y_mean

    out_val = raw(mc_outputs(model, data.x[1], samples, seed))
    out_test = raw(mc_outputs(model, data.x[2], samples, seed + 1))
    resid = float(((out_val.mean(0).squeeze(-1) - data.y_raw[1]) ** 2).mean())
    grid = TAU_GRID / max(resid, 1e-12)
    lls = [gaussian_ll(out_val, data.y_raw[1], t) for t in grid]
    tau = float(grid[int(np.argmax(lls))])
    with torch.no_grad():
        det = raw(model(data.x[2])).squeeze(-1)
    return {
        "test_ll": gaussian_ll(out_test, data.y_raw[2], tau),
        "test_rmse": float(((out_test.mean(0).squeeze(-1) - data.y_raw[2]) ** 2).mean().sqrt()),
        "test_rmse_mean": float(((det - data.y_raw[2]) ** 2).mean().sqrt()),
        "val_ll": float(max(lls)),
        "tau": tau,
    }


def fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, likelihood: str,
        tau: float | None, epochs: int, lr: float, seed: int, batch_size: int) -> O.History:
    """:func:`shrinkdrop.fit` with the experiments' fixed choices (sigma0 1, no progress)."""
    torch.manual_seed(seed)
    return O.fit(model, x, y, likelihood=likelihood, tau=tau, sigma0=1.0, epochs=epochs,
                 batch_size=batch_size, lr=lr, seed=seed, progress=False)


def fit_row(name: str, seed: int, hist: O.History, scores: dict, **timing: float) -> dict:
    """The result row of one (model, seed): its ``scores``, the training seconds (then
    ``timing``'s other seconds) and the final training loss."""
    return {"model": name, "seed": seed, **scores, "train_seconds": hist.seconds, **timing,
            "final_loss": hist.loss[-1]}


def log_fit(log: Log, experiment: str, name: str, seed: int, hist: O.History,
            summary: str) -> None:
    """The progress line of one (model, seed): ``EXPERIMENT NAME seed SEED: SUMMARY (T s)``
    with ``T`` the training seconds."""
    log(f"{experiment} {name} seed {seed}: {summary} ({hist.seconds:.1f} s)")


def bernoulli_or_gaussian(fam: str | None, keep: float,
                          std: float) -> N.NoiseDistribution | None:
    """A grid entry's noise: ``"b"`` Bernoulli(``keep``), any other family Gaussian(1, ``std``)
    (the variance-matched alternative), None none."""
    if fam is None:
        return None
    return N.Bernoulli(keep) if fam == "b" else N.Gaussian(1.0, std)


def seed_mean_se(values: Iterable[float]) -> tuple[float, float]:
    """Mean and standard error over seeds (NaNs left out)."""
    return mean_se(values, skip_inf=False)


def pm(values: Iterable[float], digits: int = 3) -> str:
    """``mean ± se`` over seeds (``n/a`` when there is none)."""
    m, se = seed_mean_se(values)
    return "n/a" if m != m else f"{m:.{digits}f} ± {se:.{digits}f}"


def model_table(models: list[tuple[str, str, dict]], rows: list[dict],
                columns: list[tuple[str, int]]) -> list[list]:
    """Per model: its name, description, number of seeds and ``mean ± se`` of each
    ``(key, digits)`` column over its rows."""
    table = []
    for name, desc, _ in models:
        rs = [r for r in rows if r["model"] == name]
        table.append([name, desc, len(rs)] + [pm((r[key] for r in rs), digits)
                                              for key, digits in columns])
    return table


def pyplot() -> ModuleType:
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def errorbar_plot(path: Path, rows: list[dict], models: list[str],
                  metrics: list[tuple[str, str]], title: str) -> None:
    """Mean ± SE over seeds of each model (and the single seeds), one panel per metric."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 0.45 * len(models)
                                                         + 1.6))
    axes = np.atleast_1d(axes)
    for ax, (key, label) in zip(axes, metrics):
        ms = [seed_mean_se(r[key] for r in rows if r["model"] == m) for m in models]
        y = np.arange(len(models))
        ax.errorbar([m for m, _ in ms], y, xerr=[0 if s != s else s for _, s in ms], fmt="o",
                    capsize=3)
        for m in models:
            pts = [r[key] for r in rows if r["model"] == m]
            ax.plot(pts, np.full(len(pts), models.index(m)) + 0.18, ".", color="0.6", ms=4)
        ax.set_yticks(y, models)
        ax.invert_yaxis()
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title + " (mean ± SE over seeds; grey: single seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

