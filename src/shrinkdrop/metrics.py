"""Scores of predictive distributions: NLL, calibration (ECE, reliability), Brier, interval
coverage, and the AUROC of an uncertainty score for telling out-of-distribution inputs apart.

Written here in a few lines of torch each (float64, any device, no extra dependency) and tested
against ``torchmetrics`` (ECE: ``MulticlassCalibrationError``; AUROC: ``BinaryAUROC``) and
against hand computations (NLL, Brier, coverage); ``torchmetrics`` is a test-only dependency
(the ``test`` extra).

**ECE binning** (:func:`ece`, :func:`reliability`): top-label confidence ``max_c p_c``, 15
equal-width bins over ``[0, 1]`` (each ``[lo, hi)``, the last one ``[lo, 1]``),
``ECE = sum_b (n_b / N) |acc_b - conf_b|``: ``torchmetrics``' default (``n_bins=15``,
``norm='l1'``).
"""

from __future__ import annotations

import math

import torch

__all__ = ["nll", "accuracy", "brier", "ece", "reliability", "interval_coverage", "auroc",
           "gaussian_mixture_nll"]


def _check_probs(probs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if probs.ndim != 2 or y.ndim != 1 or probs.shape[0] != y.shape[0]:
        raise ValueError(f"probs has to be (N, C) and y (N,), but got {tuple(probs.shape)} and "
                         f"{tuple(y.shape)}")
    return probs.double(), y.long()


def nll(log_probs: torch.Tensor, y: torch.Tensor) -> float:
    """Mean negative log-likelihood ``-mean_n log p(y_n)`` of predictive log-probabilities
    ``(N, C)`` (e.g. :attr:`shrinkdrop.train.uncertainty.Predictive.log_probs`)."""
    lp, y = _check_probs(log_probs, y)
    return float(-lp.gather(1, y[:, None]).mean())


def accuracy(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows whose most probable class is ``y``."""
    p, y = _check_probs(probs, y)
    return float((p.argmax(1) == y).double().mean())


def brier(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Multiclass Brier score ``mean_n sum_c (p_nc - [y_n = c])^2`` (in ``[0, 2]``)."""
    p, y = _check_probs(probs, y)
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).double()
    return float((p - onehot).pow(2).sum(1).mean())


def reliability(probs: torch.Tensor, y: torch.Tensor,
                bins: int = 15) -> dict[str, torch.Tensor]:
    """The reliability diagram's bins: per equal-width confidence bin, the mean top-label
    confidence ``conf``, the accuracy ``acc`` and the row count ``count`` (``edges``: the
    ``bins + 1`` edges). Empty bins have NaN ``conf`` and ``acc``."""
    p, y = _check_probs(probs, y)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins has to be an integer >= 1, but got {bins!r}")
    conf, pred = p.max(1)
    correct = (pred == y).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    # bin b holds [edges[b], edges[b+1]) as in torchmetrics; confidence 1 falls into the last
    idx = (torch.bucketize(conf, edges, right=True) - 1).clamp(0, bins - 1)
    count = torch.bincount(idx, minlength=bins).double()
    s_conf = torch.zeros(bins, dtype=torch.float64).index_add_(0, idx, conf)
    s_acc = torch.zeros(bins, dtype=torch.float64).index_add_(0, idx, correct)
    return {"edges": edges, "count": count, "conf": s_conf / count, "acc": s_acc / count}


def ece(probs: torch.Tensor, y: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error, top-label, ``bins`` equal-width bins:
    ``sum_b (n_b / N) |acc_b - conf_b|`` (torchmetrics' ``MulticlassCalibrationError``
    default)."""
    r = reliability(probs, y, bins)
    n = r["count"].sum()
    gap = (r["acc"] - r["conf"]).abs().nan_to_num(0.0)
    return float((r["count"] / n * gap).sum())


def interval_coverage(lower: torch.Tensor, upper: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of targets inside their interval ``[lower, upper]`` (all elements)."""
    y = y.reshape(lower.shape) if y.numel() == lower.numel() else y
    if lower.shape != upper.shape or lower.shape != y.shape:
        raise ValueError(f"lower, upper and y have to have the same shape, but got "
                         f"{tuple(lower.shape)}, {tuple(upper.shape)} and {tuple(y.shape)}")
    return float(((y >= lower) & (y <= upper)).double().mean())


def auroc(score_in: torch.Tensor, score_out: torch.Tensor) -> float:
    """Area under the ROC curve of a score that should be higher on out-of-distribution rows:
    the probability that an OOD row scores above an in-distribution one (ties count one
    half; the Mann-Whitney statistic)."""
    a = score_in.double().reshape(-1)
    b = score_out.double().reshape(-1)
    if a.numel() == 0 or b.numel() == 0:
        raise ValueError(f"score_in and score_out have to be non-empty, but got "
                         f"{a.numel()} and {b.numel()} values")
    if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
        raise ValueError("score_in and score_out have to be finite")
    allv = torch.cat([a, b])
    # average ranks (1-based) with ties
    sorted_v, order = allv.sort()
    ranks = torch.empty_like(allv)
    ranks[order] = torch.arange(1, allv.numel() + 1, dtype=torch.float64)
    uniq, inv, counts = torch.unique_consecutive(sorted_v, return_inverse=True,
                                                 return_counts=True)
    first = torch.cumsum(counts, 0) - counts + 1
    avg = (first + (counts - 1) / 2.0).double()
    ranks[order] = avg[inv]
    r_out = ranks[a.numel():].sum()
    nb, na = b.numel(), a.numel()
    return float((r_out - nb * (nb + 1) / 2) / (na * nb))


def gaussian_mixture_nll(draws: torch.Tensor, y: torch.Tensor, tau: float) -> float:
    """Mean NLL of regression targets under the MC predictive ``(1/S) sum_s N(draws_s, 1/tau)``
    (``draws`` ``(S, N, *event)``, summed over event dimensions)."""
    y = y.reshape(draws.shape[1:]).double()
    ll = (-0.5 * tau * (y - draws.double()) ** 2 + 0.5 * math.log(tau)
          - 0.5 * math.log(2 * math.pi))
    if ll.ndim > 2:
        ll = ll.sum(tuple(range(2, ll.ndim)))
    return float(-(torch.logsumexp(ll, 0) - math.log(draws.shape[0])).mean())
