"""``NoisyResidual``: ADD, ARD and ARD+ADD noise around a residual block."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .. import functional as F
from .. import noise as _noise
from ._base import NoiseLayer, StructuredPrior, _sampling_words
from .sites import SiteMeaning, SVISite

__all__ = ["NoisyResidual"]


class NoisyResidual(NoiseLayer):
    """Residual connection with structured noise inside the block: ``h + block(tau * (h * xi))``.

    Nalisnick & Smyth, section 5.1 (Eq. 13-15): ``tau`` (``layer_noise``, one per example) is the
    automatic depth determination (ADD) scale shared by all weights of the block's first layer;
    ``xi`` (``unit_noise``, one per input unit) is ARD; both together give ARD+ADD (Eq. 14).

    Stochastic depth: with ``layer_noise=Bernoulli(keep)`` and a positively homogeneous block,
    e.g. ``nn.Sequential(nn.Linear(d, d, bias=False), nn.ReLU())``, each example gets ``h`` or
    ``h + block(h) / keep``: torchvision's ``stochastic_depth(block(h), 1 - keep, "row") + h``.
    With a bias in the block the equivalence fails (``block(0) = relu(b) != 0``): the paper folds
    biases into the weights.

    Args:
        block: any module mapping ``h`` to a tensor of ``h``'s shape.
        layer_noise: noise family of ``tau`` (ADD), or None.
        unit_noise: noise family of ``xi`` (ARD), or None. At least one is required.
        share_across_batch: one draw per forward pass (per sample group) (default False).
        normalize, generator: as :class:`UnitNoise` (``normalize`` applies to both factors).

    Shape:
        input and output ``(N, *)``; tau ``(N, 1, ..., 1)``; xi ``(N, *)``.

    Example:
        >>> blk = nn.Sequential(nn.Linear(64, 64, bias=False), nn.ReLU())
        >>> res = NoisyResidual(blk, layer_noise=shrinkdrop.noise.Bernoulli(0.8))
        >>> y = res(torch.randn(16, 64))
    """

    _MEANINGS = {
        "xi": SiteMeaning("ARD (per input unit of the block)",
                          "weights leaving input unit r of the block share xi_r"),
        "tau": SiteMeaning("ADD (per residual block)",
                           "all weights of the block's first layer share tau_l"),
    }

    def __init__(self, block: nn.Module, layer_noise: _noise.NoiseDistribution | None = None,
                 unit_noise: _noise.NoiseDistribution | None = None, *,
                 share_across_batch: bool = False, normalize: bool = True,
                 generator: torch.Generator | None = None) -> None:
        if layer_noise is None and unit_noise is None:
            raise ValueError("NoisyResidual: pass layer_noise (ADD), unit_noise (ARD) or both")
        if not callable(block):
            raise TypeError(f"block has to be an nn.Module, but got {type(block).__name__}")
        first = layer_noise if layer_noise is not None else unit_noise
        name = "layer_noise" if layer_noise is not None else "unit_noise"
        super().__init__(first, share_across_batch=share_across_batch, normalize=normalize,
                         generator=generator, noise_name=name)
        if layer_noise is not None and unit_noise is not None:
            F.check_noise(unit_noise, "unit_noise")
            if normalize:
                unit_noise.normalizing_mean("NoisyResidual")
        self.block = block
        self.layer_noise = layer_noise
        self.unit_noise = unit_noise

    def forward(self, h: Tensor) -> Tensor:
        if self._given_scales is not None:
            return self._at_given_scales(h)
        return F.noisy_residual(h, self.block, self.training or self.mc,
                                layer_noise=self.layer_noise, unit_noise=self.unit_noise,
                                **self._kw())

    def scale_roles(self) -> tuple[str, ...]:
        return tuple(r for r, nz in (("xi", self.unit_noise), ("tau", self.layer_noise))
                     if nz is not None)

    def scale_sites(self, input_shape: Sequence[int]) -> list[SVISite]:
        """``xi`` per input unit of the block (ARD) and / or one ``tau`` for the block (ADD)."""
        shapes = {"xi": (input_shape[-1],), "tau": ()}
        laws = {"xi": self.unit_noise, "tau": self.layer_noise}
        return [self._site(r, shapes[r], laws[r]) for r in self.scale_roles()]

    def forward_at_scales(self, x: Tensor, scales: Mapping[str, Tensor]) -> Tensor:
        z = x
        if "xi" in scales:
            z = z * scales["xi"]
        if "tau" in scales:
            z = z * scales["tau"]
        return x + self.block(z)

    def _noise_repr(self) -> str:
        return f"layer_noise={self.layer_noise!r}, unit_noise={self.unit_noise!r}"

    @property
    def structure(self) -> str:
        if self.layer_noise is not None and self.unit_noise is not None:
            return "ARD+ADD"
        return "ADD" if self.layer_noise is not None else "ARD"

    def prior(self, sigma0: float = 1.0) -> StructuredPrior:
        s = self.structure
        shared = self.share_across_batch
        n = "1" if shared else "N"
        if s == "ADD":
            shape, groups = (n,), self._MEANINGS["tau"].groups
            marginal = self._marginal(self.layer_noise, sigma0)
        elif s == "ARD":
            shape, groups = (n, "D"), self._MEANINGS["xi"].groups
            marginal = self._marginal(self.unit_noise, sigma0)
        else:
            shape = ((n,), (n, "D"))
            groups = "w_lrj has scale tau_l * xi_lr: tau_l per block, xi_lr per input unit"
            marginal = None  # the product of two noises: no single family's marginal
        return StructuredPrior(
            s, groups, shape, marginal,
            f"{s}: tau ~ {self.layer_noise!r}, xi ~ {self.unit_noise!r}; "
            + _sampling_words(shared),
            self.layer_noise if self.layer_noise is not None else self.unit_noise, sigma0,
        )
