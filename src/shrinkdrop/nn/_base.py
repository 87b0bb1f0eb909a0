"""Shared machinery of the noise layers: the base class, ``StructuredPrior`` and ``mc_mode``."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.distributions import Distribution

from .. import functional as F
from .. import noise as _noise

__all__ = ["StructuredPrior", "NoiseLayer", "mc_mode"]


@dataclass(frozen=True)
class StructuredPrior:
    """The prior a noise layer induces on its weights (hierarchical parametrization).

    Attributes:
        structure: the structure's name ("ARD", "ADD", "ARD+ADD", "DropConnect", ...).
        groups: which weights share one scale, in words.
        noise_shape: the shape of one draw of the noise for the given input, as a tuple of
            strings / ints (``("N", "D_in")``).
        marginal: the marginal prior of one weight, ``noise.marginal_prior(sigma0)`` (``None``
            when the structure has several noise factors of different laws).
        description: one paragraph: the model (per-example or shared sampling) and the prior.
        noise: the noise family.
        sigma0: the Gaussian scale of the weights ``v ~ N(0, sigma0^2)``.
    """

    structure: str
    groups: str
    noise_shape: tuple
    marginal: Distribution | None
    description: str
    noise: _noise.NoiseDistribution | None = field(default=None, repr=False)
    sigma0: float = 1.0


def _sampling_words(shared: bool) -> str:
    if shared:
        return ("one draw per forward pass shared by the whole batch (per sample group): the "
                "paper's global scales, a prior on the weights")
    return ("one draw per example: the noise is part of the likelihood (dropout's model); the "
            "MC objective is the same as for shared scales, the marginal-MAP estimate is not")


class NoiseLayer(nn.Module):
    """Base class of the shrinkdrop layers: holds the noise family and the common switches.

    Noise is on while ``self.training`` or while MC prediction is enabled (``self.mc``, set by
    :func:`mc_mode`); otherwise the layer is deterministic (identity when ``normalize=True``).
    """

    def __init__(
        self,
        noise: _noise.NoiseDistribution,
        *,
        share_across_batch: bool = False,
        normalize: bool = True,
        generator: torch.Generator | None = None,
        noise_name: str = "noise",
    ) -> None:
        super().__init__()
        F.check_noise(noise, noise_name)
        if normalize:
            noise.normalizing_mean(type(self).__name__)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator has to be a torch.Generator or None, but got {type(generator).__name__}"
            )
        self.noise = noise
        self.share_across_batch = bool(share_across_batch)
        self.normalize = bool(normalize)
        self.generator = generator
        self.mc = False

    @property
    def noisy(self) -> bool:
        """Whether the next forward pass applies noise (training or MC mode)."""
        return self.training or self.mc

    def _noise_repr(self) -> str:
        return f"noise={self.noise!r}"

    def extra_repr(self) -> str:
        parts = [self._noise_repr(), f"share_across_batch={self.share_across_batch}",
                 f"normalize={self.normalize}"]
        if self.mc:
            parts.append("mc=True")
        if self.generator is not None:
            parts.append("generator=<torch.Generator>")
        return ", ".join(parts)

    def _kw(self) -> dict:
        return dict(share_across_batch=self.share_across_batch, normalize=self.normalize,
                    generator=self.generator)

    def _marginal(self, noise, sigma0):
        return noise.marginal_prior(sigma0)


class mc_mode:  # noqa: N801 - used like a function / context manager
    """Keep the noise of every shrinkdrop layer in ``model`` on in ``eval()`` (MC prediction).

    Works as a plain call (``shrinkdrop.mc_mode(model)``; undo with ``enabled=False``) and as a
    context manager that restores the previous setting on exit. ``model.training`` is not
    touched, so batch norm etc. stay in eval mode.

    Example:
        >>> model.eval()
        >>> with shrinkdrop.mc_mode(model):
        ...     probs = torch.stack([model(x).softmax(-1) for _ in range(20)]).mean(0)
    """

    def __init__(self, model: nn.Module, enabled: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model has to be an nn.Module, but got {type(model).__name__}")
        self.model = model
        self._previous = [(m, m.mc) for m in model.modules() if isinstance(m, NoiseLayer)]
        for m, _ in self._previous:
            m.mc = bool(enabled)

    @property
    def layers(self) -> list[NoiseLayer]:
        return [m for m, _ in self._previous]

    def __enter__(self) -> nn.Module:
        return self.model

    def __exit__(self, *exc) -> None:
        for m, old in self._previous:
            m.mc = old
