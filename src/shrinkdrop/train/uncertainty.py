"""Predictive uncertainty under MC noise, streamed over samples and rows in chunks.

:func:`predictive` runs ``samples`` noisy passes of a model over inputs (a tensor or a
``DataLoader``), ``sample_chunk`` draws and ``row_chunk`` rows at a time, and reduces them as
they come, so memory is bounded by one chunk (not ``S x N``):

* regression (``likelihood='gaussian'``, precision ``tau``): the predictive mean, the variance
  split into its **epistemic** part (the variance of the network's output over noise draws) and
  its **aleatoric** part (``1 / tau``), and quantile intervals of the predictive mixture
  ``(1/S) sum_s N(f_s, 1/tau)`` (the exact mixture quantiles, by bisection on its CDF; these
  keep the ``S`` outputs of one row chunk);
* classification (``'categorical'``, or ``'bernoulli'`` as two classes): the predictive
  probabilities ``p = mean_s softmax(f_s)`` (kept as ``log p`` by a streaming ``logsumexp``),
  the predictive **entropy** ``H[p]``, the **expected entropy** ``mean_s H[softmax(f_s)]``
  (aleatoric) and their difference, the **mutual information** between the label and the noise
  (BALD; epistemic).

The chunked reduction gives the numbers of one pass to float rounding: the sample chunks of a
row chunk are merged by Chan et al.'s pairwise update (means and sums of squares) and
``logaddexp`` (log-probabilities).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.utils.data import DataLoader

from .._validation import check_choice, check_int, check_samples, positive_float
from ..enums import Likelihood
from .prediction import _evaluating, sample_outputs
from .sources import check_finite, unpack_batch

__all__ = ["Predictive", "predictive", "reduce_draws", "mixture_quantiles", "READOUTS"]

#: the read-outs of each kind of likelihood
READOUTS: dict[str, tuple[str, ...]] = {
    "gaussian": ("mean", "variance", "epistemic", "aleatoric", "quantiles"),
    "categorical": ("probs", "log_probs", "entropy", "expected_entropy", "mutual_information"),
}


@dataclass
class Predictive:
    """The read-outs of :func:`predictive`, one row per input row (None where not asked for
    or not of this likelihood). Regression: ``mean``, ``variance = epistemic + aleatoric``
    ``(N, *event)``, ``quantiles`` ``(Q, N, *event)`` at ``levels``. Classification: ``probs``
    and ``log_probs`` ``(N, C)``, ``entropy``, ``expected_entropy``, ``mutual_information``
    ``(N,)`` in nats."""

    mean: torch.Tensor | None = None
    variance: torch.Tensor | None = None
    epistemic: torch.Tensor | None = None
    aleatoric: torch.Tensor | None = None
    quantiles: torch.Tensor | None = None
    levels: tuple[float, ...] | None = None
    probs: torch.Tensor | None = None
    log_probs: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    expected_entropy: torch.Tensor | None = None
    mutual_information: torch.Tensor | None = None
    samples: int = 0


def mixture_quantiles(locs: torch.Tensor, scale: float, levels: Iterable[float],
                      iters: int = 60) -> torch.Tensor:
    """Quantiles of the equal-weight Gaussian mixture ``(1/S) sum_s N(locs[s], scale^2)`` per
    element: bisection on the mixture CDF (``iters`` halvings of a bracket that holds it).

    Shape: ``(S, ...) -> (Q, ...)``.
    """
    lv = torch.as_tensor(list(levels), dtype=torch.float64)
    if lv.numel() == 0 or not bool(((lv > 0) & (lv < 1)).all()):
        raise ValueError(f"levels have to be in (0, 1), but got {lv.tolist()}")
    locs = locs.double()
    z = 10.0 * scale
    lo = (locs.min(0).values - z).expand(len(lv), *locs.shape[1:]).clone()
    hi = (locs.max(0).values + z).expand(len(lv), *locs.shape[1:]).clone()
    target = lv.reshape(-1, *([1] * (locs.ndim - 1)))
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        cdf = torch.special.ndtr((mid.unsqueeze(1) - locs) / scale).mean(1)
        below = cdf < target
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


class _Moments:
    """Count, mean and sum of squared deviations over sample chunks (Chan et al.'s merge)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, x: torch.Tensor) -> None:
        x = x.double()
        nb, mb = x.shape[0], x.mean(0)
        m2b = (x - mb).pow(2).sum(0)
        if self.mean is None:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        n = self.n + nb
        d = mb - self.mean
        self.mean = self.mean + d * (nb / n)
        self.m2 = self.m2 + m2b + d.pow(2) * (self.n * nb / n)
        self.n = n


def _entropy(logp: torch.Tensor) -> torch.Tensor:
    return -(logp.exp() * logp).nan_to_num(0.0).sum(-1)


class _Reducer:
    """The running reduction of one row chunk's sample chunks."""

    def __init__(self, lik: Likelihood, keep_draws: bool) -> None:
        self.lik, self.keep = lik, keep_draws
        self.mom, self.draws = _Moments(), []
        self.lse, self.h_sum, self.n = None, None, 0

    def add(self, outs: torch.Tensor) -> None:
        if self.lik is Likelihood.GAUSSIAN:
            self.mom.add(outs)
            if self.keep:
                self.draws.append(outs.double())
            return
        if self.lik is Likelihood.BERNOULLI:
            f = outs.double().squeeze(-1) if outs.shape[-1:] == (1,) else outs.double()
            logp = torch.stack([torch.nn.functional.logsigmoid(-f),
                                torch.nn.functional.logsigmoid(f)], -1)
        else:
            logp = outs.double().log_softmax(-1)
        lse = torch.logsumexp(logp, 0)
        h = _entropy(logp).sum(0)
        self.lse = lse if self.lse is None else torch.logaddexp(self.lse, lse)
        self.h_sum = h if self.h_sum is None else self.h_sum + h
        self.n += outs.shape[0]

    def finish(self, tau: float | None, levels) -> dict[str, torch.Tensor]:
        if self.lik is Likelihood.GAUSSIAN:
            n, mean = self.mom.n, self.mom.mean
            epi = self.mom.m2 / n
            alea = torch.full_like(mean, 1.0 / tau)
            r = {"mean": mean, "epistemic": epi, "aleatoric": alea, "variance": epi + alea}
            if self.keep:
                r["quantiles"] = mixture_quantiles(torch.cat(self.draws), tau ** -0.5, levels)
            return r
        logp = self.lse - math.log(self.n)
        h = _entropy(logp)
        eh = self.h_sum / self.n
        return {"log_probs": logp, "probs": logp.exp(), "entropy": h, "expected_entropy": eh,
                "mutual_information": (h - eh).clamp_min(0.0)}


def reduce_draws(chunks: Iterable[torch.Tensor], likelihood: str | Likelihood = "gaussian",
                 tau: float | None = None,
                 quantiles: Iterable[float] | None = None) -> dict[str, torch.Tensor]:
    """The read-outs of draws that come in sample chunks ``(s_k, B, ...)`` of the same rows
    (what :func:`predictive` does per row chunk); a dict of ``(B, ...)`` tensors (float64)."""
    lik = check_choice("likelihood", likelihood, Likelihood)
    if lik is Likelihood.GAUSSIAN:
        if tau is None:
            raise ValueError("likelihood='gaussian' needs tau (the noise precision), but got None")
        tau = positive_float("tau", tau)
    red = _Reducer(lik, quantiles is not None)
    for c in chunks:
        red.add(c)
    if red.n == 0 and red.mom.n == 0:
        raise ValueError("no draws to reduce")
    return red.finish(tau, quantiles)


def _row_chunks(data, row_chunk: int | None) -> Iterator[torch.Tensor]:
    if isinstance(data, DataLoader):
        for batch in data:
            x = batch if isinstance(batch, torch.Tensor) else unpack_batch(batch, "the loader")[0]
            check_finite("x", x)
            yield x
        return
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"x has to be a tensor or a DataLoader, but got {type(data).__name__}")
    check_finite("x", data)
    step = data.shape[0] if row_chunk is None else row_chunk
    for i in range(0, data.shape[0], max(step, 1)):
        yield data[i:i + step]


def predictive(
    model: nn.Module,
    x: torch.Tensor | DataLoader,
    *,
    likelihood: str | Likelihood = "gaussian",
    samples: int = 32,
    tau: float | None = None,
    quantiles: Iterable[float] | None = (0.025, 0.975),
    what: Iterable[str] | None = None,
    sample_chunk: int | None = None,
    row_chunk: int | None = None,
    y_mean: float | torch.Tensor | None = None,
    y_std: float | torch.Tensor | None = None,
) -> Predictive:
    """Predictive read-outs of ``model`` under ``samples`` noise draws, streamed in chunks.

    Args:
        model: any ``nn.Module`` with noise layers (noise is on, whatever its mode; the model is
            evaluated in eval mode, without gradients, its mode restored).
        x: inputs ``(N, ...)`` (finite), or a ``DataLoader`` of inputs or of ``(x, y)`` pairs
            (its batches are the row chunks).
        likelihood: ``'gaussian'`` (regression; needs ``tau``, in the units of ``y``),
            ``'categorical'`` (logits) or ``'bernoulli'`` (one logit: two classes).
        samples: S noise draws.
        tau: the Gaussian likelihood's precision (aleatoric variance ``1 / tau``).
        quantiles: the levels of the regression intervals (None: none, and no draws kept).
        what: the read-outs to return (default all of the likelihood's :data:`READOUTS`).
        sample_chunk: draws per pass (default all S at once).
        row_chunk: rows per pass for a tensor ``x`` (default all).
        y_mean, y_std: regression outputs mapped to ``y``'s units by ``out * y_std + y_mean``.
    """
    lik = check_choice("likelihood", likelihood, Likelihood)
    S = check_samples(samples)
    sc = S if sample_chunk is None else check_int("sample_chunk", sample_chunk)
    if row_chunk is not None:
        check_int("row_chunk", row_chunk)
    kind = "gaussian" if lik is Likelihood.GAUSSIAN else "categorical"
    wanted = set(READOUTS[kind] if what is None else what)
    unknown = wanted - set(READOUTS[kind])
    if unknown:
        raise ValueError(f"what has to be some of {', '.join(READOUTS[kind])} for "
                         f"likelihood={lik.value!r}, but got {sorted(unknown)}")
    levels = tuple(quantiles) if quantiles is not None and "quantiles" in wanted else None
    parts: list[dict[str, torch.Tensor]] = []
    with _evaluating(model):
        for xb in _row_chunks(x, row_chunk):
            chunks = (_mapped(sample_outputs(model, xb, min(sc, S - s)), y_std, y_mean)
                      for s in range(0, S, sc))
            parts.append(reduce_draws(chunks, lik, tau, levels))
    out = Predictive(samples=S, levels=levels)
    for f in fields(Predictive):
        if f.name in wanted and f.name in parts[0]:
            dim = 1 if f.name == "quantiles" else 0
            setattr(out, f.name, torch.cat([p[f.name] for p in parts], dim))
    return out


def _mapped(outs: torch.Tensor, y_std, y_mean) -> torch.Tensor:
    if y_std is not None:
        outs = outs * torch.as_tensor(y_std, dtype=outs.dtype)
    if y_mean is not None:
        outs = outs + torch.as_tensor(y_mean, dtype=outs.dtype)
    return outs
