"""What both training engines share: standardisation, Gal's weight decay, the scores of a
configuration, the choice of the best one, the cross-fitting halves of ``+tau`` methods."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ...data import standardize
from .methods import Config

__all__ = ["prepare", "gal_decay", "scores", "best_config", "tau_folds", "label"]


def prepare(x_tr: np.ndarray, y_tr: np.ndarray, x_ev: np.ndarray, y_ev: np.ndarray,
            regression: bool) -> tuple:
    """Standardise inputs (and targets, for regression) on the training rows.

    Returns ``(x_tr, y_tr, x_ev, y_ev, y_mean, y_std)`` (``y_ev`` unchanged; ``y_mean`` 0 and
    ``y_std`` 1 for classification)."""
    xm, xs = standardize(x_tr)
    if regression:
        ym, ys = float(y_tr.mean()), float(y_tr.std()) or 1.0
        yt = (y_tr - ym) / ys
    else:
        ym, ys, yt = 0.0, 1.0, y_tr
    return (x_tr - xm) / xs, yt, (x_ev - xm) / xs, y_ev, ym, ys


def gal_decay(rate: float | np.ndarray, tau: float | np.ndarray, n: int,
              y_std: float | np.ndarray, length_scale: float, regression: bool) -> tuple:
    """The training precision and weight decay of Gal's loss; ``(tau_s, wd)`` (``tau_s`` None
    for classification). Elementwise in ``rate``, ``tau`` and ``y_std`` (floats or arrays).

    Gal's Keras loss is ``mse + reg ||W||^2`` with ``reg = l^2 (1 - p) / (2 N tau)`` (tau in the
    target's units, on standardised targets, weights only). ``fit`` minimises ``-mean(log-lik)
    + wd / 2 ||W||^2`` (weights only). With the Gaussian log-likelihood at the model's precision
    in standardised units, ``tau_s = tau std(y)^2``, the data term is ``tau_s / 2 mse``, so
    ``wd = tau_s reg`` keeps Gal's ratio of data term to decay (Adam is invariant to the overall
    scale of the loss). For categorical, ``CE + reg ||W||^2``: ``wd = 2 reg``.
    """
    reg = length_scale ** 2 * (1.0 - rate) / (2.0 * n * tau)
    if not regression:
        return None, 2.0 * reg
    tau_s = tau * y_std ** 2
    return tau_s, tau_s * reg


def scores(ll: float, y_true: np.ndarray, mc: np.ndarray, mean_pred: np.ndarray | None,
           regression: bool) -> dict[str, float]:
    """A configuration's scores: ``ll``; regression: ``rmse`` of the MC mean ``mc`` and
    ``rmse_mean`` of the weight-scaling prediction ``mean_pred`` (None: no such rule), both in
    the target's units; classification: ``error`` of the MC class probabilities ``mc``."""
    nan = float("nan")
    out = {"ll": float(ll), "rmse": nan, "rmse_mean": nan, "error": nan}
    y_true = np.asarray(y_true)
    if regression:
        out["rmse"] = float(np.sqrt(np.mean((y_true - np.reshape(mc, -1)) ** 2)))
        if mean_pred is not None:
            out["rmse_mean"] = float(np.sqrt(np.mean((y_true - np.reshape(mean_pred, -1)) ** 2)))
    else:
        out["error"] = float(np.mean(np.asarray(mc).argmax(-1) != y_true))
    return out


def best_config(configs: Sequence[Config], scores: Sequence[dict]) -> tuple:
    """The configuration with the best finite validation ``ll`` (the first one if none is
    finite), and that ``ll``."""
    best, best_ll = None, -math.inf
    for cfg, r in zip(configs, scores):
        if best is None or (np.isfinite(r["ll"]) and r["ll"] > best_ll):
            best, best_ll = cfg, r["ll"]
    return best, best_ll


def tau_folds(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The two halves of ``n`` validation rows (even and odd positions) over which a ``+tau``
    method's validation score is cross-fitted: the rows of each half are scored at the
    precision fitted on the other half, so the score is not flattered by the fit."""
    if n < 2:
        raise ValueError(f"a +tau method needs at least 2 validation rows (to cross-fit its "
                         f"precision), but got {n}")
    even = np.arange(n) % 2 == 0
    return even, ~even


def label(cfg: Config, fitted_tau: float | None) -> str:
    """The ``config`` column: the grid point, and the precision fitted for ``+tau`` methods."""
    return cfg.label() + ("" if fitted_tau is None else f" fitted_tau={fitted_tau:.6g}")

