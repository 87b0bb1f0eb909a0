"""Log priors of the weights, in the expanded and the hierarchical parametrization (Sec. 3).

In the expanded parametrization (EP) the weights have the Gaussian prior ``N(0, sigma0^2)``
(:func:`log_prior_ep`, equivalently weight decay ``1 / (N sigma0^2)`` on a mean loss,
:func:`weight_decay`); in the hierarchical parametrization (HP) they have the noise's marginal
prior, or ``N(0, sigma0^2 xi^2)`` given a sampled ``xi`` (:func:`log_prior_hp`), whose
expectation over ``xi`` (:func:`expected_log_prior_hp`) is ``-inf`` when ``E[xi^-2] = inf``: that
case raises :class:`~shrinkdrop.errors.InfiniteObjectiveError`.

Weight decay choice: like Gal's MC-dropout UCI code (``Dense(..., W_regularizer=l2(reg))``, no
bias regularizer), only weights (parameters with ``ndim >= 2``) are decayed, biases are not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .._validation import positive_float
from ..errors import InfiniteObjectiveError
from ..nn.sites import NoisyWeight, noisy_weights
from .likelihoods import LOG_2PI, gaussian_log_prob

__all__ = [
    "weight_decay",
    "log_prior_ep",
    "log_prior_hp",
    "expected_log_prior_hp",
    "noisy_weights",
]

def weight_decay(sigma0: float | torch.Tensor, n: int) -> float:
    """Weight decay ``1 / (n sigma0^2)`` equivalent to the prior ``N(0, sigma0^2)``.

    For a loss that is the *mean* over ``n`` examples, the penalty per example is
    ``weight_decay / 2 * ||W||^2`` (the convention of ``torch.optim``'s ``weight_decay``).
    """
    sigma0 = positive_float("sigma0", sigma0)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n has to be a positive integer, but got {n!r}")
    return 1.0 / (int(n) * sigma0**2)


def _decayed(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    return [p for p in params if p.ndim >= 2]


def _params_of(model_or_params) -> list[torch.Tensor]:
    if isinstance(model_or_params, nn.Module):
        return list(model_or_params.parameters())
    if isinstance(model_or_params, torch.Tensor):
        return [model_or_params]
    params = list(model_or_params) if not isinstance(model_or_params, (str, bytes)) and \
        hasattr(model_or_params, "__iter__") else None
    if params is None or not all(isinstance(p, torch.Tensor) for p in params):
        raise TypeError(f"model_or_params has to be an nn.Module, a tensor or an iterable of "
                        f"tensors, but got {type(model_or_params).__name__}")
    return params


def log_prior_ep(
    model_or_params: nn.Module | torch.Tensor | Iterable[torch.Tensor],
    sigma0: float | torch.Tensor,
    include_biases: bool = False,
) -> torch.Tensor:
    """EP log prior: ``sum log N(w; 0, sigma0^2)`` over the weights (differentiable).

    Args:
        model_or_params: an ``nn.Module``, a tensor or an iterable of tensors.
        sigma0: prior standard deviation.
        include_biases: also count 1-D parameters (default False, as weight decay does not).
    """
    s0 = positive_float("sigma0", sigma0)
    params = _params_of(model_or_params)
    if not include_biases and not isinstance(model_or_params, torch.Tensor):
        params = _decayed(params)
    total = torch.zeros(())
    for p in params:
        const = p.numel() * (0.5 * LOG_2PI + math.log(s0))
        total = total + (-0.5 * p.pow(2).sum() / s0**2 - const)
    return total


def log_prior_hp(
    model_or_pairs: nn.Module | Sequence[tuple],
    sigma0: float | torch.Tensor,
    xi: str | list[torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """HP log prior of the noisy layers' weights.

    Args:
        model_or_pairs: a model (its :func:`noisy_weights`) or a list of ``(weight, noise[, c])``.
        sigma0: the Gaussian part's standard deviation.
        xi: ``None``: the marginal prior (scale integrated out; per weight, as in Prop. 4.2);
            ``"sample"``: one draw of the ARD scales (one per input unit, shared across outputs),
            then ``sum log N(w; 0, sigma0^2 c^2 xi^2)``; or a list of scale tensors (one per
            pair, broadcastable to the weight).

    Raises:
        InfiniteObjectiveError: when a sampled scale is 0 for a non-zero weight (log prior -inf).
    """
    s0 = float(sigma0)
    pairs = _as_pairs(model_or_pairs)
    total = torch.zeros(())
    if xi is None:
        for w, noise, c in pairs:
            total = total + noise.marginal_prior(s0 * c).log_prob(w).sum()
        return total
    if isinstance(xi, str):
        if xi != "sample":
            raise ValueError(f"xi has to be None, 'sample' or a list of tensors, but got {xi!r}")
        xis = [_sample_scales(p.noise, p.scale_shape(), generator, p.weight) for p in pairs]
    else:
        xis = list(xi)
        if len(xis) != len(pairs):
            raise ValueError(f"xi has to have one tensor per noisy layer ({len(pairs)}), "
                             f"but got {len(xis)}")
    for (w, _, c), x in zip(pairs, xis):
        scale = (s0 * c * x).abs()
        lp = gaussian_log_prob(w, scale)
        if torch.isneginf(lp).any() or torch.isnan(lp).any():
            raise InfiniteObjectiveError(
                "the HP log prior is -inf: a sampled scale xi is 0 for a non-zero weight "
                "(noise with an atom or positive density at 0, E[xi^-2] = inf); train in the EP "
                "(noise in the network) instead"
            )
        total = total + lp.sum()
    return total


def _sample_scales(noise, shape, generator, like: torch.Tensor) -> torch.Tensor:
    """One draw of ARD scales of ``shape`` on ``like``'s device: the law's own ``sample`` (on
    the device of its parameters, then moved), or, for a generator on another device than the
    law's parameters (e.g. a CUDA generator and a law built from Python numbers), the
    functional core's draw on that device."""
    pdev = noise.mean.device
    if generator is not None and generator.device.type != pdev.type:
        from ..functional import draw_noise
        return draw_noise(noise, shape, normalize=False, generator=generator,
                          dtype=like.dtype, device=generator.device)
    return noise.sample(shape, generator).to(like.device)


def expected_log_prior_hp(model_or_pairs: nn.Module | Sequence[tuple],
                          sigma0: float | torch.Tensor) -> torch.Tensor:
    """``E_xi log p(W | xi)`` in closed form (the HP's Jensen lower bound of the log prior).

    Per weight: ``-0.5 log(2 pi sigma0^2) - E log|c xi| - w^2 E[(c xi)^-2] / (2 sigma0^2)``.

    Raises:
        InfiniteObjectiveError: when ``E[xi^-2]`` is infinite (the objective is ``-inf``).
    """
    s0 = positive_float("sigma0", sigma0)
    total = torch.zeros(())
    for w, noise, c in _as_pairs(model_or_pairs):
        inv2 = noise.inverse_square_mean
        if not torch.isfinite(inv2).all():
            raise InfiniteObjectiveError(
                f"the HP objective is -inf for {noise!r}: E[xi^-2] is infinite, so "
                "E log N(w; 0, sigma0^2 xi^2) = -inf for every non-zero weight; use the EP "
                "(noise in the network) or the marginal prior (log_prior_hp(..., xi=None))"
            )
        elog = noise.log_abs_mean + math.log(abs(c))
        lp = (-0.5 * LOG_2PI - math.log(s0) - elog) * w.numel() - (
            0.5 * inv2 / c**2 * w.pow(2).sum() / s0**2
        )
        total = total + lp.sum()
    return total


def _as_pairs(model_or_pairs) -> list[NoisyWeight]:
    """The layers' own answer (:func:`shrinkdrop.nn.noisy_weights`) for a model, else the given
    ``(weight, noise[, c])`` tuples."""
    if isinstance(model_or_pairs, nn.Module):
        pairs = noisy_weights(model_or_pairs)
        if not pairs:
            raise ValueError("the model has no noisy layers (modules with a 'noise' attribute)")
        return pairs
    return [NoisyWeight(p[0], p[1], p[2] if len(p) > 2 else 1.0) for p in model_or_pairs]
