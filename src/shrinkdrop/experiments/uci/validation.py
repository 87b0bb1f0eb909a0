"""Every check of a UCI run's arguments, in one place, before anything is written.

The checks name a parameter through ``flag`` (identity for the library: ``jobs``; the command
line passes its own spelling: ``--jobs``), so a run is validated once, whichever door it came in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ...data import UCIData
from ...ensemble import check_init
from ..runner import EXECUTORS
from .methods import base_method, fits_tau, split_method
from .settings import ENGINES, Settings

__all__ = ["check_device", "check_run", "plain"]

_MCMC_INTS = ("mcmc_max_rows", "mcmc_warmup", "mcmc_samples", "mcmc_chains", "mcmc_tree_depth")


def plain(name: str) -> str:
    """A parameter's name as the library spells it (the default ``flag``)."""
    return name


def check_device(device: str) -> str:
    """``device`` as given, if torch can run on it here; else a ValueError naming it."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device has to be a torch device such as 'cpu' or 'cuda', but got "
                         f"{device!r} ({str(e).splitlines()[0]})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device has to be one torch can use here, but got {device!r}: "
                             f"torch {torch.__version__} sees no CUDA device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device has to be one torch can use here, but got {device!r}: "
                             f"there are {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ValueError(f"device has to be 'cpu' or a CUDA device, but got {device!r}")
    return device


def _is_int(v: object, low: int) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and v >= low


def _finite_positive(v: object) -> bool:
    return (not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
            and v > 0)


def _check_settings(settings: Settings, flag: Callable[[str], str]) -> None:
    if not _finite_positive(settings.epochs_multiplier):
        raise ValueError(f"{flag('epochs_multiplier')} has to be a finite number > 0, but got "
                         f"{settings.epochs_multiplier!r}")
    for name in ("test_samples", "train_samples"):
        v = getattr(settings, name)
        if not _is_int(v, 1):
            raise ValueError(f"{flag(name)} has to be an integer >= 1, but got {v!r}")
    if not _is_int(settings.seed, 0):
        raise ValueError(f"{flag('seed')} has to be an integer >= 0, but got {settings.seed!r}")
    for name in _MCMC_INTS:
        v = getattr(settings, name)
        low = 0 if name == "mcmc_warmup" else 1
        if v is not None and not _is_int(v, low):
            raise ValueError(f"{flag(name)} has to be an integer >= {low}, but got {v!r}")
    if not _finite_positive(settings.mcmc_sigma0):
        raise ValueError(f"{flag('mcmc_sigma0')} has to be a finite number > 0, but got "
                         f"{settings.mcmc_sigma0!r}")
    if settings.engine not in ENGINES:
        raise ValueError(f"engine has to be one of {', '.join(ENGINES)}, but got "
                         f"{settings.engine!r}")
    check_init(settings.init)


def check_run(datasets: Sequence[UCIData], methods: Sequence[str], settings: Settings,
              jobs: int | None, stack_splits: int, executor: str, scheduler: str | None,
              flag: Callable[[str], str] = plain) -> None:
    """Check everything about a run but its data and splits (the data loaders check those) and
    the folder's earlier settings (the result store does); a ValueError names what is wrong."""
    if not methods:
        raise ValueError(f"{flag('methods')} has to name at least one method, but got none")
    for m in methods:
        split_method(m)
    tau_methods = [m for m in methods if fits_tau(m)]
    for d in datasets:
        if tau_methods and d.task != "regression":
            raise ValueError(f"{flag('methods')} {', '.join(tau_methods)} fit the Gaussian "
                             f"likelihood's precision, but data set {d.name} is {d.task} (they "
                             f"need a regression data set): use "
                             f"{', '.join(base_method(m) for m in tau_methods)}")
    _check_settings(settings, flag)
    if jobs is not None and not _is_int(jobs, 1):
        raise ValueError(f"{flag('jobs')} has to be an integer >= 1, but got {jobs!r}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor has to be one of {', '.join(EXECUTORS)}, but got "
                         f"{executor!r}")
    if scheduler is not None and executor != "dask":
        raise ValueError(f"{flag('scheduler')} {scheduler} needs {flag('executor')} dask, but "
                         f"got {flag('executor')} {executor}")
    if not _is_int(stack_splits, 0):
        raise ValueError(f"{flag('stack_splits')} has to be an integer >= 0, but got "
                         f"{stack_splits!r}")
    if executor == "local":
        check_device(settings.device)
