"""What :func:`~shrinkdrop.inference.fit_svi` returns: :class:`SVIResult` and its read-outs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .estimators import _draw_params, _loglik
from .sites import SVISite, given_scales

__all__ = ["SVIResult"]


@dataclass
class SVIResult:
    """What :func:`~shrinkdrop.inference.fit_svi` learnt: the sites, their ``q``, the weights'
    ``q`` and the history.

    Read-outs: :meth:`inclusion` (Bernoulli sites: ``p(xi_r != 0 | data)``), :meth:`relevance`
    (every site: inclusion probability, or ``1 - E_q[kappa]`` for continuous laws),
    :meth:`table`; prediction: :meth:`sample_outputs`, :meth:`log_likelihood`.
    """

    model: nn.Module
    sites: list[SVISite]
    q_scales: nn.ModuleDict
    mu: dict[str, Tensor]
    sd: dict[str, Tensor]
    points: dict[str, Tensor]
    likelihood: str
    precision: float | None
    sigma0: float
    n: int
    elbo: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def _q(self, site: SVISite):
        return self.q_scales[site.name.replace(".", "__")]

    def inclusion(self) -> dict[str, Tensor]:
        """Posterior inclusion probabilities of the Bernoulli sites."""
        return {s.name: self._q(s).probs.detach().clone() for s in self.sites if s.bernoulli}

    def inclusion_rate(self) -> dict[str, torch.distributions.Beta]:
        """``q(keep)`` per Bernoulli site when ``fit_svi`` learnt the rate
        (``inclusion_prior``); empty otherwise."""
        out = {}
        for s in self.sites:
            if s.bernoulli and (q := self._q(s).rate()) is not None:
                out[s.name] = q
        return out

    def relevance(self, draws: int = 2000, seed: int = 0) -> dict[str, Tensor]:
        """Per unit: inclusion probability (Bernoulli), else ``1 - E_q[kappa]``,
        ``kappa = 1 / (1 + n * precision * sigma0^2 * xi^2)`` (the shrinkage factor of
        Carvalho et al. 2010, as the MCMC read-outs use it); in [0, 1], 0.5 the threshold."""
        g = torch.Generator().manual_seed(seed)
        prec = self.precision if self.precision is not None else 1.0
        out = {}
        for s in self.sites:
            q = self._q(s)
            if s.bernoulli:
                out[s.name] = q.probs.detach().clone()
            else:
                xi = q.draws(draws, g)
                kappa = 1.0 / (1.0 + self.n * prec * self.sigma0**2 * xi**2)
                out[s.name] = (1 - kappa).mean(0)
        return out

    def table(self, draws: int = 2000) -> list[dict]:
        rel = self.relevance(draws)
        rows = []
        for s in self.sites:
            what = "p(on)" if s.bernoulli else "1 - E[kappa]"
            for i, v in enumerate(rel[s.name].reshape(-1).tolist()):
                rows.append(dict(site=s.name, structure=s.structure, unit=i, what=what,
                                 relevance=v))
        return rows

    def switched_off(self, threshold: float = 0.5) -> dict[str, Tensor]:
        """Boolean mask per site: units whose relevance is below ``threshold``."""
        return {k: v < threshold for k, v in self.relevance().items()}

    def sample_outputs(self, X: Tensor, samples: int = 100, *, seed: int = 0,
                       off: dict[str, Tensor] | None = None) -> Tensor:
        """``samples`` outputs under ``q`` (weights and scales drawn jointly), ``(S, N, ...)``.

        ``off`` maps site names to boolean masks of units forced to 0 (a pruned network).
        """
        g = torch.Generator().manual_seed(seed)
        outs = []
        with torch.no_grad():
            for _ in range(samples):
                params = _draw_params(self.mu, self.sd, self.points, g)
                xi = {s.name: self._q(s).draws(1, g)[0] for s in self.sites}
                if off:
                    for k, m in off.items():
                        xi[k] = torch.where(m, torch.zeros_like(xi[k]), xi[k])
                with given_scales(self.model, xi):
                    outs.append(functional_call(self.model, params, (X,)))
        return torch.stack(outs)

    def log_likelihood(self, X: Tensor, y: Tensor, samples: int = 1000, *, y_scale: float = 1.0,
                       seed: int = 0, off: dict[str, Tensor] | None = None) -> Tensor:
        """Per-row log predictive density ``log (1/S) sum_s p(y | X, v_s, xi_s)`` under ``q``;
        ``y_scale`` converts a standardized Gaussian target back to original units."""
        out = self.sample_outputs(X, samples, seed=seed, off=off)
        ll = _loglik(out, y, self.likelihood, self.precision)  # (S, N)
        ll = torch.logsumexp(ll, 0) - math.log(samples)
        if self.likelihood == "gaussian":
            ll = ll - math.log(y_scale)
        return ll
