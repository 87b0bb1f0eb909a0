"""Half-Cauchy noise: the horseshoe prior."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import (
    AffineTransform,
    Distribution,
    ExpTransform,
    SigmoidTransform,
    TransformedDistribution,
)
from torch.distributions import Beta as _TorchBeta

from .. import priors as _priors
from .base import _full, _OneScaleFamily, _uniform


class HalfCauchy(_OneScaleFamily):
    """Half-Cauchy noise with scale ``s``: density ``2 / (pi s (1 + x^2 / s^2))``, ``x > 0``.

    Its mean is infinite, so it cannot be normalised to mean 1. ``xi^2`` is ``s^2 F(1, 1)``
    (a beta-prime(1/2, 1/2) law: named, although the paper's Table 1 calls it unnamed).
    Prior: the horseshoe with ``tau = sigma0 * s``.

    Args:
        scale: ``s > 0``.
    """

    name = "half_cauchy"

    def _inverse_cdf(self, u: Tensor) -> Tensor:
        return self.scale * torch.tan(0.5 * math.pi * u)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return (
            math.log(2 / math.pi) - torch.log(self.scale) - torch.log1p((value / self.scale) ** 2)
        )

    def cdf(self, value: Tensor) -> Tensor:
        return 2 / math.pi * torch.atan(value / self.scale)

    @property
    def mean(self) -> Tensor:
        return _full(self.scale, math.inf)

    @property
    def variance(self) -> Tensor:
        return _full(self.scale, math.inf)

    @property
    def second_moment(self) -> Tensor:
        return _full(self.scale, math.inf)

    @property
    def log_abs_mean(self) -> Tensor:
        # log(xi / s) is symmetric about 0 (xi/s and s/xi have the same law)
        return torch.log(self.scale)

    def variance_prior(self) -> Distribution:
        # B ~ Beta(1/2, 1/2) => B / (1 - B) ~ BetaPrime(1/2, 1/2) = F(1, 1); times s^2
        half = _full(self.scale, 0.5)
        return TransformedDistribution(
            _TorchBeta(half, half),
            [SigmoidTransform().inv, ExpTransform(), AffineTransform(0.0, self.scale**2)],
        )

    def marginal_prior(self, sigma0: float | Tensor = 1.0) -> Distribution:
        return _priors.Horseshoe(self._sigma0(sigma0) * self.scale)

    @classmethod
    def matched_to_dropout(cls, rate: float) -> dict[str, float] | None:
        """Never: half-Cauchy noise cannot be normalised (it takes a grid of scales)."""
        raise ValueError("half_cauchy noise cannot be normalised; it uses a scale grid")

    # ----- the layers' fast draw ----------------------------------------------------------
    def _fast_draw(self, shape: tuple[int, ...], *, normalize: bool,
                   generator: torch.Generator | None, dtype: torch.dtype,
                   device: torch.device | str | None, out: Tensor | None = None) -> Tensor:
        """Inverse CDF in place, as :meth:`sample`: ``scale * tan(pi u / 2)``, drawn on the
        target device."""
        u = _uniform(shape, generator, dtype, device, out)
        xi = u.mul_(0.5 * math.pi).tan_().mul_(self._scale_value)
        return self._normalized_into(xi, normalize, out)

    def pyro_law(self) -> Distribution:
        """``pyro.distributions.HalfCauchy(scale)``."""
        import pyro.distributions as dist

        return dist.HalfCauchy(self.scale)
