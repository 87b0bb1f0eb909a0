"""The prior law of the scales that the MCMC and relevance experiments take by name."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..noise import NoiseDistribution

__all__ = ["ScaleFamily", "scale_law", "LawOptions"]


class ScaleFamily(str, enum.Enum):
    """The families ``shrinkdrop mcmc`` samples (and ``shrinkdrop relevance`` fits)."""

    HALF_CAUCHY = "half_cauchy"
    INVERSE_NAKAGAMI = "inverse_nakagami"
    RAYLEIGH = "rayleigh"
    GAUSSIAN = "gaussian"
    BERNOULLI = "bernoulli"


def scale_law(family: str, *, scale: float = 1.0, df: float = 3.0, keep: float = 0.5,
              mean: float = 1.0) -> NoiseDistribution:
    """The law of the scales: half-Cauchy / Rayleigh of ``scale``, inverse-Nakagami of ``df``
    and ``scale``, Gaussian of ``mean`` and std ``scale``, Bernoulli of ``keep``."""
    from .. import noise

    if family == "half_cauchy":
        return noise.HalfCauchy(scale)
    if family == "inverse_nakagami":
        return noise.InverseNakagami(df, scale)
    if family == "rayleigh":
        return noise.Rayleigh(scale)
    if family == "gaussian":
        return noise.Gaussian(mean, scale)
    if family == "bernoulli":
        return noise.Bernoulli(keep)
    raise ValueError(f"family has to be one of {', '.join(f.value for f in ScaleFamily)}, but "
                     f"got {family!r}")


@dataclass(frozen=True, kw_only=True)
class LawOptions:
    """The options that name the scales' prior law (``noise``: the family's name)."""

    noise: str
    scale: float = 1.0
    df: float = 3.0
    keep: float = 0.5
    mean: float = 1.0

    def law(self) -> NoiseDistribution:
        """The prior law of the scales (:func:`scale_law`)."""
        return scale_law(self.noise, scale=self.scale, df=self.df, keep=self.keep,
                         mean=self.mean)
