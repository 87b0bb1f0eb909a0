"""Log-normal noise and the (truncated) log-uniform law: Structured Bayesian Pruning's pair.

SBP (Neklyudov et al. 2017) puts log-normal multiplicative noise on each neuron / filter with a
log-uniform prior ``p(xi) ∝ 1 / xi`` and fits it by VI. That prior is improper (its integral
over ``(0, inf)`` diverges at both ends), so it is not a law this library can sample, take
moments of or hand to NUTS: :class:`LogUniform` is the *truncated* law on ``[low, high]``
(``log xi`` uniform), as SBP itself truncates (``log xi`` in ``[-20, 0]`` in its code) to make
the KL finite; asking for ``low = 0`` or ``high = inf`` raises, naming the improper prior.
:func:`kl_lognormal_log_uniform` is SBP's KL of a log-normal truncated to the same interval
against it (closed form).

Parametrisations: ``LogNormal(loc, scale)``: ``log xi ~ N(loc, scale^2)``; ``LogUniform(low,
high)``: ``log xi ~ U(log low, log high)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions import LogNormal as _TorchLogNormal

from .._validation import check_positive
from .base import NoiseDistribution

__all__ = ["LogNormal", "LogUniform", "kl_lognormal_log_uniform"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class _PowerMoments:
    """The moments every family reports, from the law's ``_moment(k) = E[xi^k]`` (closed form
    for both log-scale laws here)."""

    @property
    def second_moment(self) -> Tensor:
        return self._moment(2.0)

    @property
    def inverse_square_mean(self) -> Tensor:
        return self._moment(-2.0)

    @property
    def inverse_square_variance(self) -> Tensor:
        return self._moment(-4.0) - self._moment(-2.0) ** 2


class LogNormal(_PowerMoments, NoiseDistribution):
    """Log-normal noise: ``xi = exp(loc + scale * z)``, ``z ~ N(0, 1)``.

    Mean ``exp(loc + scale^2 / 2)``; ``xi^2`` is log-normal (``2 loc, 2 scale``); every
    moment, ``E[xi^-2] = exp(-2 loc + 2 scale^2)`` included, is finite. Normalised to mean 1
    (``loc = -scale^2 / 2``) its variance is ``exp(scale^2) - 1``: Gaussian dropout's in log
    space. The marginal prior of ``w = xi v`` has no closed form (quadrature).

    Args:
        loc: the mean of ``log xi``.
        scale: the standard deviation of ``log xi``, ``> 0``.
    """

    name = "log_normal"
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, loc: float | Tensor = 0.0, scale: float | Tensor = 1.0,
                 validate_args: bool | None = None) -> None:
        loc_t = torch.as_tensor(loc, dtype=torch.get_default_dtype()) if not isinstance(
            loc, Tensor) else loc
        if not torch.isfinite(loc_t).all():
            raise ValueError(f"loc has to be finite, but got {loc!r}")
        self._set_params(validate_args, loc=loc_t, scale=check_positive("scale", scale))

    def _draw(self, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        z = torch.randn(shape, dtype=self.scale.dtype, device=self.scale.device,
                        generator=generator)
        return torch.exp(self.loc + self.scale * z)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        lv = torch.log(value)
        return (-((lv - self.loc) ** 2) / (2 * self.scale**2) - torch.log(self.scale)
                - _LOG_SQRT_2PI - lv)

    def cdf(self, value: Tensor) -> Tensor:
        return 0.5 * torch.erfc(-(torch.log(value) - self.loc) / (self.scale * math.sqrt(2)))

    def _moment(self, k: float) -> Tensor:
        """``E[xi^k] = exp(k loc + k^2 scale^2 / 2)``."""
        return torch.exp(k * self.loc + 0.5 * k * k * self.scale**2)

    @property
    def mean(self) -> Tensor:
        return self._moment(1.0)

    @property
    def variance(self) -> Tensor:
        return torch.expm1(self.scale**2) * self._moment(2.0) / torch.exp(self.scale**2)

    @property
    def log_abs_mean(self) -> Tensor:
        return self.loc.clone()

    def variance_prior(self) -> Distribution:
        """``xi^2 ~ LogNormal(2 loc, 2 scale)``."""
        return _TorchLogNormal(2 * self.loc, 2 * self.scale)

    def marginal_prior(self, sigma0: float | Tensor = 1.0) -> Distribution:
        """The log-normal scale mixture of normals, by quadrature over ``xi``."""
        return self._gsm(sigma0, 0.0, math.inf, (float(self.mean),))

    def _abs_log_density(self, x: Tensor) -> Tensor:
        return self.log_prob(x)

    @classmethod
    def matched_to_dropout(cls, rate: float) -> dict[str, float] | None:
        """``exp(scale^2) - 1 = p / (1 - p)``: ``scale = sqrt(-log(1 - p))`` (closed form),
        ``loc = -scale^2 / 2`` (mean 1)."""
        if rate <= 0:
            return None
        if rate >= 1:
            raise ValueError(f"rate has to be in [0, 1), but got {rate}")
        s2 = -math.log1p(-rate)
        return {"loc": -0.5 * s2, "scale": math.sqrt(s2)}

    def _fast_draw(self, shape: tuple[int, ...], *, normalize: bool,
                   generator: torch.Generator | None, dtype: torch.dtype,
                   device: torch.device | str | None, out: Tensor | None = None) -> Tensor:
        """``exp(loc + scale z)`` in place (``loc - log E[xi]`` when normalising)."""
        loc, scale = float(self.loc), float(self.scale)
        if normalize:
            loc -= math.log(self.scalar_mean)
        z = (torch.randn(shape, dtype=dtype, device=device, generator=generator)
             if out is None else out.normal_(generator=generator))
        return z.mul_(scale).add_(loc).exp_()

    def pyro_law(self) -> Distribution:
        """``pyro.distributions.LogNormal(loc, scale)``."""
        import pyro.distributions as dist

        return dist.LogNormal(self.loc, self.scale)


def _bound(name: str, value: float | Tensor) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.get_default_dtype()) if not isinstance(
        value, Tensor) else value
    if torch.isnan(t).any() or not (torch.isfinite(t) & (t > 0)).all():
        raise ValueError(
            f"{name} has to be finite and > 0, but got {value!r}: the log-uniform prior "
            "p(xi) ∝ 1/xi on (0, inf) is improper (no law to sample or take moments of); "
            "SBP truncates it, so give finite bounds 0 < low < high")
    return check_positive(name, t)


class LogUniform(_PowerMoments, NoiseDistribution):
    """The log-uniform law truncated to ``[low, high]``: ``log xi ~ U(log low, log high)``,
    density ``1 / (xi log(high / low))``.

    SBP's prior (see the module docstring: the untruncated one is improper). Moments:
    ``E[xi^k] = (high^k - low^k) / (k log(high / low))``; ``xi^2`` is log-uniform on
    ``[low^2, high^2]``. Marginal prior of ``w = xi v``: quadrature.

    Args:
        low, high: ``0 < low < high < inf``.
    """

    name = "log_uniform"
    arg_constraints = {"low": constraints.positive, "high": constraints.positive}
    has_rsample = True

    def __init__(self, low: float | Tensor = 1e-4, high: float | Tensor = 1.0,
                 validate_args: bool | None = None) -> None:
        lo, hi = _bound("low", low), _bound("high", high)
        if not (lo < hi).all():
            raise ValueError(f"low has to be < high, but got low={low!r}, high={high!r}")
        self._set_params(validate_args, low=lo, high=hi)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.interval(self.low, self.high)

    @property
    def _log_ratio(self) -> Tensor:
        return torch.log(self.high) - torch.log(self.low)

    def _draw(self, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        u = torch.rand(shape, dtype=self.low.dtype, device=self.low.device, generator=generator)
        return torch.exp(torch.log(self.low) + u * self._log_ratio)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        inside = (value >= self.low) & (value <= self.high)
        lp = -torch.log(value) - torch.log(self._log_ratio)
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))

    def cdf(self, value: Tensor) -> Tensor:
        c = (torch.log(value) - torch.log(self.low)) / self._log_ratio
        return c.clamp(0.0, 1.0)

    def _moment(self, k: float) -> Tensor:
        return (self.high**k - self.low**k) / (k * self._log_ratio)

    @property
    def mean(self) -> Tensor:
        return self._moment(1.0)

    @property
    def variance(self) -> Tensor:
        return self._moment(2.0) - self._moment(1.0) ** 2

    @property
    def log_abs_mean(self) -> Tensor:
        return 0.5 * (torch.log(self.low) + torch.log(self.high))

    def variance_prior(self) -> Distribution:
        """``xi^2 ~ LogUniform(low^2, high^2)``."""
        return LogUniform(self.low**2, self.high**2)

    def marginal_prior(self, sigma0: float | Tensor = 1.0) -> Distribution:
        """The truncated log-uniform scale mixture of normals, by quadrature."""
        return self._gsm(sigma0, float(self.low), float(self.high), ())

    def _abs_log_density(self, x: Tensor) -> Tensor:
        inside = (x >= self.low) & (x <= self.high)
        lp = -torch.log(x.clamp_min(float(self.low))) - torch.log(self._log_ratio)
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))

    @classmethod
    def matched_to_dropout(cls, rate: float) -> dict[str, float] | None:
        """Never: the log-uniform prior is SBP's, not a dropout rate's."""
        raise ValueError("log_uniform is SBP's prior; it has no path matched to dropout")

    def _fast_draw(self, shape: tuple[int, ...], *, normalize: bool,
                   generator: torch.Generator | None, dtype: torch.dtype,
                   device: torch.device | str | None, out: Tensor | None = None) -> Tensor:
        """``low * (high / low)^u`` in place."""
        lo, r = math.log(float(self.low)), float(self._log_ratio)
        if normalize:
            lo -= math.log(self.scalar_mean)
        u = (torch.rand(shape, dtype=dtype, device=device, generator=generator)
             if out is None else out.uniform_(generator=generator))
        return u.mul_(r).add_(lo).exp_()

    def pyro_law(self) -> Distribution:
        """``exp`` of ``pyro.distributions.Uniform(log low, log high)``."""
        import pyro.distributions as dist

        return dist.TransformedDistribution(
            dist.Uniform(torch.log(self.low), torch.log(self.high)),
            [dist.transforms.ExpTransform()])


def kl_lognormal_log_uniform(loc: Tensor, scale: Tensor, low: float, high: float) -> Tensor:
    """SBP's ``KL(q || p)``, elementwise: ``q`` the log-normal ``(loc, scale)`` truncated to
    ``[low, high]``, ``p`` :class:`LogUniform` ``(low, high)``.

    In ``log xi`` both are laws on ``[a, b] = [log low, log high]``: ``KL = log(b - a) - H``
    with ``H`` the entropy of the normal ``(loc, scale)`` truncated to ``[a, b]``:
    ``H = log(sqrt(2 pi e) scale Z) + (alpha phi(alpha) - beta phi(beta)) / (2 Z)``,
    ``alpha = (a - loc) / scale``, ``beta = (b - loc) / scale``, ``Z = Phi(beta) - Phi(alpha)``.
    ``log Z`` and ``phi / Z`` are computed in logs (``log_ndtr`` of the tail the interval lies
    in), so a ``q`` far outside ``[a, b]`` (``Z`` below 1e-300) still gives a finite KL and
    gradient: the difference of two CDFs near 1 had cancelled to 0 (a NaN in an SBP fit of
    LeNet-5 on Fashion-MNIST). Computed in float64 (returned in ``loc``'s dtype); where the two
    CDFs agree to 1e-8 (``scale`` many times ``b - a``, where SBP drives unused units: ``q``
    tends to the uniform prior) ``Z = (beta - alpha) phi((alpha + beta) / 2)``, exact to second
    order, replaces their difference.
    """
    dtype = torch.promote_types(loc.dtype, scale.dtype)
    loc, scale = loc.double(), scale.double()
    a, b = math.log(low), math.log(high)
    alpha, beta = (a - loc) / scale, (b - loc) / scale
    # Z = Phi(beta) - Phi(alpha) = Phi(-alpha) - Phi(-beta): take the form whose CDFs are
    # small (the interval's side of 0), log Z = log Phi(u) + log(1 - Phi(l) / Phi(u))
    right = (alpha + beta) > 0
    u = torch.where(right, -alpha, beta)
    lo = torch.where(right, -beta, alpha)
    lu, ll = torch.special.log_ndtr(u), torch.special.log_ndtr(lo)
    log_phi = -0.5 * math.log(2 * math.pi)
    d = (ll - lu).clamp_max(-1e-300)
    mid = 0.5 * (alpha + beta)
    narrow = d > -1e-8
    log_z = torch.where(narrow, torch.log(beta - alpha) + log_phi - 0.5 * mid * mid,
                        lu + torch.log(-torch.expm1(torch.where(narrow, -1.0, d))))
    ra = torch.exp(log_phi - 0.5 * alpha * alpha - log_z)  # phi(alpha) / Z
    rb = torch.exp(log_phi - 0.5 * beta * beta - log_z)
    entropy = (0.5 * math.log(2 * math.pi * math.e) + torch.log(scale) + log_z
               + 0.5 * (alpha * ra - beta * rb))
    return (math.log(b - a) - entropy).to(dtype)
