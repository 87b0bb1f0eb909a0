"""Noise laws: the distributions of the multiplicative noise xi (= the random scales of the prior).

Each family is a :class:`torch.distributions.Distribution` over the noise ``xi`` that multiplies a
layer's inputs (expanded parametrization, EP). Because ``w = xi * v`` with ``v ~ N(0, sigma0^2)``
is a Gaussian scale mixture, every family also *is* a shrinkage prior on the weights (hierarchical
parametrization, HP); :meth:`NoiseDistribution.marginal_prior` returns that prior's law and
:meth:`NoiseDistribution.variance_prior` the law of ``xi^2`` (Table 1 of Nalisnick & Smyth).

Exact parametrizations (see ``docs/math.md``):

=====================  ================  =====================  ==================================
family                 E[xi^2]           law of xi^2            marginal prior of w (sigma0)
=====================  ================  =====================  ==================================
Bernoulli(keep)        keep              Bernoulli(keep)        spike-and-slab
Gaussian(mean, std)    mean^2 + std^2    std^2 ncx2_1(m^2/s^2)  variance-gamma (mean 0) / quadrature
Rayleigh(scale)        2 scale^2         Exponential(1/(2s^2))  Laplace(0, sigma0 * scale)
InverseNakagami(nu,s)  nu s^2 / (nu-2)   InvGamma(nu/2, nu s^2/2)  Student-t(nu, 0, sigma0 * s)
HalfCauchy(scale)      inf               scale^2 * F(1, 1)      horseshoe(tau = sigma0 * scale)
Beta(a, b)             moments           (unnamed)              quadrature
Uniform(low, high)     moments           (unnamed)              quadrature
=====================  ================  =====================  ==================================

Moments that are infinite are returned as ``inf`` (never NaN, never a Monte Carlo guess).
``sample`` accepts a ``torch.Generator``; for the gamma-based families (inverse Nakagami, Beta),
whose torch samplers take no generator, a Marsaglia-Tsang sampler driven by the generator is used.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import (
    AffineTransform,
    Distribution,
    ExpTransform,
    SigmoidTransform,
    TransformedDistribution,
    constraints,
)
from torch.distributions import Bernoulli as _TorchBernoulli
from torch.distributions import Beta as _TorchBeta
from torch.distributions import Exponential as _TorchExponential
from torch.distributions import Gamma as _TorchGamma
from torch.distributions import InverseGamma as _TorchInverseGamma
from torch.distributions.utils import broadcast_all

from . import priors as _priors
from ._validation import as_param, check_positive, check_probability

__all__ = [
    "NoiseDistribution",
    "NotNormalizableError",
    "Bernoulli",
    "Gaussian",
    "Rayleigh",
    "InverseNakagami",
    "HalfCauchy",
    "Beta",
    "Uniform",
    "ScaledNoncentralChi2",
    "FAMILIES",
    "standard_gamma",
]

_EULER = 0.5772156649015329
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class NotNormalizableError(ValueError):
    """Raised when noise cannot be normalised to mean 1 (E[xi] infinite or zero)."""


def standard_gamma(concentration: torch.Tensor, generator: torch.Generator | None = None):
    """Gamma(concentration, rate 1) samples of ``concentration``'s shape.

    With ``generator=None`` this is torch's own sampler. With a generator it is the
    Marsaglia-Tsang (2000) rejection sampler driven by that generator (torch's gamma sampler takes
    no generator), with the ``U^(1/a)`` boost for ``a < 1``.
    """
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


def _full(like: torch.Tensor, value: float) -> torch.Tensor:
    return torch.full_like(like, value)


class NoiseDistribution(Distribution):
    """Base class of the noise families.

    Beyond the :class:`~torch.distributions.Distribution` interface every family gives:

    * ``mean``, ``variance``: of xi; ``second_moment``: E[xi^2];
    * ``inverse_square_mean``: E[xi^-2]; ``inverse_square_variance``: Var[xi^-2];
    * ``log_abs_mean``: E[log|xi|] (used by the exact hierarchical Jensen gap);
    * ``variance_prior()``: the law of xi^2 where it has a name, else ``None``;
    * ``marginal_prior(sigma0)``: the law of ``w = xi * v``, ``v ~ N(0, sigma0^2)``;
    * ``normalized_sample(shape, generator)``: xi / E[xi], the noise a layer applies so that the
      layer is the identity in expectation (raises :class:`NotNormalizableError` if E[xi] is
      infinite or zero).
    """

    #: whether E[xi] is finite and non-zero for every parameter value of the family
    name: str = "noise"
    has_rsample = False

    def sample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None):
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            return self._draw(shape, generator)

    def rsample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None):
        if not self.has_rsample:
            raise NotImplementedError(f"{type(self).__name__} has no reparametrized sampler")
        return self._draw(self._extended_shape(torch.Size(sample_shape)), generator)

    def _draw(self, shape, generator):  # pragma: no cover - abstract
        raise NotImplementedError

    def expand(self, batch_shape, _instance=None):
        """Expand every parameter (the names in ``arg_constraints``) to ``batch_shape``."""
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        for k in self.arg_constraints:
            setattr(new, k, getattr(self, k).expand(batch_shape))
        Distribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    # ----- moments -------------------------------------------------------------------------
    @property
    def second_moment(self) -> torch.Tensor:
        return self.variance + self.mean**2

    @property
    def inverse_square_mean(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def inverse_square_variance(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def log_abs_mean(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # ----- laws -----------------------------------------------------------------------------
    def variance_prior(self) -> Distribution | None:
        return None

    def marginal_prior(self, sigma0=1.0) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def parameters(self) -> dict[str, float | torch.Tensor]:
        """The family's parameters by name (scalars as floats)."""
        out = {}
        for k in self.arg_constraints:
            v = getattr(self, k)
            out[k] = v.item() if v.numel() == 1 else v
        return out

    def __repr__(self) -> str:
        args = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.parameters.items()
        )
        return f"{type(self).__name__}({args})"

    # ----- normalisation --------------------------------------------------------------------
    @property
    def can_normalize(self) -> bool:
        m = self.mean
        return bool(torch.isfinite(m).all() and (m != 0).all())

    def check_normalizable(self, what: str = "this layer") -> torch.Tensor:
        m = self.mean
        if not torch.isfinite(m).all():
            raise NotNormalizableError(
                f"{self!r} has infinite mean E[xi], so {what} cannot normalise the noise to mean 1 "
                "and eval() cannot be the identity; pass normalize=False and predict by MC "
                "averaging with noise on (shrinkdrop.mc_mode)"
            )
        if (m == 0).any():
            raise NotNormalizableError(
                f"{self!r} has E[xi] = 0, so {what} cannot normalise the noise to mean 1; "
                "pass normalize=False and predict by MC averaging (shrinkdrop.mc_mode)"
            )
        return m

    def normalized_sample(self, sample_shape=torch.Size(), generator=None):
        m = self.check_normalizable()
        return self.sample(sample_shape, generator) / m

    def _sigma0(self, sigma0) -> torch.Tensor:
        return check_positive("sigma0", sigma0).to(self._dtype)

    @property
    def _dtype(self):
        return next(iter(self._params())).dtype

    def _params(self):
        return (getattr(self, k) for k in self.arg_constraints)

    def _gsm(self, sigma0, lower, upper, breakpoints=()):
        """Generic marginal prior by quadrature over |xi| (families with no closed form)."""
        s0 = self._sigma0(sigma0)
        if self.batch_shape != torch.Size():
            raise ValueError(
                f"marginal_prior by quadrature needs scalar parameters, but {self!r} has "
                f"batch_shape {tuple(self.batch_shape)}"
            )
        return _priors.GaussianScaleMixture(
            self._abs_log_density,
            s0,
            lower=lower,
            upper=upper,
            breakpoints=tuple(breakpoints),
            sampler=lambda shape, generator=None: self.sample(shape, generator),
            second_moment=self.second_moment,
            name=repr(self),
        )


# ===================================================================================== Bernoulli
class Bernoulli(NoiseDistribution):
    """Bernoulli noise, ``xi in {0, 1}`` with ``P(xi = 1) = keep``: dropout.

    Prior: spike-and-slab ``keep * N(0, sigma0^2) + (1 - keep) * delta_0`` (Eq. 12).

    Args:
        keep: keep probability in (0, 1] (``nn.Dropout(p)`` has ``keep = 1 - p``).
    """

    arg_constraints = {"keep": constraints.unit_interval}
    support = constraints.boolean
    name = "bernoulli"

    def __init__(self, keep, validate_args=None):
        keep = check_probability("keep", keep)
        (self.keep,) = broadcast_all(keep)
        super().__init__(self.keep.shape, validate_args=validate_args)

    def _draw(self, shape, generator):
        return torch.bernoulli(self.keep.expand(shape), generator=generator)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return _TorchBernoulli(probs=self.keep, validate_args=False).log_prob(value)

    @property
    def mean(self):
        return self.keep

    @property
    def variance(self):
        return self.keep * (1 - self.keep)

    @property
    def second_moment(self):
        return self.keep

    @property
    def inverse_square_mean(self):
        return torch.where(self.keep == 1, _full(self.keep, 1.0), _full(self.keep, math.inf))

    @property
    def inverse_square_variance(self):
        return torch.where(self.keep == 1, _full(self.keep, 0.0), _full(self.keep, math.inf))

    @property
    def log_abs_mean(self):
        return torch.where(self.keep == 1, _full(self.keep, 0.0), _full(self.keep, -math.inf))

    def variance_prior(self):
        return _TorchBernoulli(probs=self.keep)

    def marginal_prior(self, sigma0=1.0):
        return _priors.SpikeAndSlab(self.keep, self._sigma0(sigma0))


# ====================================================================================== Gaussian
class Gaussian(NoiseDistribution):
    """Gaussian noise ``xi ~ N(mean, std^2)``; Gaussian dropout is ``mean = 1``.

    Prior: mean 0 gives the variance-gamma law ``K0(|w| / (std sigma0)) / (pi std sigma0)``
    (a generalized hyperbolic); mean != 0 has no closed form (the law of ``xi^2`` is a scaled
    *noncentral* chi-square, not GIG) and is computed by quadrature.

    Args:
        mean: the noise mean ``m`` (real).
        std: the noise standard deviation ``s > 0``.
    """

    arg_constraints = {"mean_": constraints.real, "std": constraints.positive}
    support = constraints.real
    has_rsample = True
    name = "gaussian"

    def __init__(self, mean, std, validate_args=None):
        mean = as_param("mean", mean)
        std = check_positive("std", std)
        self.mean_, self.std = broadcast_all(mean, std)
        super().__init__(self.std.shape, validate_args=validate_args)

    @classmethod
    def dropout(cls, p):
        """Gaussian dropout matched to Bernoulli dropout of rate ``p``: N(1, p / (1 - p))."""
        p = check_probability("p", p, low_open=False)
        if (p >= 1).any():
            raise ValueError(f"p has to be in [0, 1), but got {p.item() if p.numel() == 1 else p}")
        return cls(1.0, torch.sqrt(p / (1 - p)))

    @property
    def parameters(self):
        return {"mean": self.mean_.item() if self.mean_.numel() == 1 else self.mean_,
                "std": self.std.item() if self.std.numel() == 1 else self.std}

    def _draw(self, shape, generator):
        eps = torch.randn(shape, dtype=self.std.dtype, device=self.std.device, generator=generator)
        return self.mean_ + self.std * eps

    def log_prob(self, value):
        z = (value - self.mean_) / self.std
        return -0.5 * z * z - torch.log(self.std) - _LOG_SQRT_2PI

    def cdf(self, value):
        return torch.special.ndtr((value - self.mean_) / self.std)

    @property
    def mean(self):
        return self.mean_

    @property
    def variance(self):
        return self.std**2

    @property
    def second_moment(self):
        return self.mean_**2 + self.std**2

    @property
    def inverse_square_mean(self):
        # the density of xi at 0 is positive, so E[xi^-2] = inf for every Gaussian
        return _full(self.std, math.inf)

    @property
    def inverse_square_variance(self):
        return _full(self.std, math.inf)

    @property
    def log_abs_mean(self):
        """E[log|xi|]: closed form for mean 0, adaptive quadrature (SciPy) otherwise."""
        base = torch.log(self.std) - 0.5 * (_EULER + math.log(2.0))
        if (self.mean_ == 0).all():
            return base
        import numpy as np
        from scipy import integrate

        out = []
        for m, s in zip(self.mean_.flatten().tolist(), self.std.flatten().tolist()):
            # E log|m + s z| = log s + E log|z + m/s|; integrate with the log singularity at -m/s
            c = m / s

            def f(z, c=c):
                return np.log(abs(z + c)) * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

            val = sum(
                integrate.quad(f, lo, hi, limit=200, epsabs=1e-13, epsrel=1e-12)[0]
                for lo, hi in ((-np.inf, -c), (-c, np.inf))
            )
            out.append(math.log(s) + val)
        return torch.tensor(out, dtype=self.std.dtype).reshape(self.std.shape)

    def variance_prior(self):
        if (self.mean_ == 0).all():
            return _TorchGamma(_full(self.std, 0.5), 0.5 / self.std**2)
        return ScaledNoncentralChi2(self.mean_, self.std)

    def _abs_log_density(self, x):
        a = -0.5 * ((x - self.mean_) / self.std) ** 2
        b = -0.5 * ((x + self.mean_) / self.std) ** 2
        return torch.logaddexp(a, b) - torch.log(self.std) - _LOG_SQRT_2PI

    def marginal_prior(self, sigma0=1.0):
        s0 = self._sigma0(sigma0)
        if (self.mean_ == 0).all():
            return _priors.VarianceGamma(self.std * s0)
        m, s = self.mean_.abs().max().item(), self.std.max().item()
        return self._gsm(s0, 0.0, m + 40.0 * s, ())


class ScaledNoncentralChi2(Distribution):
    """Law of ``xi^2`` for ``xi ~ N(m, s^2)``: ``s^2`` times a noncentral chi-square with one
    degree of freedom and noncentrality ``m^2 / s^2``.

    Its density ``[phi((sqrt(x) - m)/s) + phi((sqrt(x) + m)/s)] / (2 s sqrt(x))`` carries a
    ``cosh(m sqrt(x) / s^2)`` factor, so it is not a generalized inverse Gaussian law.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, validate_args=validate_args)

    @property
    def noncentrality(self):
        return (self.loc / self.scale) ** 2

    def rsample(self, sample_shape=torch.Size(), generator=None):
        shape = self._extended_shape(sample_shape)
        z = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device, generator=generator)
        return (self.loc + self.scale * z) ** 2

    def sample(self, sample_shape=torch.Size(), generator=None):
        with torch.no_grad():
            return self.rsample(sample_shape, generator)

    def log_prob(self, value):
        r = torch.sqrt(value)
        a = -0.5 * ((r - self.loc) / self.scale) ** 2
        b = -0.5 * ((r + self.loc) / self.scale) ** 2
        return (
            torch.logaddexp(a, b) - _LOG_SQRT_2PI - torch.log(2 * self.scale * r)
        )

    @property
    def mean(self):
        return self.loc**2 + self.scale**2

    @property
    def variance(self):
        return 2 * self.scale**4 * (1 + 2 * self.noncentrality)


# ====================================================================================== Rayleigh
class Rayleigh(NoiseDistribution):
    """Rayleigh noise with scale ``s``: density ``x / s^2 exp(-x^2 / (2 s^2))``, ``x > 0``.

    ``xi^2 ~ Exponential(rate 1 / (2 s^2))``; prior: ``Laplace(0, b = sigma0 s)``.

    Args:
        scale: ``s > 0``.
    """

    arg_constraints = {"scale": constraints.positive}
    support = constraints.positive
    has_rsample = True
    name = "rayleigh"

    def __init__(self, scale, validate_args=None):
        (self.scale,) = broadcast_all(check_positive("scale", scale))
        super().__init__(self.scale.shape, validate_args=validate_args)

    def _draw(self, shape, generator):
        u = torch.rand(shape, dtype=self.scale.dtype, device=self.scale.device, generator=generator)
        # inverse CDF with 1 - u in (0, 1]: never log(0)
        return self.scale * torch.sqrt(-2.0 * torch.log1p(-u))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        s2 = self.scale**2
        return torch.log(value) - torch.log(s2) - value**2 / (2 * s2)

    def cdf(self, value):
        return -torch.expm1(-(value**2) / (2 * self.scale**2))

    @property
    def mean(self):
        return self.scale * math.sqrt(math.pi / 2)

    @property
    def variance(self):
        return (4 - math.pi) / 2 * self.scale**2

    @property
    def second_moment(self):
        return 2 * self.scale**2

    @property
    def inverse_square_mean(self):
        # xi^2 ~ Exponential has positive density at 0: E[xi^-2] = inf
        return _full(self.scale, math.inf)

    @property
    def inverse_square_variance(self):
        return _full(self.scale, math.inf)

    @property
    def log_abs_mean(self):
        return torch.log(self.scale) + 0.5 * (math.log(2.0) - _EULER)

    def variance_prior(self):
        return _TorchExponential(0.5 / self.scale**2)

    def marginal_prior(self, sigma0=1.0):
        return _priors.Laplace(torch.zeros_like(self.scale), self._sigma0(sigma0) * self.scale)

    def _abs_log_density(self, x):
        return self.log_prob(x)


# ============================================================================= inverse Nakagami
class InverseNakagami(NoiseDistribution):
    """Inverse Nakagami noise: ``xi^2 ~ InverseGamma(df / 2, rate = df scale^2 / 2)``, ``xi > 0``.

    Prior: ``StudentT(df, 0, sigma0 * scale)``.

    Args:
        df: degrees of freedom ``nu > 0`` (E[xi] finite for ``nu > 1``, E[xi^2] for ``nu > 2``).
        scale: ``s > 0``.
    """

    arg_constraints = {"df": constraints.positive, "scale": constraints.positive}
    support = constraints.positive
    name = "inverse_nakagami"

    def __init__(self, df, scale, validate_args=None):
        df = check_positive("df", df)
        scale = check_positive("scale", scale)
        self.df, self.scale = broadcast_all(df, scale)
        super().__init__(self.df.shape, validate_args=validate_args)

    @property
    def _alpha(self):
        return self.df / 2

    @property
    def _beta(self):
        return self.df * self.scale**2 / 2

    def _draw(self, shape, generator):
        g = standard_gamma(self._alpha.expand(shape).contiguous(), generator)
        # xi^2 = beta / G, G ~ Gamma(alpha, 1); guard the (probability ~0) G = 0
        return torch.sqrt(self._beta / g.clamp_min(torch.finfo(g.dtype).tiny))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        a, b = self._alpha, self._beta
        y = value**2
        log_py = a * torch.log(b) - torch.lgamma(a) - (a + 1) * torch.log(y) - b / y
        return log_py + math.log(2.0) + torch.log(value)

    def cdf(self, value):
        # P(xi <= x) = P(G >= beta / x^2) = Q(alpha, beta / x^2)
        return torch.special.gammaincc(self._alpha, self._beta / value**2)

    @property
    def mean(self):
        a, b = self._alpha, self._beta
        finite = self.df > 1
        a_safe = torch.where(finite, a, _full(a, 1.0))
        m = torch.sqrt(b) * torch.exp(torch.lgamma(a_safe - 0.5) - torch.lgamma(a_safe))
        return torch.where(finite, m, _full(m, math.inf))

    @property
    def second_moment(self):
        finite = self.df > 2
        df_safe = torch.where(finite, self.df, _full(self.df, 3.0))
        v = df_safe * self.scale**2 / (df_safe - 2)
        return torch.where(finite, v, _full(v, math.inf))

    @property
    def variance(self):
        finite = self.df > 2
        m = torch.where(finite, self.mean, _full(self.df, 0.0))
        v = self.second_moment - m**2
        return torch.where(finite, v, _full(v, math.inf))

    @property
    def inverse_square_mean(self):
        return 1.0 / self.scale**2

    @property
    def inverse_square_variance(self):
        return 2.0 / (self.df * self.scale**4)

    @property
    def log_abs_mean(self):
        return 0.5 * (torch.log(self._beta) - torch.digamma(self._alpha))

    def variance_prior(self):
        return _TorchInverseGamma(self._alpha, self._beta)

    def marginal_prior(self, sigma0=1.0):
        return _priors.StudentT(self.df, torch.zeros_like(self.scale),
                                self._sigma0(sigma0) * self.scale)

    def _abs_log_density(self, x):
        return self.log_prob(x)


# ================================================================================== half-Cauchy
class HalfCauchy(NoiseDistribution):
    """Half-Cauchy noise with scale ``s``: density ``2 / (pi s (1 + x^2 / s^2))``, ``x > 0``.

    Its mean is infinite, so it cannot be normalised to mean 1. ``xi^2`` is ``s^2 F(1, 1)``
    (a beta-prime(1/2, 1/2) law: named, although the paper's Table 1 calls it unnamed).
    Prior: the horseshoe with ``tau = sigma0 * s``.

    Args:
        scale: ``s > 0``.
    """

    arg_constraints = {"scale": constraints.positive}
    support = constraints.positive
    has_rsample = True
    name = "half_cauchy"

    def __init__(self, scale, validate_args=None):
        (self.scale,) = broadcast_all(check_positive("scale", scale))
        super().__init__(self.scale.shape, validate_args=validate_args)

    def _draw(self, shape, generator):
        u = torch.rand(shape, dtype=self.scale.dtype, device=self.scale.device, generator=generator)
        return self.scale * torch.tan(0.5 * math.pi * u)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return (
            math.log(2 / math.pi) - torch.log(self.scale) - torch.log1p((value / self.scale) ** 2)
        )

    def cdf(self, value):
        return 2 / math.pi * torch.atan(value / self.scale)

    @property
    def mean(self):
        return _full(self.scale, math.inf)

    @property
    def variance(self):
        return _full(self.scale, math.inf)

    @property
    def second_moment(self):
        return _full(self.scale, math.inf)

    @property
    def inverse_square_mean(self):
        # 1/xi is half-Cauchy(1/s): its square has infinite mean
        return _full(self.scale, math.inf)

    @property
    def inverse_square_variance(self):
        return _full(self.scale, math.inf)

    @property
    def log_abs_mean(self):
        # log(xi / s) is symmetric about 0 (xi/s and s/xi have the same law)
        return torch.log(self.scale)

    def variance_prior(self):
        # B ~ Beta(1/2, 1/2) => B / (1 - B) ~ BetaPrime(1/2, 1/2) = F(1, 1); times s^2
        half = _full(self.scale, 0.5)
        return TransformedDistribution(
            _TorchBeta(half, half),
            [SigmoidTransform().inv, ExpTransform(), AffineTransform(0.0, self.scale**2)],
        )

    def marginal_prior(self, sigma0=1.0):
        return _priors.Horseshoe(self._sigma0(sigma0) * self.scale)

    def _abs_log_density(self, x):
        return self.log_prob(x)


# ========================================================================================= Beta
class Beta(NoiseDistribution):
    """Beta noise ``xi ~ Beta(a, b)`` on (0, 1) (Tomczak 2013). Prior by quadrature.

    Args:
        a, b: shape parameters ``> 0`` (E[xi^-2] finite for ``a > 2``, its variance for ``a > 4``).
    """

    arg_constraints = {"a": constraints.positive, "b": constraints.positive}
    support = constraints.unit_interval
    name = "beta"

    def __init__(self, a, b, validate_args=None):
        a = check_positive("a", a)
        b = check_positive("b", b)
        self.a, self.b = broadcast_all(a, b)
        super().__init__(self.a.shape, validate_args=validate_args)

    def _draw(self, shape, generator):
        ga = standard_gamma(self.a.expand(shape).contiguous(), generator)
        gb = standard_gamma(self.b.expand(shape).contiguous(), generator)
        return ga / (ga + gb)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return _TorchBeta(self.a, self.b, validate_args=False).log_prob(value)

    @property
    def mean(self):
        return self.a / (self.a + self.b)

    @property
    def variance(self):
        s = self.a + self.b
        return self.a * self.b / (s**2 * (s + 1))

    def _inverse_moment(self, k: int):
        """E[xi^-k] = prod_{j=1..k} (a + b - j) / (a - j) for a > k, else inf."""
        a, s = self.a, self.a + self.b
        finite = a > k
        out = torch.ones_like(a)
        for j in range(1, k + 1):
            out = out * (s - j) / torch.where(finite, a - j, _full(a, 1.0))
        return torch.where(finite, out, _full(a, math.inf))

    @property
    def inverse_square_mean(self):
        return self._inverse_moment(2)

    @property
    def inverse_square_variance(self):
        finite = self.a > 4
        v = self._inverse_moment(4) - self._inverse_moment(2) ** 2
        return torch.where(finite, v, _full(v, math.inf))

    @property
    def log_abs_mean(self):
        return torch.digamma(self.a) - torch.digamma(self.a + self.b)

    def marginal_prior(self, sigma0=1.0):
        return self._gsm(sigma0, 0.0, 1.0, ())

    def _abs_log_density(self, x):
        return _TorchBeta(self.a, self.b, validate_args=False).log_prob(x)


# ====================================================================================== Uniform
class Uniform(NoiseDistribution):
    """Uniform noise ``xi ~ U(low, high)`` (Shen et al. 2018). Prior by quadrature.

    Args:
        low, high: real bounds with ``low < high``.
    """

    arg_constraints = {"low": constraints.real, "high": constraints.real}
    has_rsample = True
    name = "uniform"

    def __init__(self, low, high, validate_args=None):
        low = as_param("low", low)
        high = as_param("high", high)
        if torch.isinf(low).any() or torch.isinf(high).any():
            raise ValueError(f"low and high have to be finite, but got low={low}, high={high}")
        if (low >= high).any():
            raise ValueError(
                f"high has to be greater than low, but got low={low.tolist()}, "
                f"high={high.tolist()}"
            )
        self.low, self.high = broadcast_all(low, high)
        super().__init__(self.low.shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self.low, self.high)

    def _draw(self, shape, generator):
        u = torch.rand(shape, dtype=self.low.dtype, device=self.low.device, generator=generator)
        return self.low + (self.high - self.low) * u

    def log_prob(self, value):
        inside = (value >= self.low) & (value <= self.high)
        lp = -torch.log(self.high - self.low)
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))

    def cdf(self, value):
        return ((value - self.low) / (self.high - self.low)).clamp(0, 1)

    @property
    def mean(self):
        return (self.low + self.high) / 2

    @property
    def variance(self):
        return (self.high - self.low) ** 2 / 12

    @property
    def second_moment(self):
        lo, hi = self.low, self.high
        return (hi**2 + hi * lo + lo**2) / 3

    @property
    def _abs_bounds(self):
        """(l', h'): the bounds of |xi| when 0 is outside [low, high]."""
        lo = torch.minimum(self.low.abs(), self.high.abs())
        hi = torch.maximum(self.low.abs(), self.high.abs())
        return lo, hi

    @property
    def _straddles_zero(self):
        return (self.low <= 0) & (self.high >= 0)

    @property
    def inverse_square_mean(self):
        lo, hi = self._abs_bounds
        lo_s = torch.where(self._straddles_zero, hi / 2, lo)
        v = (1 / lo_s - 1 / hi) / (hi - lo_s)
        return torch.where(self._straddles_zero, _full(v, math.inf), v)

    @property
    def inverse_square_variance(self):
        lo, hi = self._abs_bounds
        lo_s = torch.where(self._straddles_zero, hi / 2, lo)
        m2 = (1 / lo_s - 1 / hi) / (hi - lo_s)
        m4 = (lo_s**-3 - hi**-3) / (3 * (hi - lo_s))
        v = m4 - m2**2
        return torch.where(self._straddles_zero, _full(v, math.inf), v)

    @property
    def log_abs_mean(self):
        def xlogx_minus_x(x):
            return torch.special.xlogy(x, x) - x

        # E log|xi| = [F(high) - F(low)] / (high - low), F(x) = sign(x) (|x| log|x| - |x|)
        def F(x):
            return torch.sign(x) * xlogx_minus_x(x.abs())

        return (F(self.high) - F(self.low)) / (self.high - self.low)

    def _abs_log_density(self, x):
        lp = -torch.log(self.high - self.low)
        inside = ((x >= self.low) & (x <= self.high)).to(x.dtype) + (
            (-x >= self.low) & (-x <= self.high)
        ).to(x.dtype)
        return lp + torch.log(inside)

    def marginal_prior(self, sigma0=1.0):
        lo, hi = self._abs_bounds
        lower = 0.0 if bool(self._straddles_zero.all()) else lo.min().item()
        upper = hi.max().item()
        breaks = sorted(
            {v for v in (self.low.abs().min().item(), self.high.abs().min().item())
             if lower < v < upper}
        )
        return self._gsm(sigma0, lower, upper, breaks)


#: the families by their CLI / report name
FAMILIES: dict[str, type[NoiseDistribution]] = {
    cls.name: cls
    for cls in (Bernoulli, Gaussian, Rayleigh, InverseNakagami, HalfCauchy, Beta, Uniform)
}
