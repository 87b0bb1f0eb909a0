"""Training shrinkdrop models inside other frameworks, with the loss of :func:`shrinkdrop.fit`
(:class:`~shrinkdrop.train.ShrinkageLoss`: objective over S noise draws + weight prior):

* :mod:`shrinkdrop.integrations.lightning`: a ``LightningModule`` (extra ``lightning``);
* :mod:`shrinkdrop.integrations.hf`: a ``transformers.Trainer`` subclass and its pieces
  (extra ``hf``).

Each module imports its framework on first use; without it, a
:class:`~shrinkdrop.errors.MissingExtraError` names the extra to install.
"""

__all__: list[str] = []
