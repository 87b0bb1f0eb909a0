"""Variational scales on point weights: the fit that the compaction read-outs come from.

:func:`fit_scales` fits ``q(xi)`` for every scale site of a model (the noise layers' laws are
the priors) together with point estimates of the weights (MAP, Gaussian prior ``sigma0``), on
minibatches: the structured posterior of SBP (Neklyudov et al. 2017), of Bayesian compression
(Louizos et al. 2017) and of L0 gates, in one fit. Unlike
:func:`shrinkdrop.inference.fit_svi` (mean-field weights, an exact local-expectation gradient
that costs one forward pass per Bernoulli unit) it costs one forward pass per minibatch, which
is what a LeNet-5 on 60,000 images can afford.

Variational families:

* Bernoulli prior (spike-and-slab): ``q(xi_r) = Bernoulli(pi_r)``, reparametrised by its
  relaxation (binary Concrete, ``temperature``); KL to the prior in closed form;
* :class:`~shrinkdrop.noise.LogUniform` prior (SBP): ``q = LogNormal(mu_r, s_r)`` truncated to
  the prior's interval; SBP's closed-form KL
  (:func:`~shrinkdrop.noise.kl_lognormal_log_uniform`);
* any other positive family (half-Cauchy: the horseshoe): ``q = LogNormal(mu_r, s_r)``;
  ``E_q[log q - log p]`` by 16-point Gauss-Hermite quadrature in ``log xi``.

Every example draws its own scales (the local reparametrisation of dropout: same ELBO, lower
variance).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from .. import noise as _noise
from ..errors import NonFiniteLossError
from ..inference import given_scales, scale_sites
from ..inference.svi.guides import bernoulli_kl
from ..nn.sites import SVISite

__all__ = ["fit_scales", "ScaleFit", "row_log_likelihood"]

_GH_T, _GH_W = np.polynomial.hermite.hermgauss(16)
#: the largest ``log s`` of a log-normal ``q`` (s = e^12, about 1.6e5: 7,000 times the width
#: of SBP's interval in log xi)
LOG_SCALE_MAX = 12.0
#: the same for an unbounded ``q`` (s = 10 in log xi)
LOG_SCALE_MAX_FREE = math.log(10.0)


class _Q(nn.Module):
    """``q`` of one site: ``logit`` (Bernoulli) or ``loc, log_scale`` of ``log xi``."""

    def __init__(self, site: SVISite, init_inclusion: float, init_loc: float) -> None:
        super().__init__()
        self.site = site
        self.bernoulli = site.noise.is_discrete
        shape = site.shape
        if self.bernoulli:
            self.logit = nn.Parameter(torch.full(shape, math.log(init_inclusion
                                                                 / (1 - init_inclusion))))
        else:
            self.loc = nn.Parameter(torch.full(shape, float(init_loc)))
            self.log_scale = nn.Parameter(torch.full(shape, math.log(0.1)))

    def _log_s(self) -> Tensor:
        """``log s``, capped at :data:`LOG_SCALE_MAX` (a bounded ``q``) or
        :data:`LOG_SCALE_MAX_FREE`: SBP's KL drives an unused unit's ``s`` up without bound
        (its ``q`` tends to the uniform prior), and ``exp(log s) * z`` then overflowed to
        ``inf * 0 = nan`` in a LeNet-5 fit; past the cap ``q`` is flat on the prior's interval
        (or spans ``xi`` over e^+-47 at 4.7 sd) and the gradient is 0."""
        cap = LOG_SCALE_MAX if self.bounds is not None else LOG_SCALE_MAX_FREE
        return self.log_scale.clamp(max=cap)

    @property
    def bounds(self) -> tuple[float, float] | None:
        law = self.site.noise
        if isinstance(law, _noise.LogUniform):
            return float(law.low), float(law.high)
        return None

    def rsample(self, n: int, temperature: float, g: torch.Generator | None) -> Tensor:
        """One draw per example, ``(n, *site_shape)`` (``(n, 1)`` for a scalar site, so that
        it broadcasts against the layer's rows)."""
        shape = (n, *self.site.shape) if self.site.shape else (n, 1)
        if self.bernoulli:
            u = torch.rand(shape, generator=g, dtype=self.logit.dtype).clamp(1e-6, 1 - 1e-6)
            return torch.sigmoid((self.logit + torch.log(u) - torch.log1p(-u)) / temperature)
        z = torch.randn(shape, generator=g, dtype=self.loc.dtype)
        # clamped in log xi, before exp: an exp that overflowed to inf and was clamped after
        # had a gradient of 0 * inf = nan (an SBP fit of LeNet-5, batch 154)
        b = self.bounds
        lo, hi = (math.log(b[0]), math.log(b[1])) if b is not None else (-40.0, 40.0)
        return torch.exp((self.loc + self._log_s().exp() * z).clamp(lo, hi))

    def kl(self) -> Tensor:
        law = self.site.noise
        if self.bernoulli:
            return bernoulli_kl(torch.sigmoid(self.logit), float(law.keep)).sum()
        s = self._log_s().exp()
        b = self.bounds
        if b is not None:
            return _noise.kl_lognormal_log_uniform(self.loc, s, *b).sum()
        t = torch.as_tensor(_GH_T, dtype=s.dtype)
        w = torch.as_tensor(_GH_W / math.sqrt(math.pi), dtype=s.dtype)
        # nodes kept where exp(lx) and its square are positive finite floats (float32)
        lx = (self.loc[..., None] + math.sqrt(2) * s[..., None] * t).clamp(-40.0, 40.0)
        log_p = law.log_prob(lx.exp()) + lx  # the prior's density of log xi
        neg_entropy = -(0.5 * math.log(2 * math.pi * math.e) + torch.log(s))
        return (neg_entropy - (log_p * w).sum(-1)).sum()

    @torch.no_grad()
    def mean(self) -> Tensor:
        """``E_q[xi]`` (Bernoulli: ``pi``)."""
        if self.bernoulli:
            return torch.sigmoid(self.logit)
        s2 = self._log_s().exp() ** 2
        m = torch.exp(self.loc + 0.5 * s2)
        b = self.bounds
        return m.clamp(*b) if b is not None else m

    @torch.no_grad()
    def score(self) -> Tensor:
        """The posterior's own keep score: ``pi`` (Bernoulli), else the signal-to-noise ratio
        ``E[xi] / sd(xi) = 1 / sqrt(exp(s^2) - 1)`` (SBP's; Bayesian compression's
        ``log alpha`` rule is the same quantity), computed in float64 from ``log s`` (for
        ``s^2`` below 1e-8, ``exp(s^2) - 1 = s^2`` to double precision) and capped at the
        dtype's largest finite value: a ``q`` that has shrunk to a point (``log s`` below
        -52 underflows ``s^2`` in float32) is a sure keep, not an infinite score."""
        if self.bernoulli:
            return torch.sigmoid(self.logit)
        ls = self._log_s().double()
        s2 = torch.exp(2 * ls)
        log_em1 = torch.where(s2 < 1e-8, 2 * ls, torch.log(torch.expm1(s2)))
        big = torch.finfo(self.log_scale.dtype).max
        return torch.exp(-0.5 * log_em1).clamp(max=big).to(self.log_scale.dtype)


@dataclass
class ScaleFit:
    """What :func:`fit_scales` learnt: ``q`` per site (``qs``), the history, the time."""

    model: nn.Module
    sites: list[SVISite]
    qs: nn.ModuleDict
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    likelihood: str = "categorical"
    precision: float | None = None

    def _q(self, name: str) -> _Q:
        return self.qs[name.replace(".", "__")]

    def scores(self) -> dict[str, Tensor]:
        """Per site, each unit's keep score (see :meth:`scales`): ``p(on)`` for a Bernoulli
        site, ``E[xi] / sd(xi)`` otherwise."""
        return {s.name: self._q(s.name).score().detach().clone() for s in self.sites}

    def scales(self, removed: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The scales the read-out runs the model at: 0 for ``removed`` units, else 1 for a
        Bernoulli site (the kept slab) and ``E_q[xi]`` for a continuous one."""
        out = {}
        for s in self.sites:
            q = self._q(s.name)
            v = (torch.ones_like(q.logit.detach()) if q.bernoulli
                 else q.mean().detach().clone())
            if removed is not None and s.name in removed:
                v = torch.where(removed[s.name], torch.zeros_like(v), v)
            out[s.name] = v
        return out


def _weight_decay(model: nn.Module, sigma0: float) -> Tensor:
    return sum((p**2).sum() for p in model.parameters() if p.dim() >= 2) / (2 * sigma0**2)


def _nll(out: Tensor, y: Tensor, likelihood: str, log_prec: Tensor | None) -> Tensor:
    """Mean negative log-likelihood of a minibatch (categorical on logits, or Gaussian with
    precision ``exp(log_prec)``)."""
    if likelihood == "categorical":
        return nn.functional.cross_entropy(out, y)
    r2 = (out.reshape(y.shape) - y) ** 2
    return (0.5 * (math.log(2 * math.pi) - log_prec) + 0.5 * log_prec.exp() * r2).mean()


def row_log_likelihood(fit: ScaleFit, X: Tensor, y: Tensor,
                       removed: dict[str, Tensor] | None = None) -> Tensor:
    """Per-row log-likelihood of the read-out model (``fit.scales(removed)``, deterministic)."""
    with torch.no_grad(), given_scales(fit.model, fit.scales(removed)):
        out = fit.model(X)
    if fit.likelihood == "categorical":
        return -nn.functional.cross_entropy(out, y, reduction="none")
    lp = math.log(fit.precision)
    return 0.5 * (lp - math.log(2 * math.pi)) - 0.5 * fit.precision * (
        out.reshape(y.shape) - y) ** 2


def fit_scales(model: nn.Module, X: Tensor, y: Tensor, *, epochs: int = 10,
               batch_size: int = 128, lr: float = 1e-3, q_lr: float = 1e-2,
               sigma0: float = 1.0, temperature: float = 2.0 / 3.0,
               init_inclusion: float = 0.95, likelihood: str = "categorical", seed: int = 0,
               progress: bool = True,
               callback: Callable[[int, float], None] | None = None) -> ScaleFit:
    """Fit ``q(xi)`` of every scale site of ``model`` and its weights (MAP) on ``(X, y)``
    (categorical likelihood on logits, or Gaussian with a fitted precision).

    Args:
        model: a model with noise layers that have scale sites (``UnitNoise``,
            ``ChannelNoise``, ``NoisyResidual``, ``HeadNoise``, ...); its laws are the priors.
            Its parameters are trained in place (start from pretrained weights, as SBP does,
            or from scratch).
        X, y: inputs and class indices.
        epochs, batch_size: passes over the data and minibatch size.
        lr, q_lr: Adam's learning rates of the weights and of ``q``.
        sigma0: the weights' Gaussian prior scale (weight decay ``1 / (2 sigma0^2)``).
        temperature: of the relaxed Bernoulli draws.
        init_inclusion: the initial ``pi`` of Bernoulli sites.
        likelihood: ``"categorical"`` (``y`` class indices) or ``"gaussian"`` (``y`` float,
            standardized; its precision is fitted as a point).
        seed: seeds the draws and the minibatches.
        progress: a tqdm bar; ``callback(epoch, loss)`` after each epoch.
    """
    from tqdm.auto import tqdm

    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs has to be an integer >= 1, but got {epochs!r}")
    if X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ValueError(f"X and y need the same, non-zero number of rows, but got "
                         f"{X.shape[0]} and {y.shape[0]}")
    if likelihood not in ("categorical", "gaussian"):
        raise ValueError(f"likelihood has to be 'categorical' or 'gaussian', but got "
                         f"{likelihood!r}")
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    sites = scale_sites(model, X[:2])
    qs = nn.ModuleDict({s.name.replace(".", "__"): _Q(s, init_inclusion, 0.0) for s in sites})
    qs = qs.to(X.dtype)
    log_prec = (torch.tensor(-math.log(max(float(y.var()), 1e-6)), dtype=X.dtype,
                             requires_grad=True) if likelihood == "gaussian" else None)
    opt = torch.optim.Adam([{"params": list(model.parameters()), "lr": lr},
                            {"params": list(qs.parameters())
                             + ([log_prec] if log_prec is not None else []), "lr": q_lr}])
    n = X.shape[0]
    cur: dict[str, Tensor] = {}
    history: list[float] = []
    model.train()
    with given_scales(model, lambda: cur):
        for epoch in tqdm(range(epochs), desc="fit_scales", disable=not progress, leave=False):
            perm = torch.randperm(n, generator=g)
            total = 0.0
            for i in range(0, n, batch_size):
                idx = perm[i:i + batch_size]
                xb, yb = X[idx], y[idx]
                cur.clear()
                cur.update({s.name: qs[s.name.replace(".", "__")].rsample(len(idx),
                                                                        temperature, g)
                            for s in sites})
                nll = _nll(model(xb), yb, likelihood, log_prec)
                kl = sum((q.kl() for q in qs.values()), torch.zeros((), dtype=X.dtype))
                loss = nll + (kl + _weight_decay(model, sigma0)) / n
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"fit_scales: the loss is {value} at epoch {epoch}, batch "
                        f"{i // batch_size} (negative log-likelihood {float(nll.detach()):.4g}, KL "
                        f"{float(kl.detach()):.4g}); training stopped")
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += value * len(idx)
            history.append(total / n)
            if callback is not None:
                callback(epoch, history[-1])
    model.eval()
    prec = float(log_prec.detach().exp()) if log_prec is not None else None
    return ScaleFit(model, sites, qs, history, time.perf_counter() - t0, likelihood, prec)
