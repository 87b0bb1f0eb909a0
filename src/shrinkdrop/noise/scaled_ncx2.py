"""The law of the square of Gaussian noise (:meth:`Gaussian.variance_prior
<shrinkdrop.noise.Gaussian.variance_prior>` for a non-zero mean)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions.utils import broadcast_all

from .._validation import check_finite, check_positive
from .base import _LOG_SQRT_2PI

__all__ = ["ScaledNoncentralChi2"]


class ScaledNoncentralChi2(Distribution):
    """Law of ``xi^2`` for ``xi ~ N(m, s^2)``: ``s^2`` times a noncentral chi-square with one
    degree of freedom and noncentrality ``m^2 / s^2``.

    Its density ``[phi((sqrt(x) - m)/s) + phi((sqrt(x) + m)/s)] / (2 s sqrt(x))`` carries a
    ``cosh(m sqrt(x) / s^2)`` factor, so it is not a generalized inverse Gaussian law.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, loc: float | Tensor, scale: float | Tensor,
                 validate_args: bool | None = None) -> None:
        self.loc, self.scale = broadcast_all(check_finite("loc", loc),
                                             check_positive("scale", scale))
        super().__init__(self.loc.shape, validate_args=validate_args)

    @property
    def noncentrality(self) -> Tensor:
        """``loc^2 / scale^2``."""
        return (self.loc / self.scale) ** 2

    def rsample(self, sample_shape: Sequence[int] = torch.Size(),
                generator: torch.Generator | None = None) -> Tensor:
        """``(loc + scale z)^2``, ``z ~ N(0, 1)``: differentiable in the parameters."""
        shape = self._extended_shape(sample_shape)
        z = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device, generator=generator)
        return (self.loc + self.scale * z) ** 2

    def sample(self, sample_shape: Sequence[int] = torch.Size(),
               generator: torch.Generator | None = None) -> Tensor:
        """As :meth:`rsample`, without gradient."""
        with torch.no_grad():
            return self.rsample(sample_shape, generator)

    def log_prob(self, value: Tensor) -> Tensor:
        r = torch.sqrt(value)
        a = -0.5 * ((r - self.loc) / self.scale) ** 2
        b = -0.5 * ((r + self.loc) / self.scale) ** 2
        return (
            torch.logaddexp(a, b) - _LOG_SQRT_2PI - torch.log(2 * self.scale * r)
        )

    @property
    def mean(self) -> Tensor:
        return self.loc**2 + self.scale**2

    @property
    def variance(self) -> Tensor:
        return 2 * self.scale**4 * (1 + 2 * self.noncentrality)
