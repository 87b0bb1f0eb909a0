"""Training objectives, log priors, S-sample prediction and the training loop.

Nalisnick & Smyth, "Unifying the Dropout Family Through Structured Shrinkage Priors", Sec. 3-4.
With per-example log-likelihoods ``log_liks`` of shape ``(S, ...)`` (S noise draws, sample dim 0):

* :func:`mc_objective`: ``mean_s log p(y | W, xi_s)``, the Monte Carlo objective (Eq. 3 / 11);
* :func:`marginal_map`: ``logsumexp_s - log S``, the importance-weighted estimate of
  ``log E_xi p(y | W, xi)`` (Eq. 10); equal to the MC objective at ``S = 1``, never below it;
* :func:`tail_adaptive`: the rank-weighted surrogate of Wang, Liu & Liu (2018), used by
  Nalisnick, Hernandez-Lobato & Smyth (2019), whose gradient is ``sum_s w_s grad log p_s``.

Priors (Sec. 3): in the expanded parametrization (EP) the weights have the Gaussian prior
``N(0, sigma0^2)`` (:func:`log_prior_ep`, equivalently weight decay ``1 / (N sigma0^2)`` on a mean
loss, :func:`weight_decay`); in the hierarchical parametrization (HP) they have the noise's
marginal prior, or ``N(0, sigma0^2 xi^2)`` given a sampled ``xi`` (:func:`log_prior_hp`), whose
expectation over ``xi`` (:func:`expected_log_prior_hp`) is ``-inf`` when ``E[xi^-2] = inf``: that
case raises :class:`InfiniteObjectiveError`.

Weight decay choice: like Gal's MC-dropout UCI code (``Dense(..., W_regularizer=l2(reg))``, no
bias regularizer), only weights (parameters with ``ndim >= 2``) are decayed, biases are not.

Vectorised sampling: :func:`sample_outputs` stacks ``S`` copies of the batch (sample-major,
``S * B`` rows) and runs the model once with noise on, inside
``shrinkdrop.functional.sample_groups(S)`` so that batch-shared noise gets ``S`` independent
draws too. The batch dimension of ``x`` is dimension 0.
"""

from __future__ import annotations

import contextlib
import enum
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from ._validation import check_choice, positive_float
from .errors import ShrinkdropError
from .functional import sample_groups
from .nn import NoiseLayer, mc_mode

__all__ = [
    "Objective",
    "Likelihood",
    "PredictMode",
    "InfiniteObjectiveError",
    "mc_objective",
    "marginal_map",
    "tail_adaptive",
    "tail_adaptive_weights",
    "objective",
    "weight_decay",
    "log_prior_ep",
    "log_prior_hp",
    "expected_log_prior_hp",
    "noisy_weights",
    "sample_outputs",
    "noise_on",
    "predict",
    "gaussian_log_likelihood",
    "categorical_log_likelihood",
    "log_likelihood",
    "predictive_log_likelihoods",
    "predictive_log_likelihood",
    "fit_predictive_precision",
    "fit_predictive_tau",
    "fit",
    "History",
]

_LOG_2PI = math.log(2 * math.pi)


class Objective(str, enum.Enum):
    """Training objective over S noise draws (valid values: 'mc', 'marginal_map',
    'tail_adaptive')."""

    MC = "mc"
    MARGINAL_MAP = "marginal_map"
    TAIL_ADAPTIVE = "tail_adaptive"


class Likelihood(str, enum.Enum):
    """Built-in likelihoods: 'gaussian' (fixed precision tau) or 'categorical' (logits)."""

    GAUSSIAN = "gaussian"
    CATEGORICAL = "categorical"


class PredictMode(str, enum.Enum):
    """'mc': average of S noisy passes; 'mean': one pass with noise off (weight scaling)."""

    MC = "mc"
    MEAN = "mean"


class InfiniteObjectiveError(ShrinkdropError, ValueError):
    """An objective is infinite (e.g. the HP objective when E[xi^-2] is infinite)."""


# ================================================================================== objectives
def _check_log_liks(log_liks: torch.Tensor) -> torch.Tensor:
    if not isinstance(log_liks, torch.Tensor):
        raise TypeError(f"log_liks has to be a tensor, but got {type(log_liks).__name__}")
    if log_liks.ndim == 0 or log_liks.shape[0] == 0:
        raise ValueError(
            "log_liks has to have a non-empty sample dimension 0 (shape (S, ...)), but got "
            f"shape {tuple(log_liks.shape)}"
        )
    return log_liks


def mc_objective(log_liks: torch.Tensor) -> torch.Tensor:
    """Monte Carlo objective: mean over the sample dimension 0.

    Shape: ``(S, *batch) -> batch``.
    """
    return _check_log_liks(log_liks).mean(0)


def marginal_map(log_liks: torch.Tensor) -> torch.Tensor:
    """Importance-weighted marginal-MAP objective ``logsumexp_s(log_liks) - log S``.

    Estimates ``log E_xi p(y | W, xi)`` (Eq. 10). By Jensen it is ``>= mc_objective`` with
    equality at ``S = 1`` (and when all draws agree).

    Shape: ``(S, *batch) -> batch``.
    """
    log_liks = _check_log_liks(log_liks)
    return torch.logsumexp(log_liks, 0) - math.log(log_liks.shape[0])


def tail_adaptive_weights(log_liks: torch.Tensor, beta: float = -1.0) -> torch.Tensor:
    """Rank-based weights of the tail-adaptive f-divergence (Wang, Liu & Liu 2018, Alg. 1).

    ``w_s`` is proportional to ``F_hat(l_s) ** beta`` with the empirical tail probability
    ``F_hat(t) = (1/S) #{j : l_j >= t}``; weights are normalised over ``s`` and carry no gradient.
    With ``beta = -1`` the largest of S distinct values weighs ``S`` times the smallest;
    ``beta = 0`` gives uniform weights (the MC objective).

    Shape: ``(S, *batch) -> (S, *batch)``, summing to 1 over dim 0.
    """
    log_liks = _check_log_liks(log_liks).detach()
    S = log_liks.shape[0]
    # tail[i] = #{j : l_j >= l_i} / S
    tail = (log_liks.unsqueeze(0) >= log_liks.unsqueeze(1)).sum(1).to(log_liks.dtype) / S
    w = tail.pow(float(beta))
    return w / w.sum(0, keepdim=True)


def tail_adaptive(log_liks: torch.Tensor, beta: float = -1.0) -> torch.Tensor:
    """Tail-adaptive surrogate ``sum_s stopgrad(w_s) * log_liks[s]``.

    Its gradient is the tail-adaptive estimator (Wang, Liu & Liu 2018); its value lies between
    the MC objective and the maximum over draws.

    Shape: ``(S, *batch) -> batch``.
    """
    w = tail_adaptive_weights(log_liks, beta)
    return (w * log_liks).sum(0)


def objective(log_liks: torch.Tensor, name: str | Objective = "mc", beta: float = -1.0):
    """Dispatch on :class:`Objective`: ``'mc'``, ``'marginal_map'`` or ``'tail_adaptive'``."""
    name = check_choice("objective", name, Objective)
    if name is Objective.MC:
        return mc_objective(log_liks)
    if name is Objective.MARGINAL_MAP:
        return marginal_map(log_liks)
    return tail_adaptive(log_liks, beta)


_objective = objective  # fit's keyword arguments shadow these names


# ====================================================================================== priors
def weight_decay(sigma0, n: int) -> float:
    """Weight decay ``1 / (n sigma0^2)`` equivalent to the prior ``N(0, sigma0^2)``.

    For a loss that is the *mean* over ``n`` examples, the penalty per example is
    ``weight_decay / 2 * ||W||^2`` (the convention of ``torch.optim``'s ``weight_decay``).
    """
    sigma0 = positive_float("sigma0", sigma0)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n has to be a positive integer, but got {n!r}")
    return 1.0 / (int(n) * sigma0**2)


_weight_decay = weight_decay


def _decayed(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    return [p for p in params if p.ndim >= 2]


def _params_of(model_or_params) -> list[torch.Tensor]:
    if isinstance(model_or_params, nn.Module):
        return list(model_or_params.parameters())
    if isinstance(model_or_params, torch.Tensor):
        return [model_or_params]
    return list(model_or_params)


def log_prior_ep(model_or_params, sigma0, include_biases: bool = False) -> torch.Tensor:
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
        const = p.numel() * (0.5 * _LOG_2PI + math.log(s0))
        total = total + (-0.5 * p.pow(2).sum() / s0**2 - const)
    return total


def noisy_weights(model: nn.Module) -> list[tuple[torch.Tensor, object, float]]:
    """The ``(weight, noise, c)`` triples of a model: each noisy layer and the weight it scales.

    A module with a ``noise`` attribute and a ``weight`` (``WeightNoiseLinear``, ``NoisyConv2d``)
    pairs with its own weight; a weightless noise module (``UnitNoise``, ``ChannelNoise``) pairs
    with the next module in ``model.modules()`` order that has a ``weight``. ``c`` is the factor
    the layer applies to the noise: ``1 / E[xi]`` if it normalises (``normalize=True``), else 1, so
    the HP scale of the paired weight is ``c * xi``. Layers whose noise is not a scale of the next
    weight (``pairs_with_next_weight = False``: ``AttentionNoise``, ``NoisyStackedRNN``) are left
    out.
    """
    pairs: list[tuple[torch.Tensor, object, float]] = []
    pending = None
    for m in model.modules():
        noise = getattr(m, "noise", None)
        if noise is not None and getattr(m, "pairs_with_next_weight", True) is False:
            pending = None
            continue
        w = getattr(m, "weight", None)
        has_w = isinstance(w, torch.Tensor) and w.ndim >= 2
        if noise is not None:
            c = 1.0
            if getattr(m, "normalize", False):
                c = 1.0 / float(noise.mean.reshape(-1)[0])
            if has_w:
                pairs.append((w, noise, c))
                pending = None
            else:
                pending = (noise, c)
        elif has_w and pending is not None:
            pairs.append((w, pending[0], pending[1]))
            pending = None
    return pairs


def _scale_shape(weight: torch.Tensor) -> tuple[int, ...]:
    # ARD: one scale per input unit (PyTorch's dim 1), shared across outputs (dim 0)
    return (1, weight.shape[1]) + (1,) * (weight.ndim - 2)


def log_prior_hp(
    model_or_pairs,
    sigma0,
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
        xis = [_sample_scales(noise, _scale_shape(w), generator, w) for w, noise, _ in pairs]
    else:
        xis = list(xi)
        if len(xis) != len(pairs):
            raise ValueError(f"xi has to have one tensor per noisy layer ({len(pairs)}), "
                             f"but got {len(xis)}")
    for (w, _, c), x in zip(pairs, xis):
        scale = (s0 * c * x).abs()
        lp = -0.5 * (w / scale) ** 2 - torch.log(scale) - 0.5 * _LOG_2PI
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
        from .functional import draw_noise
        return draw_noise(noise, shape, normalize=False, generator=generator,
                          dtype=like.dtype, device=generator.device)
    return noise.sample(shape, generator).to(like.device)


def expected_log_prior_hp(model_or_pairs, sigma0) -> torch.Tensor:
    """``E_xi log p(W | xi)`` in closed form (the HP's Jensen lower bound of the log prior).

    Per weight: ``-0.5 log(2 pi sigma0^2) - E log|c xi| - w^2 E[(c xi)^-2] / (2 sigma0^2)``.

    Raises:
        InfiniteObjectiveError: when ``E[xi^-2]`` is infinite (the objective is ``-inf``).
    """
    s0 = float(sigma0)
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
        lp = (-0.5 * _LOG_2PI - math.log(s0) - elog) * w.numel() - (
            0.5 * inv2 / c**2 * w.pow(2).sum() / s0**2
        )
        total = total + lp.sum()
    return total


def _as_pairs(model_or_pairs):
    if isinstance(model_or_pairs, nn.Module):
        pairs = noisy_weights(model_or_pairs)
        if not pairs:
            raise ValueError("the model has no noisy layers (modules with a 'noise' attribute)")
        return pairs
    out = []
    for p in model_or_pairs:
        out.append((p[0], p[1], p[2] if len(p) > 2 else 1.0))
    return out


# ========================================================================== S-sample evaluation
def _check_samples(samples) -> int:
    if isinstance(samples, bool) or int(samples) != samples or samples < 1:
        raise ValueError(f"samples has to be a positive integer, but got {samples!r}")
    return int(samples)


@contextlib.contextmanager
def noise_on(model: nn.Module):
    """Noise on, whatever the model's mode: ``shrinkdrop.mc_mode`` for the library's layers, and
    train mode for other modules that carry a ``noise`` attribute (restored on exit)."""
    ctx = mc_mode(model)
    changed = [
        m for m in model.modules()
        if hasattr(m, "noise") and not isinstance(m, NoiseLayer) and not m.training
    ]
    for m in changed:
        m.training = True
    try:
        with ctx:
            yield model
    finally:
        for m in changed:
            m.training = False


def _sample_groups(S: int):
    return contextlib.nullcontext() if S == 1 else sample_groups(S)


def _cuda_devices(model: nn.Module, *tensors: torch.Tensor) -> list[int]:
    """The CUDA device indices holding ``model``'s parameters or ``tensors``: the generators
    :func:`fit` forks so that seeding leaves the caller's global RNG state untouched."""
    devs = {t.device for t in (*model.parameters(), *model.buffers(), *tensors)}
    return sorted({d.index if d.index is not None else torch.cuda.current_device()
                   for d in devs if d.type == "cuda"})


def sample_outputs(model: nn.Module, x: torch.Tensor, samples: int, *, noise: bool = True):
    """Outputs under ``samples`` independent noise draws, in one batched pass.

    ``x`` is repeated ``S`` times along dimension 0 (sample-major: rows ``s*B .. s*B + B - 1``
    are copy ``s``), the model runs once with noise on (see :func:`noise_on`) inside
    ``sample_groups(S)``, and the output is reshaped to ``(S, B, ...)``. Gradients flow.

    Args:
        model: any ``nn.Module`` whose dimension 0 is the batch.
        x: input batch ``(B, ...)``.
        samples: S >= 1.
        noise: turn noise on even in eval mode (default True).

    Shape: ``(B, ...) -> (S, B, ...)``.
    """
    S = _check_samples(samples)
    B = x.shape[0]
    xs = x.repeat(S, *([1] * (x.ndim - 1))) if S > 1 else x
    ctx = noise_on(model) if noise else contextlib.nullcontext()
    with ctx, _sample_groups(S):
        out = model(xs)
    return out.reshape(S, B, *out.shape[1:])


def predict(
    model: nn.Module,
    x: torch.Tensor,
    samples: int = 32,
    mode: str | PredictMode = "mc",
    likelihood: str | Likelihood = "gaussian",
) -> torch.Tensor:
    """Predictive mean: ``'mc'`` averages S noisy passes, ``'mean'`` is one pass with noise off
    (weight scaling: xi replaced by its mean, which is what normalised layers do in eval()).

    For ``likelihood='categorical'`` the average is of softmax probabilities (probabilities are
    returned); for ``'gaussian'`` it is of the raw outputs. No gradients.
    """
    mode = check_choice("mode", mode, PredictMode)
    likelihood = check_choice("likelihood", likelihood, Likelihood)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if mode is PredictMode.MEAN:
                out = model(x)
                return out.softmax(-1) if likelihood is Likelihood.CATEGORICAL else out
            outs = sample_outputs(model, x, samples)
            if likelihood is Likelihood.CATEGORICAL:
                outs = outs.softmax(-1)
            return outs.mean(0)
    finally:
        model.train(was_training)


# ================================================================================= likelihoods
def _align_target(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if y.ndim < output.ndim and output.shape[-1] == 1 and y.ndim >= 1:
        if tuple(output.shape[-y.ndim - 1 : -1]) == tuple(y.shape):
            y = y.unsqueeze(-1)
    return y


def gaussian_log_likelihood(output: torch.Tensor, y: torch.Tensor, tau) -> torch.Tensor:
    """Per-example ``log N(y; output, 1/tau)``, summed over output dimensions.

    ``output`` may carry leading sample dimensions: ``(..., B, *event)`` with ``y`` ``(B,
    *event)``; a ``(B,)`` target is matched to a ``(B, 1)`` output.

    Shape: ``(..., B, *event) -> (..., B)``.
    """
    tau_t = torch.as_tensor(tau, dtype=output.dtype)
    y = _align_target(output, y).to(output.dtype)
    ll = -0.5 * tau_t * (y - output) ** 2 + 0.5 * torch.log(tau_t) - 0.5 * _LOG_2PI
    event = y.ndim - 1
    return ll.sum(tuple(range(-event, 0))) if event > 0 else ll


def categorical_log_likelihood(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example ``log softmax(logits)[y]``. Shape: ``(..., B, C), (B,) -> (..., B)``."""
    lp = logits.log_softmax(-1)
    idx = y.long().expand(lp.shape[:-1]).unsqueeze(-1)
    return lp.gather(-1, idx).squeeze(-1)


def log_likelihood(likelihood, tau=None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The per-example log-likelihood ``(output, y) -> (B,)`` for a name or a callable."""
    if callable(likelihood):
        return likelihood
    likelihood = check_choice("likelihood", likelihood, Likelihood)
    if likelihood is Likelihood.CATEGORICAL:
        return categorical_log_likelihood
    if tau is None:
        raise ValueError("likelihood='gaussian' needs tau (the noise precision), but got None")
    positive_float("tau", tau)
    return lambda out, y: gaussian_log_likelihood(out, y, tau)


def predictive_log_likelihoods(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    samples: int = 32,
    likelihood: str | Likelihood | Callable = "gaussian",
    tau=None,
    y_mean=None,
    y_std=None,
) -> torch.Tensor:
    """Per-point MC predictive log-likelihood ``logsumexp_s log p(y_n | x_n, xi_s) - log S``.

    For Gaussian regression this is Gal's UCI convention: with ``yhat_s = out_s * y_std +
    y_mean`` (network trained on standardised targets; ``tau`` and ``y`` in original units),
    ``logsumexp_s(-0.5 tau (y - yhat_s)^2) - log S - 0.5 log(2 pi) + 0.5 log tau``.

    Shape: ``(N, ...) -> (N,)``.
    """
    ll_fn = log_likelihood(likelihood, tau)
    return marginal_map(ll_fn(_mc_outputs(model, x, y, samples, y_mean, y_std), y))


def _mc_outputs(model, x, y, samples, y_mean, y_std) -> torch.Tensor:
    """``samples`` noisy outputs ``(S, B, ...)`` without gradients, mapped to ``y``'s units by
    ``out * y_std + y_mean`` (each optional); ``x`` and ``y`` checked to have the same rows."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y have to have the same number of rows, but got {x.shape[0]} "
                         f"and {y.shape[0]}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outs = sample_outputs(model, x, samples)
    finally:
        model.train(was_training)
    if y_std is not None:
        outs = outs * torch.as_tensor(y_std, dtype=outs.dtype)
    if y_mean is not None:
        outs = outs + torch.as_tensor(y_mean, dtype=outs.dtype)
    return outs


def predictive_log_likelihood(model, x, y, samples=32, likelihood="gaussian", tau=None,
                              y_mean=None, y_std=None) -> float:
    """Mean over points of :func:`predictive_log_likelihoods` (a float)."""
    return float(predictive_log_likelihoods(model, x, y, samples, likelihood, tau, y_mean,
                                            y_std).mean())


# ====================================================== the likelihood's precision, fitted
def _lse_objective(e: torch.Tensor, log_tau: torch.Tensor, d: int) -> torch.Tensor:
    """``mean_n [logsumexp_s(-tau e_ns / 2) - log S] + d log(tau) / 2`` for ``e (K, n, S)``
    and ``log_tau (K,)`` (float64; the ``- d log(2 pi) / 2`` constant left out)."""
    tau = log_tau.exp().to(e.dtype).view(-1, 1, 1)
    lse = torch.logsumexp(-0.5 * tau * e, dim=-1).double().mean(-1)
    return lse - math.log(e.shape[-1]) + 0.5 * d * log_tau


def fit_predictive_precision(
    sq_errors: torch.Tensor, *, event_size: int = 1, grid: int = 16, iters: int = 20,
    max_elements: int = 2 ** 24,
) -> torch.Tensor:
    """The Gaussian noise precision that maximises the MC predictive log-likelihood.

    With ``e_ns = ||y_n - yhat_ns||^2`` the squared error of MC draw ``s`` at point ``n`` (summed
    over ``event_size`` output dimensions), returns per leading index the ``tau`` maximising

        L(tau) = mean_n [logsumexp_s(-tau e_ns / 2) - log S] + event_size (log tau - log 2 pi) / 2,

    the mean log density of ``y_n`` under the MC predictive mixture ``1/S sum_s N(yhat_ns,
    1/tau)`` (:func:`predictive_log_likelihoods`' convention). This is the likelihood's
    precision as a parameter estimated on held-out rows, instead of a grid of fixed values.

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
    if not isinstance(sq_errors, torch.Tensor) or sq_errors.ndim < 2:
        raise ValueError("sq_errors has to be a tensor of shape (..., n, S), but got "
                         f"{getattr(sq_errors, 'shape', type(sq_errors).__name__)}")
    if sq_errors.shape[-1] == 0 or sq_errors.shape[-2] == 0:
        raise ValueError(f"sq_errors has to have at least one point and one draw, but got shape "
                         f"{tuple(sq_errors.shape)}")
    _check_int("event_size", event_size)
    _check_int("grid", grid, low=3)
    _check_int("iters", iters, low=0)
    lead = sq_errors.shape[:-2]
    n, S = sq_errors.shape[-2:]
    e = sq_errors.reshape(-1, n, S)
    if not e.is_floating_point():
        e = e.double()
    bad = ~torch.isfinite(e) | (e < 0)
    if bool(bad.any()):
        raise ValueError("sq_errors has to be finite and non-negative, but got "
                         f"{int(bad.sum())} entries that are not")
    d = float(event_size)
    mean_e = e.double().mean((-2, -1))
    if bool((mean_e == 0).any()):
        raise ValueError("sq_errors are all zero for some model: every draw predicts every "
                         "target exactly, and the likelihood grows without bound in tau")
    lo = torch.log(d / mean_e)
    min_e = e.min(-1).values.double().mean(-1)
    hi = torch.where(min_e > 0, torch.log(d / min_e.clamp_min(1e-300)), lo + math.log(1e12))
    hi = torch.minimum(torch.maximum(hi, lo), lo + math.log(1e12))
    out = torch.empty(e.shape[0], dtype=torch.float64)
    chunk = max(1, max_elements // max(1, n * S))
    g = (math.sqrt(5.0) - 1.0) / 2.0
    for k0 in range(0, e.shape[0], chunk):
        ek = e[k0: k0 + chunk]
        a0, b0 = lo[k0: k0 + chunk], hi[k0: k0 + chunk]
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
        out[k0: k0 + chunk] = best_u.exp()
    return out.reshape(lead)


def fit_predictive_tau(model: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int = 1000,
                       y_mean=None, y_std=None, rows=None):
    """The Gaussian precision (in ``y``'s units) that maximises the MC predictive
    log-likelihood of ``model`` on ``(x, y)``: :func:`fit_predictive_precision` of the squared
    errors of ``samples`` noisy passes (outputs mapped to ``y``'s units by ``out * y_std +
    y_mean``, as in :func:`predictive_log_likelihoods`). Fit it on held-out rows (a validation
    split), not on the rows the model was trained on, whose errors are too small.

    ``rows``: subsets of the rows (index tensors or boolean masks), each fitted on its own from
    the same draws (e.g. for cross-fitting); then a float64 tensor of ``len(rows)`` precisions
    is returned instead of a float.
    """
    outs = _mc_outputs(model, x, y, samples, y_mean, y_std)  # (S, B, ...)
    yy = _align_target(outs, y).to(outs.dtype)
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


# =============================================================================== training loop
@dataclass
class History:
    """What :func:`fit` did: per-epoch mean training loss, wall time and the arguments."""

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    args: dict = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return len(self.loss)


def _check_int(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} has to be an integer >= {low}, but got {value!r}")
    return value


def fit(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    likelihood="gaussian",
    objective="mc",
    samples=1,
    tau=None,
    sigma0=None,
    weight_decay=None,
    epochs=40,
    batch_size=128,
    lr=1e-3,
    seed=0,
    progress=True,
    beta=-1.0,
    callback=None,
    generator=None,
) -> History:
    """Train any ``nn.Module`` under multiplicative noise with Adam; returns a :class:`History`.

    Per minibatch the loss is ``-mean_n obj_n + weight_decay / 2 * ||W||^2`` where ``obj_n`` is
    the chosen :class:`Objective` over ``samples`` noise draws of example ``n`` (one ``S * B``
    batched pass, :func:`sample_outputs`) and ``W`` are the weights (``ndim >= 2``; biases are not
    decayed, as in Gal's UCI code). ``sigma0`` gives ``weight_decay = 1 / (N sigma0^2)``.

    Args:
        model: the network; trained in train mode, left in eval mode.
        X, y: training inputs ``(N, ...)`` and targets ``(N, ...)``.
        likelihood: ``'gaussian'`` (needs ``tau``; per-example ``log N(y; f(x), 1/tau)``),
            ``'categorical'`` (``f(x)`` are logits) or a callable ``(output, y) -> (B,)``.
        objective: ``'mc'`` | ``'marginal_map'`` | ``'tail_adaptive'`` (``beta`` for the latter).
        samples: S noise draws per example and step.
        sigma0 / weight_decay: at most one (neither: no prior).
        epochs, batch_size, lr: Adam, shuffled minibatches.
        seed: seeds torch's global RNG inside ``torch.random.fork_rng`` (global state untouched)
            and the shuffling generator (unless ``generator`` is given).
        progress: tqdm bar over epochs.
        callback: ``callback(epoch, history, model)`` after each epoch; returning True stops.
        generator: the shuffling generator.
    """
    obj = check_choice("objective", objective, Objective)
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("X and y have to be tensors")
    if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y have to have the same number of rows, but got X of shape "
                         f"{tuple(X.shape)} and y of shape {tuple(y.shape)}")
    N = X.shape[0]
    if N == 0:
        raise ValueError("X has to have at least one row, but got 0")
    S = _check_samples(samples)
    _check_int("epochs", epochs)
    _check_int("batch_size", batch_size)
    positive_float("lr", lr)
    ll_fn = log_likelihood(likelihood, tau)
    if sigma0 is not None and weight_decay is not None:
        raise ValueError(f"give at most one of sigma0 and weight_decay, but got sigma0={sigma0} "
                         f"and weight_decay={weight_decay}")
    if sigma0 is not None:
        positive_float("sigma0", sigma0)
        wd = _weight_decay(sigma0, N)
    elif weight_decay is not None:
        wd = float(weight_decay)
        if not (wd >= 0 and math.isfinite(wd)):
            raise ValueError(f"weight_decay has to be >= 0 and finite, but got {weight_decay!r}")
    else:
        wd = 0.0

    args = dict(likelihood=likelihood if isinstance(likelihood, str) else "callable",
                objective=obj.value, samples=S, tau=tau, sigma0=sigma0, weight_decay=wd,
                epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, beta=beta, n=N)
    history = History(args=args)
    decayed = _decayed(model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)

    from tqdm.auto import tqdm

    start = time.perf_counter()
    with torch.random.fork_rng(devices=_cuda_devices(model, X)):
        torch.manual_seed(seed)  # seeds every device's generator: fork those in use
        model.train()
        bar = tqdm(range(epochs), disable=not progress, desc=f"fit[{obj.value}, S={S}]")
        for epoch in bar:
            perm = torch.randperm(N, generator=gen)
            total = 0.0
            for i in range(0, N, batch_size):
                idx = perm[i : i + batch_size]
                xb, yb = X[idx], y[idx]
                out = sample_outputs(model, xb, S)
                ll = ll_fn(out.reshape(S * len(idx), *out.shape[2:]), yb.repeat(
                    S, *([1] * (yb.ndim - 1)))).reshape(S, len(idx))
                loss = -_objective(ll, obj, beta).mean()
                if wd > 0:
                    loss = loss + 0.5 * wd * sum(p.pow(2).sum() for p in decayed)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total = total + loss.detach().double() * len(idx)  # no per-step sync
            history.loss.append(float(total) / N)
            bar.set_postfix(loss=f"{history.loss[-1]:.4g}")
            if callback is not None and callback(epoch, history, model):
                break
        bar.close()
    history.seconds = time.perf_counter() - start
    model.eval()
    return history
