"""Beta noise (Tomczak 2013)."""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor
from torch.distributions import Beta as _TorchBeta
from torch.distributions import Distribution, constraints

from .._validation import check_positive
from ..sampling import gamma as _gamma
from ..sampling import rwt as _rwt
from ..sampling.gamma import standard_gamma
from .base import NoiseDistribution, _full, _into


class Beta(NoiseDistribution):
    """Beta noise ``xi ~ Beta(a, b)`` on (0, 1) (Tomczak 2013). Prior by quadrature.

    Args:
        a, b: shape parameters ``> 0`` (E[xi^-2] finite for ``a > 2``, its variance for ``a > 4``).
    """

    arg_constraints = {"a": constraints.positive, "b": constraints.positive}
    support = constraints.unit_interval
    name = "beta"
    #: symmetric Beta(a, a)
    _dropout_path = (lambda t: {"a": t, "b": t}, (1e-3, 1e6))

    def __init__(self, a: float | Tensor, b: float | Tensor,
                 validate_args: bool | None = None) -> None:
        self._set_params(validate_args, a=check_positive("a", a), b=check_positive("b", b))

    def _draw(self, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        ga = standard_gamma(self.a.expand(shape).contiguous(), generator)
        gb = standard_gamma(self.b.expand(shape).contiguous(), generator)
        return ga / (ga + gb)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return _TorchBeta(self.a, self.b, validate_args=False).log_prob(value)

    @property
    def mean(self) -> Tensor:
        return self.a / (self.a + self.b)

    @property
    def variance(self) -> Tensor:
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
    def inverse_square_mean(self) -> Tensor:
        return self._inverse_moment(2)

    @property
    def inverse_square_variance(self) -> Tensor:
        finite = self.a > 4
        v = self._inverse_moment(4) - self._inverse_moment(2) ** 2
        return torch.where(finite, v, _full(v, math.inf))

    @property
    def log_abs_mean(self) -> Tensor:
        return torch.digamma(self.a) - torch.digamma(self.a + self.b)

    def marginal_prior(self, sigma0: float | Tensor = 1.0) -> Distribution:
        return self._gsm(sigma0, 0.0, 1.0, ())

    def _abs_log_density(self, x: Tensor) -> Tensor:
        return _TorchBeta(self.a, self.b, validate_args=False).log_prob(x)

    # ----- the layers' fast draw ----------------------------------------------------------
    @functools.cached_property
    def _shape_params(self) -> tuple[float, float]:
        return float(self.a), float(self.b)

    def _fast_draw(self, shape: tuple[int, ...], *, normalize: bool,
                   generator: torch.Generator | None, dtype: torch.dtype,
                   device: torch.device | str | None, out: Tensor | None = None) -> Tensor:
        """CPU draws (not compiled) of at least :data:`~shrinkdrop.sampling.rwt.TABLE_MIN`
        elements: the exact table sampler (:mod:`shrinkdrop.sampling.rwt`);
        else (or where no table can be built) ``Ga / (Ga + Gb)`` with the gamma sampler
        :func:`shrinkdrop.sampling.gamma.gamma`."""
        a, b = self._shape_params
        n = math.prod(shape)
        if _rwt.use_table(n, device):
            tab = _rwt.table("beta", a, b)
            if tab is not None:
                scale = 1.0 / self.scalar_mean if normalize else 1.0
                xi = _rwt.sample(tab, n, dtype, scale, generator).view(shape)
                return _into(xi, out)
        ga = _gamma.gamma(a, n, dtype, device, generator)
        gb = _gamma.gamma(b, n, dtype, device, generator)
        xi = ga.div_(gb.add_(ga)).view(shape)
        return self._normalized_into(xi, normalize, out)

    def pyro_law(self) -> Distribution:
        """``pyro.distributions.Beta(a, b)``."""
        import pyro.distributions as dist

        return dist.Beta(self.a, self.b)
