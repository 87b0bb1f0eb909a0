"""The gamma samplers: one home for every Gamma(alpha, 1) draw of the library.

Two entry points, because they serve two callers with different inputs and both streams are
pinned (``tests/golden``):

* :func:`standard_gamma`: a tensor of shapes (any batch of laws), torch's kernel or, with a
  generator, a Marsaglia-Tsang rejection loop driven by that generator: the laws' own
  ``sample()`` (inverse Nakagami, Beta).
* :func:`gamma`: ``n`` draws for one Python-float shape, the layers' fast draw (constants as
  floats, in-place kernels); the fallback of the table sampler (:mod:`shrinkdrop.sampling.rwt`)
  where no table can be built, and the sampler of small draws.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._validation import describe
from . import is_cpu

__all__ = ["standard_gamma", "gamma", "NATIVE_GAMMA_MAX"]

#: CPU draws of Beta / inverse-Nakagami noise needing fewer gamma variates than this (Beta two
#: per element, inverse Nakagami one) take torch's native gamma kernel; larger ones the table
#: sampler, whose fixed cost per call (its tensor operations, ~100 us more when a remainder slot
#: is hit) is more below it: benchmarks/bench_sampling.py part 5 puts the crossover near 3,000
#: Beta and 6,000-8,000 inverse-Nakagami elements (2026-12-04)
NATIVE_GAMMA_MAX = 6144
#: dtypes drawn in float32 and rounded (torch's CPU gamma kernel does not take them)
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _check_concentration(concentration: object) -> None:
    """A floating tensor of positive shapes (one reduction; NaN fails ``> 0`` too)."""
    if not isinstance(concentration, Tensor):
        raise TypeError("concentration has to be a tensor, but got "
                        f"{type(concentration).__name__}")
    if not concentration.is_floating_point():
        raise TypeError("concentration has to be a floating-point tensor, but got dtype "
                        f"{concentration.dtype}")
    if not bool((concentration > 0).all()):
        raise ValueError("concentration has to be positive (and not NaN), but got "
                         f"{describe(concentration)}")


def standard_gamma(concentration: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Gamma(concentration, rate 1) samples of ``concentration``'s shape.

    With ``generator=None`` this is torch's own sampler. With a generator it is the
    Marsaglia-Tsang (2000) rejection sampler driven by that generator, with the ``U^(1/a)`` boost
    for ``a < 1`` (``torch._standard_gamma`` takes a generator too, but draws another stream: the
    laws' seeded ``sample()`` is pinned by tests/golden).
    """
    _check_concentration(concentration)
    if generator is None:
        return torch._standard_gamma(concentration)
    a = concentration
    boost = a < 1
    a1 = torch.where(boost, a + 1, a)
    d = a1 - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty_like(a)
    todo = torch.ones_like(a, dtype=torch.bool)
    kw = dict(dtype=a.dtype, device=a.device, generator=generator)
    while True:
        idx = todo.nonzero(as_tuple=True)
        n = idx[0].numel()
        if n == 0:
            break
        dd, cc = d[idx], c[idx]
        z = torch.randn(n, **kw)
        u = torch.rand(n, **kw)
        v = (1 + cc * z) ** 3
        ok = (v > 0) & (
            torch.log(u) < 0.5 * z * z + dd - dd * v + dd * torch.log(v.clamp_min(1e-300))
        )
        sel = tuple(i[ok] for i in idx)
        out[sel] = (dd * v)[ok]
        todo[sel] = False
    if boost.any():
        u = torch.rand(a.shape, **kw)
        out = torch.where(boost, out * u.pow(1.0 / a), out)
    return out


def gamma(alpha: float, n: int, dtype: torch.dtype, device: torch.device | str | None,
          generator: torch.Generator | None) -> Tensor:
    """``n`` draws of Gamma(alpha, 1) for a Python-float ``alpha`` (Marsaglia & Tsang 2000).

    Vectorised over the draws with the constants as floats; the few rejected draws (under 5% for
    alpha >= 1) are redrawn recursively. Faster on CPU than ``torch._standard_gamma`` from
    :data:`NATIVE_GAMMA_MAX` draws on (``benchmarks/bench_sampling.py --only 5`` prints the
    ratio: 2.2-3.6x at 2^14 and 2^20 float32 draws, alpha 0.5-5, one thread, two runs on a
    loaded machine, 2026-12-06).
    """
    if dtype in _LOW_PRECISION:
        # torch's CPU gamma kernel has no float16 / bfloat16 form ("gamma_cpu" not implemented
        # for 'Half'), and float32 draws rounded to the narrow type are the law to its precision
        return gamma(alpha, n, torch.float32, device, generator).to(dtype)
    if torch.compiler.is_compiling():
        # torch.compile: torch's kernel traces (the rejection loop below has a data-dependent
        # number of redraws); torch's global generator, as every compiled draw
        return torch._standard_gamma(torch.full((n,), alpha, dtype=dtype, device=device))
    if generator is None and device is not None and torch.device(device).type == "cuda":
        # torch's native gamma kernel (torch.distributions.Gamma's): one launch and no host
        # sync, where the rejection loop below syncs on every call (bench_layers --device cuda)
        return torch._standard_gamma(torch.full((n,), alpha, dtype=dtype, device=device))
    if n < NATIVE_GAMMA_MAX and is_cpu(device):
        # few draws: one call of torch's kernel beats the many small tensor operations of
        # the rejection loop below
        return torch._standard_gamma(torch.full((n,), alpha, dtype=dtype), generator=generator)
    boost = alpha < 1
    a = alpha + 1 if boost else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    kw = dict(dtype=dtype, device=device, generator=generator)
    z = torch.randn(n, **kw)
    v = (z * c).add_(1.0).pow_(3)
    u = torch.rand(n, **kw).log_()
    # accept iff v > 0 and log u < z^2 / 2 + d - d v + d log v
    rhs = v.clamp_min(torch.finfo(dtype).tiny).log_().sub_(v).add_(1.0).mul_(d)
    ok = (u < rhs.addcmul_(z, z, value=0.5)) & (v > 0)
    out = v.mul_(d)
    bad = (~ok).nonzero().squeeze(1)
    if bad.numel():
        out[bad] = gamma(a, bad.numel(), dtype, device, generator)
    if boost:
        out.mul_(torch.rand(n, **kw).pow_(1.0 / alpha))
    return out
