"""Named exceptions of shrinkdrop."""

__all__ = ["ShrinkdropError", "DataError"]


class ShrinkdropError(Exception):
    """Base class of shrinkdrop's own errors (bad input that is not a plain argument error)."""


class DataError(ShrinkdropError, ValueError):
    """A data file or directory is missing or malformed; the message names the file and line."""


# ---- from train
class InfiniteObjectiveError(ShrinkdropError, ValueError):
    """An objective is infinite (e.g. the HP objective when E[xi^-2] is infinite)."""


__all__ += ["InfiniteObjectiveError"]
