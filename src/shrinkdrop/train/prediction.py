"""S-sample evaluation: outputs under noise, predictive means and predictive log-likelihoods.

Vectorised sampling: :func:`sample_outputs` stacks ``S`` copies of the batch (sample-major,
``S * B`` rows) and runs the model once with noise on, inside
``shrinkdrop.functional.sample_groups(S)`` so that batch-shared noise gets ``S`` independent
draws too. The batch dimension of ``x`` is dimension 0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from .._validation import check_choice, check_samples
from ..enums import Likelihood, PredictMode
from ..functional import sample_groups
from ..nn import NoiseLayer, mc_mode
from .likelihoods import log_likelihood
from .objectives import marginal_map
from .sources import check_input, model_error

__all__ = [
    "noise_on",
    "sample_outputs",
    "predict",
    "predictive_log_likelihoods",
    "predictive_log_likelihood",
]


@contextlib.contextmanager
def noise_on(model: nn.Module) -> Iterator[nn.Module]:
    """Noise on, whatever the model's mode: ``shrinkdrop.mc_mode`` for the library's layers, and
    train mode for torch's own dropout modules (``nn.Dropout``, ``nn.Dropout2d``, ...: MC
    dropout) and for other modules that carry a ``noise`` attribute (restored on exit)."""
    ctx = mc_mode(model)
    changed = [
        m for m in model.modules()
        if not m.training and not isinstance(m, NoiseLayer)
        and (hasattr(m, "noise") or isinstance(m, nn.modules.dropout._DropoutNd))
    ]
    for m in changed:
        m.training = True
    try:
        with ctx:
            yield model
    finally:
        for m in changed:
            m.training = False


def _sample_groups(S: int) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext() if S == 1 else sample_groups(S)


def sample_outputs(model: nn.Module, x: torch.Tensor, samples: int, *,
                   noise: bool = True) -> torch.Tensor:
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
    S = check_samples(samples)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x has to be a tensor, but got {type(x).__name__}")
    B = x.shape[0]
    xs = x.repeat(S, *([1] * (x.ndim - 1))) if S > 1 else x
    ctx = noise_on(model) if noise else contextlib.nullcontext()
    with ctx, _sample_groups(S):
        try:
            out = model(xs)
        except RuntimeError as exc:
            raise model_error("x", x, exc) from exc
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
    returned), for ``'bernoulli'`` of sigmoid probabilities; for ``'gaussian'`` it is of the raw
    outputs. No gradients. ``x`` has to be finite. Variances, intervals, entropies and mutual
    information: :func:`shrinkdrop.train.predictive`.
    """
    mode = check_choice("mode", mode, PredictMode)
    likelihood = check_choice("likelihood", likelihood, Likelihood)
    check_input("x", x)
    with _evaluating(model):
        if mode is PredictMode.MEAN:
            out = sample_outputs(model, x, 1, noise=False)[0]
            if likelihood is Likelihood.BERNOULLI:
                return out.sigmoid()
            return out.softmax(-1) if likelihood is Likelihood.CATEGORICAL else out
        outs = sample_outputs(model, x, samples)
        if likelihood is Likelihood.CATEGORICAL:
            outs = outs.softmax(-1)
        elif likelihood is Likelihood.BERNOULLI:
            outs = outs.sigmoid()
        return outs.mean(0)


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """The model in eval mode and without gradients; its mode restored on exit."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def predictive_log_likelihoods(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    samples: int = 32,
    likelihood: str | Likelihood | Callable = "gaussian",
    tau: float | torch.Tensor | None = None,
    y_mean: float | torch.Tensor | None = None,
    y_std: float | torch.Tensor | None = None,
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
    check_input("x", x)
    check_input("y", y)
    for name, v in (("y_std", y_std), ("y_mean", y_mean)):
        if v is not None:
            t = torch.as_tensor(v, dtype=torch.float64)
            if not bool(torch.isfinite(t).all()) or (name == "y_std" and not bool((t > 0).all())):
                raise ValueError(f"{name} has to be {'positive and ' if name == 'y_std' else ''}"
                                 f"finite, but got {v!r}")
    with _evaluating(model):
        outs = sample_outputs(model, x, samples)
    if y_std is not None:
        outs = outs * torch.as_tensor(y_std, dtype=outs.dtype)
    if y_mean is not None:
        outs = outs + torch.as_tensor(y_mean, dtype=outs.dtype)
    return outs


def predictive_log_likelihood(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    samples: int = 32,
    likelihood: str | Likelihood | Callable = "gaussian",
    tau: float | torch.Tensor | None = None,
    y_mean: float | torch.Tensor | None = None,
    y_std: float | torch.Tensor | None = None,
) -> float:
    """Mean over points of :func:`predictive_log_likelihoods` (a float)."""
    return float(predictive_log_likelihoods(model, x, y, samples, likelihood, tau, y_mean,
                                            y_std).mean())
