"""Closed-form marginal priors of ``w = xi * v``, ``v ~ N(0, sigma0^2)`` (Table 1).

=====================  =========================================================================
noise ``xi``           prior of ``w``
=====================  =========================================================================
Bernoulli(keep)        :class:`SpikeAndSlab` ``keep * N(0, sigma0^2) + (1 - keep) * delta_0``
N(0, s^2)              :class:`VarianceGamma` ``K0(|w| / b) / (pi b)``, ``b = s * sigma0``
Rayleigh(s)            ``torch.distributions.Laplace(0, s * sigma0)``
inverse Nakagami       ``torch.distributions.StudentT(nu, 0, s * sigma0)``
half-Cauchy(s)         :class:`Horseshoe` ``exp(u) E1(u) / (tau sqrt(2 pi^3))``, ``u = w^2/2tau^2``
=====================  =========================================================================
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution, constraints
from torch.distributions.utils import broadcast_all

from .._validation import check_positive, check_probability
from ._quadrature import LogDensity as _LogDensity
from ._quadrature import log_mixture_integral, probe_quantiles
from .special import log_bessel_k0, log_exp1_scaled

__all__ = ["Horseshoe", "SpikeAndSlab", "VarianceGamma"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_INF = math.inf
_EMPTY = torch.Size()
_Shape = torch.Size | tuple[int, ...]  # a batch or sample shape
_Value = torch.Tensor | float  # a point to score


def _half_normal_log_density(x: torch.Tensor) -> torch.Tensor:
    return math.log(2.0) - _LOG_SQRT_2PI - 0.5 * x * x


def _half_cauchy_log_density(x: torch.Tensor) -> torch.Tensor:
    return math.log(2.0 / math.pi) - torch.log1p(x * x)


_PROBES: dict[tuple[str, torch.dtype], torch.Tensor] = {}


def _probe(name: str, fn: _LogDensity, dtype: torch.dtype) -> torch.Tensor:
    key = (name, dtype)
    if key not in _PROBES:
        _PROBES[key] = probe_quantiles(fn, 0.0, math.inf, dtype)
    return _PROBES[key]


def _broadcast(value: _Value, *params: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``broadcast_all(value, *params)`` with the parameters moved to a tensor ``value``'s
    device first: as torch.distributions' scalar parameters, a prior built on the CPU scores
    weights where they are (CUDA weights on the GPU) and returns the result there."""
    if isinstance(value, torch.Tensor):
        params = [p.to(value.device) for p in params]
    return broadcast_all(value, *params)


def _cdf_by_quadrature(value: _Value, scale: torch.Tensor, name: str, fn: _LogDensity
                       ) -> torch.Tensor:
    """``P(w <= value)`` for ``w = scale * xi * z``, ``|xi|`` with log density ``fn``.

    The quadrature runs on the device of ``scale``; the result is moved to ``value``'s."""
    where = value.device if isinstance(value, torch.Tensor) else scale.device
    if isinstance(value, torch.Tensor):
        value = value.to(scale.device)
    return _cdf_on_param_device(value, scale, name, fn).to(where)


def _cdf_on_param_device(value: _Value, scale: torch.Tensor, name: str, fn: _LogDensity
                         ) -> torch.Tensor:
    value, scale = broadcast_all(value, scale)
    a = value.abs()
    zero, inf = torch.zeros_like(a), torch.full_like(a, _INF)
    q = _probe(name, fn, a.dtype)
    q = q.reshape(q.shape + (1,) * a.dim())
    sf = log_mixture_integral("sf", a, scale, fn, zero, inf, (), q).exp()  # P(w > |value|)
    out = torch.where(value >= 0, 1.0 - sf, sf)
    return torch.where(value == 0, torch.full_like(out, 0.5), out)  # symmetric


class _SymmetricPrior(Distribution):
    support = constraints.real
    has_rsample = False

    @property
    def mean(self) -> torch.Tensor:
        return torch.zeros(self.batch_shape, dtype=self._param.dtype, device=self._param.device)

    @property
    def mode(self) -> torch.Tensor:
        return self.mean

    def _new(self, batch_shape: _Shape, _instance: _SymmetricPrior | None,
             names: tuple[str, ...]) -> _SymmetricPrior:
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        for n in names:
            setattr(new, n, getattr(self, n).expand(batch_shape))
        super(_SymmetricPrior, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new


# ================================================================================ SpikeAndSlab
class SpikeAndSlab(_SymmetricPrior):
    r"""Spike-and-slab prior of dropout: ``keep * N(0, sigma0^2) + (1 - keep) * delta_0``.

    The law of ``w = xi * v`` for Bernoulli noise ``xi`` (keep probability ``keep``) and
    ``v ~ N(0, sigma0^2)``.

    **Point-mass convention for** :meth:`log_prob`: the two components are evaluated pointwise,
    the Gaussian by its Lebesgue density and the spike as a unit point mass at 0 (density 1 at
    ``w = 0`` w.r.t. counting measure, 0 elsewhere):

    .. math::
        \log p(w) = \log \mathrm{keep} + \log \mathcal N(w; 0, \sigma_0^2), \quad w \ne 0;
        \qquad
        \log p(0) = \log\big((1 - \mathrm{keep}) + \mathrm{keep}\,\mathcal N(0; 0, \sigma_0^2)\big)

    So ``keep = 1`` is exactly ``Normal(0, sigma0)`` everywhere and ``log_prob`` is continuous
    and differentiable in ``keep`` and ``sigma0``. (The strict Radon-Nikodym derivative w.r.t.
    Lebesgue + delta_0 would be ``1 - keep`` at 0; the two differ by ``keep N(0; 0, sigma0^2)``
    at the single point 0 only.) :meth:`cdf` jumps by ``1 - keep`` at 0.

    Args:
        keep: keep probability in (0, 1].
        sigma0: standard deviation of the slab, positive.

    Example:
        >>> d = SpikeAndSlab(0.5, 1.0)
        >>> d.log_prob(torch.tensor([0.0, 1.0]))
        tensor([-0.3574, -2.1121])
    """

    arg_constraints = {"keep": constraints.unit_interval, "sigma0": constraints.positive}

    def __init__(self, keep: float | torch.Tensor, sigma0: float | torch.Tensor = 1.0,
                 validate_args: bool | None = None) -> None:
        keep = check_probability("keep", keep)
        sigma0 = check_positive("sigma0", sigma0)
        self.keep, self.sigma0 = broadcast_all(keep, sigma0)
        super().__init__(self.keep.shape, validate_args=validate_args)

    @property
    def _param(self) -> torch.Tensor:
        return self.sigma0

    def expand(self, batch_shape: _Shape, _instance: SpikeAndSlab | None = None
               ) -> SpikeAndSlab:
        return self._new(batch_shape, _instance, ("keep", "sigma0"))

    @property
    def variance(self) -> torch.Tensor:
        return self.keep * self.sigma0**2

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value, keep, sigma0 = _broadcast(value, self.keep, self.sigma0)
        normal = -0.5 * (value / sigma0) ** 2 - torch.log(sigma0) - _LOG_SQRT_2PI
        slab = torch.log(keep) + normal
        at_zero = torch.logaddexp(torch.log1p(-keep), slab)
        return torch.where(value == 0, at_zero, slab)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value, keep, sigma0 = _broadcast(value, self.keep, self.sigma0)
        step = (value >= 0).to(value.dtype)
        return keep * torch.special.ndtr(value / sigma0) + (1.0 - keep) * step

    def sample(self, sample_shape: _Shape = _EMPTY, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        opts = dict(dtype=self.keep.dtype, device=self.keep.device, generator=generator)
        with torch.no_grad():
            mask = (torch.rand(shape, **opts) < self.keep.expand(shape)).to(self.keep.dtype)
            return mask * self.sigma0.expand(shape) * torch.randn(shape, **opts)


class _OneScalePrior(_SymmetricPrior):
    """A prior ``w = b * |xi| * z`` (``z ~ N(0, 1)``, the law of ``|xi|`` fixed) with one positive
    scale ``b`` stored as the attribute ``_scale_attr``; its CDF by quadrature over ``|xi|``."""

    _scale_attr: str
    _abs_law: tuple[str, _LogDensity]  # (cache name, log density of |xi|)

    def _set_scale(self, value: float | torch.Tensor, validate_args: bool | None) -> None:
        (scale,) = broadcast_all(check_positive(self._scale_attr, value))
        setattr(self, self._scale_attr, scale)
        super().__init__(scale.shape, validate_args=validate_args)

    @property
    def _param(self) -> torch.Tensor:
        return getattr(self, self._scale_attr)

    def expand(self, batch_shape: _Shape, _instance: _OneScalePrior | None = None
               ) -> _OneScalePrior:
        return self._new(batch_shape, _instance, (self._scale_attr,))

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return _cdf_by_quadrature(value, self._param, *self._abs_law)


# =============================================================================== VarianceGamma
class VarianceGamma(_OneScalePrior):
    r"""Variance-gamma prior: the law of ``w = xi * v`` for mean-0 Gaussian noise.

    With ``xi ~ N(0, s^2)`` and ``v ~ N(0, sigma0^2)``, ``w`` is a product of two Gaussians
    (a symmetric variance-gamma / generalized hyperbolic law with shape 1/2):

    .. math:: p(w) = \frac{K_0(|w| / b)}{\pi b}, \qquad b = s\,\sigma_0, \qquad
              \mathrm{Var}[w] = b^2

    ``log_prob(0) = +inf`` (the true value: ``K0`` has a logarithmic pole). :meth:`cdf` is
    ``E[Phi(w / (b |z|))]`` by tanh-sinh quadrature (absolute error <= 1e-6).

    Args:
        scale: ``b = s * sigma0``, positive.

    Example:
        >>> VarianceGamma(1.0).log_prob(torch.tensor([1.0]))
        tensor([-2.0098])
    """

    arg_constraints = {"scale": constraints.positive}
    _scale_attr = "scale"
    _abs_law = ("half_normal", _half_normal_log_density)

    def __init__(self, scale: float | torch.Tensor, validate_args: bool | None = None) -> None:
        self._set_scale(scale, validate_args)

    @property
    def variance(self) -> torch.Tensor:
        return self.scale**2

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value, scale = _broadcast(value, self.scale)
        return log_bessel_k0(value.abs() / scale) - math.log(math.pi) - torch.log(scale)

    def sample(self, sample_shape: _Shape = _EMPTY, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        opts = dict(dtype=self.scale.dtype, device=self.scale.device, generator=generator)
        with torch.no_grad():
            z1, z2 = torch.randn(shape, **opts), torch.randn(shape, **opts)
            return self.scale.expand(shape) * z1 * z2


# =================================================================================== Horseshoe
class Horseshoe(_OneScalePrior):
    r"""Horseshoe prior: the law of ``w = xi * v`` for half-Cauchy noise.

    With ``xi ~ C+(0, s)`` and ``v ~ N(0, sigma0^2)``, ``tau = s * sigma0``:

    .. math:: p(w) = \frac{e^{u} E_1(u)}{\tau \sqrt{2 \pi^3}}, \qquad u = \frac{w^2}{2 \tau^2}

    (Carvalho, Polson & Scott 2010). ``log_prob(0) = +inf`` (logarithmic pole), tails
    ``~ 1 / w^2``; the mean does not exist (``E|w| = inf``), so :attr:`mean` raises
    :class:`ValueError` (not NaN as ``torch.distributions.Cauchy``'s: this package never
    returns NaN); :attr:`variance` is ``inf``. :meth:`cdf` by quadrature.

    Args:
        tau: global scale ``s * sigma0``, positive.

    Example:
        >>> Horseshoe(1.0).log_prob(torch.tensor([1.0]))
        tensor([-2.1439])
    """

    arg_constraints = {"tau": constraints.positive}
    _scale_attr = "tau"
    _abs_law = ("half_cauchy", _half_cauchy_log_density)

    def __init__(self, tau: float | torch.Tensor, validate_args: bool | None = None) -> None:
        self._set_scale(tau, validate_args)

    @property
    def mean(self) -> torch.Tensor:
        # E|w| = tau E[xi] E|v| = inf: the mean does not exist. Returning NaN (as torch's Cauchy
        # does) would break the project's "never NaN" rule, and 0 would be a made-up value.
        raise ValueError(
            "the horseshoe has no mean (E|w| is infinite); its median and mode are 0 and its "
            "variance is inf"
        )

    @property
    def mode(self) -> torch.Tensor:
        return torch.zeros(self.batch_shape, dtype=self.tau.dtype, device=self.tau.device)

    @property
    def variance(self) -> torch.Tensor:
        return torch.full(self.batch_shape, _INF, dtype=self.tau.dtype, device=self.tau.device)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value, tau = _broadcast(value, self.tau)
        u = 0.5 * (value / tau) ** 2
        return log_exp1_scaled(u) - torch.log(tau) - 0.5 * math.log(2.0 * math.pi**3)

    def sample(self, sample_shape: _Shape = _EMPTY, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        opts = dict(dtype=self.tau.dtype, device=self.tau.device, generator=generator)
        with torch.no_grad():
            lam = torch.tan(0.5 * math.pi * torch.rand(shape, **opts))  # |Cauchy(0, 1)|
            return self.tau.expand(shape) * lam * torch.randn(shape, **opts)
