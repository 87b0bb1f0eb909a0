"""The likelihood's precision as a parameter: the Gaussian ``tau`` that maximises the MC
predictive log-likelihood on held-out rows, instead of a grid of fixed values."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .._validation import check_int, describe
from .likelihoods import align_target
from .prediction import _mc_outputs

__all__ = ["fit_predictive_precision", "fit_predictive_tau"]

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _lse_objective(e: torch.Tensor, log_tau: torch.Tensor, d: int) -> torch.Tensor:
    """``mean_n [logsumexp_s(-tau e_ns / 2) - log S] + d log(tau) / 2`` for ``e (K, n, S)``
    and ``log_tau (K,)`` (float64; the ``- d log(2 pi) / 2`` constant left out)."""
    tau = log_tau.exp().to(e.dtype).view(-1, 1, 1)
    lse = torch.logsumexp(-0.5 * tau * e, dim=-1).double().mean(-1)
    return lse - math.log(e.shape[-1]) + 0.5 * d * log_tau


def _checked_errors(sq_errors: torch.Tensor) -> torch.Tensor:
    """``sq_errors (..., n, S)`` as ``(K, n, S)`` floats, checked non-empty, finite and
    non-negative."""
    if not isinstance(sq_errors, torch.Tensor) or sq_errors.ndim < 2:
        raise ValueError("sq_errors has to be a tensor of shape (..., n, S), but got "
                         f"{getattr(sq_errors, 'shape', type(sq_errors).__name__)}")
    if sq_errors.shape[-1] == 0 or sq_errors.shape[-2] == 0:
        raise ValueError(f"sq_errors has to have at least one point and one draw, but got shape "
                         f"{tuple(sq_errors.shape)}")
    n, S = sq_errors.shape[-2:]
    e = sq_errors.reshape(-1, n, S)
    if not e.is_floating_point():
        e = e.double()
    bad = ~torch.isfinite(e) | (e < 0)
    if bool(bad.any()):
        raise ValueError("sq_errors has to be finite and non-negative, but got "
                         f"{int(bad.sum())} entries that are not")
    return e


def _bracket(e: torch.Tensor, d: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``log tau`` brackets ``[log(d / mean_ns e), log(d / mean_n min_s e)]`` per model (at most
    12 decades wide)."""
    mean_e = e.double().mean((-2, -1))
    if bool((mean_e == 0).any()):
        raise ValueError("sq_errors are all zero for some model: every draw predicts every "
                         "target exactly, and the likelihood grows without bound in tau")
    lo = torch.log(d / mean_e)
    min_e = e.min(-1).values.double().mean(-1)
    hi = torch.where(min_e > 0, torch.log(d / min_e.clamp_min(1e-300)), lo + math.log(1e12))
    hi = torch.minimum(torch.maximum(hi, lo), lo + math.log(1e12))
    return lo, hi


def _maximise(ek: torch.Tensor, a0: torch.Tensor, b0: torch.Tensor, event_size: int, grid: int,
              iters: int) -> torch.Tensor:
    """The best ``log tau`` in ``[a0, b0]`` per model of ``ek (k, n, S)``: a grid of ``grid``
    points, then ``iters`` golden-section steps around the best; the best point seen."""
    g = _GOLDEN
    width = (b0 - a0) / (grid - 1)
    vals = torch.stack([_lse_objective(ek, a0 + i * width, event_size)
                        for i in range(grid)], -1)  # (k, grid)
    i_best = vals.argmax(-1)
    best_u = a0 + i_best * width
    best_v = vals.gather(-1, i_best.view(-1, 1)).squeeze(-1)
    a = torch.maximum(best_u - width, a0)
    b = torch.minimum(best_u + width, b0)
    c, dd = b - g * (b - a), a + g * (b - a)
    fc, fd = _lse_objective(ek, c, event_size), _lse_objective(ek, dd, event_size)
    for _ in range(iters):  # golden section for a maximum, all models at once
        left = fc > fd  # the maximum is in [a, dd]
        b = torch.where(left, dd, b)
        a = torch.where(left, a, c)
        new_c, new_d = b - g * (b - a), a + g * (b - a)
        u_new = torch.where(left, new_c, new_d)
        f_new = _lse_objective(ek, u_new, event_size)
        c, fc, dd, fd = (torch.where(left, new_c, dd), torch.where(left, f_new, fd),
                         torch.where(left, c, new_d), torch.where(left, fc, f_new))
        for u, f in ((c, fc), (dd, fd)):
            better = f > best_v
            best_u, best_v = torch.where(better, u, best_u), torch.where(better, f, best_v)
    return best_u


def fit_predictive_precision(
    sq_errors: torch.Tensor, *, event_size: int = 1, grid: int = 16, iters: int = 20,
    max_elements: int = 2 ** 24,
) -> torch.Tensor:
    """The Gaussian noise precision that maximises the MC predictive log-likelihood.

    With ``e_ns = ||y_n - yhat_ns||^2`` the squared error of MC draw ``s`` at point ``n`` (summed
    over ``event_size`` output dimensions), returns per leading index the ``tau`` maximising

        L(tau) = mean_n [logsumexp_s(-tau e_ns / 2) - log S] + event_size (log tau - log 2 pi) / 2,

    the mean log density of ``y_n`` under the MC predictive mixture ``1/S sum_s N(yhat_ns,
    1/tau)`` (:func:`~shrinkdrop.train.predictive_log_likelihoods`' convention). This is the
    likelihood's precision as a parameter estimated on held-out rows, instead of a grid of
    fixed values.

    The maximiser lies in ``[d / mean_ns e, d / mean_n min_s e]`` (``d = event_size``):
    ``dL/dtau = d / (2 tau) - mean_n E_w[e_n] / 2`` with ``w_ns`` proportional to
    ``exp(-tau e_ns / 2)``, and ``min_s e_ns <= E_w[e_n] <= mean_s e_ns`` (weights that
    decrease in ``e`` can only lower the mean), so ``L`` increases below the interval and
    decreases above it. ``grid`` log-spaced points over it locate the best bracket, ``iters``
    golden-section steps refine it (in ``log tau``); the best point seen is returned. At
    ``S = 1`` the answer is the closed form ``d / mean_n e_n``.

    Args:
        sq_errors: ``(..., n, S)`` non-negative, finite.
        event_size: output dimensions summed into each ``e_ns`` (1 for scalar regression).
        max_elements: models are processed in chunks of about this many errors.

    Shape: ``(..., n, S) -> (...)`` (float64).
    """
    e = _checked_errors(sq_errors)
    check_int("event_size", event_size)
    check_int("grid", grid, low=3)
    check_int("iters", iters, low=0)
    lead = sq_errors.shape[:-2]
    n, S = e.shape[-2:]
    lo, hi = _bracket(e, float(event_size))
    out = torch.empty(e.shape[0], dtype=torch.float64)
    chunk = max(1, max_elements // max(1, n * S))
    for k0 in range(0, e.shape[0], chunk):
        best_u = _maximise(e[k0: k0 + chunk], lo[k0: k0 + chunk], hi[k0: k0 + chunk],
                           event_size, grid, iters)
        out[k0: k0 + chunk] = best_u.exp()
    return out.reshape(lead)


def _check_targets(y: torch.Tensor, y_mean: object, y_std: object) -> None:
    """``y`` finite, ``y_std`` positive and finite, ``y_mean`` finite (where given)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y has to be a tensor, but got {type(y).__name__}")
    if y.is_floating_point() and not bool(torch.isfinite(y).all()):
        raise ValueError(f"y has to be finite, but got {int((~torch.isfinite(y)).sum())} NaN or "
                         "infinite value(s)")
    if y_std is not None:
        t = torch.as_tensor(y_std, dtype=torch.float64)
        if not bool((torch.isfinite(t) & (t > 0)).all()):
            raise ValueError(f"y_std has to be positive and finite, but got {describe(y_std)}")
    if y_mean is not None and not bool(torch.isfinite(torch.as_tensor(y_mean)).all()):
        raise ValueError(f"y_mean has to be finite, but got {describe(y_mean)}")


def fit_predictive_tau(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    samples: int = 1000,
    y_mean: float | torch.Tensor | None = None,
    y_std: float | torch.Tensor | None = None,
    rows: Sequence[torch.Tensor] | None = None,
) -> float | torch.Tensor:
    """The Gaussian precision (in ``y``'s units) that maximises the MC predictive
    log-likelihood of ``model`` on ``(x, y)``: :func:`fit_predictive_precision` of the squared
    errors of ``samples`` noisy passes (outputs mapped to ``y``'s units by ``out * y_std +
    y_mean``, as in :func:`~shrinkdrop.train.predictive_log_likelihoods`). Fit it on held-out
    rows (a validation split), not on the rows the model was trained on, whose errors are too
    small.

    ``rows``: subsets of the rows (index tensors or boolean masks), each fitted on its own from
    the same draws (e.g. for cross-fitting); then a float64 tensor of ``len(rows)`` precisions
    is returned instead of a float.
    """
    _check_targets(y, y_mean, y_std)
    outs = _mc_outputs(model, x, y, samples, y_mean, y_std)  # (S, B, ...)
    yy = align_target(outs, y).to(outs.dtype)
    sq = (outs - yy).pow(2)
    size = 1
    if sq.ndim > 2:
        size = int(math.prod(sq.shape[2:]))
        sq = sq.sum(tuple(range(2, sq.ndim)))
    sq = sq.transpose(0, 1).double()  # (B, S)
    if rows is None:
        return float(fit_predictive_precision(sq, event_size=size))
    return torch.stack([fit_predictive_precision(sq[torch.as_tensor(r)], event_size=size)
                        for r in rows])
