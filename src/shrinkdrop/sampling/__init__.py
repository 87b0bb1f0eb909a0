"""The fast draws the noise families call (``docs/layers.md``, "Sampling").

* :mod:`~shrinkdrop.sampling.gamma`: the gamma samplers (the law's generator-driven
  ``standard_gamma`` and the layers' vectorised Marsaglia-Tsang draw for a scalar shape);
* :mod:`~shrinkdrop.sampling.bernoulli`: Bernoulli noise by geometric gaps or 31-bit words;
* :mod:`~shrinkdrop.sampling.rwt`: the exact rectangle-wedge-tail table sampler of the Beta and
  inverse-Nakagami noise (CPU).

Nothing here knows a noise family: the families (:mod:`shrinkdrop.noise`) pass Python floats.
"""

from __future__ import annotations

import torch

__all__ = ["is_cpu"]


def is_cpu(device: torch.device | str | None) -> bool:
    """Whether ``device`` is the CPU (``None``: the default device, the CPU)."""
    if device is None:
        return True
    return (device if isinstance(device, torch.device) else torch.device(device)).type == "cpu"
