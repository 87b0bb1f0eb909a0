"""Shared machinery of the noise layers: the base class, ``StructuredPrior`` and ``mc_mode``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from .. import functional as F
from .. import noise as _noise
from ..errors import UnsupportedLayerError
from .sites import SiteMeaning, SVISite, weight_pairing

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

    A layer also says what it means: its global scale sites (:meth:`scale_sites`, which weights
    share which scale), its forward at given scales (:meth:`forward_at_scales`) and the weight
    its noise scales (:meth:`weight_pairing`). Layers without global scales (DropConnect,
    LSTM, attention noise) raise :class:`~shrinkdrop.errors.UnsupportedLayerError` there.
    """

    #: whether the noise scales a learned weight (``False``: attention / between-RNN noise)
    pairs_with_next_weight: ClassVar[bool] = True
    #: role (``"xi"``, ``"tau"``) -> what that role's scales mean (layers with global scales)
    _MEANINGS: ClassVar[dict[str, SiteMeaning]] = {}
    #: set by :func:`shrinkdrop.inference.given_scales` on an instance for the length of the
    #: context: a callable returning ``{role: scale}``, read at each forward pass
    _given_scales: Callable[[], Mapping[str, Tensor]] | None = None

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

    def __prepare_scriptable__(self) -> nn.Module:
        """Refuse ``torch.jit.script`` with a clear error (torch calls this hook on every
        submodule before scripting): the noise law is a Python object (a
        ``torch.distributions`` subclass with cached Python floats and samplers), which
        TorchScript cannot compile. ``torch.compile`` (``fullgraph=True`` included) and
        ``torch.export`` work instead."""
        raise UnsupportedLayerError(
            f"torch.jit.script cannot compile {type(self).__name__}: its noise law "
            f"({self.noise!r}) is a Python object TorchScript does not support; use "
            "torch.compile(model) (fullgraph=True works) or torch.export.export(model, args) "
            "instead (docs/layers.md, 'Compilation and scripting')")

    def _kw(self) -> dict:
        return dict(share_across_batch=self.share_across_batch, normalize=self.normalize,
                    generator=self.generator)

    def _marginal(self, noise, sigma0):
        return noise.marginal_prior(sigma0)

    # ------------------------------------------------------------- what the layer means
    def _unsupported(self, what: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(
            f"{type(self).__name__} has no {what}: its noise is not one global scale per unit, "
            "channel, filter or layer (layers with scale sites: "
            f"{', '.join(NoiseLayer.layers_with_sites())})")

    @classmethod
    def has_scale_sites(cls) -> bool:
        """Whether this layer type has global scale sites (implements :meth:`scale_sites`)."""
        return cls.forward_at_scales is not NoiseLayer.forward_at_scales

    @staticmethod
    def layers_with_sites() -> list[str]:
        """The names of the noise-layer types that have global scale sites (sorted)."""
        out, todo = [], list(NoiseLayer.__subclasses__())
        while todo:
            cls = todo.pop(0)
            if cls.has_scale_sites() and cls.__name__ not in out:
                out.append(cls.__name__)
            todo.extend(cls.__subclasses__())
        return sorted(out)

    def scale_roles(self) -> tuple[str, ...]:
        """The roles of this layer's scale sites, in order (``"xi"``: ARD / channels,
        ``"tau"``: ADD / filters)."""
        raise self._unsupported("scale roles")

    def scale_sites(self, input_shape: Sequence[int]) -> list[SVISite]:
        """This layer's scale sites for an input of ``input_shape`` (``path`` left empty):
        each site's role, structure, noise law (the prior of the raw scales) and draw shape."""
        raise self._unsupported("scale sites")

    def forward_at_scales(self, x: Tensor, scales: Mapping[str, Tensor]) -> Tensor:
        """The forward pass with the given global scales ``{role: tensor of the site's shape}``
        (unnormalized; no other noise)."""
        raise self._unsupported("forward at given scales")

    def _site(self, role: str, shape: tuple[int, ...],
              noise: _noise.NoiseDistribution | None = None) -> SVISite:
        return SVISite("", role, self._MEANINGS[role].structure,
                       self.noise if noise is None else noise, tuple(int(n) for n in shape))

    def _at_given_scales(self, x: Tensor) -> Tensor:
        """The forward at the scales set by ``given_scales`` (read now: lazily, per pass);
        a role without a given scale is 1 (the unit is on)."""
        cur = self._given_scales()
        own = {role: cur[role] if role in cur else torch.ones((), dtype=x.dtype, device=x.device)
               for role in self.scale_roles()}
        return self.forward_at_scales(x, own)

    def weight_pairing(self) -> tuple[Tensor | None, _noise.NoiseDistribution, float] | None:
        """Which weight this layer's noise scales, as ``(weight, noise, c)``: the layer's own
        weight (two or more dimensions) or ``None`` (the next weighted module's, along its input
        axis: ARD); ``c = 1 / E[xi]`` if the layer normalizes, else 1. ``None`` when the noise
        is not a scale of a learned weight (:attr:`pairs_with_next_weight` is False)."""
        return weight_pairing(self)


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
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled has to be a bool, but got {type(enabled).__name__} "
                            f"({enabled!r})")
        self.model = model
        self._previous = [(m, m.mc) for m in model.modules() if isinstance(m, NoiseLayer)]
        for m, _ in self._previous:
            m.mc = bool(enabled)

    @property
    def layers(self) -> list[NoiseLayer]:
        return [m for m, _ in self._previous]

    def __enter__(self) -> nn.Module:
        return self.model

    def __exit__(self, *exc: object) -> None:
        for m, old in self._previous:
            m.mc = old
