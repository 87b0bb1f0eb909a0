"""Gaussian noise (Gaussian dropout) and the law of its square."""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions import Gamma as _TorchGamma

from .. import priors as _priors
from .._validation import check_finite, check_positive, check_probability
from .base import _EULER, _LOG_SQRT_2PI, _full, _InfiniteInverseSquare
from .scaled_ncx2 import ScaledNoncentralChi2


class Gaussian(_InfiniteInverseSquare):
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
    _like = "std"

    def __init__(self, mean: float | Tensor, std: float | Tensor,
                 validate_args: bool | None = None) -> None:
        self._set_params(validate_args, mean_=check_finite("mean", mean),
                         std=check_positive("std", std))

    @classmethod
    def dropout(cls, p: float | Tensor) -> Gaussian:
        """Gaussian dropout matched to Bernoulli dropout of rate ``p``: N(1, p / (1 - p))."""
        p = check_probability("p", p, low_open=False)
        if (p >= 1).any():
            raise ValueError(f"p has to be in [0, 1), but got {p.item() if p.numel() == 1 else p}")
        return cls(1.0, torch.sqrt(p / (1 - p)))

    @property
    def parameters(self) -> dict[str, float | Tensor]:
        """``{"mean": ..., "std": ...}`` (scalars as floats)."""
        return {"mean": self.mean_.item() if self.mean_.numel() == 1 else self.mean_,
                "std": self.std.item() if self.std.numel() == 1 else self.std}

    def _draw(self, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        eps = torch.randn(shape, dtype=self.std.dtype, device=self.std.device, generator=generator)
        return self.mean_ + self.std * eps

    def log_prob(self, value: Tensor) -> Tensor:
        z = (value - self.mean_) / self.std
        return -0.5 * z * z - torch.log(self.std) - _LOG_SQRT_2PI

    def cdf(self, value: Tensor) -> Tensor:
        return torch.special.ndtr((value - self.mean_) / self.std)

    @property
    def mean(self) -> Tensor:
        return self.mean_

    @property
    def variance(self) -> Tensor:
        return self.std**2

    @property
    def second_moment(self) -> Tensor:
        return self.mean_**2 + self.std**2

    @property
    def log_abs_mean(self) -> Tensor:
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

    def variance_prior(self) -> Distribution:
        if (self.mean_ == 0).all():
            return _TorchGamma(_full(self.std, 0.5), 0.5 / self.std**2)
        return ScaledNoncentralChi2(self.mean_, self.std)

    def _abs_log_density(self, x: Tensor) -> Tensor:
        a = -0.5 * ((x - self.mean_) / self.std) ** 2
        b = -0.5 * ((x + self.mean_) / self.std) ** 2
        return torch.logaddexp(a, b) - torch.log(self.std) - _LOG_SQRT_2PI

    def marginal_prior(self, sigma0: float | Tensor = 1.0) -> Distribution:
        s0 = self._sigma0(sigma0)
        if (self.mean_ == 0).all():
            return _priors.VarianceGamma(self.std * s0)
        m, s = self.mean_.abs().max().item(), self.std.max().item()
        return self._gsm(s0, 0.0, m + 40.0 * s, ())

    @classmethod
    def matched_to_dropout(cls, rate: float) -> dict[str, float] | None:
        """Gaussian dropout :meth:`dropout`: ``N(1, rate / (1 - rate))`` (None at rate 0)."""
        if rate <= 0:
            return None
        return {"mean": 1.0, "std": float(cls.dropout(rate).std)}

    # ----- the layers' fast draw ----------------------------------------------------------
    @functools.cached_property
    def _gaussian_params(self) -> tuple[float, float]:
        return float(self.mean_), float(self.std)

    def _fast_draw(self, shape: tuple[int, ...], *, normalize: bool,
                   generator: torch.Generator | None, dtype: torch.dtype,
                   device: torch.device | str | None, out: Tensor | None = None) -> Tensor:
        """``m + s eps`` in place (``N(1, (s / m)^2)`` when normalised)."""
        m, s = self._gaussian_params
        if normalize:
            m, s = 1.0, s / m
        xi = torch.randn(shape, dtype=dtype, device=device, generator=generator) \
            if out is None else out.normal_(generator=generator)
        return xi.mul_(s).add_(m)

    def pyro_law(self) -> Distribution:
        """``pyro.distributions.Normal(mean, std)``."""
        import pyro.distributions as dist

        return dist.Normal(self.mean_, self.std)
