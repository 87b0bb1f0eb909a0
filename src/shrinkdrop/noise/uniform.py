"""Uniform noise (Shen et al. 2018)."""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from .._validation import as_param
from .base import NoiseDistribution, _full, _uniform


class Uniform(NoiseDistribution):
    """Uniform noise ``xi ~ U(low, high)`` (Shen et al. 2018). Prior by quadrature.

    Args:
        low, high: real bounds with ``low < high``.
    """

    arg_constraints = {"low": constraints.real, "high": constraints.real}
    has_rsample = True
    name = "uniform"
    #: Uniform(1 - h, 1 + h) (reaches p / (1 - p) <= 1/3)
    _dropout_path = (lambda t: {"low": 1.0 - t, "high": 1.0 + t}, (1e-6, 1.0))

    def __init__(self, low: float | Tensor, high: float | Tensor,
                 validate_args: bool | None = None) -> None:
        low = as_param("low", low)
        high = as_param("high", high)
        if torch.isinf(low).any() or torch.isinf(high).any():
            raise ValueError(f"low and high have to be finite, but got low={low}, high={high}")
        if (low >= high).any():
            raise ValueError(
                f"high has to be greater than low, but got low={low.tolist()}, "
                f"high={high.tolist()}"
            )
        self._set_params(validate_args, low=low, high=high)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        """The interval ``[low, high]``."""
        return constraints.interval(self.low, self.high)

    def _draw(self, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        u = torch.rand(shape, dtype=self.low.dtype, device=self.low.device, generator=generator)
        return self.low + (self.high - self.low) * u

    def log_prob(self, value: Tensor) -> Tensor:
        inside = (value >= self.low) & (value <= self.high)
        lp = -torch.log(self.high - self.low)
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))

    def cdf(self, value: Tensor) -> Tensor:
        return ((value - self.low) / (self.high - self.low)).clamp(0, 1)

    @property
    def mean(self) -> Tensor:
        return (self.low + self.high) / 2

    @property
    def variance(self) -> Tensor:
        return (self.high - self.low) ** 2 / 12

    @property
    def second_moment(self) -> Tensor:
        lo, hi = self.low, self.high
        return (hi**2 + hi * lo + lo**2) / 3

    @property
    def _abs_bounds(self):
        """(l', h'): the bounds of |xi| when 0 is outside [low, high]."""
        lo = torch.minimum(self.low.abs(), self.high.abs())
        hi = torch.maximum(self.low.abs(), self.high.abs())
        return lo, hi

    @property
    def _straddles_zero(self) -> Tensor:
        return (self.low <= 0) & (self.high >= 0)

    @property
    def inverse_square_mean(self) -> Tensor:
        lo, hi = self._abs_bounds
        lo_s = torch.where(self._straddles_zero, hi / 2, lo)
        v = (1 / lo_s - 1 / hi) / (hi - lo_s)
        return torch.where(self._straddles_zero, _full(v, math.inf), v)

    @property
    def inverse_square_variance(self) -> Tensor:
        lo, hi = self._abs_bounds
        lo_s = torch.where(self._straddles_zero, hi / 2, lo)
        m2 = (1 / lo_s - 1 / hi) / (hi - lo_s)
        m4 = (lo_s**-3 - hi**-3) / (3 * (hi - lo_s))
        v = m4 - m2**2
        return torch.where(self._straddles_zero, _full(v, math.inf), v)

    @property
    def log_abs_mean(self) -> Tensor:
        def xlogx_minus_x(x):
            return torch.special.xlogy(x, x) - x

        # E log|xi| = [F(high) - F(low)] / (high - low), F(x) = sign(x) (|x| log|x| - |x|)
        def F(x):
            return torch.sign(x) * xlogx_minus_x(x.abs())

        return (F(self.high) - F(self.low)) / (self.high - self.low)

    def _abs_log_density(self, x: Tensor) -> Tensor:
        lp = -torch.log(self.high - self.low)
        inside = ((x >= self.low) & (x <= self.high)).to(x.dtype) + (
            (-x >= self.low) & (-x <= self.high)
        ).to(x.dtype)
        return lp + torch.log(inside)

    def marginal_prior(self, sigma0: float | Tensor = 1.0) -> Distribution:
        lo, hi = self._abs_bounds
        lower = 0.0 if bool(self._straddles_zero.all()) else lo.min().item()
        upper = hi.max().item()
        breaks = sorted(
            {v for v in (self.low.abs().min().item(), self.high.abs().min().item())
             if lower < v < upper}
        )
        return self._gsm(sigma0, lower, upper, breaks)

    # ----- the layers' fast draw ----------------------------------------------------------
    @functools.cached_property
    def _bounds(self) -> tuple[float, float]:
        return float(self.low), float(self.high)

    def _fast_draw(self, shape: tuple[int, ...], *, normalize: bool,
                   generator: torch.Generator | None, dtype: torch.dtype,
                   device: torch.device | str | None, out: Tensor | None = None) -> Tensor:
        """``low + (high - low) u`` in place (the bounds divided by E[xi] when normalised)."""
        lo, hi = self._bounds
        if normalize:
            lo, hi = lo / self.scalar_mean, hi / self.scalar_mean
        u = _uniform(shape, generator, dtype, device, out)
        return u.mul_(hi - lo).add_(lo)

    def pyro_law(self) -> Distribution:
        """``pyro.distributions.Uniform(low, high)``."""
        import pyro.distributions as dist

        return dist.Uniform(self.low, self.high)
