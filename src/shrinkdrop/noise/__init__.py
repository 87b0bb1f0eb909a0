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
LogNormal(loc, scale)  e^(2loc+2s^2)     LogNormal(2loc, 2s)    quadrature (SBP's noise)
LogUniform(low, high)  moments           LogUniform(l^2, h^2)   quadrature (SBP's prior, truncated)
=====================  ================  =====================  ==================================

Moments that are infinite are returned as ``inf`` (never NaN, never a Monte Carlo guess).
``sample`` accepts a ``torch.Generator``; the gamma-based families (inverse Nakagami, Beta) then
draw with a Marsaglia-Tsang sampler driven by the generator
(:func:`~shrinkdrop.sampling.gamma.standard_gamma`: the seeded stream tests/golden pins).

One file per family; :mod:`shrinkdrop.noise.base` holds the base class. ``docs/layers.md``
("Adding a noise family") lists what a new family defines and where it is registered.
"""

from __future__ import annotations

from ..errors import NotNormalizableError
from ..sampling.gamma import standard_gamma
from .base import NoiseDistribution
from .bernoulli import Bernoulli
from .beta import Beta
from .gaussian import Gaussian
from .half_cauchy import HalfCauchy
from .inverse_nakagami import InverseNakagami
from .log_normal import LogNormal, LogUniform, kl_lognormal_log_uniform
from .rayleigh import Rayleigh
from .scaled_ncx2 import ScaledNoncentralChi2
from .uniform import Uniform

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
    "LogNormal",
    "LogUniform",
    "kl_lognormal_log_uniform",
    "FAMILIES",
    "standard_gamma",
]

#: the families by their CLI / report name
FAMILIES: dict[str, type[NoiseDistribution]] = {
    cls.name: cls
    for cls in (Bernoulli, Gaussian, Rayleigh, InverseNakagami, HalfCauchy, Beta, Uniform,
                LogNormal)
}
