"""Named exceptions of shrinkdrop."""

__all__ = ["ShrinkdropError", "DataError"]


class ShrinkdropError(Exception):
    """Base class of shrinkdrop's own errors (bad input that is not a plain argument error)."""


class DataError(ShrinkdropError, ValueError):
    """A data file or directory is missing or malformed; the message names the file and line."""


# ---- from noise
class NotNormalizableError(ShrinkdropError, ValueError):
    """Raised when noise cannot be normalised to mean 1 (E[xi] infinite or zero)."""


__all__ += ["NotNormalizableError"]
