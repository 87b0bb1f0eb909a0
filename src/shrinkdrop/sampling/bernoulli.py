"""Bernoulli noise for the layers: ``value * Bernoulli(keep)`` by one ``bernoulli_`` kernel
(torch's own dropout draw: accelerators, and CPU draws of fewer than ``TORCH_KERNEL_MAX``
elements from the global generator), by geometric gaps (small drop rates, CPU), or by two 31-bit
uniforms per 64-bit random word (other rates, CPU). ``docs/layers.md`` and
``benchmarks/bench_sampling.py`` give the timings behind the choices."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import is_cpu

__all__ = ["draw", "draw_traceable", "bernoulli_gaps"]

# 2^31: Bernoulli draws compare 31 uniform random bits with round(keep * 2^31)
_TWO31 = 2147483648
#: Bernoulli noise with a drop probability at most this is drawn by geometric gaps (CPU only):
#: with the vectorised gaps, gaps / bits 0.37 at 0.1, 0.68 at 0.12, 0.81 at 0.2 idle, even near
#: 0.15 under load (benchmarks/bench_sampling.py; docs/layers.md)
GAP_MAX_DROP = 0.12
#: CPU draws from torch's global generator of fewer elements than this are one ``bernoulli_``
#: kernel, torch's own dropout draw (:data:`shrinkdrop.functional.TORCH_DROPOUT_MAX`)
TORCH_KERNEL_MAX = 8192
#: extra gaps drawn beyond the expected count, in standard deviations (tests lower it to force
#: the refill loop)
GAP_MARGIN_SD = 6.0


def bernoulli_gaps(out: Tensor, drop: float, value: float,
                   generator: torch.Generator | None) -> Tensor:
    """Fill the contiguous ``out`` with iid ``value * Bernoulli(1 - drop)`` by drawing only the
    zeros: the gaps between consecutive zeros of an iid sequence are iid Geometric(drop) on
    {1, 2, ...}, so the positions of the zeros are their cumulative sums. About ``drop *
    numel`` random numbers instead of one per element. A gap is ``ceil(E / lambda)`` with
    ``E = -log(1 - u) ~ Exp(1)`` (``u`` float64 uniform on [0, 1)) and ``lambda = -log(1 -
    drop)``: ``P(gap = k) = (1 - drop)^(k - 1) drop``, the law ``Tensor.geometric_`` draws, in
    four vectorised kernels (0.45x the time of ``geometric_`` on the CPU, bench_sampling.py).
    ``u = 0`` (probability 2^-53) would give a gap of 0 and is clamped to 1."""
    flat = out.view(-1)
    n = flat.numel()
    flat.fill_(value)
    inv_lam = 1.0 / math.log1p(-drop)  # negative: -1 / lambda
    last = -1.0  # index of the previous zero
    while last < n - 1:
        rest = n - 1 - last
        mean = rest * drop
        m = max(16, int(mean + GAP_MARGIN_SD * math.sqrt(mean * (1.0 - drop)) + 16))
        pos = torch.empty(m, dtype=torch.float64, device=out.device)
        pos.uniform_(generator=generator).neg_().log1p_().mul_(inv_lam).ceil_().clamp_min_(1.0)
        pos.cumsum_(0).add_(last)
        end = float(pos[-1])
        cut = int(torch.searchsorted(pos, float(n))) if end >= n else m
        flat.index_fill_(0, pos[:cut].to(torch.int64), 0.0)
        last = end
    return out


def draw(shape: tuple[int, ...], keep: float, value: float, generator: torch.Generator | None,
         dtype: torch.dtype, device: torch.device | str | None,
         out: Tensor | None = None) -> Tensor:
    """``value * Bernoulli(keep)`` of ``shape`` as a fresh ``dtype`` tensor on ``device``, or
    written into the contiguous ``out`` of that shape."""
    n = math.prod(shape)
    if keep == 1.0 or keep == 0.0:
        v = value if keep else 0.0
        return torch.full(shape, v, dtype=dtype, device=device) if out is None else out.fill_(v)
    cpu = is_cpu(device)
    if cpu and generator is None and n < TORCH_KERNEL_MAX:
        # torch's dropout draw (at::native dropout on the CPU: bernoulli_(1 - p), div_(1 - p)):
        # one kernel beats the tricks below at small sizes, and unit_noise calls torch.dropout
        # itself there, so every small draw from the global generator is torch's stream
        if out is None:
            out = torch.empty(shape, dtype=dtype, device=device)
        q = 1.0 - (1.0 - keep)  # torch's 1 - p, bit for bit
        out.bernoulli_(q)
        return out if value == 1.0 else out.div_(q) if value == 1.0 / keep else out.mul_(value)
    if cpu and 0.0 < 1.0 - keep <= GAP_MAX_DROP and n > 0:
        if out is None:
            out = torch.empty(shape, dtype=dtype, device=device)
        return bernoulli_gaps(out, 1.0 - keep, value, generator)
    if not cpu:  # accelerators: one bernoulli_ kernel beats the bit tricks below
        if out is None:
            out = torch.empty(shape, dtype=dtype, device=device)
        out.bernoulli_(keep, generator=generator)
        return out.mul_(value) if value != 1.0 else out
    # One 64-bit draw gives two 31-bit uniforms (random_() on int64 fills [0, 2^63)): this is
    # 2-3x cheaper on CPU than bernoulli_ / rand() < keep. keep is resolved to 2^-31.
    bits = torch.empty((n + 1) // 2, dtype=torch.int64, device=device)
    bits.random_(generator=generator)
    u31 = bits.view(torch.int32)[:n].bitwise_and_(0x7FFFFFFF)
    mask = u31.lt_(round(keep * _TWO31)).view(shape)
    if out is None:
        out = mask.to(dtype)
    else:
        out.copy_(mask)
    return out.mul_(value) if value != 1.0 else out


def draw_traceable(shape: tuple[int, ...], keep: float, value: float, dtype: torch.dtype,
                   device: torch.device | str | None, out: Tensor | None = None) -> Tensor:
    """:func:`draw` for ``torch.compile``: one ``bernoulli_`` kernel, no data-dependent loop
    and no ``random_`` on integers, which the compiler cannot trace (the same law; torch's
    global generator, as compiled ``nn.Dropout``)."""
    # out of place: torch.export keeps the random op (an in-place bernoulli_ on a fresh empty
    # tensor came out of export as a constant)
    xi = torch.bernoulli(torch.full(shape, keep, dtype=dtype, device=device))
    xi = xi.mul_(value) if value != 1.0 else xi
    return xi if out is None else out.copy_(xi)
