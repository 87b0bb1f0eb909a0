"""``convert``: replace dropout / stochastic-depth modules of a model by structured noise layers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from .. import functional as F
from .. import noise as _noise
from ._base import NoiseLayer
from .residual import NoisyResidual
from .unit import ChannelNoise, LayerNoise, UnitNoise

__all__ = ["convert", "ConversionReport", "Replacement"]


@dataclass(frozen=True)
class Replacement:
    """One replaced module: its qualified name, the old module and the new layer (as text)."""

    name: str
    old: str
    new: str


@dataclass
class ConversionReport:
    """What :func:`convert` replaced, and what it left alone and why."""

    replaced: list[Replacement] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.replaced)

    def __str__(self) -> str:
        lines = [f"replaced {len(self.replaced)} module(s)"]
        lines += [f"  {r.name}: {r.old} -> {r.new}" for r in self.replaced]
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)


def _drop_rate(module: nn.Module) -> tuple[str, float] | None:
    """(kind, p) for modules convert understands, else None."""
    if isinstance(module, (nn.AlphaDropout, nn.FeatureAlphaDropout)):
        return None
    if isinstance(module, (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)):
        return "channel", float(module.p)
    if isinstance(module, nn.Dropout):
        return "unit", float(module.p)
    cls = type(module).__name__
    if cls == "StochasticDepth" and hasattr(module, "p"):  # torchvision.ops.StochasticDepth
        mode = getattr(module, "mode", "row")
        return ("layer_batch" if mode == "batch" else "layer"), float(module.p)
    if cls == "DropPath" and hasattr(module, "drop_prob"):  # timm.layers.DropPath
        return "layer", float(module.drop_prob)
    return None


def _family(noise, p: float) -> _noise.NoiseDistribution:
    if isinstance(noise, _noise.NoiseDistribution):
        return noise
    if isinstance(noise, str):
        if noise == "bernoulli":
            return _noise.Bernoulli(1.0 - p)
        if noise == "gaussian":
            return _noise.Gaussian.dropout(p)
        raise ValueError(
            f"noise has to be a noise family, a callable p -> family, 'bernoulli' or 'gaussian' "
            f"(matched to each module's drop rate p), but got {noise!r}"
        )
    if callable(noise):
        fam = noise(p)
        return F.check_noise(fam, "noise(p)")
    raise TypeError(
        "noise has to be a shrinkdrop.noise family, a callable p -> family, 'bernoulli' or "
        f"'gaussian', but got {type(noise).__name__}"
    )


def convert(model: nn.Module,
            noise: _noise.NoiseDistribution | str | Callable[[float], _noise.NoiseDistribution],
            *, share_across_batch: bool = False, normalize: bool = True,
            generator=None) -> ConversionReport:
    """Replace dropout and stochastic-depth modules of ``model`` in place by structured layers.

    * ``nn.Dropout`` -> :class:`UnitNoise` (ARD);
    * ``nn.Dropout1d/2d/3d`` -> :class:`ChannelNoise` (tied filters);
    * torchvision ``StochasticDepth`` (mode "row" / "batch") and timm ``DropPath`` ->
      :class:`LayerNoise` (ADD on the branch output; "batch" becomes ``share_across_batch``).

    ``nn.AlphaDropout`` and ``nn.FeatureAlphaDropout`` (not multiplicative noise) and modules
    with drop rate 0 when the family is derived from the rate are left alone and reported.

    Args:
        model: the model, modified in place (``convert`` on a bare dropout module raises: wrap it).
        noise: a family used for every replaced module, or ``"bernoulli"`` / ``"gaussian"``
            (``Bernoulli(1 - p)`` / ``Gaussian.dropout(p)`` matched to each module's rate p), or a
            callable ``p -> family``.
        share_across_batch, normalize, generator: passed to the new layers.

    Returns:
        a :class:`ConversionReport` (``.replaced``: name, old, new; ``.skipped``: name, reason).

    Example:
        >>> report = shrinkdrop.convert(model, shrinkdrop.noise.Rayleigh(0.5))
        >>> print(report)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model has to be an nn.Module, but got {type(model).__name__}")
    if _drop_rate(model) is not None:
        raise ValueError("convert replaces submodules in place; wrap a bare dropout module "
                         "(e.g. nn.Sequential(module)) before converting")
    report = ConversionReport()
    derived = not isinstance(noise, _noise.NoiseDistribution)
    def visit(parent: nn.Module, prefix: str) -> None:
        for child_name, child in list(parent.named_children()):
            name = f"{prefix}{child_name}"
            if isinstance(child, (nn.AlphaDropout, nn.FeatureAlphaDropout)):
                report.skipped.append((name, f"{type(child).__name__} is not multiplicative"))
                continue
            found = _drop_rate(child)
            if found is None:
                if not isinstance(child, NoiseLayer) or isinstance(child, NoisyResidual):
                    visit(child, f"{name}.")
                continue
            kind, p = found
            if derived and p == 0:
                report.skipped.append((name, "drop rate 0: no noise"))
                continue
            fam = _family(noise, p)
            kw = dict(normalize=normalize, generator=generator)
            if kind == "unit":
                new = UnitNoise(fam, share_across_batch, **kw)
            elif kind == "channel":
                new = ChannelNoise(fam, share_across_batch, **kw)
            else:
                new = LayerNoise(fam, share_across_batch or kind == "layer_batch", **kw)
            new.train(child.training)
            setattr(parent, child_name, new)
            report.replaced.append(Replacement(name, repr(child), repr(new)))

    visit(model, "")
    return report
