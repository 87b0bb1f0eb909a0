"""The training loop: any ``nn.Module`` under multiplicative noise, trained with Adam on one of
the objectives of :mod:`shrinkdrop.train.objectives`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._validation import check_int, positive_float
from ..enums import Likelihood, Objective
from ..errors import NonFiniteLossError
from .loss import ShrinkageLoss
from .objectives import marginal_map
from .sources import Source, as_source, diverged, model_error

__all__ = ["fit", "History"]


@dataclass
class History:
    """What :func:`fit` did: per-epoch mean training loss, wall time and the arguments."""

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    args: dict = field(default_factory=dict)
    #: per-epoch mean validation predictive log-likelihood (with ``val=``)
    val_ll: list[float] = field(default_factory=list)
    #: the epoch (0-based) whose weights the model holds at the end (with ``val=``: the best)
    best_epoch: int | None = None

    @property
    def epochs(self) -> int:
        return len(self.loss)


def _cuda_devices(model: nn.Module, *tensors: torch.Tensor) -> list[int]:
    """The CUDA device indices holding ``model``'s parameters or ``tensors``: the generators
    :func:`fit` forks so that seeding leaves the caller's global RNG state untouched."""
    devs = {t.device for t in (*model.parameters(), *model.buffers(), *tensors)}
    return sorted({d.index if d.index is not None else torch.cuda.current_device()
                   for d in devs if d.type == "cuda"})


def _check_categorical(out: torch.Tensor, y: torch.Tensor, what: str) -> None:
    """Class indices in ``[0, C)`` for ``C`` logits (checked once, on the first step)."""
    if y.is_floating_point() and not bool((y == y.round()).all()):
        raise ValueError(f"{what} has to hold class indices (integers) for "
                         f"likelihood='categorical', but got non-integer values")
    C = out.shape[-1]
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= C:
        raise ValueError(f"{what} has to hold class indices in [0, {C - 1}] for a model with "
                         f"{C} outputs, but got values in [{lo}, {hi}]")


def _epoch(model: nn.Module, batches, opt: torch.optim.Optimizer, loss_fn: ShrinkageLoss,
           epoch: int, check: bool, first: torch.Tensor | None, lr: float) -> float:
    """One epoch; the mean training loss over its rows. ``check``: test each step's loss for
    NaN / inf at once (CPU; elsewhere after the epoch, to keep the device asynchronous);
    ``first``: the targets to check the class indices of on this epoch's first step."""
    total, rows, pending = 0.0, 0, []
    for b, (xb, yb) in enumerate(batches):
        if first is not None and b == 0:  # the first step checks the input and class indices
            try:
                out = loss_fn.outputs(model, xb)
            except RuntimeError as exc:
                raise model_error("X", xb, exc) from exc
            if loss_fn.likelihood in ("categorical", Likelihood.CATEGORICAL):
                _check_categorical(out, first if first is not True else yb, "y")
            loss = loss_fn.from_outputs(out, yb, model)
        else:
            loss = loss_fn(model, xb, yb)
        if check:  # on the CPU a scalar read costs about a microsecond: stop at once
            v = loss.item()
            if not math.isfinite(v):
                raise diverged(loss, epoch, b, model, xb, yb, loss_fn, lr)
            total += v * xb.shape[0]
        else:  # keep the device asynchronous: read the losses after the epoch
            pending.append((loss.detach(), xb.shape[0]))
        rows += xb.shape[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if rows == 0:
        raise ValueError("the training data yielded no batches")
    if pending:
        ls = torch.stack([v for v, _ in pending]).double()
        if not bool(torch.isfinite(ls).all()):
            b = int((~torch.isfinite(ls)).nonzero()[0])
            raise NonFiniteLossError(f"the training loss is {float(ls[b])} at epoch {epoch}, "
                                     f"batch {b}; training stopped")
        total = float(ls @ torch.tensor([n for _, n in pending], dtype=torch.float64))
    return total / rows


@torch.no_grad()
def _val_ll(model: nn.Module, val: Source, loss_fn: ShrinkageLoss, samples: int,
            seed: int) -> float:
    """Mean MC predictive log-likelihood (``logsumexp_s - log S``) over the validation rows,
    with its own RNG stream (``seed``): training draws the same noise with or without it."""
    model.eval()
    with torch.random.fork_rng(devices=_cuda_devices(model)):
        torch.manual_seed(seed)
        return _val_pass(model, val, loss_fn, samples)


def _val_pass(model: nn.Module, val: Source, loss_fn: ShrinkageLoss, samples: int) -> float:
    try:
        total, n = 0.0, 0
        for xb, yb in val.epoch(torch.Generator()):
            ll = marginal_map(loss_fn.log_likelihoods(loss_fn.outputs(model, xb, samples), yb))
            total += float(ll.double().sum())
            n += ll.shape[0]
    finally:
        model.train()
    return total / n


def _validation(val, batch_size: int) -> Source | None:
    if val is None:
        return None
    if isinstance(val, (DataLoader, Dataset)):
        if isinstance(val, Dataset):
            val = DataLoader(val, batch_size=batch_size, shuffle=False)
        return as_source(val, None, batch_size, torch.Generator(), xname="val")
    if isinstance(val, (tuple, list)) and len(val) == 2:
        src = as_source(val[0], val[1], batch_size, torch.Generator(), xname="val[0]",
                        yname="val[1]")
        # in order, not shuffled
        src.loader = [(val[0][i:i + batch_size], val[1][i:i + batch_size])
                      for i in range(0, src.n, batch_size)]
        return src
    raise TypeError(f"val has to be a pair (X_val, y_val), a Dataset or a DataLoader, but got "
                    f"{type(val).__name__}")

def fit(
    model: nn.Module,
    X: torch.Tensor | Dataset | DataLoader,
    y: torch.Tensor | None = None,
    *,
    likelihood: str | Likelihood | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = (
        "gaussian"),
    objective: str | Objective = "mc",
    samples: int = 1,
    tau: float | torch.Tensor | None = None,
    sigma0: float | None = None,
    weight_decay: float | None = None,
    epochs: int = 40,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
    beta: float = -1.0,
    callback: Callable[[int, History, nn.Module], bool | None] | None = None,
    generator: torch.Generator | None = None,
    val: tuple[torch.Tensor, torch.Tensor] | Dataset | DataLoader | None = None,
    patience: int | None = None,
    val_samples: int = 8,
) -> History:
    """Train any ``nn.Module`` under multiplicative noise with Adam; returns a :class:`History`.

    Per minibatch the loss is :class:`~shrinkdrop.train.ShrinkageLoss`:
    ``-mean_n obj_n + weight_decay / 2 * ||W||^2`` where ``obj_n`` is the chosen
    :class:`~shrinkdrop.enums.Objective` over ``samples`` noise draws of example ``n`` (one
    ``S * B`` batched pass) and ``W`` are the weights (``ndim >= 2``; biases are not decayed, as
    in Gal's UCI code). ``sigma0`` gives ``weight_decay = 1 / (N sigma0^2)``.

    Args:
        model: the network; trained in train mode, left in eval mode.
        X, y: inputs ``(N, ...)`` and targets ``(N, ...)`` (finite tensors); or ``X`` a
            ``Dataset`` of ``(x, y)`` pairs (shuffled by the generator) or a ``DataLoader``.
        likelihood: ``'gaussian'`` (needs ``tau``; per-example ``log N(y; f(x), 1/tau)``),
            ``'categorical'`` (``f(x)`` are logits), ``'bernoulli'`` (one logit per binary
            target) or a callable ``(output, y) -> (rows,)``. Mis-shaped targets are refused.
        objective: ``'mc'`` | ``'marginal_map'`` | ``'tail_adaptive'`` (``beta`` for the latter).
        samples: S noise draws per example and step.
        sigma0 / weight_decay: at most one (neither: no prior; ``sigma0`` needs a known N).
        epochs, batch_size, lr: Adam, shuffled minibatches.
        seed: seeds torch's global RNG inside ``torch.random.fork_rng`` (global state untouched)
            and the shuffling generator (unless ``generator`` is given).
        progress: tqdm bar over epochs.
        callback: ``callback(epoch, history, model)`` after each epoch; returning True stops.
        generator: the shuffling generator.
        val: validation data (a pair of tensors, a ``Dataset`` or a ``DataLoader``): after each
            epoch the mean MC predictive log-likelihood over ``val_samples`` draws goes into
            ``History.val_ll``, and at the end the model holds the weights of the best epoch.
        patience: with ``val``, stop after this many epochs in a row without a better
            validation log-likelihood (None: run every epoch).
        val_samples: noise draws per validation row.

    Raises:
        ValueError: bad arguments, ``X`` / ``y`` with NaN or inf (naming which), mis-shaped
            targets, class indices out of range; ``NonFiniteLossError`` (a ValueError): the
            loss became NaN or inf (the message says at which epoch and batch, and why).
    """
    loss_fn, src, vsrc, gen = _setup(model, X, y, likelihood, objective, samples, tau, sigma0,
                                     weight_decay, epochs, batch_size, lr, seed, beta, generator,
                                     val, patience, val_samples)
    history = History(args=dict(
        likelihood=likelihood if isinstance(likelihood, str) else "callable",
        objective=loss_fn.objective.value, samples=loss_fn.samples, tau=tau, sigma0=sigma0,
        weight_decay=loss_fn.weight_decay, epochs=epochs, batch_size=batch_size, lr=lr,
        seed=seed, beta=beta, n=src.n))
    start = time.perf_counter()
    with torch.random.fork_rng(devices=_cuda_devices(model, *src.tensors)):
        torch.manual_seed(seed)  # seeds every device's generator: fork those in use
        best = _epochs(model, src, vsrc, gen, _adam(model, lr), loss_fn, history, epochs,
                       progress, callback, patience, val_samples, seed, lr)
    history.best_epoch = history.epochs - 1
    if best is not None:
        model.load_state_dict(best[2])
        history.best_epoch = best[1]
    history.seconds = time.perf_counter() - start
    model.eval()
    return history


def _epochs(model, src, vsrc, gen, opt, loss_fn, history, epochs, progress, callback, patience,
            val_samples, seed, lr) -> tuple | None:
    """The epochs of :func:`fit` (inside its forked RNG); the best validation epoch's
    ``(val_ll, epoch, state_dict)`` (None without validation data)."""
    from tqdm.auto import tqdm

    best, since = None, 0
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    model.train()
    bar = tqdm(range(epochs), disable=not progress,
               desc=f"fit[{loss_fn.objective.value}, S={loss_fn.samples}]")
    for epoch in bar:
        first = (src.y if src.y is not None else True) if epoch == 0 else None
        history.loss.append(_epoch(model, src.epoch(gen), opt, loss_fn, epoch, on_cpu, first,
                                   lr))
        bar.set_postfix(loss=f"{history.loss[-1]:.4g}")
        if vsrc is not None:
            history.val_ll.append(_val_ll(model, vsrc, loss_fn, val_samples, seed + 1 + epoch))
            if best is None or history.val_ll[-1] > best[0]:
                best = (history.val_ll[-1], epoch,
                        {k: v.detach().clone() for k, v in model.state_dict().items()})
                since = 0
            else:
                since += 1
        if callback is not None and callback(epoch, history, model):
            break
        if patience is not None and vsrc is not None and since >= patience:
            break
    bar.close()
    return best


def _adam(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam, in torch's fused kernel where the parameters allow it (CPU or CUDA floating
    tensors: one kernel per step instead of a Python loop over parameters and operations; the
    same algorithm, equal to float rounding), else torch's default implementation."""
    params = list(model.parameters())
    if params and all(p.device.type in ("cpu", "cuda") and p.is_floating_point()
                      for p in params):
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, ValueError):  # pragma: no cover - a dtype the kernel lacks
            pass
    return torch.optim.Adam(params, lr=lr)


def _setup(model, X, y, likelihood, objective, samples, tau, sigma0, weight_decay, epochs,
           batch_size, lr, seed, beta, generator, val, patience, val_samples):
    """The checked arguments of :func:`fit`: the loss, the training and validation sources and
    the shuffling generator."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model has to be an nn.Module, but got {type(model).__name__}")
    check_int("epochs", epochs)
    check_int("batch_size", batch_size)
    positive_float("lr", lr)
    if patience is not None:
        check_int("patience", patience, low=0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed has to be an integer, but got {seed!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    src = as_source(X, y, batch_size, gen)
    devs = {p.device for p in model.parameters()}
    for name, t in (("X", src.X), ("y", src.y)):
        if t is not None and devs and t.device not in devs:
            raise ValueError(f"{name} has to be on the model's device "
                             f"({', '.join(map(str, devs))}), but got {name} on {t.device}")
    if sigma0 is not None and src.n is None:
        raise ValueError("sigma0 needs the number of training rows, which this DataLoader's "
                         "dataset does not give (no len()); pass weight_decay=1/(N sigma0^2)")
    loss_fn = ShrinkageLoss(likelihood, objective=objective, samples=samples, tau=tau,
                            sigma0=sigma0, weight_decay=weight_decay, n=src.n, beta=beta)
    vsrc = _validation(val, batch_size)
    return loss_fn, src, vsrc, gen
