"""shrinkdrop: dropout and its continuous relatives as structured shrinkage priors.

Nalisnick & Smyth, "Unifying the Dropout Family Through Structured Shrinkage Priors".
Multiplicative noise ``xi`` on a layer's inputs is a Gaussian scale-mixture prior on its weights
whose scale is shared by every weight touching that input (ARD).

    >>> import shrinkdrop as sd
    >>> sd.noise.Rayleigh(scale=0.5).marginal_prior(sigma0=1.0)   # Laplace(0, 0.5)
    Laplace(loc: 0.0, scale: 0.5)
"""

from __future__ import annotations

import importlib

from . import noise, priors
from .errors import DataError, ShrinkdropError

__version__ = "0.1.0"

# Submodules and functions loaded on first use, so `import shrinkdrop` stays light.
_LAZY_MODULES = {
    "functional", "nn", "train", "gaps", "inference", "data", "experiments",
}
_LAZY_ATTRS = {
    "convert": "nn",
    "mc_mode": "nn",
    "fit": "train",
}

__all__ = [
    "noise", "priors", "functional", "nn", "train", "gaps", "inference", "data",
    "convert", "mc_mode", "fit", "DataError", "ShrinkdropError", "__version__",
]


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_ATTRS:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY_ATTRS[name]}"), name)
    raise AttributeError(f"module 'shrinkdrop' has no attribute {name!r}")
