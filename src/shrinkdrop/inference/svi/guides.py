"""The variational families of the scales: ``q(xi)`` per site, and the Bernoulli KL."""

from __future__ import annotations

import inspect
import math

import torch
from torch import Tensor, nn
from torch.distributions import biject_to, constraints

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
    def __init__(self, site: SVISite, dtype, init: float) -> None:
        super().__init__()
        self.site = site
        self.logit = nn.Parameter(torch.full(site.shape, math.log(init / (1 - init)),
                                             dtype=dtype))

    @property
    def probs(self) -> Tensor:
        return torch.sigmoid(self.logit)

    def draws(self, n: int, generator) -> Tensor:
        p = self.probs.detach()
        return (torch.rand((n, *p.shape), generator=generator, dtype=p.dtype) < p).to(p.dtype)

    def kl(self) -> Tensor:
        return bernoulli_kl(self.probs, float(self.site.noise.keep)).sum()
