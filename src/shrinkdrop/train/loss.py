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

    def constants(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``tau`` and ``log(tau) / 2`` in ``out``'s dtype and device (made once)."""
        key = (out.dtype, out.device)
        c = self._cache.get(key)
        if c is None:
            tau_t = torch.as_tensor(self.tau, dtype=out.dtype).to(out.device)
            c = self._cache[key] = (tau_t, 0.5 * torch.log(tau_t))
        return c

    def __call__(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        tau_t, half_log_tau = self.constants(out)
        y = check_target(out, y)
        if y.dtype != out.dtype:
            y = y.to(out.dtype)
        ll = -0.5 * tau_t * (y - out) ** 2 + half_log_tau - 0.5 * LOG_2PI
        event = y.ndim - 1
        return ll.sum(tuple(range(-event, 0))) if event > 0 else ll


class _FusedMC:
    """The MC objective of a built-in likelihood as one fused torch loss (``mse_loss``,
    ``cross_entropy``, ``binary_cross_entropy_with_logits``): the mean over draws and rows of
    the per-example log-likelihood is linear in it, so ``-mean ll`` needs no per-example tensor
    (the same value as the general path, to float rounding). Outputs are ``(S, B, ...)``, or
    ``(B, ...)`` with ``single``; the target's shape is checked once per pair of shapes."""

    def __init__(self, kind: str, tau: float | torch.Tensor | None) -> None:
        self.kind = kind
        self._shapes: dict = {}
        self._consts: dict = {}
        if kind == "gaussian":
            t = float(tau)
            self.k, self.c = 0.5 * t, 0.5 * math.log(t) - 0.5 * LOG_2PI

    def _target(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
        key = (out.shape, y.shape)
        r = self._shapes.get(key)
        if r is None:
            yy = check_target(out, y)  # raises on a mis-shaped target
            r = self._shapes[key] = (yy.ndim != y.ndim, math.prod(yy.shape[1:]))
        return (y.unsqueeze(-1) if r[0] else y), r[1]

    def __call__(self, out: torch.Tensor, y: torch.Tensor, single: bool) -> torch.Tensor:
        F = torch.nn.functional
        if self.kind == "categorical":
            yy = (y if y.dtype == torch.long else y.long()).reshape(-1)
            if single:  # (B, [T,] C) logits of (B, [T]) targets
                return F.cross_entropy(out.reshape(-1, out.shape[-1]), yy)
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), yy.repeat(out.shape[0]))
        y, E = self._target(out, y)
        if y.dtype != out.dtype:
            y = y.to(out.dtype)
        if y.shape != out.shape:
            y = y.expand_as(out)
        if self.kind == "bernoulli":
            bce = F.binary_cross_entropy_with_logits(out, y)
            return bce if E == 1 else bce * E
        key = (out.dtype, out.device, E)
        const = self._consts.get(key)
        if const is None:  # -E c as a 0-d tensor: the loss is one add(const, mse, alpha)
            const = self._consts[key] = torch.tensor(-E * self.c, dtype=out.dtype,
                                                     device=out.device)
        return torch.add(const, F.mse_loss(out, y), alpha=self.k * E)


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
        self._fused = None
        if self.objective is Objective.MC and self._broadcasts:
            kind = ("categorical" if self._ll is categorical_log_likelihood else "bernoulli"
                    if self._ll is bernoulli_log_likelihood else "gaussian")
            if kind != "gaussian" or not isinstance(tau, torch.Tensor) or tau.numel() == 1:
                self._fused = _FusedMC(kind, tau)
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
        if self._fused is not None:
            loss = self._fused(outputs, y, False)
        else:
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
        if self._fused is not None and self.samples == 1 and model.training:
            loss = self._fused(model(x), y, True)  # the plain step: nothing to repeat
            return loss + self.penalty(model) if self.weight_decay > 0 else loss
        return self.from_outputs(self.outputs(model, x), y, model)
