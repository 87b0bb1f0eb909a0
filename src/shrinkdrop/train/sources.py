"""Where :func:`shrinkdrop.fit` gets its minibatches: in-memory tensors, a ``Dataset`` or a
``DataLoader``; the checks of what comes out of them (finite values, matching rows) and the
diagnosis of a step whose loss is not finite."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import NonFiniteLossError

__all__ = ["Source", "as_source", "check_finite", "check_input", "model_error", "unpack_batch",
           "diverged"]

#: words of torch's errors for an input that does not fit a layer
_SHAPE_WORDS = ("shape", "size", "channels", "dimension")


def check_input(name: str, x: object) -> torch.Tensor:
    """``x`` as a non-empty tensor with data (not on the meta device) and finite values."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} has to be a tensor, but got {type(x).__name__}")
    if x.device.type == "meta":
        raise ValueError(f"{name} is on the meta device (a shape without values); it has to "
                         "hold data on the model's device")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{name} has to have at least one row, but it is empty (shape "
                         f"{tuple(x.shape)})")
    check_finite(name, x)
    return x


def model_error(name: str, x: torch.Tensor, exc: RuntimeError) -> Exception:
    """A ``ValueError`` naming ``name`` for torch's error about an input of the wrong shape
    (the same error back for any other)."""
    msg = str(exc)
    if any(w in msg for w in _SHAPE_WORDS):
        first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
        return ValueError(f"{name} of shape {tuple(x.shape)} does not fit the model ({first})")
    return exc


def check_finite(name: str, t: torch.Tensor) -> None:
    """Raise a ``ValueError`` naming ``name`` if the floating tensor ``t`` holds NaN or inf."""
    if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            rows = bad.reshape(bad.shape[0], -1).any(1).nonzero() if t.ndim else None
            where = f" (first in row {int(rows[0])})" if rows is not None and len(rows) else ""
            raise ValueError(
                f"{name} has to hold finite values, but got {int(bad.sum())} NaN or infinite "
                f"value(s){where}; drop or impute them")


def unpack_batch(batch: object, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch ``(x, y)`` (a pair, or a dict with ``'x'`` and ``'y'``) of a Dataset or loader."""
    if isinstance(batch, dict) and "x" in batch and "y" in batch:
        return batch["x"], batch["y"]
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(f"a batch of {where} has to be a pair (x, y) or a dict with 'x' and 'y', "
                    f"but got {type(batch).__name__}"
                    + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""))


@dataclass
class Source:
    """Minibatches of one epoch, and the number of rows (None when the loader does not say)."""

    X: torch.Tensor | None
    y: torch.Tensor | None
    loader: DataLoader | None
    n: int | None
    batch_size: int

    def epoch(self, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.loader is not None:
            for batch in self.loader:
                yield unpack_batch(batch, "the DataLoader")
            return
        N = self.n
        perm = torch.randperm(N, generator=gen)
        for i in range(0, N, self.batch_size):
            idx = perm[i : i + self.batch_size]
            yield self.X[idx], self.y[idx]

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(t for t in (self.X, self.y) if t is not None)


def _check_rows(X: torch.Tensor, y: torch.Tensor, xname: str, yname: str) -> int:
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{xname} and {yname} have to be tensors (or {xname} a Dataset or "
                        f"DataLoader of (x, y) pairs), but got {type(X).__name__} and "
                        f"{type(y).__name__}")
    if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
        raise ValueError(f"{xname} and {yname} have to have the same number of rows, but got "
                         f"{xname} of shape {tuple(X.shape)} and {yname} of shape "
                         f"{tuple(y.shape)}")
    if X.shape[0] == 0:
        raise ValueError(f"{xname} has to have at least one row, but got 0")
    check_input(xname, X)
    check_input(yname, y)
    return X.shape[0]


def as_source(X: object, y: object, batch_size: int, gen: torch.Generator, *,
              xname: str = "X", yname: str = "y") -> Source:
    """Tensors ``X, y``; a ``Dataset`` of pairs (shuffled by a ``DataLoader`` with ``gen``); or a
    ``DataLoader`` (used as it is; ``y`` must then be None)."""
    if isinstance(X, (DataLoader, Dataset)):
        if y is not None:
            raise ValueError(f"{yname} has to be None when {xname} is a "
                             f"{type(X).__name__} (it yields the targets), but got "
                             f"{type(y).__name__}")
        if isinstance(X, DataLoader):
            ds = X.dataset
            n = len(ds) if hasattr(ds, "__len__") else None
            return Source(None, None, X, n, X.batch_size or batch_size)
        if not hasattr(X, "__len__") or len(X) == 0:
            raise ValueError(f"{xname} has to be a non-empty Dataset with a length")
        loader = DataLoader(X, batch_size=batch_size, shuffle=True, generator=gen)
        return Source(None, None, loader, len(X), batch_size)
    if y is None:
        raise TypeError(f"{yname} is needed when {xname} is a tensor (only a Dataset or "
                        "DataLoader carries its own targets)")
    n = _check_rows(X, y, xname, yname)
    return Source(X, y, None, n, batch_size)


def diverged(loss: torch.Tensor, epoch: int, batch: int, model: nn.Module, xb: torch.Tensor,
             yb: torch.Tensor, loss_fn, lr: float) -> NonFiniteLossError:
    """The error for a non-finite training loss at ``(epoch, batch)``, saying why: non-finite
    inputs or targets in the batch, parameters already diverged, non-finite outputs of finite
    weights, a log-likelihood non-finite for finite outputs, or the prior."""
    at = f"the training loss is {float(loss.detach())} at epoch {epoch}, batch {batch}"
    if xb.is_floating_point() and not bool(torch.isfinite(xb).all()):
        why = "the batch's inputs (X) hold NaN or inf"
    elif yb.is_floating_point() and not bool(torch.isfinite(yb).all()):
        why = "the batch's targets (y) hold NaN or inf"
    elif not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        why = (f"the model's parameters are no longer finite (an earlier step diverged: lower "
               f"lr={lr:g}, or standardise the inputs and targets)")
    else:
        with torch.no_grad():
            out = loss_fn.outputs(model, xb)
            if not bool(torch.isfinite(out).all()):
                why = ("the model's outputs are not finite for finite inputs and weights "
                       "(overflow: standardise the inputs or lower lr)")
            elif not bool(torch.isfinite(loss_fn.log_likelihoods(out, yb)).all()):
                why = ("the log-likelihood is not finite for finite outputs (a target outside "
                       "the likelihood's support, e.g. a Bernoulli target outside [0, 1], or an "
                       "extreme tau)")
            else:
                why = "the weight prior's penalty is not finite (check sigma0 / weight_decay)"
    return NonFiniteLossError(f"{at}: {why}; training stopped")
