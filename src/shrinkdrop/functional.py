"""Structured multiplicative noise applied to tensors: the structures are the noise *shapes*.

Nalisnick & Smyth, sections 3 and 5. Multiplying a layer's inputs by noise ``xi`` is the expanded
parametrization (EP) of a Gaussian scale-mixture prior on the layer's weights; which weights share a
scale is decided by the shape of the noise tensor (``docs/layers.md``, DESIGN.md section 3):

=====================  ==========================  =================================================
function               noise tensor (per example)  structure (prior)
=====================  ==========================  =================================================
:func:`unit_noise`     ``x.shape`` (N, *, D)       ARD: one scale per input unit (``nn.Dropout``)
:func:`channel_noise`  (N, C, 1, ..., 1)           tied filters after a conv (``nn.Dropout2d``)
:func:`layer_noise`    (N, 1, ..., 1)              ADD outside a block (stochastic depth, "row")
:func:`weight_noise_linear`  (N, D_out, D_in)      DropConnect: one scale per weight
:func:`noisy_residual` (N, 1, ...) and x.shape     ADD / ARD / ARD+ADD inside a residual block
:func:`noisy_conv2d`   (N, F) / (N, C_in, F)       conv: tied filters / tied channels / both
:func:`noisy_lstm`     (N, D) / (N, 4, D)          LSTM inputs, tied / untied gates, once per seq.
=====================  ==========================  =================================================

Sampling is per example by default (every example draws its own noise: the noise is part of the
likelihood, as in dropout) or, with ``share_across_batch=True``, once per forward pass for the
whole batch (the paper's global scales, one draw shared by every example). Inside
:func:`sample_groups` a batch of ``S * B`` rows is ``S`` stacked copies of a batch and shared
noise is drawn once per copy.

Scaling: with ``normalize=True`` (default) the noise is ``xi / E[xi]`` so that evaluation
(``training=False``) is the identity. With ``normalize=False`` the raw noise is applied and
evaluation multiplies by ``E[xi]`` (the weight-scaling rule); a family with infinite mean
(half-Cauchy) then cannot be evaluated deterministically and raises :class:`EvalNoiseError`:
predict by Monte Carlo with the noise on (``shrinkdrop.mc_mode``).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from . import _rwt
from . import noise as _noise
from ._validation import check_choice
from .enums import Tie

__all__ = [
    "Tie",
    "EvalNoiseError",
    "sample_groups",
    "current_sample_groups",
    "check_noise",
    "draw_noise",
    "unit_noise",
    "channel_noise",
    "layer_noise",
    "weight_noise_linear",
    "noisy_residual",
    "noisy_conv2d",
    "noisy_lstm",
]


class EvalNoiseError(ValueError):
    """Raised when un-normalised noise with infinite mean is evaluated without MC mode."""


# ============================================================================= sample groups
_GROUPS: list[int] = [1]


@contextlib.contextmanager
def sample_groups(S: int) -> Iterator[int]:
    """Treat a leading batch of ``S * B`` rows as ``S`` stacked copies of a batch of ``B``.

    Rows ``s * B .. (s + 1) * B - 1`` are copy ``s`` (sample-major). Per-example noise needs
    nothing special; noise shared across the batch (``share_across_batch=True``) is drawn ``S``
    times, once per group of ``B`` rows, so that ``S`` independent noise draws of a model run in
    one batched forward pass (the S-sample MC / marginal-MAP objectives).

    Example:
        >>> import torch, shrinkdrop as sd
        >>> layer = sd.nn.UnitNoise(sd.noise.Bernoulli(0.5), share_across_batch=True)
        >>> x = torch.ones(4, 3).repeat(2, 1)          # S = 2 copies of a batch of B = 4
        >>> with sd.nn.sample_groups(2):
        ...     y = layer(x)                             # rows 0-3 share noise, rows 4-7 share
    """
    if isinstance(S, bool) or not isinstance(S, int) or S < 1:
        raise ValueError(f"sample_groups: S has to be a positive int, but got {S!r}")
    _GROUPS.append(S)
    try:
        yield S
    finally:
        _GROUPS.pop()


def current_sample_groups() -> int:
    """The ``S`` of the innermost :func:`sample_groups` block (1 outside any)."""
    return _GROUPS[-1]


# ============================================================================= noise plans
class _Plan(NamedTuple):
    """Python-float description of a scalar noise family (computed once, compile-friendly)."""

    kind: str  # "bernoulli" | "gaussian" | "uniform" | "rayleigh" | "inverse_nakagami" | "beta"
    #            | "half_cauchy" | "generic" (any other law: its own sample(), moved to the device)
    mean: float  # E[xi] (may be inf or 0)
    a: float = 0.0
    b: float = 0.0


_PLAN_ATTR = "_shrinkdrop_plan"


def check_noise(noise, name: str = "noise") -> _noise.NoiseDistribution:
    """Check that ``noise`` is a scalar-parameter noise family; return it."""
    if not isinstance(noise, _noise.NoiseDistribution):
        raise TypeError(
            f"{name} has to be a shrinkdrop.noise family such as Bernoulli(keep=0.9) or "
            f"Gaussian(mean=1, std=0.3), but got {type(noise).__name__} ({noise!r})"
        )
    if noise.batch_shape != torch.Size():
        raise ValueError(
            f"{name} has to have scalar parameters (the structure comes from the layer), but "
            f"{noise!r} has batch_shape {tuple(noise.batch_shape)}"
        )
    return noise


def _plan(noise: _noise.NoiseDistribution) -> _Plan:
    plan = noise.__dict__.get(_PLAN_ATTR)
    if plan is not None:
        return plan
    check_noise(noise)
    mean = float(noise.mean)
    if isinstance(noise, _noise.Bernoulli):
        plan = _Plan("bernoulli", mean, float(noise.keep))
    elif isinstance(noise, _noise.Gaussian):
        plan = _Plan("gaussian", mean, float(noise.mean_), float(noise.std))
    elif isinstance(noise, _noise.Uniform):
        plan = _Plan("uniform", mean, float(noise.low), float(noise.high))
    elif isinstance(noise, _noise.Rayleigh):
        plan = _Plan("rayleigh", mean, float(noise.scale))
    elif isinstance(noise, _noise.InverseNakagami):
        df, scale = float(noise.df), float(noise.scale)
        plan = _Plan("inverse_nakagami", mean, df / 2, df * scale**2 / 2)
    elif isinstance(noise, _noise.Beta):
        plan = _Plan("beta", mean, float(noise.a), float(noise.b))
    elif isinstance(noise, _noise.HalfCauchy):
        plan = _Plan("half_cauchy", mean, float(noise.scale))
    else:
        plan = _Plan("generic", mean)
    noise.__dict__[_PLAN_ATTR] = plan
    return plan


def _check_normalizable(noise, plan: _Plan, what: str) -> None:
    if not math.isfinite(plan.mean) or plan.mean == 0:
        noise.check_normalizable(what)  # raises NotNormalizableError with the family's message


def _gamma(alpha: float, n: int, dtype, device, generator) -> Tensor:
    """``n`` draws of Gamma(alpha, 1) for a Python-float ``alpha`` (Marsaglia & Tsang 2000).

    Vectorised over the draws with the constants as floats; the few rejected draws (under 5% for
    alpha >= 1) are redrawn recursively. About 2x faster on CPU than ``torch._standard_gamma``.
    """
    if generator is None and device is not None and torch.device(device).type == "cuda":
        # torch's native gamma kernel (torch.distributions.Gamma's): one launch and no host
        # sync, where the rejection loop below syncs on every call (bench_layers --device cuda)
        return torch._standard_gamma(torch.full((n,), alpha, dtype=dtype, device=device))
    if n < _NATIVE_GAMMA_MAX and (device is None or torch.device(device).type == "cpu"):
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
        out[bad] = _gamma(a, bad.numel(), dtype, device, generator)
    if boost:
        out.mul_(torch.rand(n, **kw).pow_(1.0 / alpha))
    return out


#: CPU draws of Beta / inverse-Nakagami noise needing fewer gamma variates than this (Beta two
#: per element, inverse Nakagami one) take torch's native gamma kernel; larger ones the table
#: sampler, whose fixed cost per call (its tensor operations, ~100 us more when a remainder slot
#: is hit) is more below it: benchmarks/bench_sampling.py part 5 puts the crossover near 3,000
#: Beta and 6,000-8,000 inverse-Nakagami elements (2026-12-04)
_NATIVE_GAMMA_MAX = 6144

# 2^31: Bernoulli draws compare 31 uniform random bits with round(keep * 2^31)
_TWO31 = 2147483648
#: Bernoulli noise with a drop probability at most this is drawn by geometric gaps (CPU only):
#: with the vectorised gaps, gaps / bits 0.37 at 0.1, 0.68 at 0.12, 0.81 at 0.2 idle, even near
#: 0.15 under load (benchmarks/bench_sampling.py; docs/layers.md)
_GAP_MAX_DROP = 0.12
#: extra gaps drawn beyond the expected count, in standard deviations (tests lower it to force
#: the refill loop)
_GAP_MARGIN_SD = 6.0


def _bernoulli_gaps(out: Tensor, drop: float, value: float, generator) -> Tensor:
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
        m = max(16, int(mean + _GAP_MARGIN_SD * math.sqrt(mean * (1.0 - drop)) + 16))
        pos = torch.empty(m, dtype=torch.float64, device=out.device)
        pos.uniform_(generator=generator).neg_().log1p_().mul_(inv_lam).ceil_().clamp_min_(1.0)
        pos.cumsum_(0).add_(last)
        end = float(pos[-1])
        cut = int(torch.searchsorted(pos, float(n))) if end >= n else m
        flat.index_fill_(0, pos[:cut].to(torch.int64), 0.0)
        last = end
    return out


def _raw_draw(noise, plan: _Plan, shape, normalize: bool, generator, dtype, device,
              out: Tensor | None = None) -> Tensor:
    """Draw noise of ``shape`` (normalised to mean 1 if asked) as a fresh ``dtype`` tensor, or
    into the contiguous tensor ``out`` of that shape (then ``dtype``/``device`` are out's)."""
    if out is not None:
        dtype, device = out.dtype, out.device
    n = math.prod(shape)
    kw = dict(device=device, generator=generator)
    if plan.kind == "bernoulli":
        keep = plan.a
        value = 1.0 / keep if normalize else 1.0
        if keep == 1.0:
            return torch.full(shape, value, dtype=dtype, device=device) if out is None \
                else out.fill_(value)
        cpu = device is None or torch.device(device).type == "cpu"
        if cpu and 0.0 < 1.0 - keep <= _GAP_MAX_DROP and n > 0:
            if out is None:
                out = torch.empty(shape, dtype=dtype, device=device)
            return _bernoulli_gaps(out, 1.0 - keep, value, generator)
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
    if plan.kind == "gaussian":
        m, s = plan.a, plan.b
        if normalize:
            m, s = 1.0, s / m
        xi = torch.randn(shape, dtype=dtype, **kw) if out is None else \
            out.normal_(generator=generator)
        return xi.mul_(s).add_(m)
    if plan.kind == "uniform":
        lo, hi = plan.a, plan.b
        if normalize:
            lo, hi = lo / plan.mean, hi / plan.mean
        u = torch.rand(shape, dtype=dtype, **kw) if out is None else \
            out.uniform_(generator=generator)
        return u.mul_(hi - lo).add_(lo)
    if plan.kind == "rayleigh":
        s2 = plan.a**2 / (plan.mean**2 if normalize else 1.0)
        u = torch.rand(shape, dtype=dtype, **kw) if out is None else \
            out.uniform_(generator=generator)
        # inverse CDF with 1 - u in (0, 1]: sqrt(-2 s^2 log(1 - u)), never log(0)
        return u.neg_().log1p_().mul_(-2.0 * s2).sqrt_()
    if plan.kind in ("inverse_nakagami", "beta") and (device is None
                                                      or torch.device(device).type == "cpu") \
            and n * (2 if plan.kind == "beta" else 1) >= _NATIVE_GAMMA_MAX:
        # CPU: the exact rectangle-wedge-tail table sampler (shrinkdrop._rwt; docs/layers.md),
        # about one 31-bit random word and two table look-ups per element
        if plan.kind == "beta":
            tab, scale = _rwt.table("beta", plan.a, plan.b), 1.0
        else:  # xi = sqrt(beta) G^(-1/2), G ~ Gamma(alpha, 1)
            tab, scale = _rwt.table("inv_sqrt_gamma", plan.a), math.sqrt(plan.b)
        if tab is not None:
            if normalize:
                scale /= plan.mean
            xi = _rwt.sample(tab, n, dtype, scale, generator).view(shape)
            return xi if out is None else out.copy_(xi)
    if plan.kind == "inverse_nakagami":
        # xi = sqrt(beta / G), G ~ Gamma(alpha, 1); guard the (probability ~0) G = 0
        beta = plan.b / (plan.mean**2 if normalize else 1.0)
        g = _gamma(plan.a, n, dtype, device, generator).clamp_min_(torch.finfo(dtype).tiny)
        xi = g.reciprocal_().mul_(beta).sqrt_().view(shape)
    elif plan.kind == "beta":
        ga = _gamma(plan.a, n, dtype, device, generator)
        gb = _gamma(plan.b, n, dtype, device, generator)
        xi = ga.div_(gb.add_(ga)).view(shape)
        xi = xi.mul_(1.0 / plan.mean) if normalize else xi
    elif plan.kind == "half_cauchy":
        # inverse CDF, as HalfCauchy.sample: scale * tan(pi u / 2), drawn on the target device
        u = torch.rand(shape, dtype=dtype, **kw) if out is None else \
            out.uniform_(generator=generator)
        xi = u.mul_(0.5 * math.pi).tan_().mul_(plan.a)
        xi = xi.mul_(1.0 / plan.mean) if normalize else xi
    else:
        xi = noise.sample(shape, generator).to(dtype=dtype, device=device)
        xi = xi.mul_(1.0 / plan.mean) if normalize else xi
    return xi if out is None else out.copy_(xi)


def draw_noise(
    noise: _noise.NoiseDistribution,
    shape: Sequence[int],
    *,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw a noise tensor of per-example ``shape`` ``(N, ...)``.

    With ``share_across_batch=True`` one draw of ``shape[1:]`` is shared by all ``N`` rows (the
    result has a leading 1, broadcasting against the batch), or, inside :func:`sample_groups`
    ``(S)``, one draw per group of ``N / S`` rows (the result then has ``N`` rows).

    Args:
        noise: a family from :mod:`shrinkdrop.noise` with scalar parameters.
        shape: the per-example noise shape, leading dimension the batch size ``N``.
        share_across_batch: one draw per forward pass (per sample group) instead of per example.
        normalize: divide by ``E[xi]`` so the noise has mean 1 (default True).
        generator: a :class:`torch.Generator` for the draws (default: torch's global one).
        dtype, device: of the result (default float32 / CPU).
    """
    plan = _plan(noise)
    if normalize:
        _check_normalizable(noise, plan, "draw_noise")
    dtype = dtype or torch.get_default_dtype()
    shape = tuple(int(s) for s in shape)
    if not share_across_batch:
        return _raw_draw(noise, plan, shape, normalize, generator, dtype, device)
    S = _GROUPS[-1]
    N = shape[0]
    if S == 1:
        return _raw_draw(noise, plan, (1,) + shape[1:], normalize, generator, dtype, device)
    if N % S:
        raise ValueError(
            f"sample_groups({S}): the batch size has to be a multiple of {S}, but got {N}"
        )
    xi = _raw_draw(noise, plan, (S,) + shape[1:], normalize, generator, dtype, device)
    return xi.repeat_interleave(N // S, dim=0)


def _draw_into(noise: _noise.NoiseDistribution, out: Tensor, *, normalize: bool = True,
               generator: torch.Generator | None = None) -> Tensor:
    """:func:`draw_noise` (per example, not shared) written into the contiguous tensor ``out``
    (its shape, dtype and device): lets a caller fill slices of one buffer without a copy."""
    plan = _plan(noise)
    if normalize:
        _check_normalizable(noise, plan, "draw_noise")
    if not out.is_contiguous():
        raise ValueError("out has to be contiguous")
    return _raw_draw(noise, plan, tuple(out.shape), normalize, generator, out.dtype, out.device,
                     out=out)


def _eval_factor(noise, plan: _Plan, normalize: bool, what: str) -> float:
    """The deterministic factor E[xi] applied in eval (1 when normalised)."""
    if normalize:
        _check_normalizable(noise, plan, what)
        return 1.0
    if not math.isfinite(plan.mean):
        raise EvalNoiseError(
            f"{what}: {noise!r} has infinite mean, so eval() with normalize=False cannot apply the "
            "weight-scaling rule x * E[xi] (it would be inf); predict by Monte Carlo with the "
            "noise on: `with shrinkdrop.mc_mode(model): ...` and average several forward passes"
        )
    return plan.mean


def _check_rank(x: Tensor, what: str, min_dim: int, expected: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{what}: input has to be a tensor, but got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(
            f"{what}: Expected input of shape {expected} (at least {min_dim}D), but received a "
            f"{x.dim()}D input of shape {tuple(x.shape)}"
        )


def _torch_dropout_path(x: Tensor, noise, plan: _Plan, normalize: bool, generator,
                        share_across_batch: bool, what: str) -> bool:
    """Whether per-example, mean-normalised Bernoulli noise on a CUDA tensor, drawn from torch's
    global generator, goes through torch's own dropout kernels (the same law: every element
    0 or ``1 / keep``): on CUDA they are fused and faster than drawing ``xi`` and multiplying
    (benchmarks/bench_layers.py --device cuda); on the CPU our draws are the faster ones, and
    torch's dropout takes no generator."""
    if not (x.is_cuda and plan.kind == "bernoulli" and normalize and generator is None
            and not share_across_batch):
        return False
    _check_normalizable(noise, plan, what)
    return True


def _scale(x: Tensor, factor: float) -> Tensor:
    return x if factor == 1.0 else x * factor


# ============================================================================= unit / channel
def unit_noise(
    x: Tensor,
    noise: _noise.NoiseDistribution,
    training: bool = True,
    *,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """ARD noise: every input unit of every example gets its own scale (section 3, Eq. 8).

    With ``Bernoulli(keep)`` this is ``F.dropout(x, p=1 - keep)``: the same law and scaling.

    Args:
        x: input ``(N, *, D)``; every leading row is an example.
        noise: a :mod:`shrinkdrop.noise` family.
        training: apply noise (else the identity, or ``x * E[xi]`` when ``normalize=False``).
        share_across_batch: one draw of shape ``(1, ..., 1, D)`` per forward pass (global ARD
            scales) instead of one per element.
        normalize: noise divided by ``E[xi]`` (default True).
        generator: optional :class:`torch.Generator`.

    Shape:
        x and output ``(N, *, D)``; noise ``x.shape``, or ``(1, ..., 1, D)`` when shared.
    """
    _check_rank(x, "unit_noise", 1, "(N, *, D)")
    plan = _plan(noise)
    if not training:
        return _scale(x, _eval_factor(noise, plan, normalize, "unit_noise"))
    if plan.kind == "bernoulli" and plan.a == 1.0:
        return x
    if _torch_dropout_path(x, noise, plan, normalize, generator, share_across_batch,
                           "unit_noise"):
        return torch.nn.functional.dropout(x, 1.0 - plan.a, True)
    if share_across_batch:
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],) if x.dim() > 1 else x.shape
    else:
        shape = x.shape
    xi = draw_noise(noise, shape, share_across_batch=share_across_batch and x.dim() > 1,
                    normalize=normalize, generator=generator, dtype=x.dtype, device=x.device)
    return x * xi


def channel_noise(
    x: Tensor,
    noise: _noise.NoiseDistribution,
    training: bool = True,
    *,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One scale per (example, channel): the tied-filters prior after a conv (section 5.3).

    With ``Bernoulli(keep)`` this is ``nn.Dropout1d/2d/3d(p=1 - keep)``: every channel map of every
    example is either dropped whole or kept and scaled by ``1 / keep``.

    Args:
        x: input ``(N, C, *)`` with at least one spatial dimension.
        noise, training, normalize, generator: as :func:`unit_noise`.
        share_across_batch: one draw ``(1, C, 1, ...)`` per forward pass.

    Shape:
        x and output ``(N, C, *)``; noise ``(N, C, 1, ..., 1)`` (``(1, C, 1, ...)`` when shared).
    """
    _check_rank(x, "channel_noise", 3, "(N, C, *) with at least one spatial dimension")
    plan = _plan(noise)
    if not training:
        return _scale(x, _eval_factor(noise, plan, normalize, "channel_noise"))
    if _torch_dropout_path(x, noise, plan, normalize, generator, share_across_batch,
                           "channel_noise"):
        return torch.feature_dropout(x, 1.0 - plan.a, True)  # nn.Dropout1d/2d/3d's kernel
    shape = tuple(x.shape[:2]) + (1,) * (x.dim() - 2)
    xi = draw_noise(noise, shape, share_across_batch=share_across_batch, normalize=normalize,
                    generator=generator, dtype=x.dtype, device=x.device)
    return x * xi


def layer_noise(
    x: Tensor,
    noise: _noise.NoiseDistribution,
    training: bool = True,
    *,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One scale per example for the whole tensor: ADD outside a residual block (section 5.1).

    With ``Bernoulli(keep)`` this is torchvision's ``stochastic_depth(x, 1 - keep, "row")``
    (``"batch"`` with ``share_across_batch=True``), applied to a residual branch's output.

    Shape:
        x and output ``(N, *)``; noise ``(N, 1, ..., 1)`` (``(1, ..., 1)`` when shared).
    """
    _check_rank(x, "layer_noise", 1, "(N, *)")
    plan = _plan(noise)
    if not training:
        return _scale(x, _eval_factor(noise, plan, normalize, "layer_noise"))
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    xi = draw_noise(noise, shape, share_across_batch=share_across_batch, normalize=normalize,
                    generator=generator, dtype=x.dtype, device=x.device)
    return x * xi


# ============================================================================= DropConnect
def weight_noise_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    noise: _noise.NoiseDistribution,
    training: bool = True,
    *,
    share_across_batch: bool = False,
    local_reparameterization: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DropConnect: one scale per weight, ``y_n = x_n (W * xi_n)^T + b`` (section 3).

    Modes, and which are exact:

    * per example (default): every example draws its own ``(D_out, D_in)`` noise, exact; costs
      ``N * D_out * D_in`` memory and a batched matmul.
    * ``share_across_batch=True``: one ``(D_out, D_in)`` draw per forward pass (per sample group),
      exact for the global-scale model; costs one elementwise product with ``W``.
    * ``local_reparameterization=True`` (Gaussian noise only, per example): samples the
      pre-activation ``y_n ~ N(m x_n W^T + b, s^2 (x_n^2) (W^2)^T)`` directly. Exact in
      distribution (the per-example outputs have exactly the law of the per-example mode), at the
      cost of two matmuls; the gradient estimator differs (lower variance).

    The bias is not multiplied by noise.

    Shape:
        x ``(N, *, D_in)``; weight ``(D_out, D_in)``; output ``(N, *, D_out)``; noise
        ``(N, D_out, D_in)`` or ``(1, D_out, D_in)`` when shared.
    """
    _check_rank(x, "weight_noise_linear", 2, "(N, *, D_in)")
    plan = _plan(noise)
    if not training:
        w = _scale(weight, _eval_factor(noise, plan, normalize, "weight_noise_linear"))
        return torch.nn.functional.linear(x, w, bias)
    if local_reparameterization:
        if plan.kind != "gaussian":
            raise ValueError(
                "weight_noise_linear: local_reparameterization needs Gaussian noise (the sum of "
                f"Gaussian-scaled terms is Gaussian), but got {noise!r}"
            )
        if share_across_batch:
            raise ValueError(
                "weight_noise_linear: local_reparameterization samples independent noise per "
                "example and cannot be combined with share_across_batch=True"
            )
        m, s = plan.a, plan.b
        if normalize:
            _check_normalizable(noise, plan, "weight_noise_linear")
            m, s = 1.0, s / m
        mu = torch.nn.functional.linear(x, weight if m == 1.0 else weight * m, bias)
        var = torch.nn.functional.linear(x * x, weight * weight)
        eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
        tiny = torch.finfo(var.dtype).tiny
        return mu + var.clamp_min(tiny).sqrt() * (eps * s)
    N = x.shape[0]
    shape = (N,) + tuple(weight.shape)
    xi = draw_noise(noise, shape, share_across_batch=share_across_batch, normalize=normalize,
                    generator=generator, dtype=weight.dtype, device=weight.device)
    if xi.shape[0] == 1:
        return torch.nn.functional.linear(x, weight * xi[0], bias)
    w = weight * xi  # (N, D_out, D_in): one weight matrix per example
    if x.dim() == 2:
        y = torch.bmm(w, x.unsqueeze(-1)).squeeze(-1)
    else:
        y = torch.einsum("n...i,noi->n...o", x, w)
    return y if bias is None else y + bias


# ============================================================================= residual
def noisy_residual(
    h: Tensor,
    block: Callable[[Tensor], Tensor],
    training: bool = True,
    *,
    layer_noise: _noise.NoiseDistribution | None = None,
    unit_noise: _noise.NoiseDistribution | None = None,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Residual block with ADD / ARD / ARD+ADD noise: ``h + block(tau * (h * xi))`` (section 5.1).

    ``tau`` (``layer_noise``) is one scale per example (automatic depth determination); ``xi``
    (``unit_noise``) one per input unit (ARD); both give the joint prior of Eq. 14.

    With Bernoulli ``layer_noise`` and ``block = ReLU(Linear(bias=False))`` (or any positively
    homogeneous block) this is stochastic depth, mode "row": each example gets ``h`` or
    ``h + block(h) / keep``. A block with a bias is not homogeneous (``block(0) = relu(b) != 0``),
    so the equivalence then fails; the paper folds biases into the weights.

    Shape:
        h and output ``(N, *)``; tau ``(N, 1, ..., 1)`` (``(1, ...)`` when shared); xi ``h.shape``
        (``(1, ..., D)`` when shared).
    """
    _check_rank(h, "noisy_residual", 1, "(N, *)")
    if not training:
        factor = 1.0
        for nz in (layer_noise, unit_noise):
            if nz is not None:
                factor *= _eval_factor(nz, _plan(nz), normalize, "noisy_residual")
        return h + block(_scale(h, factor))
    z = h
    if unit_noise is not None:
        z = _unit_noise(z, unit_noise, True, share_across_batch=share_across_batch,
                        normalize=normalize, generator=generator)
    if layer_noise is not None:
        shape = (h.shape[0],) + (1,) * (h.dim() - 1)
        tau = draw_noise(layer_noise, shape, share_across_batch=share_across_batch,
                         normalize=normalize, generator=generator, dtype=h.dtype, device=h.device)
        z = z * tau
    return h + block(z)


_unit_noise = unit_noise


# ============================================================================= conv
def noisy_conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    noise: _noise.NoiseDistribution,
    training: bool = True,
    *,
    tie: Tie | str = Tie.FILTER,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """2-d convolution with the structured scale priors of section 5.3, sampled per example.

    * ``tie="filter"``: ``tau_f`` per (example, filter) multiplies output map ``f`` (Eq. 23);
      Bernoulli gives ``nn.Dropout2d`` on the conv's output (before the bias).
    * ``tie="channel"``: ``xi_{c,f}`` per (example, input channel, filter):
      ``a_{c,f} = (X_c * W_{c,f}) xi_{c,f}`` (Eq. 22), one per-example weight tensor (a grouped
      convolution over the batch).
    * ``tie="both"``: ``tau_f xi_{c,f}`` (Eq. 25), the same family for both factors.

    The bias is added after the noise (it is not a weight of the prior).

    Shape:
        x ``(N, C_in, H, W)``; weight ``(F, C_in / groups, kH, kW)``; output ``(N, F, H', W')``;
        noise ``(N, F)`` (filter) and ``(N, C_in / groups, F)`` (channel), leading 1 when shared.
    """
    tie = check_choice("tie", tie, Tie)
    if not isinstance(x, Tensor) or x.dim() != 4:
        got = f"a {x.dim()}D input" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"noisy_conv2d: Expected 4D input (N, C_in, H, W), but received {got}")
    plan = _plan(noise)
    conv = torch.nn.functional.conv2d
    F_out, C_g = weight.shape[:2]
    N = x.shape[0]
    if not training:
        f = _eval_factor(noise, plan, normalize, "noisy_conv2d")
        if tie is Tie.BOTH:
            f = f * f
        return conv(x, _scale(weight, f), bias, stride, padding, dilation, groups)
    kw = dict(share_across_batch=share_across_batch, normalize=normalize, generator=generator,
              dtype=x.dtype, device=x.device)
    if tie is Tie.FILTER:
        y = conv(x, weight, None, stride, padding, dilation, groups)
        tau = draw_noise(noise, (N, F_out), **kw)
        y = y * tau[:, :, None, None]
    else:
        xi = draw_noise(noise, (N, C_g, F_out), **kw)  # (N or 1, C/g, F)
        xi_w = xi.transpose(1, 2)[..., None, None]  # (N or 1, F, C/g, 1, 1)
        if xi.shape[0] == 1:
            y = conv(x, weight * xi_w[0], None, stride, padding, dilation, groups)
        else:
            # per-example weights: fold the batch into the groups of one convolution
            w = (weight * xi_w).reshape(N * F_out, C_g, *weight.shape[2:])
            y = conv(x.reshape(1, N * x.shape[1], *x.shape[2:]), w, None, stride, padding,
                     dilation, groups * N)
            y = y.reshape(N, F_out, *y.shape[2:])
        if tie is Tie.BOTH:
            tau = draw_noise(noise, (N, F_out), **kw)
            y = y * tau[:, :, None, None]
    return y if bias is None else y + bias[:, None, None]


# ============================================================================= LSTM
def _quiet_cudnn_rnn(x: Tensor):
    """On CUDA, cuDNN warns on every call that one layer's weights are not one contiguous
    chunk (nn.LSTM keeps all layers' weights in one flat buffer); here each layer is its own
    call, so cuDNN copies that layer's (small) weights per call: a cost measured in
    benchmarks/bench_layers.py --device cuda, not a defect. The warning is silenced there."""
    return _ignore_rnn_chunk_warning() if x.is_cuda else contextlib.nullcontext()


@contextlib.contextmanager
def _ignore_rnn_chunk_warning():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single")
        yield


def _lstm_recurrence(gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor):
    """Run the LSTM recurrence over precomputed input projections ``gx`` (T, N, 4H)."""
    w_hh_t = w_hh.t()
    outs = []
    for t in range(gx.shape[0]):
        gates = torch.addmm(gx[t], h, w_hh_t)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs), h, c


def _lstm_recurrence_fused(gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor):
    """:func:`_lstm_recurrence` through torch's LSTM kernel (cuDNN on CUDA): the projections
    ``gx`` go in as the input with an identity input weight and no bias, so the kernel's input
    GEMM reproduces ``gx`` (a ``4H x 4H`` product per row: cheap on a GPU, too dear on a CPU,
    where the Python loop is kept) and its fused recurrence replaces the loop over time."""
    eye = torch.eye(gx.shape[-1], dtype=gx.dtype, device=gx.device)
    with _quiet_cudnn_rnn(gx):
        out, h, c = torch._VF.lstm(gx, (h.unsqueeze(0), c.unsqueeze(0)), [eye, w_hh], False, 1,
                                   0.0, True, False, False)
    return out, h.squeeze(0), c.squeeze(0)


def noisy_lstm(
    x: Tensor,
    hx: tuple[Tensor, Tensor] | None,
    weights: Sequence[Sequence[Tensor]],
    noise: _noise.NoiseDistribution,
    training: bool = True,
    *,
    hidden_size: int,
    tie_gates: bool = True,
    batch_first: bool = False,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """LSTM with multiplicative noise on each layer's inputs, drawn once per sequence (section 5.2).

    ``tie_gates=True`` (Eq. 17-18): one ``xi_r`` per input dimension shared by the four gates, so
    the noisy input ``x_t * xi`` feeds a standard LSTM. ``tie_gates=False`` (Eq. 19-20): gate ``g``
    sees ``x_t * xi_g``; the four input projections of all time steps are computed in one batched
    matmul, then the recurrence runs. Recurrent weights get no noise. With ``num_layers > 1``
    every layer's input (the previous layer's output sequence) gets its own noise.

    Args:
        weights: per layer ``(weight_ih, weight_hh, bias_ih, bias_hh)`` (biases may be absent),
            in ``nn.LSTM``'s layout and gate order (i, f, g, o).

    Shape:
        x ``(T, N, D)`` (``(N, T, D)`` if batch_first, or unbatched ``(T, D)``); output
        ``(T, N, H)``; h, c ``(num_layers, N, H)``; noise ``(N, D)`` tied, ``(N, 4, D)`` untied,
        constant over t.
    """
    if not isinstance(x, Tensor) or x.dim() not in (2, 3):
        got = f"a {x.dim()}D input" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(
            f"noisy_lstm: Expected input (T, N, D) or unbatched (T, D), but received {got}"
        )
    unbatched = x.dim() == 2
    if unbatched:
        x = x.unsqueeze(1)
    elif batch_first:
        x = x.transpose(0, 1)
    T, N = x.shape[:2]
    L = len(weights)
    if hx is None:
        z = x.new_zeros(L, N, hidden_size)
        h0, c0 = z, z
    else:
        h0, c0 = hx
        if unbatched:
            h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
    plan = _plan(noise)
    kw = dict(share_across_batch=share_across_batch, normalize=normalize, generator=generator,
              dtype=x.dtype, device=x.device)
    hs, cs = [], []
    inp = x
    for layer, params in enumerate(weights):
        w_ih, w_hh = params[0], params[1]
        has_bias = len(params) == 4
        D = inp.shape[-1]
        if not training:
            factor = _eval_factor(noise, plan, normalize, "noisy_lstm")
            with _quiet_cudnn_rnn(x):
                out, h, c = torch._VF.lstm(_scale(inp, factor), (h0[layer:layer + 1],
                                           c0[layer:layer + 1]), list(params), has_bias, 1,
                                           0.0, False, False, False)
        elif tie_gates:
            xi = draw_noise(noise, (N, D), **kw)
            with _quiet_cudnn_rnn(x):
                out, h, c = torch._VF.lstm(inp * xi, (h0[layer:layer + 1],
                                           c0[layer:layer + 1]), list(params), has_bias, 1,
                                           0.0, True, False, False)
        else:
            H = w_hh.shape[1]
            xi = draw_noise(noise, (N, 4, D), **kw)  # (N or 1, 4, D)
            # (4, T, N, D) scaled copies of the inputs, one per gate
            xs = inp.unsqueeze(0) * xi.permute(1, 0, 2).unsqueeze(1)
            gx = torch.bmm(xs.reshape(4, T * N, D), w_ih.view(4, H, D).transpose(1, 2))
            gx = gx.view(4, T, N, H).permute(1, 2, 0, 3).reshape(T, N, 4 * H)
            if has_bias:
                gx = gx + (params[2] + params[3])
            recurrence = _lstm_recurrence_fused if gx.is_cuda else _lstm_recurrence
            out, h, c = recurrence(gx, h0[layer], c0[layer], w_hh)
            h, c = h.unsqueeze(0), c.unsqueeze(0)
        hs.append(h)
        cs.append(c)
        inp = out
    h_n, c_n = torch.cat(hs), torch.cat(cs)
    if unbatched:
        return inp.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
    if batch_first:
        inp = inp.transpose(0, 1)
    return inp, (h_n, c_n)
