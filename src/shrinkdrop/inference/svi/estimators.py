"""The estimators of structured VI: the local-expectation gradient of the Bernoulli sites,
which weights each Bernoulli unit gates (the slab pairing), and the log-likelihood."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ...train.likelihoods import gaussian_log_density
from .sites import SVISite, given_scales

__all__ = ["local_expectation_grad", "slab_owners"]


def local_expectation_grad(loglik: Callable[[dict[str, Tensor]], Tensor],
                           xi: dict[str, Tensor], names: list[str]) -> dict[str, Tensor]:
    """``l(xi_r = 1, xi_-r) - l(xi_r = 0, xi_-r)`` for every unit ``r`` of the Bernoulli sites
    ``names``, all other scales at ``xi`` (one forward pass per unit, batched by vmap).

    ``loglik(scales)`` maps a dict of scale tensors to the (scalar) log-likelihood.
    """
    out = {}
    with torch.no_grad():
        base = loglik(xi)
        for name in names:
            cur = xi[name]
            flat = cur.reshape(-1)
            U = flat.numel()
            flips = flat.expand(U, U).clone()
            idx = torch.arange(U)
            flips[idx, idx] = 1 - flat
            flips = flips.reshape(U, *cur.shape)
            rest = {k: v for k, v in xi.items() if k != name}

            def one(s, _name=name, _rest=rest):
                return loglik({**_rest, _name: s})

            try:
                flipped = torch.func.vmap(one)(flips)
            except Exception:  # noqa: BLE001 - a forward vmap cannot batch: loop
                flipped = torch.stack([one(f) for f in flips])
            sign = torch.where(flat > 0.5, 1.0, -1.0).to(base.dtype)
            out[name] = (sign * (base - flipped)).reshape(cur.shape)
    return out


def slab_owners(model: nn.Module, sites: list[SVISite], X: Tensor, probes: int = 3
                ) -> dict[str, Tensor]:
    """Which Bernoulli unit each weight entry is paired with (``-1``: none).

    Entry ``w`` is paired with unit ``r`` when switching ``xi_r`` off makes the output's gradient
    in ``w`` exactly zero although it is not zero with every unit on: ``w`` then acts only
    through unit ``r`` (the weights leaving an input unit for ARD, a filter for tied filters, a
    block's first layer for ADD). Checked at the model's parameters and at ``probes`` random
    ones (standard normal), on ``X`` and a random projection of the output, so that a hidden unit
    that happens to be dead at one point does not hide its weights. Units are numbered across
    the Bernoulli sites in order; an entry paired with several units keeps the first.
    """
    g = torch.Generator().manual_seed(12345)
    own = {k: p.detach() for k, p in model.named_parameters()}
    points = [own] + [{k: torch.randn(p.shape, generator=g, dtype=p.dtype) for k, p in
                       own.items()} for _ in range(probes)]
    weights = [k for k, v in own.items() if v.dim() >= 2]
    ones = {s.name: torch.ones(s.shape, dtype=X.dtype) for s in sites}

    def grads(scales, params):
        theta = {k: (v.clone().requires_grad_() if k in weights else v)
                 for k, v in params.items()}
        with given_scales(model, scales):
            out = functional_call(model, theta, (X,))
        proj = torch.randn(out.shape, generator=g, dtype=out.dtype)
        gs = torch.autograd.grad((out * proj).sum(), [theta[k] for k in weights],
                                 allow_unused=True)
        return {k: (torch.zeros_like(own[k]) if gr is None else gr)
                for k, gr in zip(weights, gs)}

    live = {k: torch.zeros(own[k].shape, dtype=torch.bool) for k in weights}
    for params in points:
        for k, gr in grads(ones, params).items():
            live[k] |= gr != 0
    owners = {k: torch.full(own[k].shape, -1, dtype=torch.long) for k in weights}
    unit = 0
    for s in sites:
        if not s.bernoulli:
            continue
        for r in range(s.units):
            off = dict(ones)
            x = torch.ones(s.units, dtype=X.dtype)
            x[r] = 0
            off[s.name] = x.reshape(s.shape)
            dead = {k: live[k] & (owners[k] < 0) for k in weights}
            for params in points:
                for k, gr in grads(off, params).items():
                    dead[k] &= gr == 0
            for k in weights:
                owners[k][dead[k]] = unit
            unit += 1
    return owners


def _draw_params(mu: dict[str, Tensor], sd: dict[str, Tensor], points: dict[str, Tensor],
                 g: torch.Generator) -> dict[str, Tensor]:
    """One draw of every parameter: the weights from ``N(mu, sd^2)``, the point estimates."""
    params = dict(points)
    for k, m in mu.items():
        params[k] = m + sd[k] * torch.randn(m.shape, generator=g, dtype=m.dtype)
    return params


def _loglik(out: Tensor, y: Tensor, likelihood: str, precision: float | Tensor | None
            ) -> Tensor:
    """Per-row log-likelihood: Gaussian with ``precision`` (the density of
    :mod:`shrinkdrop.train.likelihoods`; an output of width 1 is squeezed) or categorical on
    logits (torch's ``Categorical``)."""
    if likelihood == "gaussian":
        out = out.reshape(*out.shape[:-1]) if out.shape[-1] == 1 else out
        return gaussian_log_density((out - y) ** 2, torch.as_tensor(precision, dtype=out.dtype))
    return torch.distributions.Categorical(logits=out).log_prob(y)
