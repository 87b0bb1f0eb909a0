"""Per-example log-likelihoods: the one home of the Gaussian log density.

* :func:`gaussian_log_likelihood`: ``log N(y; output, 1/tau)`` summed over output dimensions;
* :func:`categorical_log_likelihood`: ``log softmax(logits)[y]``;
* :func:`bernoulli_log_likelihood`: ``y log sigmoid(f) + (1 - y) log sigmoid(-f)`` summed over
  output dimensions;
* :func:`log_likelihood`: the per-example function for a :class:`~shrinkdrop.enums.Likelihood`
  name (or a callable, returned as is).

The Gaussian density's pieces: :func:`gaussian_log_norm` (the normalising term
``d/2 (log tau - log 2 pi)``), :func:`gaussian_log_density` (of a squared error at precision
``tau``; the stacked engine and SVI) and :func:`gaussian_log_prob` (of a value at a standard
deviation; the weight priors and :mod:`shrinkdrop.gaps`). :func:`gaussian_log_likelihood` (the
training loop and prediction) writes the same density out in its own order of operations, so
that :func:`shrinkdrop.fit`'s losses stay bit-identical to the releases before issue 25.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._validation import check_choice, describe, positive_float
from ..enums import Likelihood

__all__ = [
    "LOG_2PI",
    "gaussian_log_norm",
    "gaussian_log_density",
    "gaussian_log_prob",
    "gaussian_log_likelihood",
    "categorical_log_likelihood",
    "bernoulli_log_likelihood",
    "log_likelihood",
    "align_target",
    "check_target",
]

#: ``log(2 pi)``
LOG_2PI = math.log(2 * math.pi)


def gaussian_log_norm(tau: torch.Tensor, event_size: int = 1) -> torch.Tensor:
    """The normalising term of ``d`` independent Gaussians of precision ``tau``:
    ``d (log(tau) / 2 - log(2 pi) / 2)``."""
    return event_size * (0.5 * torch.log(tau) - 0.5 * LOG_2PI)


def gaussian_log_density(sq_error: torch.Tensor, tau: torch.Tensor,
                         event_size: int = 1) -> torch.Tensor:
    """``log N`` of a squared error ``sq_error = ||y - mean||^2`` (summed over ``event_size``
    dimensions) at precision ``tau``: ``-tau sq_error / 2 + d (log tau - log 2 pi) / 2``.
    Broadcasts."""
    return -0.5 * tau * sq_error + gaussian_log_norm(tau, event_size)


def gaussian_log_prob(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log N(x; 0, scale^2)`` for a standard deviation ``scale``:
    ``-(x / scale)^2 / 2 - log(scale) - log(2 pi) / 2``."""
    return -0.5 * (x / scale) ** 2 - torch.log(scale) - 0.5 * LOG_2PI


def align_target(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``y`` shaped to broadcast against ``output``: a ``(B, ...)`` target of a ``(..., B, ...,
    1)`` output gets the trailing unit dimension."""
    if y.ndim < output.ndim and output.shape[-1] == 1 and y.ndim >= 1:
        if tuple(output.shape[-y.ndim - 1 : -1]) == tuple(y.shape):
            y = y.unsqueeze(-1)
    return y


def check_target(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``y`` aligned to ``output`` (:func:`align_target`) and checked to have the trailing shape
    of ``output``: a target of another shape is refused, never broadcast (a ``(B, 3)`` or
    ``(B, 1, 1)`` target against a ``(B, 1)`` output would silently compare every pair)."""
    if not isinstance(output, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"output and y have to be tensors, but got {type(output).__name__} and "
                        f"{type(y).__name__}")
    y = align_target(output, y)
    if y.ndim > output.ndim or tuple(output.shape[output.ndim - y.ndim:]) != tuple(y.shape):
        raise ValueError(
            f"y has to have the shape of the model's output per example (the output's trailing "
            f"dimensions; a (B,) target is accepted for a (B, 1) output), but got y of shape "
            f"{tuple(y.shape)} against an output of shape {tuple(output.shape)}: a target of "
            "another shape is refused, not broadcast")
    return y


def _check_tau(tau: object) -> None:
    """``tau`` positive and finite: always for numbers, for tensors where no device sync is
    needed (on the CPU)."""
    if isinstance(tau, torch.Tensor):
        if tau.is_cuda or not tau.numel():
            return
        if tau.numel() == 1:
            v = float(tau)
            bad = not (math.isfinite(v) and v > 0)
        else:
            bad = not bool(torch.all(tau > 0)) or bool(torch.isinf(tau).any())
    elif isinstance(tau, bool) or not isinstance(tau, (int, float)):
        raise TypeError(f"tau has to be a number or a tensor, but got {type(tau).__name__}")
    else:
        bad = not (math.isfinite(tau) and tau > 0)
    if bad:
        raise ValueError(f"tau has to be positive and finite, but got {describe(tau)}")


def _fits(y_shape: torch.Size, shape: torch.Size) -> bool:
    """``y_shape`` matches the trailing dimensions of ``shape`` (a 1 broadcasts: ``y`` may be
    shared across samples, never the other way round)."""
    tail = shape[len(shape) - len(y_shape):]
    return all(a == b or a == 1 for a, b in zip(y_shape, tail))


def gaussian_log_likelihood(output: torch.Tensor, y: torch.Tensor,
                            tau: float | torch.Tensor) -> torch.Tensor:
    """Per-example ``log N(y; output, 1/tau)``, summed over output dimensions.

    ``output`` may carry leading sample dimensions: ``(..., B, *event)`` with ``y`` ``(B,
    *event)``; a ``(B,)`` target is matched to a ``(B, 1)`` output.

    Shape: ``(..., B, *event) -> (..., B)``.
    """
    _check_tau(tau)
    tau_t = torch.as_tensor(tau, dtype=output.dtype)
    y = check_target(output, y).to(output.dtype)
    # this order of operations (not gaussian_log_density's) keeps sd.fit's losses bit-identical
    # to the releases before issue 25
    ll = -0.5 * tau_t * (y - output) ** 2 + 0.5 * torch.log(tau_t) - 0.5 * LOG_2PI
    event = y.ndim - 1
    return ll.sum(tuple(range(-event, 0))) if event > 0 else ll


def categorical_log_likelihood(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example ``log softmax(logits)[y]``. Shape: ``(..., B, C), (B,) -> (..., B)``."""
    if not isinstance(logits, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"logits and y have to be tensors, but got {type(logits).__name__} and "
                        f"{type(y).__name__}")
    if logits.ndim < 1 or y.ndim > logits.ndim - 1 or not _fits(y.shape, logits.shape[:-1]):
        raise ValueError(f"y has to have shape {tuple(logits.shape[-1 - max(y.ndim, 1): -1])} "
                         f"(the logits' batch shape), but got {tuple(y.shape)}")
    if not y.is_cuda and y.numel():  # no device sync for a check
        C = logits.shape[-1]
        if y.is_floating_point() and not bool((y == y.round()).all()):
            raise ValueError(f"y has to hold class indices (integers in [0, {C})), but got "
                             "fractional values")
        lo, hi = float(y.min()), float(y.max())
        if lo < 0 or hi >= C:
            raise ValueError(f"y has to hold class indices in [0, {C}), but got values in "
                             f"[{lo:g}, {hi:g}]")
    lp = logits.log_softmax(-1)
    idx = y.long().expand(lp.shape[:-1]).unsqueeze(-1)
    return lp.gather(-1, idx).squeeze(-1)


def bernoulli_log_likelihood(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example ``y log sigmoid(f) + (1 - y) log sigmoid(-f)`` for logits ``f`` and targets
    ``y`` in ``[0, 1]``, summed over output dimensions (minus
    ``binary_cross_entropy_with_logits``).

    Shape: ``(..., B, *event), (B, *event) -> (..., B)``; a ``(B,)`` target is matched to a
    ``(B, 1)`` output.
    """
    y = check_target(logits, y).to(logits.dtype)
    ll = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits, y.expand_as(logits), reduction="none")
    event = y.ndim - 1
    return ll.sum(tuple(range(-event, 0))) if event > 0 else ll


def log_likelihood(
    likelihood: str | Likelihood | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    tau: float | torch.Tensor | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The per-example log-likelihood ``(output, y) -> (B,)`` for a name or a callable."""
    if callable(likelihood):
        return likelihood
    likelihood = check_choice("likelihood", likelihood, Likelihood)
    if likelihood is Likelihood.CATEGORICAL:
        return categorical_log_likelihood
    if likelihood is Likelihood.BERNOULLI:
        return bernoulli_log_likelihood
    if tau is None:
        raise ValueError("likelihood='gaussian' needs tau (the noise precision), but got None")
    positive_float("tau", tau)
    return lambda out, y: gaussian_log_likelihood(out, y, tau)
