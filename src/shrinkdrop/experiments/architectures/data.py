"""The data of the architecture experiments: diabetes (resnet), digits (cnn), macrodata (lstm)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...data import standardize
from ...errors import MissingExtraError

__all__ = ["EXTRA", "Regression", "load_diabetes", "load_digits", "load_macrodata",
           "MACRO_FEATURES", "MACRO_BLOCKS", "MACRO_BLOCK", "blocked_split"]

#: the optional extra (pyproject) that brings the LSTM experiment's data
EXTRA = "timeseries"


def _split(n: int, seed: int, test: float = 0.2,
           val: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_test, n_val = round(test * n), round(val * n)
    return np.sort(perm[n_test + n_val:]), np.sort(perm[n_test:n_test + n_val]), \
        np.sort(perm[:n_test])



def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mu, sd = standardize(train)
    return [(a - mu) / sd for a in (train, *others)]


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float32)


@dataclass
class Regression:
    """Standardised inputs and targets of train / val / test, and the target's scale."""

    x: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    y: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # standardised
    y_raw: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # original units
    y_mean: float
    y_std: float
    name: str



def _regression(x: np.ndarray, y: np.ndarray, parts: tuple[np.ndarray, ...],
                name: str) -> Regression:
    xs = _standardise(*(x[p] for p in parts))
    ym, ys = float(y[parts[0]].mean()), float(y[parts[0]].std())
    return Regression(
        x=tuple(_t(a) for a in xs),
        y=tuple(_t((y[p] - ym) / ys) for p in parts),
        y_raw=tuple(_t(y[p]) for p in parts),
        y_mean=ym, y_std=ys, name=name,
    )


def load_diabetes() -> Regression:
    """scikit-learn's diabetes data (442 x 10), a fixed 70/10/20 split (seed 0)."""
    from sklearn.datasets import load_diabetes as _load

    b = _load()
    x, y = np.asarray(b.data, np.float64), np.asarray(b.target, np.float64)
    return _regression(x, y, _split(len(y), 0), "diabetes")


def load_digits() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """scikit-learn's 8x8 digits (1797 images), fixed stratified 80/20 split (seed 0)."""
    from sklearn.datasets import load_digits as _load
    from sklearn.model_selection import train_test_split

    b = _load()
    x = np.asarray(b.images, np.float32)[:, None] / 16.0
    y = np.asarray(b.target, np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    return (torch.as_tensor(xtr), torch.as_tensor(ytr)), (torch.as_tensor(xte),
                                                         torch.as_tensor(yte))


#: macrodata columns turned into annualised quarterly growth rates (400 * diff log)
_GROWTH = ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "m1")
#: macrodata columns used as they are (rates in percent)
_LEVELS = ("tbilrate", "unemp", "infl", "realint")
MACRO_FEATURES = tuple(f"{c} growth" for c in _GROWTH) + _LEVELS


def _macrodata_path() -> Path:
    spec = importlib.util.find_spec("statsmodels")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            "the LSTM experiment uses the macrodata set shipped inside statsmodels, which is not "
            f"installed: pip install 'shrinkdrop[{EXTRA}]' (or pip install statsmodels)")
    for loc in spec.submodule_search_locations:
        f = Path(loc) / "datasets" / "macrodata" / "macrodata.csv"
        if f.is_file():
            return f
    raise MissingExtraError(f"statsmodels is installed but ships no datasets/macrodata/"
                            f"macrodata.csv; reinstall it: pip install 'shrinkdrop[{EXTRA}]'")


#: role of each block of MACRO_BLOCK consecutive windows: t(rain), v(alidation), x (test)
MACRO_BLOCKS = "ttxtvtxt"
MACRO_BLOCK = 24


def blocked_split(n: int, gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / val / test indices of ``n`` windows by blocks of ``MACRO_BLOCK`` (roles
    ``MACRO_BLOCKS``; windows past the last block are unused). The first ``gap`` windows of a
    block that follows a block of another role are dropped (purged), so no window's inputs
    overlap the targets of a window in another part."""
    parts: dict[str, list[int]] = {"t": [], "v": [], "x": []}
    for k, role in enumerate(MACRO_BLOCKS):
        start, stop = k * MACRO_BLOCK, min((k + 1) * MACRO_BLOCK, n)
        if k > 0 and MACRO_BLOCKS[k - 1] != role:
            start += gap
        parts[role].extend(range(start, stop))
    return tuple(np.asarray(parts[r], dtype=np.int64) for r in "tvx")


def load_macrodata(window: int = 8) -> Regression:
    """US quarterly macro data 1959-2009 (statsmodels' ``macrodata.csv``, read from the package's
    files without importing statsmodels; nothing is downloaded).

    Inputs: ``window`` quarters of the 10 series ``MACRO_FEATURES``; target: the next quarter's
    inflation ``infl`` (annualised %). Blocked split (:func:`blocked_split`): blocks of 24
    windows (6 years) in the roles train, train, test, train, val, train, test, train, so the
    test targets are 1975Q2-1979Q1 and 1999Q2-2003Q1 and validation 1987Q2-1991Q1 (a plain
    chronological split puts the calm 1990s in validation and the 2008 crisis in test, and the
    noise precision picked on the one does not fit the other). Inputs are standardised with
    training statistics per series.

    Raises:
        MissingExtraError: statsmodels is not installed (the extra ``timeseries``).
    """
    path = _macrodata_path()
    data = np.genfromtxt(path, delimiter=",", names=True)
    cols = []
    for c in _GROWTH:
        cols.append(400.0 * np.diff(np.log(data[c])))
    for c in _LEVELS:
        cols.append(data[c][1:])
    series = np.stack(cols, axis=1)  # (T - 1, 10)
    target = data["infl"][1:]
    n = len(series) - window
    xs = np.stack([series[i:i + window] for i in range(n)])  # (n, window, 10)
    ys = target[window:window + n]
    parts = blocked_split(n, window)
    # standardise per series over the training windows' time steps
    flat = xs[parts[0]].reshape(-1, xs.shape[-1])
    mu, sd = standardize(flat)
    xs = (xs - mu) / sd
    ym, ysd = float(ys[parts[0]].mean()), float(ys[parts[0]].std())
    return Regression(
        x=tuple(_t(xs[p]) for p in parts),
        y=tuple(_t((ys[p] - ym) / ysd) for p in parts),
        y_raw=tuple(_t(ys[p]) for p in parts),
        y_mean=ym, y_std=ysd, name="macrodata",
    )

