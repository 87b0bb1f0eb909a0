"""The loss of :func:`shrinkdrop.fit` as one object usable from any training loop.

:class:`ShrinkageLoss` holds the likelihood, the objective over ``S`` noise draws and the
weight prior (EP weight decay), each resolved once, so that a step costs no more Python than a
hand-written loss::

    loss_fn = sd.train.ShrinkageLoss("categorical", objective="marginal_map", samples=4,
                                     sigma0=1.0, n=len(train_set))
    for xb, yb in loader:
        loss = loss_fn(model, xb, yb)      # S noisy passes in one batched call + the prior
        opt.zero_grad(); loss.backward(); opt.step()

The Lightning module (:mod:`shrinkdrop.integrations.lightning`) and the Hugging Face Trainer
(:mod:`shrinkdrop.integrations.hf`) call the same object, so every loop trains the same loss.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .._validation import check_choice, check_samples, positive_float
from ..enums import Likelihood, Objective
from ..functional import sample_groups
from .likelihoods import (
    LOG_2PI,
    bernoulli_log_likelihood,
    categorical_log_likelihood,
    check_target,
)
from .objectives import marginal_map, mc_objective, tail_adaptive
from .prediction import noise_on
from .weight_priors import _decayed
from .weight_priors import weight_decay as _weight_decay

__all__ = ["ShrinkageLoss", "decay_of"]

LikelihoodArg = str | Likelihood | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def decay_of(sigma0: float | None, weight_decay: float | None, n: int | None) -> float:
    """The weight decay given by ``sigma0`` (``1 / (n sigma0^2)``, needs ``n``) or
    ``weight_decay`` (at most one of them; neither: 0)."""
    if sigma0 is not None and weight_decay is not None:
        raise ValueError(f"give at most one of sigma0 and weight_decay, but got sigma0={sigma0} "
                         f"and weight_decay={weight_decay}")
    if sigma0 is not None:
        positive_float("sigma0", sigma0)
        if n is None:
            raise ValueError("sigma0 needs n, the number of training examples (the prior "
                             "N(0, sigma0^2) is weight decay 1 / (n sigma0^2) on a mean loss), "
                             "but got n=None; pass n= or weight_decay= instead")
        return _weight_decay(sigma0, n)
    if weight_decay is not None:
        wd = float(weight_decay)
        if not (wd >= 0 and math.isfinite(wd)):
            raise ValueError(f"weight_decay has to be >= 0 and finite, but got {weight_decay!r}")
        return wd
    return 0.0


class _Gaussian:
    """``log N(y; out, 1/tau)`` with ``tau`` and ``log tau / 2`` made once per dtype (the same
    operations, in the same order, as :func:`~shrinkdrop.train.gaussian_log_likelihood`)."""

    def __init__(self, tau: float | torch.Tensor) -> None:
        positive_float("tau", tau)
        self.tau = tau
        self._cache: dict = {}

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        key = (out.dtype, out.device)
        c = self._cache.get(key)
        if c is None:
            tau_t = torch.as_tensor(self.tau, dtype=out.dtype).to(out.device)
            c = self._cache[key] = (tau_t, 0.5 * torch.log(tau_t))
        tau_t, half_log_tau = c
        y = check_target(out, y)
        if y.dtype != out.dtype:
            y = y.to(out.dtype)
        ll = -0.5 * tau_t * (y - out) ** 2 + half_log_tau - 0.5 * LOG_2PI
        event = y.ndim - 1
        return ll.sum(tuple(range(-event, 0))) if event > 0 else ll


class ShrinkageLoss:
    """``-mean_n obj_n + weight_decay / 2 * ||W||^2``: the loss :func:`shrinkdrop.fit` trains.

    ``obj_n`` is the chosen :class:`~shrinkdrop.enums.Objective` over ``samples`` noise draws of
    example ``n``'s log-likelihood; ``W`` are the model's weights (parameters with ``ndim >= 2``;
    biases are not decayed, as in Gal's UCI code). ``sigma0`` gives ``weight_decay = 1 / (n
    sigma0^2)`` (the EP prior ``N(0, sigma0^2)`` on a mean loss over ``n`` examples).

    Args:
        likelihood: ``'gaussian'`` (needs ``tau``), ``'categorical'`` (logits, integer
            targets), ``'bernoulli'`` (logits, targets in [0, 1]) or a callable ``(output, y)
            -> (rows,)`` (called on ``S * B`` rows with ``y`` repeated ``S`` times).
        objective: ``'mc'`` | ``'marginal_map'`` | ``'tail_adaptive'`` (``beta`` for the latter).
        samples: S noise draws per example (one ``S * B`` batched pass).
        tau: the Gaussian likelihood's precision.
        sigma0, weight_decay: the weight prior (at most one; neither: none). ``sigma0`` needs
            ``n``.
        n: the number of training examples.
        beta: the tail-adaptive exponent.
    """

    def __init__(self, likelihood: LikelihoodArg = "gaussian", *,
                 objective: str | Objective = "mc", samples: int = 1,
                 tau: float | torch.Tensor | None = None, sigma0: float | None = None,
                 weight_decay: float | None = None, n: int | None = None,
                 beta: float = -1.0) -> None:
        self.objective = check_choice("objective", objective, Objective)
        self.samples = check_samples(samples)
        self.beta = float(beta)
        self.weight_decay = decay_of(sigma0, weight_decay, n)
        self.likelihood = likelihood
        self.tau = tau
        self._ll, self._broadcasts = self._resolve(likelihood, tau)
        self._weights_of: tuple[weakref.ref, list[torch.Tensor]] | None = None
        if self.objective is Objective.MC:
            self._obj = mc_objective
        elif self.objective is Objective.MARGINAL_MAP:
            self._obj = marginal_map
        else:
            self._obj = lambda ll: tail_adaptive(ll, self.beta)

    @staticmethod
    def _resolve(likelihood, tau):
        """The per-example log-likelihood and whether it takes ``(S, B, ...)`` outputs against a
        ``(B, ...)`` target (the built-ins) or ``S * B`` rows against a repeated target."""
        if callable(likelihood) and not isinstance(likelihood, str):
            return likelihood, False
        lik = check_choice("likelihood", likelihood, Likelihood)
        if lik is Likelihood.CATEGORICAL:
            return categorical_log_likelihood, True
        if lik is Likelihood.BERNOULLI:
            return bernoulli_log_likelihood, True
        if tau is None:
            raise ValueError("likelihood='gaussian' needs tau (the noise precision), but got "
                             "None")
        return _Gaussian(tau), True

    def __repr__(self) -> str:
        lik = self.likelihood if isinstance(self.likelihood, str) else "callable"
        return (f"ShrinkageLoss({lik!r}, objective={self.objective.value!r}, "
                f"samples={self.samples}, tau={self.tau!r}, weight_decay={self.weight_decay:g})")

    def log_likelihoods(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-draw, per-example log-likelihoods of ``outputs`` ``(S, B, ...)``: ``(S, B)``."""
        if self._broadcasts:
            return self._ll(outputs, y)
        S, B = outputs.shape[:2]
        ys = y.repeat(S, *([1] * (y.ndim - 1))) if S > 1 else y
        return self._ll(outputs.reshape(S * B, *outputs.shape[2:]), ys).reshape(S, B)

    def penalty(self, params: nn.Module | Iterable[torch.Tensor]) -> torch.Tensor | float:
        """``weight_decay / 2 * ||W||^2`` over the weights (``ndim >= 2``) of a model or a list
        of parameters (``0.0`` without a prior)."""
        if self.weight_decay <= 0:
            return 0.0
        if isinstance(params, nn.Module):  # its weights, found once per model
            cached = self._weights_of
            if cached is None or cached[0]() is not params:
                cached = self._weights_of = (weakref.ref(params), _decayed(params.parameters()))
            ps = cached[1]
        else:
            ps = _decayed(params)
        return 0.5 * self.weight_decay * sum(p.pow(2).sum() for p in ps)

    def from_outputs(self, outputs: torch.Tensor, y: torch.Tensor,
                     params: nn.Module | Iterable[torch.Tensor] | None = None) -> torch.Tensor:
        """The loss of outputs already drawn, ``(S, B, ...)`` (sample-major), against ``y``
        ``(B, ...)``, plus the prior of ``params`` (a model or its weights; None: no prior)."""
        loss = -self._obj(self.log_likelihoods(outputs, y)).mean()
        if params is not None and self.weight_decay > 0:
            loss = loss + self.penalty(params)
        return loss

    def outputs(self, model: nn.Module, x: torch.Tensor,
                samples: int | None = None) -> torch.Tensor:
        """``samples`` (default: the loss's) noisy outputs ``(S, B, ...)`` of ``model`` in one
        batched pass (noise switched on only when the model is not already training)."""
        S = self.samples if samples is None else check_samples(samples)
        B = x.shape[0]
        xs = x.repeat(S, *([1] * (x.ndim - 1))) if S > 1 else x
        ctx = contextlib.nullcontext() if model.training else noise_on(model)
        with ctx, (sample_groups(S) if S > 1 else contextlib.nullcontext()):
            out = model(xs)
        return out.reshape(S, B, *out.shape[1:])

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of ``model`` on the batch ``(x, y)``: ``samples`` noisy passes, the
        objective, the prior."""
        return self.from_outputs(self.outputs(model, x), y, model)
