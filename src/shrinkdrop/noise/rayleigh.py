"""Rayleigh noise: the Laplace prior."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Distribution
from torch.distributions import Exponential as _TorchExponential

from .. import priors as _priors
from .base import _EULER, _OneScaleFamily, _uniform


class Rayleigh(_OneScaleFamily):
    """Rayleigh noise with scale ``s``: density ``x / s^2 exp(-x^2 / (2 s^2))``, ``x > 0``.

    ``xi^2 ~ Exponential(rate 1 / (2 s^2))``; prior: ``Laplace(0, b = sigma0 s)``.

    Args:
        scale: ``s > 0``.
    """

    name = "rayleigh"

    def _inverse_cdf(self, u: Tensor) -> Tensor:
        # inverse CDF with 1 - u in (0, 1]: never log(0)
        return self.scale * torch.sqrt(-2.0 * torch.log1p(-u))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        s2 = self.scale**2
        return torch.log(value) - torch.log(s2) - value**2 / (2 * s2)

    def cdf(self, value: Tensor) -> Tensor:
        return -torch.expm1(-(value**2) / (2 * self.scale**2))

    @property
    def mean(self) -> Tensor:
        return self.scale * math.sqrt(math.pi / 2)

    @property
    def variance(self) -> Tensor:
        return (4 - math.pi) / 2 * self.scale**2

    @property
    def second_moment(self) -> Tensor:
        return 2 * self.scale**2

    @property
    def log_abs_mean(self) -> Tensor:
        return torch.log(self.scale) + 0.5 * (math.log(2.0) - _EULER)

    def variance_prior(self) -> Distribution:
        return _TorchExponential(0.5 / self.scale**2)

    def marginal_prior(self, sigma0: float | Tensor = 1.0) -> Distribution:
        return _priors.Laplace(torch.zeros_like(self.scale), self._sigma0(sigma0) * self.scale)

    @classmethod
    def matched_to_dropout(cls, rate: float) -> dict[str, float]:
        """Rayleigh's normalised variance is the constant ``(4 - pi) / pi`` whatever its scale:
        one point, scale 1, for every rate."""
        return {"scale": 1.0}

    # ----- the layers' fast draw ----------------------------------------------------------
    def _fast_draw(self, shape: tuple[int, ...], *, normalize: bool,
                   generator: torch.Generator | None, dtype: torch.dtype,
                   device: torch.device | str | None, out: Tensor | None = None) -> Tensor:
        """Inverse CDF in place: ``sqrt(-2 s^2 log(1 - u))``."""
        s2 = self._scale_value**2 / (self.scalar_mean**2 if normalize else 1.0)
        u = _uniform(shape, generator, dtype, device, out)
        # inverse CDF with 1 - u in (0, 1]: sqrt(-2 s^2 log(1 - u)), never log(0)
        return u.neg_().log1p_().mul_(-2.0 * s2).sqrt_()

    def pyro_law(self) -> Distribution:
        """``sqrt`` of ``pyro.distributions.Exponential(1 / (2 s^2))``."""
        import pyro.distributions as dist
        from pyro.distributions.transforms import PowerTransform

        base = dist.Exponential(0.5 / self.scale**2)
        return dist.TransformedDistribution(base, [PowerTransform(0.5)])
