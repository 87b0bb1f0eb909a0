"""Named exceptions of shrinkdrop."""

__all__ = ["ShrinkdropError", "DataError", "MissingExtraError", "RunMismatchError",
           "ClusterError"]


class ShrinkdropError(Exception):
    """Base class of shrinkdrop's own errors (bad input that is not a plain argument error)."""


class DataError(ShrinkdropError, ValueError):
    """A data file or directory is missing or malformed; the message names the file and line."""


# ---- from noise
class NotNormalizableError(ShrinkdropError, ValueError):
    """Raised when noise cannot be normalised to mean 1 (E[xi] infinite or zero)."""


__all__ += ["NotNormalizableError"]

# ---- from layers (nn/, inference/svi/)
class UnsupportedLayerError(ShrinkdropError, TypeError):
    """A noise layer asked for something its structure does not have (e.g. the global scale
    sites of a layer whose noise is not one scale per unit, channel, filter or layer)."""


class SVIError(ShrinkdropError, ValueError):
    """A model or argument that structured VI cannot handle."""
# ---- from train
class InfiniteObjectiveError(ShrinkdropError, ValueError):
    """An objective is infinite (e.g. the HP objective when E[xi^-2] is infinite)."""


__all__ += ["InfiniteObjectiveError"]
# ---- from cli / experiments
class MissingExtraError(ShrinkdropError, ImportError):
    """An optional feature was asked for whose extra dependencies are not installed; the message
    names the extra to install."""


class RunMismatchError(ShrinkdropError):
    """An experiment's output folder holds results of a run with different settings."""


class ClusterError(ShrinkdropError):
    """The Dask scheduler cannot be reached, or has no workers."""
