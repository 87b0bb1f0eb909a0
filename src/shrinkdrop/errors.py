"""Every exception of shrinkdrop, all under :class:`ShrinkdropError`.

Each also derives from the built-in exception a caller would catch for that kind of problem
(``ValueError`` for a bad value, ``TypeError`` for a wrong kind of object, ``ImportError`` for a
missing optional dependency), so ``except ValueError`` keeps working.
"""

__all__ = [
    "ShrinkdropError",
    "DataError",
    "NotNormalizableError",
    "EvalNoiseError",
    "UnsupportedLayerError",
    "SVIError",
    "InfiniteObjectiveError",
    "MissingExtraError",
    "RunMismatchError",
    "ClusterError",
    "ConversionError",
    "CompactionError",
    "NonFiniteLossError",
    "PartFileWarning",
]


class ShrinkdropError(Exception):
    """Base class of shrinkdrop's own errors (bad input that is not a plain argument error)."""


class DataError(ShrinkdropError, ValueError):
    """A data file or directory is missing or malformed; the message names the file and line."""


# ----------------------------------------------------------------------------- noise and layers
class NotNormalizableError(ShrinkdropError, ValueError):
    """Noise cannot be normalised to mean 1 (E[xi] infinite or zero)."""


class EvalNoiseError(ShrinkdropError, ValueError):
    """Un-normalised noise with infinite mean is evaluated without MC mode."""


class UnsupportedLayerError(ShrinkdropError, TypeError):
    """A noise layer asked for something its structure does not have (e.g. the global scale
    sites of a layer whose noise is not one scale per unit, channel, filter or layer)."""


# ----------------------------------------------------------------------------- training, inference
class InfiniteObjectiveError(ShrinkdropError, ValueError):
    """An objective is infinite (e.g. the HP objective when E[xi^-2] is infinite)."""


class SVIError(ShrinkdropError, ValueError):
    """A model or argument that structured VI cannot handle."""


# ----------------------------------------------------------------------------- experiments
class MissingExtraError(ShrinkdropError, ImportError):
    """An optional feature was asked for whose extra dependencies are not installed; the message
    names the extra to install."""


class RunMismatchError(ShrinkdropError):
    """An experiment's output folder holds results of a run with different settings."""


class ClusterError(ShrinkdropError):
    """The Dask scheduler cannot be reached, or has no workers."""


# ---- issue 26 (conv26)
class ConversionError(ShrinkdropError, ValueError):
    """:func:`shrinkdrop.convert` refuses a model it cannot convert without changing what the model
    computes (e.g. an attention whose eager code it cannot reproduce); the model is left as it
    was."""


# ---- issue 27 (compress27)
class CompactionError(ShrinkdropError, ValueError):
    """A model (or its scales) that :func:`shrinkdrop.compress.compact` cannot turn into a
    smaller plain model; the message names the layer."""


# ---- issue 28 (work28)
class NonFiniteLossError(ShrinkdropError, ValueError, FloatingPointError):
    """Training stopped because the loss became NaN or infinite; the message says at which
    epoch and batch, and why (non-finite data, diverged parameters, outputs or likelihood)."""


# ---- issue 26 (input26)
class PartFileWarning(ShrinkdropError, UserWarning):
    """A file in an experiment's ``OUT/parts/`` is not a part the runner wrote (unreadable,
    truncated, edited, misnamed): it was renamed to ``*.bad`` and its unit is computed again."""
