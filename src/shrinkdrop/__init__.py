"""shrinkdrop: dropout and its continuous relatives as structured shrinkage priors.

Nalisnick & Smyth, "Unifying the Dropout Family Through Structured Shrinkage Priors".
Multiplicative noise ``xi`` on a layer's inputs is a Gaussian scale-mixture prior on its weights
whose scale is shared by every weight touching that input (ARD).

    >>> import shrinkdrop as sd
    >>> sd.noise.Rayleigh(scale=0.5).marginal_prior(sigma0=1.0)   # Laplace(0, 0.5)
    Laplace(loc: 0.0, scale: 0.5)

The public names are the table ``_PUBLIC`` below; every one is loaded on first use (so
``import shrinkdrop`` stays light), ``dir(shrinkdrop)`` lists exactly ``__all__`` and
``tests/test_public_api.py`` pins it. The architecture: ``docs/architecture.md``.
"""

# No `from __future__ import annotations` here: it would bind a public-looking `annotations`;
# the annotations below evaluate fine on Python >= 3.10.

__version__ = "0.1.0"

#: The public API: name -> (submodule of shrinkdrop, attribute of it or None for the module).
#: The one place to add, move or rename a public name (then update tests/test_public_api.py).
_PUBLIC: dict[str, tuple[str, str | None]] = {
    # subpackages and modules
    "noise": ("noise", None),
    "priors": ("priors", None),
    "functional": ("functional", None),
    "nn": ("nn", None),
    "train": ("train", None),
    "ensemble": ("ensemble", None),
    "gaps": ("gaps", None),
    "inference": ("inference", None),
    "data": ("data", None),
    "errors": ("errors", None),
    "enums": ("enums", None),
    "compress": ("compress", None),
    "metrics": ("metrics", None),
    # shortcuts to the most used functions
    "convert": ("nn", "convert"),
    "mc_mode": ("nn", "mc_mode"),
    "fit": ("train", "fit"),
    # the base exceptions
    "ShrinkdropError": ("errors", "ShrinkdropError"),
    "DataError": ("errors", "DataError"),
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> object:
    """Load a public name of ``_PUBLIC`` on first use (PEP 562)."""
    try:
        module, attr = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'shrinkdrop' has no attribute {name!r}") from None
    from importlib import import_module

    value = import_module(f"{__name__}.{module}")
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    """Exactly the public names (``__all__``), not the helpers of this module."""
    return sorted(__all__)
