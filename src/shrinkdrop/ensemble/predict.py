"""Prediction with the stacked networks: MC predictive metrics of every model
(:func:`stacked_predictive`) and the Gaussian precision fitted per model
(:func:`stacked_fit_tau`), in blocks of rows x samples."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from .. import functional as F
from .._validation import check_choice, check_samples
from ..enums import Likelihood
from ..train.precision import fit_predictive_precision
from ._checks import _check_data, _check_device, _per_model, _precisions
from .model import StackedNoisyMLP
from .step import _loglik

__all__ = ["stacked_predictive", "stacked_fit_tau"]


@torch.no_grad()
@contextlib.contextmanager
def _noisy(model: StackedNoisyMLP,
           generator: torch.Generator | None) -> Iterator[StackedNoisyMLP]:
    """The model in train mode (noise on), drawing from ``generator`` when one is given; both
    restored after."""
    was, old_gen = model.training, model.generator
    model.train()
    if generator is not None:
        model.generator = generator
    try:
        yield model
    finally:
        model.generator = old_gen
        model.train(was)


def _mc_blocks(model: StackedNoisyMLP, xe: Tensor, samples: int, max_elements: int,
               scale: tuple[Tensor, Tensor] | None = None) -> Iterator[tuple[int, Tensor]]:
    """Noisy outputs of every model in blocks of rows x samples: yields ``(r0, out)`` with
    ``out (K, s, nr, d_out)`` for rows ``r0 .. r0 + nr - 1`` of ``xe (K, n, d)``, ``samples``
    draws per row in all (in the target's units when ``scale = (y_mean, y_std)``, each
    ``(K, 1, 1)``). The blocks are small enough to stay in cache (the passes are memory-bound).
    """
    K, n = xe.shape[0], xe.shape[1]
    width = max(model.sizes)
    rows = max(1, min(n, max_elements // (K * width)))
    chunk = max(1, min(samples, max_elements // max(1, K * rows * width)))
    for r0 in range(0, n, rows):
        xr = xe[:, r0: r0 + rows]
        nr = xr.shape[1]
        done = 0
        while done < samples:
            s = min(chunk, samples - done)
            out = model(xr.repeat(1, s, 1), noise=True).view(K, s, nr, -1)
            if scale is not None:
                out = out * scale[1].unsqueeze(1) + scale[0].unsqueeze(1)
            yield r0, out
            done += s


def _target_scale(y_mean, y_std, K: int, dtype, dev) -> tuple[Tensor, Tensor]:
    fk = dict(dtype=dtype, device=dev)
    ym = _per_model("y_mean", 0.0 if y_mean is None else y_mean, K).to(**fk).view(-1, 1, 1)
    ys = _per_model("y_std", 1.0 if y_std is None else y_std, K)
    if not bool(torch.all(torch.isfinite(ys) & (ys > 0))):
        raise ValueError(f"y_std has to be positive and finite, but got {ys.tolist()}")
    if not bool(torch.all(torch.isfinite(ym))):
        raise ValueError(f"y_mean has to be finite, but got {ym.flatten().tolist()}")
    ys = ys.to(**fk).view(-1, 1, 1)
    return ym, ys


def _eval_rows(model: StackedNoisyMLP, X: Tensor, y: Tensor, data_of, generator
               ) -> tuple[Tensor, Tensor, torch.device]:
    """Every model's evaluation rows ``(K, n, d)``, ``(K, n[, ...])`` (checked) and the device."""
    K = model.n_models
    rows_of = torch.arange(K) if data_of is None else torch.as_tensor(data_of, dtype=torch.long)
    _check_data(X, y, rows_of, K, model)
    dev = _check_device(model, X, y, generator)
    return X[rows_of.to(dev)], y[rows_of.to(dev)], dev


def _taus(tau, lik: Likelihood, K: int, dtype, dev) -> tuple[list[Tensor | None], bool]:
    """The precisions to score, each ``(K,)`` (one per column of a ``(K, J)`` ``tau``), and
    whether ``tau`` had columns."""
    multi = lik is Likelihood.GAUSSIAN and torch.as_tensor(tau).ndim == 2
    if multi:
        tau_kj = torch.as_tensor(tau, dtype=torch.float64)
        if tau_kj.shape[0] != K:
            raise ValueError(f"tau has to have one row per model ({K}), but got shape "
                             f"{tuple(tau_kj.shape)}")
        return [_precisions(tau_kj[:, j], lik, K, dtype).to(dev)
                for j in range(tau_kj.shape[1])], True
    tau_t = _precisions(tau, lik, K, dtype)
    return [tau_t.to(dev) if tau_t is not None else None], False


def _mc_scores(model: StackedNoisyMLP, xe: Tensor, ye: Tensor, S: int, max_elements: int,
               scale, lik: Likelihood, taus: Sequence[Tensor | None]) -> tuple[Tensor, Tensor]:
    """Per precision the points' MC predictive log-likelihoods ``(J, K, n)`` (a running
    logsumexp over the blocks of draws) and the sum over draws of the outputs (Gaussian) or
    class probabilities ``(K, n, d_out)``."""
    K, n, dev = xe.shape[0], xe.shape[1], xe.device
    J = len(taus)
    run_max = torch.full((J, K, n), -math.inf, dtype=torch.float64, device=dev)
    run_sum = torch.zeros((J, K, n), dtype=torch.float64, device=dev)
    mc_sum = None
    for r0, out in _mc_blocks(model, xe, S, max_elements, scale):
        nr = out.shape[2]
        yr = ye[:, r0: r0 + nr]
        part = (out if lik is Likelihood.GAUSSIAN else out.softmax(-1)).sum(1).double()
        if mc_sum is None:
            mc_sum = torch.zeros((K, n, part.shape[-1]), dtype=torch.float64, device=dev)
        mc_sum[:, r0: r0 + nr] += part
        for j, t in enumerate(taus):
            lw = _loglik(out, yr, lik, t).double()  # (K, s, nr)
            mx, sm = run_max[j, :, r0: r0 + nr], run_sum[j, :, r0: r0 + nr]
            m = torch.maximum(mx, lw.max(1).values)
            sm.mul_(torch.exp(mx - m)).add_(torch.exp(lw - m.unsqueeze(1)).sum(1))
            mx.copy_(m)
    return run_max + run_sum.log() - math.log(S), mc_sum


def _mean_prediction(model: StackedNoisyMLP, xe: Tensor, lik: Likelihood, scale,
                     like: Tensor) -> Tensor:
    """The output with the noise replaced by its mean (target's units, or class
    probabilities); NaN (shaped as ``like``) when the noise has no weight-scaling rule."""
    try:
        mean_out = model(xe, noise=False)
    except F.EvalNoiseError:  # infinite-mean noise, unnormalised: no weight-scaling rule
        return torch.full(like.shape, math.nan, dtype=torch.float64, device=like.device)
    return mean_out * scale[1] + scale[0] if lik is Likelihood.GAUSSIAN \
        else mean_out.softmax(-1)


@torch.no_grad()
def stacked_predictive(
    model: StackedNoisyMLP,
    X: Tensor,
    y: Tensor,
    samples: int,
    *,
    data_of: Sequence[int] | Tensor | None = None,
    likelihood: str | Likelihood = "gaussian",
    tau: float | Sequence | Tensor | None = None,
    y_mean: float | Sequence[float] | Tensor | None = None,
    y_std: float | Sequence[float] | Tensor | None = None,
    max_elements: int = 2 ** 21,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """MC predictive metrics of every model on its evaluation set, in chunks of samples.

    For Gaussian regression, Gal's UCI convention per model (``tau``, ``y`` in the target's
    units; ``yhat_s = out_s * y_std + y_mean``): ``ll_n = logsumexp_s(-tau/2 (y_n - yhat_ns)^2)
    - log S - log(2 pi)/2 + log(tau)/2``, the same as
    :func:`shrinkdrop.train.predictive_log_likelihoods`. Categorical: ``logsumexp_s log
    softmax(out_s)[y] - log S``.

    Args:
        X: ``(G, n, d)`` evaluation inputs (standardised as in training); ``y``: ``(G, n)``.
        samples: noise draws per point (``S``), in blocks of rows x samples of about
            ``max_elements`` hidden activations over all models (default 2^21, 8 MiB in
            float32: measured fastest for 36-72 models; the passes are memory-bound).
        tau: a number, one per model ``(K,)``, or ``J`` per model ``(K, J)``: then every
            precision is scored on the *same* draws and ``ll`` is ``(K, J)``, ``ll_points``
            ``(K, J, n)`` (Gaussian only).
        y_mean, y_std: numbers or one per model (Gaussian only).

    Returns:
        ``{'ll': (K,) mean log-likelihood, 'll_points': (K, n), 'mc_mean': (K, n, d_out) MC mean
        of the outputs in the target's units (regression) or of the class probabilities,
        'mean_pred': (K, n, d_out) the output with the noise replaced by its mean}``.
    """
    K = model.n_models
    S = check_samples(samples)
    lik = check_choice("likelihood", likelihood, Likelihood)
    xe, ye, dev = _eval_rows(model, X, y, data_of, generator)  # (K, n, d), (K, n)
    taus, multi = _taus(tau, lik, K, X.dtype, dev)
    scale = _target_scale(y_mean, y_std, K, X.dtype, dev) if lik is Likelihood.GAUSSIAN \
        else None
    with _noisy(model, generator):
        ll_points, mc_sum = _mc_scores(model, xe, ye, S, max_elements, scale, lik, taus)
        mean_pred = _mean_prediction(model, xe, lik, scale, mc_sum)
    ll_points = ll_points.transpose(0, 1) if multi else ll_points[0]
    return {"ll": ll_points.mean(-1), "ll_points": ll_points, "mc_mean": mc_sum / S,
            "mean_pred": mean_pred.double()}


def _row_subsets(rows: Sequence | None, n: int) -> list[Tensor] | None:
    """``rows`` (index tensors or boolean masks over ``n`` rows) as index tensors, checked."""
    if rows is None:
        return None
    subsets = []
    for i, r in enumerate(rows):
        idx = torch.arange(n)[torch.as_tensor(r)] if torch.as_tensor(r).dtype == torch.bool \
            else torch.as_tensor(r, dtype=torch.long)
        if idx.ndim != 1 or idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= n:
            raise ValueError(f"rows[{i}] has to select at least one of the {n} rows, but "
                             f"got {torch.as_tensor(r).tolist()}")
        subsets.append(idx)
    return subsets


def _sq_errors(model: StackedNoisyMLP, xe: Tensor, ye: Tensor, S: int, max_elements: int,
               scale: tuple[Tensor, Tensor]) -> Tensor:
    """The squared errors ``(K, n, S)`` (float32) of ``S`` noisy passes per row."""
    K, n = xe.shape[0], xe.shape[1]
    sq = torch.empty((K, n, S), dtype=torch.float32, device=xe.device)
    filled = torch.zeros(n, dtype=torch.long)
    for r0, out in _mc_blocks(model, xe, S, max_elements, scale):
        s, nr = out.shape[1], out.shape[2]
        yy = ye[:, r0: r0 + nr].reshape(K, 1, nr, -1).to(out.dtype)
        e = (yy - out).pow(2).sum(-1)  # (K, s, nr)
        f = int(filled[r0])
        sq[:, r0: r0 + nr, f: f + s] = e.transpose(1, 2)
        filled[r0: r0 + nr] += s
    return sq


@torch.no_grad()
def stacked_fit_tau(
    model: StackedNoisyMLP,
    X: Tensor,
    y: Tensor,
    samples: int = 1000,
    *,
    data_of: Sequence[int] | Tensor | None = None,
    y_mean: float | Sequence[float] | Tensor | None = None,
    y_std: float | Sequence[float] | Tensor | None = None,
    rows: Sequence | None = None,
    max_elements: int = 2 ** 21,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per model, the Gaussian precision (target's units) that maximises its MC predictive
    log-likelihood on its rows ``(X, y)``: :func:`shrinkdrop.train.fit_predictive_precision`
    of the squared errors of ``samples`` noisy passes, as
    :func:`shrinkdrop.train.fit_predictive_tau` does for one network. Give it held-out
    rows. The errors are kept in float32: ``K x n x samples`` of them.

    Args:
        rows: subsets of the ``n`` rows (index tensors or boolean masks), each fitted on its
            own from the same draws (e.g. for cross-fitting); default: all rows.

    Returns ``(K,)``, or ``(K, len(rows))`` when ``rows`` is given.
    """
    K = model.n_models
    S = check_samples(samples)
    xe, ye, dev = _eval_rows(model, X, y, data_of, generator)
    subsets = _row_subsets(rows, xe.shape[1])
    scale = _target_scale(y_mean, y_std, K, X.dtype, dev)
    with _noisy(model, generator):
        sq = _sq_errors(model, xe, ye, S, max_elements, scale)
    d = model.sizes[-1]
    sq = sq.cpu()
    if subsets is None:
        return fit_predictive_precision(sq, event_size=d)
    return torch.stack([fit_predictive_precision(sq[:, idx], event_size=d) for idx in subsets],
                       1)
