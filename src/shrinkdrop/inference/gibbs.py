"""Bernoulli scales (dropout's own prior) by Gibbs updates alternating with NUTS on the weights.

Kuo & Mallick (1998): in the EP ``w = xi * v`` with ``v ~ N(0, sigma0^2)`` independent of
``xi_r ~ Bernoulli(keep)``, the full conditional of one scale given everything else is

    p(xi_r = 1 | v, xi_{-r}, y) = keep L1 / (keep L1 + (1 - keep) L0),
    L_j = p(y | v, xi_r = j, xi_{-r}),

two likelihood evaluations per scale (the prior of ``v`` does not involve ``xi``). When
``xi_r = 0`` the likelihood ignores ``v_r``, which NUTS then draws from its prior. One sweep
updates every scale (ARD units, ADD layers) in turn; then one NUTS transition moves the
weights (and the noise precision, when learnt) with the scales held fixed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyro
import torch
from tqdm.auto import tqdm

from .models import _init_params, log_likelihood, make_potential

__all__ = ["GibbsResult", "gibbs_bernoulli"]


@dataclass
class GibbsResult:
    """Draws shaped (chain, draw, ...) per site (scales included), cost and divergences."""

    samples: dict[str, torch.Tensor]
    divergences: int
    seconds: float
    sample_seconds: float


def _sweep(model: Callable[..., None], params: dict[str, torch.Tensor],
           fixed: dict[str, torch.Tensor], X: torch.Tensor, y: torch.Tensor,
           log_keep: torch.Tensor, log_drop: torch.Tensor, generator: torch.Generator) -> None:
    spec = model.spec
    for s in spec.sites:
        xi = fixed[s.name]
        flat = xi.view(-1)
        for r in range(flat.numel()):
            lls = []
            for val in (0.0, 1.0):
                flat[r] = val
                p = dict(params)
                p.update(fixed)
                lls.append(log_likelihood(spec, p, X, y, param="ep",
                                          likelihood=model.likelihood,
                                          precision=model.precision))
            logit = log_keep + lls[1] - log_drop - lls[0]
            u = torch.rand((), generator=generator, dtype=logit.dtype)
            flat[r] = float(u < torch.sigmoid(logit))


def gibbs_bernoulli(model: Callable[..., None], X: torch.Tensor, y: torch.Tensor, *,
                    num_warmup: int = 200, num_samples: int = 200, chains: int = 2, seed: int = 0,
                    max_tree_depth: int = 6, progress: bool = False) -> GibbsResult:
    """Sample the posterior of an EP model with Bernoulli scales (Kuo & Mallick's sampler).

    Args:
        model: from :func:`~shrinkdrop.inference.make_model` with a
            :class:`shrinkdrop.noise.Bernoulli` law and ``param="ep"``.
        X, y: training data.
        num_warmup, num_samples: iterations (one Gibbs sweep + one NUTS transition each);
            NUTS adapts its step size and mass matrix during warmup.
        chains: chains run one after the other, chain ``c`` seeded with ``seed + c``.
        max_tree_depth: NUTS' tree depth bound.

    Returns:
        :class:`GibbsResult` with sites ``xi_l`` / ``tau_l`` (0 or 1), ``v_l``, ``b_l``, ...
    """
    from pyro.infer import NUTS

    if not model.noise.is_discrete or model.param != "ep":
        raise ValueError(
            "gibbs_bernoulli needs an EP model with Bernoulli scales, but got "
            f"noise={model.noise!r}, param={model.param!r}"
        )
    keep = model.noise.keep.double()
    log_keep, log_drop = torch.log(keep), torch.log1p(-keep)
    spec = model.spec
    draws: dict[str, list[torch.Tensor]] = {}
    divergences, total, sampling = 0, 0.0, 0.0
    dtype = torch.get_default_dtype()
    for c in range(chains):
        pyro.set_rng_seed(seed + c)
        g = torch.Generator().manual_seed(seed + c)
        fixed = {s.name: torch.ones(s.shape, dtype=dtype) for s in spec.sites}
        potential_fn, transforms = make_potential(model, X, y, fixed)
        kernel = NUTS(potential_fn=potential_fn, max_tree_depth=max_tree_depth)
        z = _init_params(model, transforms, g, fixed)
        kernel.initial_params = z
        kernel.setup(num_warmup)
        chain: dict[str, list[torch.Tensor]] = {}
        t0 = time.perf_counter()
        t_sample = t0
        it = range(num_warmup + num_samples)
        for i in tqdm(it, desc=f"gibbs chain {c}", disable=not progress, leave=False):
            if i == num_warmup:
                t_sample = time.perf_counter()
            z = kernel.sample(z)
            with torch.no_grad():
                params = {k: transforms[k].inv(v) for k, v in z.items()}
                _sweep(model, params, fixed, X, y, log_keep, log_drop, g)
            kernel.clear_cache()  # the potential changed with the scales
            if i >= num_warmup:
                for k, v in params.items():
                    chain.setdefault(k, []).append(v.detach().clone())
                for k, v in fixed.items():
                    chain.setdefault(k, []).append(v.clone())
        t1 = time.perf_counter()
        total += t1 - t0
        sampling += t1 - t_sample
        divergences += len(getattr(kernel, "_divergences", []))
        for k, v in chain.items():
            draws.setdefault(k, []).append(torch.stack(v))
    samples = {k: torch.stack(v) for k, v in draws.items()}
    if not math.isfinite(total):  # pragma: no cover - defensive
        raise ArithmeticError("internal error: non-finite timing")
    return GibbsResult(samples, divergences, total, sampling)
