"""The variational families of the scales: ``q(xi)`` per site, and the Bernoulli KL."""

from __future__ import annotations

import inspect
import math

import torch
from torch import Tensor, nn
from torch.distributions import Beta, biject_to, constraints, kl_divergence

from .sites import SVISite

__all__ = ["bernoulli_kl"]


def bernoulli_kl(q: Tensor, p: float) -> Tensor:
    """``KL(Bernoulli(q) || Bernoulli(p))`` elementwise, finite at ``q in {0, 1}``."""
    q = q.clamp(0.0, 1.0)
    t1 = torch.where(q > 0, q * (torch.log(q) - math.log(p)), torch.zeros_like(q))
    if p < 1:
        t0 = torch.where(q < 1, (1 - q) * (torch.log1p(-q) - math.log1p(-p)),
                         torch.zeros_like(q))
    else:
        t0 = torch.where(q < 1, torch.full_like(q, math.inf), torch.zeros_like(q))
    return t1 + t0


def _support(noise) -> constraints.Constraint:
    return noise.support


def _positive(noise) -> bool:
    return _support(noise) is constraints.positive


def _takes_generator(noise) -> bool:
    return "generator" in inspect.signature(noise.sample).parameters


class _ContinuousQ(nn.Module):
    """``q(xi) = T(N(loc, scale^2))``, ``T = biject_to(support)``; one factor per unit."""

    def __init__(self, site: SVISite, dtype) -> None:
        super().__init__()
        self.site = site
        self.transform = biject_to(_support(site.noise))
        # start at the prior's median (a point where the law has mass), spread 0.1 in u-space
        g = torch.Generator().manual_seed(0)
        draws = site.noise.sample((4001,), generator=g) if _takes_generator(site.noise) \
            else site.noise.sample((4001,))
        u0 = float(self.transform.inv(draws.double().abs().median().clamp_min(1e-6)
                                      if _positive(site.noise) else draws.double().median()))
        if not math.isfinite(u0):
            u0 = 0.0
        self.loc = nn.Parameter(torch.full(site.shape, u0, dtype=dtype))
        self.log_scale = nn.Parameter(torch.full(site.shape, math.log(0.1), dtype=dtype))

    def rsample(self, generator) -> tuple[Tensor, Tensor]:
        """A reparametrised draw and ``log q - log p`` at it (the KL's one-draw estimate)."""
        eps = torch.randn(self.loc.shape, generator=generator, dtype=self.loc.dtype)
        s = self.log_scale.exp()
        u = self.loc + s * eps
        xi = self.transform(u)
        log_q = (-0.5 * eps**2 - self.log_scale - 0.5 * math.log(2 * math.pi)
                 - self.transform.log_abs_det_jacobian(u, xi))
        log_p = self.site.noise.log_prob(xi)
        return xi, (log_q - log_p).sum()

    def draws(self, n: int, generator) -> Tensor:
        eps = torch.randn((n, *self.loc.shape), generator=generator, dtype=self.loc.dtype)
        return self.transform(self.loc + self.log_scale.exp() * eps).detach()


class _BernoulliQ(nn.Module):
    """``q(xi_r) = Bernoulli(pi_r)`` per unit; with ``rate_prior = (a, b)`` the site's inclusion
    rate is learnt too, ``keep ~ Beta(a, b)`` with ``q(keep) = Beta(a + sum pi, b + sum (1 - pi))``
    (its exact coordinate optimum given the ``pi_r``, see :meth:`kl`)."""

    def __init__(self, site: SVISite, dtype, init: float,
                 rate_prior: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.site = site
        self.rate_prior = rate_prior
        self._hyper = None if rate_prior is None else Beta(
            torch.tensor(rate_prior[0], dtype=dtype), torch.tensor(rate_prior[1], dtype=dtype))
        self.logit = nn.Parameter(torch.full(site.shape, math.log(init / (1 - init)),
                                             dtype=dtype))

    @property
    def probs(self) -> Tensor:
        return torch.sigmoid(self.logit)

    def draws(self, n: int, generator) -> Tensor:
        p = self.probs.detach()
        return (torch.rand((n, *p.shape), generator=generator, dtype=p.dtype) < p).to(p.dtype)

    def rate(self) -> Beta | None:
        """``q(keep)`` of the site (``None`` when keep is the noise law's fixed value)."""
        if self.rate_prior is None:
            return None
        p = self.probs.detach()
        a, b = self.rate_prior
        return Beta(a + p.sum(), b + (1 - p).sum())

    def kl(self) -> Tensor:
        """``KL(q(xi) || p(xi))``; with a learnt rate, ``E_q(keep)[KL(q(xi) || p(xi | keep))]
        + KL(q(keep) || Beta(a, b))``, ``q(keep)`` at its optimum given ``pi`` (held fixed in
        the gradient: at the optimum the ELBO's derivative in ``q(keep)`` vanishes)."""
        if self.rate_prior is None:
            return bernoulli_kl(self.probs, float(self.site.noise.keep)).sum()
        q = self.rate()
        a, b = q.concentration1, q.concentration0
        e_log_keep = torch.digamma(a) - torch.digamma(a + b)
        e_log_drop = torch.digamma(b) - torch.digamma(a + b)
        p = self.probs
        neg_entropy = torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p)
        return ((neg_entropy - p * e_log_keep - (1 - p) * e_log_drop).sum()
                + kl_divergence(q, self._hyper))
