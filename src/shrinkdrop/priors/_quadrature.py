"""Log-space quadrature over the scale of a Gaussian scale mixture (internal).

For ``w = xi * v``, ``v ~ N(0, sigma0^2)`` and ``x = |xi|`` with density ``p`` on
``[lower, upper]``, substitute ``x = e^t``:

* density:   ``p_w(w)   = int exp(-w^2 e^{-2t} / (2 sigma0^2)) p(e^t) dt / (sqrt(2 pi) sigma0)``
* tail:      ``P(w > a) = int Phi_c(a e^{-t} / sigma0) p(e^t) e^t dt`` (``a >= 0``)

Both integrands vanish double-exponentially below ``t = log(|w| / sigma0) - 3`` (the factor
there is ``e^{-201}``), which is the lower limit (or ``log lower``). The range is cut into
segments at that limit, at ``log(|w| / sigma0) + 3`` (so the cut-off edge always sits in its own
segment), at ``log(breakpoints)`` and at the upper limit; every segment is split into ``M`` equal
panels, each integrated by a ``2J + 1`` point tanh-sinh rule (which tolerates integrable
singularities at panel ends), summed in log-space with ``logsumexp``. Everything is torch, so
autograd flows to ``w``, ``sigma0`` and whatever the log density captures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_CUT = 3.0  # integrand factor at t_lo: exp(-e^{2 CUT} / 2) = e^{-201}
_T_FLOOR = -700.0  # x = e^-700 ~ 1e-304: smallest scale ever integrated
_TAIL = 40.0  # for upper = inf: integrate to max(log(|w|/sigma0), t_ref) + TAIL
_S_MAX = 3.0  # tanh-sinh half range: nodes come within ~4e-14 (relative) of a panel end
_J = 10  # nodes per panel: 2J + 1
_J_FIRST = 4  # nodes per panel in the first (peak-locating) pass
_PROBE_PROBS = (1e-13, 1e-2, 0.5, 0.99, 1.0 - 1e-13)

#: log density of ``|xi|``, evaluated elementwise
LogDensity = Callable[[torch.Tensor], torch.Tensor]


def _tanh_sinh(j: int, dtype: torch.dtype, device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    h = _S_MAX / j
    s = torch.arange(-j, j + 1, dtype=torch.float64) * h
    q = 0.5 * math.pi * torch.sinh(s)
    # 1 -/+ tanh(q), computed without cancellation
    one_minus = 2.0 / (1.0 + torch.exp(2.0 * q))  # 1 - tanh(q)
    one_plus = 2.0 / (1.0 + torch.exp(-2.0 * q))  # 1 + tanh(q)
    weight = h * 0.5 * math.pi * torch.cosh(s) / torch.cosh(q) ** 2
    return (
        one_plus.to(dtype=dtype, device=device),
        one_minus.to(dtype=dtype, device=device),
        torch.log(weight).to(dtype=dtype, device=device),
        (s < 0).to(device=device),
    )


def _nodes(edges: torch.Tensor, j: int = _J) -> tuple[torch.Tensor, torch.Tensor]:
    """One tanh-sinh panel per consecutive pair of sorted edges ``(E, *shape)``; returns nodes
    ``(N, *shape)`` in t and log weights ``(N, *shape)`` (``-inf`` for empty panels)."""
    pa, pb = edges[:-1], edges[1:]  # (P, *shape)
    half = 0.5 * (pb - pa)
    one_plus, one_minus, log_w, left = _tanh_sinh(j, edges.dtype, edges.device)
    shp = (1, -1) + (1,) * (edges.dim() - 1)
    one_plus, one_minus, log_w, left = (z.reshape(shp) for z in (one_plus, one_minus, log_w, left))
    pa_, pb_, half_ = pa.unsqueeze(1), pb.unsqueeze(1), half.unsqueeze(1)
    t = torch.where(left, pa_ + half_ * one_plus, pb_ - half_ * one_minus)  # (P, K, *shape)
    nonempty = half_ > 0
    log_half = torch.log(torch.where(nonempty, half_, torch.ones_like(half_)))
    lw = torch.where(nonempty, log_half + log_w, torch.full_like(half_, -math.inf))
    return t.flatten(0, 1), lw.flatten(0, 1)


@torch.no_grad()
def probe_quantiles(abs_log_density: LogDensity, lower: float | torch.Tensor,
                    upper: float | torch.Tensor, dtype: torch.dtype,
                    probs: Sequence[float] = _PROBE_PROBS) -> torch.Tensor:
    """Quantiles of ``log|xi|`` on a grid of step 1/8 in t (computed once per law; they only
    place panel edges, so they carry no gradient). Returns a tensor ``(len(probs), *batch)``."""
    lower = torch.as_tensor(lower, dtype=dtype)
    upper = torch.as_tensor(upper, dtype=dtype)
    lo = torch.clamp(torch.log(lower), min=_T_FLOOR).min().item()
    up = torch.log(upper)
    hi = up.max().item() if torch.isfinite(up).all() else 745.0
    g = (torch.arange(0, int((hi - lo) * 8), dtype=dtype) + 0.5) / 8 + lo
    g = g.clamp(max=hi).reshape((-1,) + (1,) * max(lower.dim(), upper.dim()))
    inside = (g >= torch.log(lower)) & (g <= up)
    f = torch.where(inside, abs_log_density(torch.exp(g)) + g, torch.full_like(g, -math.inf))
    f = torch.nan_to_num(f, nan=-math.inf, posinf=700.0)
    c = torch.logcumsumexp(f, dim=0)
    c = c - c[-1:]
    qs = []
    for p in probs:
        idx = (c < math.log(p)).sum(0).clamp(max=g.shape[0] - 1)
        qs.append(g.expand_as(c).gather(0, idx.unsqueeze(0)).squeeze(0))
    return torch.stack(qs)


def _limits(log_a: torch.Tensor, log_s0: torch.Tensor, log_lower: torch.Tensor,
            log_upper: torch.Tensor, log_breaks: Sequence[torch.Tensor], q: torch.Tensor,
            extra: Sequence[torch.Tensor] = ()) -> torch.Tensor:
    """Sorted panel edges ``(E, *shape)`` for points with ``log(|w|) = log_a`` (may be -inf)."""
    finite_upper = torch.isfinite(log_upper)
    loc = log_a - log_s0  # log(|w| / sigma0), -inf at w = 0
    t_hi = torch.where(finite_upper, log_upper, torch.maximum(loc, q[-1]) + _TAIL)
    t_lo = torch.minimum(torch.clamp(loc - _CUT, min=_T_FLOOR), t_hi - 1.0)
    t_lo = torch.maximum(t_lo, log_lower)

    def clamp(e: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(e, t_lo), t_hi)

    t_c = clamp(loc + _CUT)
    edges = [t_lo, t_c, clamp(0.5 * (t_c + q[0]))]
    edges += [clamp(loc + k) for k in (-1.5, -0.5, 0.5, 1.5)]  # the cut-off's knee
    edges += [clamp(e) for e in q]
    edges += [clamp(e) for e in log_breaks]
    edges += [clamp(e) for e in extra]
    top = torch.maximum(q[-1], t_c)
    edges += [clamp(top + (t_hi - top) * (k / 3)) for k in (1, 2)]
    edges.append(t_hi)
    edges = torch.stack(torch.broadcast_tensors(*edges))
    return torch.sort(edges, dim=0).values


def _log_integrand(kind: str, t: torch.Tensor, log_a: torch.Tensor, log_s0: torch.Tensor,
                   abs_log_density: LogDensity) -> torch.Tensor:
    lp = abs_log_density(torch.exp(t))
    # a node rounded onto an endpoint where the density is infinite: drop it (weight ~1e-14)
    lp = torch.where(lp == math.inf, torch.full_like(lp, -math.inf), lp)
    z_log = log_a - log_s0 - t  # log(|w| / (sigma0 x))
    if kind == "pdf":
        return lp - 0.5 * torch.exp(2.0 * z_log) - _LOG_SQRT_2PI - log_s0
    if kind == "sf":
        return lp + t + torch.special.log_ndtr(-torch.exp(z_log))
    raise ValueError(f"kind has to be 'pdf' or 'sf', but got {kind!r}")  # pragma: no cover


def log_mixture_integral(kind: str, a: torch.Tensor, sigma0: torch.Tensor,
                         abs_log_density: LogDensity, lower: torch.Tensor, upper: torch.Tensor,
                         breakpoints: Sequence[float | torch.Tensor], q: torch.Tensor
                         ) -> torch.Tensor:
    """``log p_w(a)`` (``kind="pdf"``) or ``log P(w > a)`` (``kind="sf"``) for ``a >= 0``.

    ``lower``, ``upper`` (may be inf), ``sigma0`` and each breakpoint are tensors broadcastable
    with ``a``; ``abs_log_density`` receives ``x`` of shape ``(N, *a.shape)`` (node axis first);
    ``q`` are the panel edges from :func:`probe_quantiles`.

    Two passes: a first (no-grad) pass locates the peak of the integrand in t and its width
    (two Newton steps on central differences), the second adds panel edges at the peak +- 0.5,
    1.5, 3 and 6 widths, so narrow peaks (far tails, narrow noise laws) are resolved.
    """
    dtype = a.dtype
    log_a = torch.log(a)
    log_s0 = torch.log(sigma0)
    log_lower = torch.log(lower).to(dtype)
    log_upper = torch.log(upper).to(dtype)
    log_breaks = [torch.log(torch.as_tensor(b, dtype=dtype)) for b in breakpoints]
    q = q.to(dtype)
    with torch.no_grad():
        args = (log_a.detach(), log_s0.detach(), log_lower, log_upper, log_breaks, q)
        edges = _limits(*args)
        t, lw = _nodes(edges, _J_FIRST)
        la, ls = log_a.detach(), log_s0.detach()
        f = _log_integrand(kind, t, la, ls, abs_log_density)
        f = torch.where(torch.isnan(f), torch.full_like(f, -math.inf), f)
        t0 = t.gather(0, torch.argmax(f, dim=0, keepdim=True))
        lo, hi = edges[0:1], edges[-1:]
        for _ in range(2):
            d = 1e-4
            tt = torch.cat([t0 - d, t0, t0 + d]).clamp(min=lo, max=hi)
            ff = _log_integrand(kind, tt, la, ls, abs_log_density)
            g1 = (ff[2] - ff[0]) / (2 * d)
            g2 = (ff[2] - 2 * ff[1] + ff[0]) / (d * d)
            ok = torch.isfinite(g1) & torch.isfinite(g2) & (g2 < 0)
            safe_g2 = torch.where(ok, g2, -torch.ones_like(g2))
            step = torch.where(ok, -g1 / safe_g2, torch.zeros_like(g1))
            t0 = (t0[0] + step.clamp(-1.0, 1.0)).unsqueeze(0).clamp(min=lo, max=hi)
        width = torch.where(ok, (-1.0 / torch.where(ok, g2, -torch.ones_like(g2))).sqrt(),
                            torch.full_like(g2, 3.0)).clamp(1e-4, 3.0)
        extra = [t0[0] + k * width for k in (-6.0, -3.0, -1.5, -0.5, 0.5, 1.5, 3.0, 6.0)]
    edges = _limits(log_a, log_s0, log_lower, log_upper, log_breaks, q, extra)
    t, lw = _nodes(edges)
    f = _log_integrand(kind, t, log_a, log_s0, abs_log_density)
    f = torch.where(torch.isnan(f) & (lw == -math.inf), torch.full_like(f, -math.inf), f)
    return torch.logsumexp(f + lw, dim=0)
