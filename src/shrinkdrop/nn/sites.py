"""What a noise layer means: its scale sites and the weights its noise scales.

A *scale site* is one group of global scales of a layer (``xi``: ARD / channels, ``tau``: ADD /
filters), described by :class:`SVISite`; every layer with global scales answers
:meth:`~shrinkdrop.nn.NoiseLayer.scale_sites` and
:meth:`~shrinkdrop.nn.NoiseLayer.forward_at_scales`. :func:`noisy_weights` pairs each layer's
noise with the weight it scales (the HP prior's view of a model).
"""

# No `from __future__ import annotations`: NoisyWeight is a NamedTuple, whose generated
# __new__ keeps string annotations that pdoc cannot resolve outside this module.

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .. import noise as _noise
from ..errors import NotNormalizableError

__all__ = ["SVISite", "SiteMeaning", "NoisyWeight", "noisy_weights"]


@dataclass(frozen=True)
class SiteMeaning:
    """What one role of a layer's scales means, in words (shared by ``scale_sites`` and
    ``prior``; a layer's ``_MEANINGS`` maps the role to it): ``structure`` names the site
    (``"ARD (per input unit)"``) and ``groups`` says which weights share one scale."""

    structure: str
    groups: str


@dataclass
class SVISite:
    """One group of scales: ``path`` of the layer, ``role`` (``"xi"`` ARD / channels, ``"tau"``
    ADD / filters), ``structure`` in words, the noise law ``noise`` (the prior) and the shape of
    one draw (one entry per unit).

    A layer's own :meth:`~shrinkdrop.nn.NoiseLayer.scale_sites` leave ``path`` empty; the model
    level (:func:`shrinkdrop.inference.scale_sites`) fills in where the layer sits."""

    path: str
    role: str
    structure: str
    noise: _noise.NoiseDistribution
    shape: tuple[int, ...]

    @property
    def name(self) -> str:
        """``path.role`` (just ``role`` for a layer at the root)."""
        return f"{self.path}.{self.role}" if self.path else self.role

    @property
    def bernoulli(self) -> bool:
        """Whether the site's law is Bernoulli (spike-and-slab scales)."""
        return self.noise.is_discrete

    @property
    def units(self) -> int:
        """The number of scales in one draw."""
        return math.prod(self.shape)


class NoisyWeight(NamedTuple):
    """A weight and the noise that scales it: its HP scale is ``c * xi``, ``xi ~ noise``
    (``c = 1 / E[xi]`` for a normalizing layer, else 1). Unpacks as ``(weight, noise, c)``."""

    weight: Tensor
    noise: _noise.NoiseDistribution
    c: float

    def scale_shape(self) -> tuple[int, ...]:
        """The shape of one draw of the weight's scales in the ARD reading: one scale per input
        unit (PyTorch's dimension 1), shared across the outputs (dimension 0) and the kernel:
        ``(1, D_in, 1, ...)``, broadcastable to the weight."""
        w = self.weight
        return (1, w.shape[1]) + (1,) * (w.ndim - 2)


def _scale_factor(module: nn.Module, noise: _noise.NoiseDistribution) -> float:
    if getattr(module, "normalize", False):
        mean = float(noise.mean.reshape(-1)[0])
        if mean == 0.0:
            # Bernoulli(0) (nn.Dropout(p=1)) zeros its input: the layer works, but the weight it
            # scales has no scale prior (c * xi = 0 * inf), so there is no (weight, noise, c)
            raise NotNormalizableError(
                f"{type(module).__name__}: the noise {noise!r} has E[xi] = 0 (it zeros its "
                "input, as nn.Dropout(p=1)), so the scale c = 1 / E[xi] of the weight it "
                "pairs with is undefined; a weight prior needs noise with E[xi] > 0 "
                "(keep > 0), or normalize=False")
        return 1.0 / mean
    return 1.0


Pairing = tuple[Tensor | None, _noise.NoiseDistribution, float]


def weight_pairing(module: nn.Module) -> Pairing | None:
    """How a module with a ``noise`` attribute pairs with a weight: ``None`` when its noise is
    not a scale of a weight (``pairs_with_next_weight = False``); else ``(weight, noise, c)``
    with ``weight`` its own (two or more dimensions) or ``None`` (the next weighted module's).

    :class:`~shrinkdrop.nn.NoiseLayer` answers through this rule; a duck-typed module with a
    ``noise`` attribute is read the same way."""
    noise = module.noise
    if getattr(module, "pairs_with_next_weight", True) is False:
        return None
    w = getattr(module, "weight", None)
    own = w if isinstance(w, torch.Tensor) and w.ndim >= 2 else None
    return own, noise, _scale_factor(module, noise)


def noisy_weights(model: nn.Module) -> list[NoisyWeight]:
    """The ``(weight, noise, c)`` triples of a model: each noisy layer and the weight it scales.

    A module with a ``noise`` attribute and a ``weight`` (``WeightNoiseLinear``, ``NoisyConv2d``)
    pairs with its own weight; a weightless noise module (``UnitNoise``, ``ChannelNoise``) pairs
    with the next module in ``model.modules()`` order that has a ``weight``. ``c`` is the factor
    the layer applies to the noise: ``1 / E[xi]`` if it normalises (``normalize=True``), else 1, so
    the HP scale of the paired weight is ``c * xi``. Layers whose noise is not a scale of the next
    weight (``pairs_with_next_weight = False``: ``AttentionNoise``, ``NoisyStackedRNN``) are left
    out. Every module, :class:`~shrinkdrop.nn.NoiseLayer` or duck-typed, is read by
    :func:`weight_pairing` (what :meth:`~shrinkdrop.nn.NoiseLayer.weight_pairing` returns).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model has to be an nn.Module, but got {type(model).__name__}")
    pairs: list[NoisyWeight] = []
    pending = None
    for m in model.modules():
        if getattr(m, "noise", None) is not None:
            pairing = weight_pairing(m)
            if pairing is None:
                pending = None
            elif pairing[0] is not None:
                pairs.append(NoisyWeight(*pairing))
                pending = None
            else:
                pending = pairing[1:]
            continue
        w = getattr(m, "weight", None)
        if isinstance(w, torch.Tensor) and w.ndim >= 2 and pending is not None:
            pairs.append(NoisyWeight(w, *pending))
            pending = None
    return pairs
