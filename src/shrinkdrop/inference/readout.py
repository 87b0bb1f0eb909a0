"""Read-outs of structured posteriors: inclusion probabilities, shrinkage factors, IW posterior.

Definitions (``docs/inference.md``):

* inclusion probability of a Bernoulli scale: ``p(xi_r != 0 | data)``, the fraction of posterior
  draws with ``xi_r != 0``;
* shrinkage factor of a continuous scale (Carvalho, Polson & Scott 2010, for a unit with
  standardized inputs): ``kappa_r = 1 / (1 + n * prec * sigma0^2 * xi_r^2)``, its posterior mean
  in [0, 1]; ``kappa -> 1`` is shrunk away, ``kappa -> 0`` is left alone. The *relevance*
  ``1 - E[kappa_r]`` is the continuous analogue of an inclusion probability;
* importance-weighted (IW) read-out, no MCMC: for fixed weights ``W`` (e.g. trained by MAP with
  noise), draw ``xi_s ~ p(xi)``, ``s = 1..S``; the weights ``omega_s ∝ p(y | W, xi_s)`` estimate
  ``p(xi | y, W)``, and ``sum_s omega_s f(xi_s)`` any read-out ``f``. Its effective sample size
  ``1 / sum omega_s^2`` is reported: when it is near 1, the read-out rests on one draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .. import noise as _noise
from .models import NetSpec, ScaleSite

__all__ = [
    "inclusion_probabilities",
    "shrinkage_factors",
    "readout_table",
    "relevance_auc",
    "importance_readout",
    "ImportanceReadout",
]


def inclusion_probabilities(samples: dict[str, torch.Tensor], spec: NetSpec
                            ) -> dict[str, torch.Tensor]:
    """``p(xi != 0 | data)`` per scale site from draws shaped (chain, draw, *site_shape)."""
    return {s.name: (samples[s.name] != 0).double().mean((0, 1)) for s in spec.sites}


def _kappa(xi: torch.Tensor, n: int, precision, sigma0: float) -> torch.Tensor:
    prec = torch.as_tensor(precision, dtype=torch.float64)
    while prec.ndim < xi.ndim:
        prec = prec.unsqueeze(-1)
    return 1.0 / (1.0 + n * prec * sigma0**2 * xi.double() ** 2)


def shrinkage_factors(samples: dict[str, torch.Tensor], spec: NetSpec, n: int, *,
                      sigma0: float = 1.0, precision=1.0) -> dict[str, torch.Tensor]:
    """Posterior mean shrinkage factor ``E[kappa]`` per scale site (see module docstring).

    ``precision`` is the noise precision (a float, or draws shaped (chain, draw)); when
    ``samples`` hold a ``precision`` site that is used.
    """
    prec = samples.get("precision", precision)
    return {s.name: _kappa(samples[s.name], n, prec, sigma0).mean((0, 1)) for s in spec.sites}


def readout_table(spec: NetSpec, values: dict[str, torch.Tensor], *, what: str) -> list[dict]:
    """Rows ``{site, layer, kind, unit, <what>}``, one per scale (unit ``None`` for ADD)."""
    rows = []
    for s in spec.sites:
        v = values[s.name].reshape(-1)
        for r, x in enumerate(v.tolist()):
            rows.append({"site": s.name, "layer": s.layer, "kind": s.kind,
                         "unit": r if s.kind == "ard" else None, what: x})
    return rows


def relevance_auc(scores, is_real) -> float:
    """Area under the ROC curve of ``scores`` separating ``is_real`` from the rest (ties 1/2).

    The Mann-Whitney statistic: the probability that a random real feature scores above a
    random noise feature.
    """
    s = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    r = torch.as_tensor(is_real, dtype=torch.bool).reshape(-1)
    if s.shape != r.shape or r.all() or not r.any():
        raise ValueError("relevance_auc needs scores and labels of one length with both classes, "
                         f"but got {tuple(s.shape)} scores and {int(r.sum())}/{r.numel()} real")
    pos, neg = s[r][:, None], s[~r][None, :]
    return ((pos > neg).double() + 0.5 * (pos == neg).double()).mean().item()


class ImportanceReadout(dict):
    """Site -> weighted read-out; ``.ess`` the importance weights' effective sample size,
    ``.weights`` the normalized weights (S,)."""

    ess: float
    weights: torch.Tensor


def importance_readout(log_likelihood: Callable[[dict[str, torch.Tensor]], torch.Tensor],
                       noise: _noise.NoiseDistribution, sites: list[ScaleSite], *,
                       samples: int = 1000, n: int | None = None, sigma0: float = 1.0,
                       precision: float = 1.0, generator: torch.Generator | None = None,
                       batch: int = 256) -> ImportanceReadout:
    """IW posterior read-out over the scales of a network whose weights are held fixed.

    Args:
        log_likelihood: ``scales -> log p(y | W, scales)`` for scales with a leading sample
            dimension (each site shaped (B, *site_shape)), returning (B,).
        noise: the prior law of every scale.
        sites: the scale sites (``NetSpec.sites``).
        samples: S prior draws.
        n, sigma0, precision: for shrinkage factors of continuous families (``n`` = training
            size); Bernoulli gives inclusion probabilities.

    Returns:
        :class:`ImportanceReadout`: per site, the weighted inclusion probability (Bernoulli)
        or relevance ``1 - E[kappa]`` (continuous).
    """
    draws = {s.name: noise.sample((samples, *s.shape), generator=generator).to(
        torch.get_default_dtype()) for s in sites}
    lls = []
    with torch.no_grad():
        for i in range(0, samples, batch):
            lls.append(log_likelihood({k: v[i:i + batch] for k, v in draws.items()}))
    ll = torch.cat(lls).double()
    w = torch.softmax(ll, 0)
    out = ImportanceReadout()
    for s in sites:
        x = draws[s.name].double()
        if isinstance(noise, _noise.Bernoulli):
            f = (x != 0).double()
        else:
            if n is None:
                raise ValueError("importance_readout needs n (the training size) for shrinkage "
                                 "factors of a continuous family, but got n=None")
            f = 1.0 - _kappa(x, n, precision, sigma0)
        out[s.name] = torch.einsum("s,s...->...", w, f)
    out.ess = (1.0 / (w**2).sum()).item()
    out.weights = w
    if not math.isfinite(out.ess):  # pragma: no cover - defensive
        raise ArithmeticError("importance weights are not finite")
    return out
