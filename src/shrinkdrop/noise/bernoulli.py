"""Bernoulli noise: dropout."""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor
from torch.distributions import Bernoulli as _TorchBernoulli
from torch.distributions import Distribution, constraints

from .. import priors as _priors
from .._validation import check_probability
from ..sampling import bernoulli as _bernoulli
from .base import NoiseDistribution, _full


class Bernoulli(NoiseDistribution):
    """Bernoulli noise, ``xi in {0, 1}`` with ``P(xi = 1) = keep``: dropout.

    Prior: spike-and-slab ``keep * N(0, sigma0^2) + (1 - keep) * delta_0`` (Eq. 12).

    Args:
        keep: keep probability in [0, 1] (``nn.Dropout(p)`` has ``keep = 1 - p``). ``keep = 0``
            (``p = 1``) drops everything: the normalised noise is then 0, as torch's dropout
            with ``p = 1`` returns zeros (``E[xi] = 0`` cannot be divided by; the layers take
            the limit of ``xi / keep`` as 0, and eval is still the identity). The layers' draws
            use ``keep`` as given (a Python float is kept in double precision, not rounded to
            the float32 of the ``keep`` tensor), see docs/layers.md "Implementation notes".
    """

    arg_constraints = {"keep": constraints.unit_interval}
    support = constraints.boolean
    name = "bernoulli"

    def __init__(self, keep: float | Tensor, validate_args: bool | None = None) -> None:
        if isinstance(keep, (float, int)) and not isinstance(keep, bool):
            self._keep_value = float(keep)  # the layers' draws: exact, not float32-rounded
        self._set_params(validate_args, keep=check_probability("keep", keep, low_open=False))

    def _draw(self, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        return torch.bernoulli(self.keep.expand(shape), generator=generator)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return _TorchBernoulli(probs=self.keep, validate_args=False).log_prob(value)

    @property
    def mean(self) -> Tensor:
        return self.keep

    @property
    def variance(self) -> Tensor:
        return self.keep * (1 - self.keep)

    @property
    def second_moment(self) -> Tensor:
        return self.keep

    @property
    def inverse_square_mean(self) -> Tensor:
        return torch.where(self.keep == 1, _full(self.keep, 1.0), _full(self.keep, math.inf))

    @property
    def inverse_square_variance(self) -> Tensor:
        return torch.where(self.keep == 1, _full(self.keep, 0.0), _full(self.keep, math.inf))

    @property
    def log_abs_mean(self) -> Tensor:
        return torch.where(self.keep == 1, _full(self.keep, 0.0), _full(self.keep, -math.inf))

    def variance_prior(self) -> Distribution:
        return _TorchBernoulli(probs=self.keep)

    def marginal_prior(self, sigma0: float | Tensor = 1.0) -> Distribution:
        return _priors.SpikeAndSlab(self.keep, self._sigma0(sigma0))

    @classmethod
    def matched_to_dropout(cls, rate: float) -> dict[str, float]:
        """Dropout itself: ``keep = 1 - rate``."""
        return {"keep": 1.0 - rate}

    # ----- the layers' fast draw ----------------------------------------------------------
    _keep_value: float | None = None

    @functools.cached_property
    def _dropout_keep(self) -> float:
        """``keep`` as a Python float: the value given to the constructor if it was a Python
        number (double precision), else the ``keep`` tensor's."""
        return self._keep_value if self._keep_value is not None else float(self.keep)

    @functools.cached_property
    def scalar_mean(self) -> float:
        """E[xi] = ``keep`` as a Python float (:attr:`_dropout_keep`)."""
        return self._dropout_keep

    def normalizing_mean(self, what: str = "this layer") -> float:
        """``keep``; unlike the other families ``keep = 0`` is accepted: the normalised noise is
        then 0 (torch's dropout with ``p = 1``)."""
        return self.scalar_mean

    def _fast_draw(self, shape: tuple[int, ...], *, normalize: bool,
                   generator: torch.Generator | None, dtype: torch.dtype,
                   device: torch.device | str | None, out: Tensor | None = None) -> Tensor:
        """Geometric gaps (small drop rates) or 31-bit words on the CPU, ``bernoulli_``
        elsewhere and for small draws from the global generator
        (:func:`shrinkdrop.sampling.bernoulli.draw`); kept entries are ``1 / keep`` when
        normalised (0 for ``keep = 0``); under ``torch.compile`` one traceable ``bernoulli_``."""
        keep = self._dropout_keep
        value = (1.0 / keep if keep > 0.0 else 0.0) if normalize else 1.0
        if torch.compiler.is_compiling():
            return _bernoulli.draw_traceable(shape, keep, value, dtype, device, out)
        return _bernoulli.draw(shape, keep, value, generator, dtype, device, out)

    def pyro_law(self) -> Distribution:
        """``pyro.distributions.Bernoulli(keep)``."""
        import pyro.distributions as dist

        return dist.Bernoulli(self.keep)
