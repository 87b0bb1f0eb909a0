"""Read-outs of structured posteriors: inclusion probabilities, shrinkage factors, IW posterior.

Definitions (``docs/inference.md``):

* inclusion probability of a Bernoulli scale: ``p(xi_r != 0 | data)``, the fraction of posterior
  draws with ``xi_r != 0``;
* shrinkage factor of a continuous scale (Carvalho, Polson & Scott 2010, for a unit with
  standardized inputs): ``kappa_r = 1 / (1 + n * prec * sigma0^2 * xi_r^2)``, its posterior mean
  in [0, 1]; ``kappa -> 1`` is shrunk away, ``kappa -> 0`` is left alone. The *relevance*
  ``1 - E[kappa_r]`` is the continuous analogue of an inclusion probability;
* importance-weighted (IW) read-out, no MCMC (:func:`importance_readout`, the *joint* version,
  the issue's definition): for fixed weights ``W`` (e.g. trained by MAP with noise), draw
  ``xi_s ~ p(xi)``, ``s = 1..S``; the weights ``omega_s ∝ p(y | W, xi_s)`` estimate
  ``p(xi | y, W)``, and ``sum_s omega_s f(xi_s)`` any read-out ``f``. Its effective sample size
  ``1 / sum omega_s^2`` is reported: when it is near 1, the read-out rests on one draw. With
  tens of scales it is: the likelihood of a joint draw varies over hundreds of nats, so one
  draw takes all the weight (ESS ~1-2 of 4000 on diabetes with 30 inputs);
* conditional (Rao-Blackwellised) IW read-out (:func:`conditional_readout`), the same weights
  ``p(y | W, xi_s)`` over the same S prior draws, but one unit at a time: the marginal posterior
  of unit ``r`` given ``W`` is

      p(xi_r = q | y, W) ∝ p(xi_r = q) E_{xi_-r ~ p}[p(y | W, xi_r = q, xi_-r)]
                        ≈ p(q) (1/S) sum_s p(y | W, xi_r = q, xi_-r^(s)),

  evaluated for every value ``q`` of ``xi_r`` (Bernoulli: ``{0, 1}``; continuous: ``K`` prior
  quantiles ``F^-1((k + 1/2) / K)``, equal prior mass) with the *same* draws ``xi_-r^(s)``
  (log-mean-exp ratios, so the noise common to all ``q`` cancels). ``xi_r`` is integrated
  exactly (on the grid) instead of by sampling, which removes the collapse: the read-out of
  unit ``r`` compares ``q``'s under the same configurations of the other units. Per unit it
  reports the ESS of the weights of ``xi_-r^(s)``, ``sum_q p(q) p(y | W, q, xi_-r^(s))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

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
    "conditional_readout",
    "ConditionalReadout",
    "unit_grid",
    "median_probability_rule",
    "one_se_removal",
    "Removal",
]


def inclusion_probabilities(samples: dict[str, torch.Tensor], spec: NetSpec
                            ) -> dict[str, torch.Tensor]:
    """``p(xi != 0 | data)`` per scale site from draws shaped (chain, draw, *site_shape)."""
    return {s.name: (samples[s.name] != 0).double().mean((0, 1)) for s in spec.sites}


def _kappa(xi: torch.Tensor, n: int, precision: float | torch.Tensor, sigma0: float
           ) -> torch.Tensor:
    prec = torch.as_tensor(precision, dtype=torch.float64)
    while prec.ndim < xi.ndim:
        prec = prec.unsqueeze(-1)
    return 1.0 / (1.0 + n * prec * sigma0**2 * xi.double() ** 2)


def shrinkage_factors(samples: dict[str, torch.Tensor], spec: NetSpec, n: int, *,
                      sigma0: float = 1.0, precision: float | torch.Tensor = 1.0
                      ) -> dict[str, torch.Tensor]:
    """Posterior mean shrinkage factor ``E[kappa]`` per scale site (see module docstring).

    ``precision`` is the noise precision (a float, or draws shaped (chain, draw)); when
    ``samples`` hold a ``precision`` site that is used.
    """
    prec = samples.get("precision", precision)
    return {s.name: _kappa(samples[s.name], n, prec, sigma0).mean((0, 1)) for s in spec.sites}


def readout_table(spec: NetSpec, values: dict[str, torch.Tensor], *, what: str
                  ) -> list[dict[str, object]]:
    """Rows ``{site, layer, kind, unit, <what>}``, one per scale (unit ``None`` for ADD)."""
    rows = []
    for s in spec.sites:
        v = values[s.name].reshape(-1)
        for r, x in enumerate(v.tolist()):
            rows.append({"site": s.name, "layer": s.layer, "kind": s.kind,
                         "unit": r if s.kind == "ard" else None, what: x})
    return rows


def relevance_auc(scores: torch.Tensor | Sequence[float],
                  is_real: torch.Tensor | Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` separating ``is_real`` from the rest (ties 1/2).

    The Mann-Whitney statistic: the probability that a random real feature scores above a
    random noise feature (scikit-learn's :func:`sklearn.metrics.roc_auc_score`).
    """
    from sklearn.metrics import roc_auc_score

    s = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    r = torch.as_tensor(is_real, dtype=torch.bool).reshape(-1)
    if bool(torch.isnan(s).any()):
        raise ValueError(f"scores has to be free of NaN, but got {int(torch.isnan(s).sum())} NaN")
    if s.shape != r.shape or r.all() or not r.any():
        raise ValueError("relevance_auc needs scores and labels of one length with both classes, "
                         f"but got {tuple(s.shape)} scores and {int(r.sum())}/{r.numel()} real")
    return float(roc_auc_score(r.numpy(), s.numpy()))


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
        if noise.is_discrete:
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


class ConditionalReadout(dict):
    """Site -> per-unit read-out (shaped like the site) of :func:`conditional_readout`.

    ``.ess``: site -> per-unit ESS of the weights of the draws of the other units (S max);
    ``.posterior``: site -> (units, K) posterior over the grid ``.grid`` (K,);
    ``.samples``: S.
    """

    ess: dict[str, torch.Tensor]
    posterior: dict[str, torch.Tensor]
    grid: torch.Tensor
    samples: int

    @property
    def ess_min(self) -> float:
        return min(v.min().item() for v in self.ess.values())

    @property
    def ess_median(self) -> float:
        return torch.cat([v.reshape(-1) for v in self.ess.values()]).median().item()


def unit_grid(noise: _noise.NoiseDistribution, points: int = 16, *,
              generator: torch.Generator | None = None, draws: int = 20000
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Values ``q_k`` of one scale and their log prior masses ``log pi_k``.

    Bernoulli: ``{0, 1}`` with masses ``1 - keep, keep``. Continuous families: the prior
    quantiles at ``(k + 1/2) / points`` (estimated from ``draws`` prior draws, so any family
    works), each of mass ``1 / points``.
    """
    if isinstance(noise, _noise.Bernoulli):
        keep = float(noise.keep)
        q = torch.tensor([0.0, 1.0], dtype=torch.float64)
        with torch.no_grad():
            logpi = torch.tensor([math.log1p(-keep) if keep < 1 else -math.inf, math.log(keep)],
                                 dtype=torch.float64)
        return q, logpi
    if points < 1:
        raise ValueError(f"points has to be >= 1, but got {points}")
    x = noise.sample((draws,), generator=generator).double()
    u = (torch.arange(points, dtype=torch.float64) + 0.5) / points
    q = torch.quantile(x, u)
    return q, torch.full((points,), -math.log(points), dtype=torch.float64)


def _readout_fn(noise: _noise.NoiseDistribution, n: int | None, precision: float,
                sigma0: float) -> Callable[[torch.Tensor], torch.Tensor]:
    if noise.is_discrete:
        return lambda x: (x != 0).double()
    if n is None:
        raise ValueError("the read-out of a continuous family needs n (the training size) for "
                         "shrinkage factors, but got n=None")
    return lambda x: 1.0 - _kappa(x, n, precision, sigma0)


_Draws = dict[str, torch.Tensor]


def _draw_round(noise: _noise.NoiseDistribution, sites: list[ScaleSite], q: torch.Tensor,
                logpi: torch.Tensor, logq: _Draws, samples: int, discrete: bool,
                generator: torch.Generator | None
                ) -> tuple[_Draws, _Draws | None, torch.Tensor]:
    """One round's S draws of every site, shaped (S, *site_shape); with ``discrete`` drawn on
    the grid ``q`` from the proposal ``logq``, else from the prior. Also the per-unit
    ``log p(xi) - log q(xi)`` (S, units) per site (None for the prior) and its total (S,)."""
    dtype = torch.get_default_dtype()
    if not discrete:
        draws = {s.name: noise.sample((samples, *s.shape), generator=generator).to(dtype)
                 for s in sites}
        return draws, None, torch.zeros(samples, dtype=torch.float64)
    idx = {s.name: torch.multinomial(logq[s.name].exp(), samples, replacement=True,
                                     generator=generator).T for s in sites}
    draws = {s.name: q[idx[s.name]].to(dtype).reshape(samples, *s.shape) for s in sites}
    # log p(xi) - log q(xi) per unit of every draw, (S, units)
    lr = {s.name: (logpi[idx[s.name]] - logq[s.name].gather(1, idx[s.name].T).T)
          for s in sites}
    lr_total = sum(v.sum(1) for v in lr.values())
    return draws, lr, lr_total


def _read_site(log_likelihood: Callable[[_Draws], torch.Tensor], draws: _Draws,
               site: ScaleSite, q: torch.Tensor, logpi: torch.Tensor, lr: _Draws | None,
               lr_total: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior over the grid (units, K) and ESS (units,) of every unit of ``site``."""
    dtype = torch.get_default_dtype()
    K, samples, units = q.numel(), next(iter(draws.values())).shape[0], math.prod(site.shape)
    post = torch.empty(units, K, dtype=torch.float64)
    ess = torch.empty(units, dtype=torch.float64)
    # the S draws repeated K times (built once: only the site's own entry changes per unit)
    tiled = {k: v.repeat(K, *([1] * (v.ndim - 1))) for k, v in draws.items()}
    for r in range(units):
        # K * S configurations: the S draws with unit r set to each grid value
        cfg = dict(tiled)
        x = tiled[site.name].reshape(K, samples, units).clone()
        x[..., r] = q.to(dtype)[:, None]
        cfg[site.name] = x.reshape(K * samples, *site.shape)
        ll = torch.cat([log_likelihood({k: v[i:i + batch] for k, v in cfg.items()})
                        for i in range(0, K * samples, batch)]).double()
        # + log p(xi_-r) / q(xi_-r): the other units' importance ratio
        lw = lr_total - lr[site.name][:, r] if lr is not None else lr_total
        L = ll.reshape(K, samples) + lw
        post[r] = torch.softmax(logpi + torch.logsumexp(L, 1), 0)  # 1/S cancels
        w = torch.softmax(torch.logsumexp(logpi[:, None] + L, 0), 0)
        ess[r] = 1.0 / (w**2).sum()
    return post, ess


def conditional_readout(log_likelihood: Callable[[dict[str, torch.Tensor]], torch.Tensor],
                        noise: _noise.NoiseDistribution, sites: list[ScaleSite], *,
                        samples: int = 1000, grid: int = 16, n: int | None = None,
                        sigma0: float = 1.0, precision: float = 1.0,
                        generator: torch.Generator | None = None, batch: int = 512,
                        only: list[str] | None = None, rounds: int = 1,
                        floor: float = 0.05) -> ConditionalReadout:
    """Per-unit (Rao-Blackwellised) IW read-out over the scales of a fixed-weight network.

    For every unit ``r`` of every site, ``p(xi_r = q | y, W) ∝ p(q) (1/S) sum_s
    p(y | W, xi_r = q, xi_-r^(s))`` on the grid of :func:`unit_grid`, with the same S prior
    draws ``xi^(s)`` for every ``q`` (see the module docstring). Costs ``S * K`` likelihood
    evaluations per unit and round (K = 2 for Bernoulli).

    With ``rounds > 1`` (adaptive importance sampling, still no MCMC), round ``t + 1`` draws
    every scale from the product of the per-unit posteriors of round ``t`` (on the grid, mixed
    with ``floor`` of the prior) instead of the prior and reweights by ``p(xi_-r) / q(xi_-r)``;
    the estimator stays consistent for any such proposal and its weights degenerate less.
    A continuous family's other units are then drawn on the grid (the prior discretized to
    its K quantiles) in every round, the first included.

    Args:
        log_likelihood, noise, sites, samples, n, sigma0, precision: as
            :func:`importance_readout`.
        grid: K, the number of prior quantiles of a continuous family.
        batch: configurations per likelihood call.
        only: names of the sites to read out (default all); the others are still drawn.
            With ``rounds > 1`` all sites are read out (the proposal needs them).
        rounds: adaptation rounds (1: the prior proposal).
        floor: prior weight mixed into the adapted proposal (keeps its tails).

    Returns:
        :class:`ConditionalReadout`: per site, the inclusion probability (Bernoulli) or the
        relevance ``1 - E[kappa_r | y, W]`` (continuous) of each unit; ``.ess`` from the last
        round.
    """
    if samples < 1 or rounds < 1:
        raise ValueError(f"samples and rounds have to be >= 1, but got {samples}, {rounds}")
    q, logpi = unit_grid(noise, grid, generator=generator)
    f = _readout_fn(noise, n, precision, sigma0)(q)
    K = q.numel()
    discrete = rounds > 1 or noise.is_discrete
    # proposal: per site, log-probabilities (units, K) over the grid (the prior at first)
    logq = {s.name: logpi.expand(math.prod(s.shape), K).clone() for s in sites}
    todo = sites if (only is None or rounds > 1) else [s for s in sites if s.name in only]
    out = ConditionalReadout()
    with torch.no_grad():
        for t in range(rounds):
            draws, lr, lr_total = _draw_round(noise, sites, q, logpi, logq, samples, discrete,
                                              generator)
            out = ConditionalReadout()
            out.ess, out.posterior, out.grid, out.samples = {}, {}, q, samples
            for site in todo:
                post, ess = _read_site(log_likelihood, draws, site, q, logpi, lr, lr_total,
                                       batch)
                out[site.name] = (post @ f).reshape(site.shape)
                out.posterior[site.name] = post
                out.ess[site.name] = ess.reshape(site.shape)
            if t < rounds - 1:
                for site in sites:
                    mix = (1 - floor) * out.posterior[site.name] + floor * logpi.exp()
                    logq[site.name] = mix.log()
    if only is not None:
        for k in [k for k in out if k not in only]:
            del out[k], out.posterior[k], out.ess[k]
    return out


# ------------------------------------------------------------------ what to remove, chosen
def median_probability_rule(inclusion: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Units to remove by the median-probability model (Barbieri & Berger 2004): those with
    posterior inclusion probability below 1/2 (for ``inclusion`` per site; a boolean mask per
    site). Under an orthogonal design it is the predictive optimum; it needs no threshold."""
    return {k: torch.as_tensor(v) < 0.5 for k, v in inclusion.items()}


class Removal(dict):
    """Site -> boolean mask of the removed units (:func:`one_se_removal`); ``.threshold`` the
    score below which units go, ``.ll`` / ``.se`` the kept model's and the full model's mean
    validation log-likelihood and its standard error, ``.path`` the scanned
    ``(threshold, removed, mean ll)``."""

    threshold: float
    ll: float
    ll_full: float
    se: float
    path: list[tuple[float, int, float]]


def one_se_removal(scores: dict[str, torch.Tensor],
                   loglik: Callable[[dict[str, torch.Tensor]], torch.Tensor], *,
                   candidates: int = 40, keep_one: bool = True) -> Removal:
    """The largest removal whose validation log-likelihood stays within one standard error of
    the full model's (Breiman's one-SE rule, on the posterior's ranking of the units).

    Units are ranked by ``scores`` (per site, larger = more clearly needed: inclusion
    probabilities, or a continuous posterior's signal-to-noise ratio); the candidate removals
    are "every unit whose score is below ``t``" for ``t`` at ``candidates`` quantiles of the
    scores (and between equal scores nothing is split). ``loglik(removed)`` returns the
    per-row validation log-likelihoods (N,) of the model with the ``removed`` units at 0. The
    chosen removal is the candidate with the most units removed whose mean is at least the full
    model's mean minus its standard error ``sd / sqrt(N)``; with ``keep_one`` no site loses all
    its units.
    """
    if candidates < 1:
        raise ValueError(f"candidates has to be >= 1, but got {candidates}")
    if not scores:
        raise ValueError("one_se_removal needs at least one site in scores")
    flat = torch.cat([torch.as_tensor(v, dtype=torch.float64).reshape(-1)
                      for v in scores.values()])
    if not torch.isfinite(flat).all():
        raise ValueError("one_se_removal: scores have to be finite")
    base = loglik({}).double()
    ll_full, se = float(base.mean()), float(base.std() / math.sqrt(base.numel()))
    qs = torch.quantile(flat, torch.linspace(0, 1, candidates + 1, dtype=torch.float64)[1:])
    ts = torch.unique(torch.cat([qs, flat.max().reshape(1) + 1]))
    best = Removal({k: torch.zeros_like(torch.as_tensor(v), dtype=torch.bool)
                    for k, v in scores.items()})
    best.threshold, best.ll, best.ll_full, best.se, best.path = -math.inf, ll_full, ll_full, se, []
    n_best = 0
    for t in ts.tolist():
        rem = {k: torch.as_tensor(v, dtype=torch.float64) < t for k, v in scores.items()}
        if keep_one:
            for k, v in scores.items():
                if rem[k].all():
                    v = torch.as_tensor(v, dtype=torch.float64)
                    rem[k] = v < v.max()
        n = int(sum(int(m.sum()) for m in rem.values()))
        if n == 0 or n <= n_best:
            continue
        ll = float(loglik(rem).double().mean())
        best.path.append((t, n, ll))
        if ll >= ll_full - se:
            out = Removal(rem)
            out.threshold, out.ll, out.ll_full, out.se, out.path = t, ll, ll_full, se, best.path
            best, n_best = out, n
    return best
