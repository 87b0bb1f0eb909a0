"""Marginal priors of ``w = xi * v``, ``v ~ N(0, sigma0^2)``: the weight priors that
multiplicative noise ``xi`` induces (Nalisnick & Smyth, Table 1).

Closed forms: :class:`SpikeAndSlab` (Bernoulli noise), :class:`VarianceGamma` (mean-0 Gaussian),
:class:`Laplace` (Rayleigh), :class:`StudentT` (inverse Nakagami), :class:`Horseshoe`
(half-Cauchy); everything else: :class:`GaussianScaleMixture` (quadrature over ``|xi|``).
Special functions in :mod:`shrinkdrop.priors.special`. This package never imports
``shrinkdrop.noise`` (noise depends on priors, not the reverse).
"""

from torch.distributions import Laplace, StudentT

from . import special
from .closed_form import Horseshoe, SpikeAndSlab, VarianceGamma
from .mixture import GaussianScaleMixture
from .special import log_bessel_k0, log_exp1_scaled

__all__ = [
    "GaussianScaleMixture",
    "Horseshoe",
    "Laplace",
    "SpikeAndSlab",
    "StudentT",
    "VarianceGamma",
    "log_bessel_k0",
    "log_exp1_scaled",
    "special",
]
