"""Noise on activations: UnitNoise (ARD), ChannelNoise (tied filters), LayerNoise (ADD)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from .. import functional as F
from .. import noise as _noise
from ._base import NoiseLayer, StructuredPrior, _sampling_words
from .sites import SiteMeaning, SVISite

__all__ = ["UnitNoise", "ChannelNoise", "LayerNoise"]


class _ActivationNoise(NoiseLayer):
    """A weightless noise layer on activations: one structure of :mod:`shrinkdrop.functional`
    (``_FUNCTIONAL``) and one role of scales (``_ROLE``)."""

    _FUNCTIONAL: Callable[..., Tensor]
    _ROLE: str
    #: multiply the input in place (``nn.Dropout(inplace=True)``); a class default for layers
    #: pickled before the option existed
    inplace: bool = False

    def __init__(self, noise: _noise.NoiseDistribution, share_across_batch: bool = False, *,
                 normalize: bool = True, generator: torch.Generator | None = None,
                 inplace: bool = False) -> None:
        super().__init__(noise, share_across_batch=share_across_batch, normalize=normalize,
                         generator=generator)
        self.inplace = bool(inplace)

    def forward(self, x: Tensor) -> Tensor:
        if self._given_scales is not None:
            return self._at_given_scales(x)
        return self._FUNCTIONAL(x, self.noise, self.training or self.mc,
                                share_across_batch=self.share_across_batch,
                                normalize=self.normalize, generator=self.generator,
                                inplace=self.inplace)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", inplace=True" if self.inplace else "")

    def scale_roles(self) -> tuple[str, ...]:
        return (self._ROLE,)

    def _role_prior(self, structure: str, dims: tuple[str, ...], model: str,
                    sigma0: float) -> StructuredPrior:
        """The structure's prior: noise shape ``(N or 1, *dims)``, the groups of the role's
        meaning, the family's marginal; ``model`` then the sampling words."""
        shape = ("1" if self.share_across_batch else "N",) + dims
        return StructuredPrior(
            structure, self._MEANINGS[self._ROLE].groups, shape,
            self._marginal(self.noise, sigma0),
            model + _sampling_words(self.share_across_batch),
            self.noise, sigma0,
        )


class UnitNoise(_ActivationNoise):
    """ARD multiplicative noise on the input units of the next layer: the drop-in for nn.Dropout.

    Nalisnick & Smyth, section 3 (Eq. 8): ``(x * xi) W^T`` is the expanded parametrization of
    ``w_{r,j} ~ N(0, sigma0^2 xi_r^2)``: all weights leaving input unit ``r`` share ``xi_r``.
    ``UnitNoise(Bernoulli(1 - p))`` has ``nn.Dropout(p)``'s law and scaling.

    Args:
        noise: a :mod:`shrinkdrop.noise` family, e.g. ``Bernoulli(keep=0.9)``.
        share_across_batch: one draw ``(1, ..., D)`` per forward pass (global ARD scales) instead
            of one per element (default False).
        normalize: divide the noise by ``E[xi]`` so that ``eval()`` is the identity (default True;
            a family with infinite mean raises ``NotNormalizableError``).
        generator: optional :class:`torch.Generator` for the noise.
        inplace: multiply the input in place and return it, as ``nn.Dropout(inplace=True)``.

    Shape:
        input and output ``(N, *, D)`` (any shape, 0-d included, as ``nn.Dropout``); noise
        ``(N, *, D)`` (``(1, ..., 1, D)`` when shared).

    Example:
        >>> layer = UnitNoise(shrinkdrop.noise.Bernoulli(keep=0.9))
        >>> y = layer(torch.randn(32, 100))
    """

    _FUNCTIONAL, _ROLE = staticmethod(F.unit_noise), "xi"
    _MEANINGS = {"xi": SiteMeaning("ARD (per input unit)",
                                   "all weights leaving input unit r share xi_r")}

    def scale_sites(self, input_shape: Sequence[int]) -> list[SVISite]:
        """One ``xi`` per input unit (the last dimension)."""
        return [self._site("xi", (input_shape[-1],))]

    def forward_at_scales(self, x: Tensor, scales: Mapping[str, Tensor]) -> Tensor:
        return x * scales["xi"]

    def prior(self, sigma0: float = 1.0) -> StructuredPrior:
        """The ARD prior on the weights of the layer that consumes this layer's output."""
        return self._role_prior(
            "ARD", ("D_in",), f"ARD: w_rj ~ N(0, sigma0^2 xi_r^2), xi ~ {self.noise!r}; ", sigma0)


class ChannelNoise(_ActivationNoise):
    """One noise scale per (example, channel): the tied-filters prior after a convolution.

    Nalisnick & Smyth, section 5.3 (Eq. 23): scaling output map ``f`` of a conv by ``tau_f`` is the
    EP of ``w_{.,.,c,f} ~ N(0, sigma0^2 tau_f^2)``. With ``Bernoulli(1 - p)`` this is
    ``nn.Dropout1d/2d/3d(p)`` (SpatialDropout).

    Args:
        noise, share_across_batch, normalize, generator, inplace: as :class:`UnitNoise`.
        spatial_dims: ``None`` (default: any ``(N, C, *)`` with at least one spatial dimension,
            batched) or 1, 2, 3: the inputs of ``nn.Dropout1d/2d/3d``, unbatched ``(C, L)`` and
            ``(C, D, H, W)`` included (one scale per channel);
            :func:`shrinkdrop.functional.channel_noise` lists the ranks.

    Shape:
        input and output ``(N, C, *)`` (at least one spatial dim); noise ``(N, C, 1, ..., 1)``.

    Example:
        >>> layer = ChannelNoise(shrinkdrop.noise.Bernoulli(keep=0.8))
        >>> y = layer(torch.randn(8, 16, 32, 32))
    """

    _FUNCTIONAL, _ROLE = staticmethod(F.channel_noise), "tau"
    spatial_dims: int | None = None
    _MEANINGS = {"tau": SiteMeaning(
        "tied filters (per channel)",
        "all weights of the filter producing channel f share tau_f")}

    def __init__(self, noise: _noise.NoiseDistribution, share_across_batch: bool = False, *,
                 normalize: bool = True, generator: torch.Generator | None = None,
                 inplace: bool = False, spatial_dims: int | None = None) -> None:
        super().__init__(noise, share_across_batch, normalize=normalize, generator=generator,
                         inplace=inplace)
        if spatial_dims not in (None, 1, 2, 3):
            raise ValueError(f"spatial_dims has to be None, 1, 2 or 3, but got {spatial_dims!r}")
        self.spatial_dims = spatial_dims

    def forward(self, x: Tensor) -> Tensor:
        if self._given_scales is not None:
            return self._at_given_scales(x)
        return F.channel_noise(x, self.noise, self.training or self.mc,
                               share_across_batch=self.share_across_batch,
                               normalize=self.normalize, generator=self.generator,
                               inplace=self.inplace, spatial_dims=self.spatial_dims)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.spatial_dims is None else f"{s}, spatial_dims={self.spatial_dims}"

    def _channel_axis(self, ndim: int) -> int:
        """0 for an unbatched input of ``spatial_dims`` (``(C, L)``, ``(C, D, H, W)``), else 1."""
        sd = self.spatial_dims
        return 0 if sd is not None and ndim == F._CHANNEL_RANKS[sd][1] else 1

    def scale_sites(self, input_shape: Sequence[int]) -> list[SVISite]:
        """One ``tau`` per channel (dimension 1; 0 for an unbatched input)."""
        return [self._site("tau", (input_shape[self._channel_axis(len(input_shape))],))]

    def forward_at_scales(self, x: Tensor, scales: Mapping[str, Tensor]) -> Tensor:
        tau = scales["tau"]
        return x * tau.reshape(tau.shape + (1,) * (x.dim() - 1 - self._channel_axis(x.dim())))

    def prior(self, sigma0: float = 1.0) -> StructuredPrior:
        """The tied-filters prior on the preceding convolution's weights."""
        return self._role_prior(
            "tied filters", ("C",),
            f"tied filters: w_{{.,.,c,f}} ~ N(0, sigma0^2 tau_f^2), tau ~ {self.noise!r}; ", sigma0)


class LayerNoise(_ActivationNoise):
    """One noise scale per example for a whole tensor: ADD applied to a residual branch's output.

    Nalisnick & Smyth, section 5.1. ``h + LayerNoise(block(h))`` with ``Bernoulli(keep)`` is
    stochastic depth (torchvision ``StochasticDepth(1 - keep, "row")``; ``"batch"`` with
    ``share_across_batch=True``). Noise outside the block equals ADD (noise inside, see
    :class:`NoisyResidual`) only for a positively homogeneous block (ReLU, no bias) and noise
    >= 0. :func:`shrinkdrop.convert` uses this layer for stochastic-depth modules.

    Shape:
        input and output ``(N, *)``; noise ``(N, 1, ..., 1)`` (``(1, ..., 1)`` when shared).
    """

    _FUNCTIONAL, _ROLE = staticmethod(F.layer_noise), "tau"
    _MEANINGS = {"tau": SiteMeaning("ADD (per layer)",
                                    "all weights of the residual branch share tau_l")}

    def scale_sites(self, input_shape: Sequence[int]) -> list[SVISite]:
        """One ``tau`` for the whole tensor."""
        return [self._site("tau", ())]

    def forward_at_scales(self, x: Tensor, scales: Mapping[str, Tensor]) -> Tensor:
        return x * scales["tau"]

    def prior(self, sigma0: float = 1.0) -> StructuredPrior:
        return self._role_prior(
            "ADD", (),
            f"ADD (noise on the branch output): tau ~ {self.noise!r}; equals ADD's prior "
            "w ~ N(0, sigma0^2 tau^2) for a bias-free ReLU branch and tau >= 0; ", sigma0)
