"""Named exceptions of shrinkdrop."""

__all__ = ["ShrinkdropError", "DataError", "MissingExtraError", "RunMismatchError",
           "ClusterError"]


class ShrinkdropError(Exception):
    """Base class of shrinkdrop's own errors (bad input that is not a plain argument error)."""


class DataError(ShrinkdropError, ValueError):
    """A data file or directory is missing or malformed; the message names the file and line."""


# ---- from cli / experiments
class MissingExtraError(ShrinkdropError, ImportError):
    """An optional feature was asked for whose extra dependencies are not installed; the message
    names the extra to install."""


class RunMismatchError(ShrinkdropError):
    """An experiment's output folder holds results of a run with different settings."""


class ClusterError(ShrinkdropError):
    """The Dask scheduler cannot be reached, or has no workers."""
