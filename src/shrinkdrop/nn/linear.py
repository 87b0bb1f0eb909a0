"""``WeightNoiseLinear``: DropConnect, one noise scale per weight."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .. import functional as F
from .. import noise as _noise
from .._validation import check_int
from ._base import NoiseLayer, StructuredPrior, _sampling_words

__all__ = ["WeightNoiseLinear"]


class WeightNoiseLinear(NoiseLayer):
    """Linear layer with noise on every weight: DropConnect (Wan et al. 2013).

    Nalisnick & Smyth, section 3, "Equivalence to DropConnect": ``y = x (W * Xi)^T + b`` is the EP
    of independent scales ``w_{o,i} ~ N(0, sigma0^2 xi_{o,i}^2)`` (no ARD sharing).

    Modes and exactness:

    * per example (default): each example draws its own ``(out, in)`` noise; exact. Costs
      ``N * out * in`` memory and a batched matmul.
    * ``share_across_batch=True``: one draw per forward pass (per sample group); exact for the
      global-scale model and about the cost of ``nn.Linear``.
    * ``local_reparameterization=True`` (Gaussian noise only): samples the pre-activations
      ``N(m x W^T + b, s^2 x^2 (W^2)^T)`` per example; exact in distribution for the outputs of
      the per-example mode (not the same gradient estimator: lower variance).

    The bias carries no noise. Parameters are named like ``nn.Linear`` (``weight``, ``bias``).

    Args:
        in_features, out_features: sizes as in ``nn.Linear``.
        noise: a :mod:`shrinkdrop.noise` family.
        share_across_batch: one draw per forward pass (default False: per example).
        bias: learn an additive bias (default True).
        local_reparameterization: Gaussian local reparameterization (default False).
        normalize, generator: as :class:`UnitNoise`.

    Shape:
        input ``(N, *, in)``; output ``(N, *, out)``; noise ``(N, out, in)`` (``(1, out, in)``).

    Example:
        >>> layer = WeightNoiseLinear(20, 10, shrinkdrop.noise.Bernoulli(0.5))
        >>> y = layer(torch.randn(4, 20))
    """

    def __init__(self, in_features: int, out_features: int, noise: _noise.NoiseDistribution,
                 share_across_batch: bool = False, *, bias: bool = True,
                 local_reparameterization: bool = False, normalize: bool = True,
                 generator: torch.Generator | None = None,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(noise, share_across_batch=share_across_batch, normalize=normalize,
                         generator=generator)
        if local_reparameterization:
            if noise._gaussian_params is None:
                raise ValueError(
                    "local_reparameterization needs Gaussian noise, but got noise="
                    f"{noise!r}"
                )
            if share_across_batch:
                raise ValueError(
                    "local_reparameterization draws independent noise per example and cannot be "
                    "combined with share_across_batch=True"
                )
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.local_reparameterization = bool(local_reparameterization)
        fk = dict(device=device, dtype=dtype)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **fk))
        self.bias = nn.Parameter(torch.empty(out_features, **fk)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's initialisation
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return F.weight_noise_linear(
            x, self.weight, self.bias, self.noise, self.training or self.mc,
            local_reparameterization=self.local_reparameterization, **self._kw())

    def extra_repr(self) -> str:
        s = (f"in_features={self.in_features}, out_features={self.out_features}, "
             f"bias={self.bias is not None}, ")
        if self.local_reparameterization:
            s += "local_reparameterization=True, "
        return s + super().extra_repr()

    def prior(self, sigma0: float = 1.0) -> StructuredPrior:
        shape = ("1" if self.share_across_batch else "N", "D_out", "D_in")
        return StructuredPrior(
            "DropConnect", "none: every weight w_oi has its own scale xi_oi", shape,
            self._marginal(self.noise, sigma0),
            f"DropConnect: w_oi ~ N(0, sigma0^2 xi_oi^2), xi ~ {self.noise!r}; "
            + _sampling_words(self.share_across_batch),
            self.noise, sigma0,
        )
