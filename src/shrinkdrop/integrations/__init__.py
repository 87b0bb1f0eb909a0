"""Training shrinkdrop models inside other frameworks, with the loss of :func:`shrinkdrop.fit`
(:class:`~shrinkdrop.train.ShrinkageLoss`: objective over S noise draws + weight prior):

* :mod:`shrinkdrop.integrations.lightning`: a ``LightningModule`` (extra ``lightning``);
* :mod:`shrinkdrop.integrations.hf`: a ``transformers.Trainer`` subclass and its pieces
  (extra ``hf``).

Each module imports its framework on first use; without it, a
:class:`~shrinkdrop.errors.MissingExtraError` names the extra to install.
"""

import importlib
from types import ModuleType

from ..errors import MissingExtraError

__all__: list[str] = []


def _require(module: str, extra: str, what: str, user: str) -> ModuleType:
    """``import module``, or a :class:`~shrinkdrop.errors.MissingExtraError` saying that
    ``user`` needs ``what`` and which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{user} needs {what} ({exc}); install the {extra!r} extra: pip install "
            f"'shrinkdrop[{extra}]'") from None
