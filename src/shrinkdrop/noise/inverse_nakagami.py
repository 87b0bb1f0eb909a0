"""Inverse Nakagami noise: the Student-t prior."""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions import InverseGamma as _TorchInverseGamma

from .. import priors as _priors
from .._validation import check_positive
from ..sampling import gamma as _gamma
from ..sampling import rwt as _rwt
from ..sampling.gamma import standard_gamma
from .base import NoiseDistribution, _full, _into


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
    #: scale 1, solve for df
    _dropout_path = (lambda t: {"df": t, "scale": 1.0}, (2.0 + 1e-6, 1e5))

    def __init__(self, df: float | Tensor, scale: float | Tensor,
                 validate_args: bool | None = None) -> None:
        self._set_params(validate_args, df=check_positive("df", df),
                         scale=check_positive("scale", scale))

    @property
    def _alpha(self) -> Tensor:
        return self.df / 2

    @property
    def _beta(self) -> Tensor:
        return self.df * self.scale**2 / 2

    def _draw(self, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        g = standard_gamma(self._alpha.expand(shape).contiguous(), generator)
        # xi^2 = beta / G, G ~ Gamma(alpha, 1); guard the (probability ~0) G = 0
        return torch.sqrt(self._beta / g.clamp_min(torch.finfo(g.dtype).tiny))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        a, b = self._alpha, self._beta
        y = value**2
        log_py = a * torch.log(b) - torch.lgamma(a) - (a + 1) * torch.log(y) - b / y
        return log_py + math.log(2.0) + torch.log(value)

    def cdf(self, value: Tensor) -> Tensor:
        # P(xi <= x) = P(G >= beta / x^2) = Q(alpha, beta / x^2)
        return torch.special.gammaincc(self._alpha, self._beta / value**2)

    @property
    def mean(self) -> Tensor:
        a, b = self._alpha, self._beta
        finite = self.df > 1
        a_safe = torch.where(finite, a, _full(a, 1.0))
        m = torch.sqrt(b) * torch.exp(torch.lgamma(a_safe - 0.5) - torch.lgamma(a_safe))
        return torch.where(finite, m, _full(m, math.inf))

    @property
    def second_moment(self) -> Tensor:
        finite = self.df > 2
        df_safe = torch.where(finite, self.df, _full(self.df, 3.0))
        v = df_safe * self.scale**2 / (df_safe - 2)
        return torch.where(finite, v, _full(v, math.inf))

    @property
    def variance(self) -> Tensor:
        finite = self.df > 2
        m = torch.where(finite, self.mean, _full(self.df, 0.0))
        v = self.second_moment - m**2
        return torch.where(finite, v, _full(v, math.inf))

    @property
    def inverse_square_mean(self) -> Tensor:
        return 1.0 / self.scale**2

    @property
    def inverse_square_variance(self) -> Tensor:
        return 2.0 / (self.df * self.scale**4)

    @property
    def log_abs_mean(self) -> Tensor:
        return 0.5 * (torch.log(self._beta) - torch.digamma(self._alpha))

    def variance_prior(self) -> Distribution:
        return _TorchInverseGamma(self._alpha, self._beta)

    def marginal_prior(self, sigma0: float | Tensor = 1.0) -> Distribution:
        return _priors.StudentT(self.df, torch.zeros_like(self.scale),
                                self._sigma0(sigma0) * self.scale)

    def _abs_log_density(self, x: Tensor) -> Tensor:
        return self.log_prob(x)

    # ----- the layers' fast draw ----------------------------------------------------------
    @functools.cached_property
    def _gamma_params(self) -> tuple[float, float]:
        """``(alpha, beta) = (df / 2, df scale^2 / 2)`` as floats: ``xi^2 = beta / G``,
        ``G ~ Gamma(alpha, 1)``."""
        df, scale = float(self.df), float(self.scale)
        return df / 2, df * scale**2 / 2

    def _fast_draw(self, shape: tuple[int, ...], *, normalize: bool,
                   generator: torch.Generator | None, dtype: torch.dtype,
                   device: torch.device | str | None, out: Tensor | None = None) -> Tensor:
        """CPU draws (not compiled) of at least :data:`~shrinkdrop.sampling.rwt.TABLE_MIN`
        elements: the exact table sampler of ``G^(-1/2)``
        (:mod:`shrinkdrop.sampling.rwt`) times
        ``sqrt(beta)``; else (or where no table can be built) ``sqrt(beta / G)`` with the gamma
        sampler :func:`shrinkdrop.sampling.gamma.gamma`."""
        alpha, beta = self._gamma_params
        n = math.prod(shape)
        if _rwt.use_table(n, device):
            # about one 31-bit random word and two table look-ups per element
            tab = _rwt.table("inv_sqrt_gamma", alpha)
            if tab is not None:
                scale = math.sqrt(beta)
                if normalize:
                    scale /= self.scalar_mean
                xi = _rwt.sample(tab, n, dtype, scale, generator).view(shape)
                return _into(xi, out)
        # xi = sqrt(beta / G), G ~ Gamma(alpha, 1); guard the (probability ~0) G = 0
        beta = beta / (self.scalar_mean**2 if normalize else 1.0)
        g = _gamma.gamma(alpha, n, dtype, device, generator).clamp_min_(torch.finfo(dtype).tiny)
        xi = g.reciprocal_().mul_(beta).sqrt_().view(shape)
        return _into(xi, out)

    def pyro_law(self) -> Distribution:
        """``sqrt`` of ``pyro.distributions.InverseGamma(df / 2, df scale^2 / 2)``."""
        import pyro.distributions as dist
        from pyro.distributions.transforms import PowerTransform

        base = dist.InverseGamma(self.df / 2, self.df * self.scale**2 / 2)
        return dist.TransformedDistribution(base, [PowerTransform(0.5)])
