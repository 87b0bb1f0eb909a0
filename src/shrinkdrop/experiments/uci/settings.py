"""What a UCI run is made of: its settings, its units of work, and the tasks of a run.

:class:`Settings` is everything besides the data that affects a result (recorded in
``OUT/run.json``); a :class:`UnitTask` is one data set x split x method; :func:`make_tasks` lists
the units of a run, split-major.
"""

from __future__ import annotations

import enum
import math
import zlib
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from ...data import UCIData
from ...errors import DataError
from .methods import Config, base_method, fits_tau, method_configs, split_method

__all__ = [
    "PROTOCOL_VERSION", "COLUMNS", "SKIPPED", "Engine", "ENGINES", "QUICK_SPLITS", "MCMC_DEFAULTS",
    "MCMC_QUICK", "Settings", "DEFAULT_SETTINGS", "UnitTask", "skip_reason", "unit_seed",
    "make_tasks",
]

PROTOCOL_VERSION = "uci-1"

QUICK_SPLITS = 2

COLUMNS = ("dataset", "split", "method", "test_rmse", "test_ll", "selected", "config", "val_ll",
           "test_rmse_mean", "test_error", "epochs", "seconds", "note")

#: the ``note`` of a unit that was not run (it starts with this word)
SKIPPED = "skipped"


@dataclass(frozen=True)
class Settings:
    """Everything besides the data that affects a result (recorded in ``OUT/run.json``)."""

    epochs_multiplier: float = 100.0
    test_samples: int = 10_000
    train_samples: int = 5
    quick: bool = False
    seed: int = 0
    length_scale: float = 1e-2
    batch_size: int = 128
    lr: float = 1e-3
    train_eval: str = ""  # filled in by run_uci: the function that trains and evaluates
    engine: str = "stacked"  # training methods: "stacked" (all splits at once) or "sequential"
    init: str = "torch"  # weights: nn.Linear's default, or "keras" (Glorot uniform, zero biases)
    device: str = "cpu"  # where training methods run ("cuda", "cuda:1", ...); MCMC runs on CPU
    # ---- MCMC methods (``<family>-mcmc``); None = the default for ``quick`` (mcmc_sizes)
    mcmc_max_rows: int = 1000  # MCMC only where the training split has at most this many rows
    mcmc_warmup: int | None = None  # NUTS warm-up iterations per chain (300; quick 20)
    mcmc_samples: int | None = None  # kept draws per chain (300; quick 20)
    mcmc_chains: int | None = None  # chains, run one after the other (2; quick 1)
    mcmc_tree_depth: int | None = None  # NUTS' maximum tree depth (7; quick 4)
    mcmc_sigma0: float = 1.0  # std of v in w = xi v (standardised units), / E[xi] if normalised
    mcmc_backend: str = "pyro"  # "pyro" (the reference) or "jax" (NumPyro, compiled, vectorised)

    def epochs(self, data: UCIData) -> int:
        """Training epochs on ``data``: its ``n_epochs`` x ``epochs_multiplier``, at least 1."""
        return max(1, int(math.ceil(data.n_epochs * self.epochs_multiplier - 1e-9)))

    def mcmc_sizes(self) -> dict[str, int]:
        """The sampler's sizes: the fields where set, else the defaults (smaller if ``quick``)."""
        default = MCMC_QUICK if self.quick else MCMC_DEFAULTS
        return {k: int(getattr(self, f"mcmc_{k}") if getattr(self, f"mcmc_{k}") is not None
                       else v) for k, v in default.items()}

    def record(self) -> dict[str, object]:
        """The settings recorded in ``run.json``. The MCMC fields are left out while they have
        their default values, so a run started before they existed still resumes."""
        rec = asdict(self)
        for f in fields(self):
            if f.name.startswith("mcmc_") and rec[f.name] == f.default:
                del rec[f.name]
        if rec["engine"] == "sequential":  # runs from before the stacked engine resume
            del rec["engine"]
        if rec["init"] == "torch":  # runs from before the init option resume
            del rec["init"]
        if rec["device"] == "cpu":  # runs from before the device option resume
            del rec["device"]
        return {"protocol": PROTOCOL_VERSION, **rec}


#: the settings of a run that names none
DEFAULT_SETTINGS = Settings()

#: the MCMC sampler's sizes (``Settings.mcmc_*`` left at None); the ``shrinkdrop mcmc`` defaults
MCMC_DEFAULTS = {"warmup": 300, "samples": 300, "chains": 2, "tree_depth": 7}
#: ... and under ``--quick``: about a second per grid point on a toy data set
MCMC_QUICK = {"warmup": 20, "samples": 20, "chains": 1, "tree_depth": 4}


@dataclass(frozen=True)
class UnitTask:
    """One unit of work: fit one method on one split (grid search, refit, test)."""

    dataset: str
    split: int
    method: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    configs: tuple[Config, ...]
    n_hidden: int
    epochs: int
    settings: Settings
    task: str = "regression"
    n_classes: int = 0
    seed: int = 0
    extra: dict = field(default_factory=dict)
    skip: str = ""  # why the unit is not run (MCMC on a training split above mcmc_max_rows)

    @property
    def key(self) -> str:
        """The unit's key in the result store."""
        return f"{self.dataset}|split={self.split}|method={self.method}"

    @property
    def family(self) -> str:
        """The method's noise family."""
        return split_method(self.method)[0]

    @property
    def objective(self) -> str:
        """The method's objective (``mcmc`` for posterior sampling)."""
        return split_method(self.method)[1]

    @property
    def fit_tau(self) -> bool:
        """``+tau``: the likelihood's precision is fitted on the validation rows."""
        return fits_tau(self.method)

    def __str__(self) -> str:
        """``<dataset> split <k> <method>``."""
        return f"{self.dataset} split {self.split} {self.method}"


#: training engines: ``stacked`` trains all grid points of all splits of a (data set, method) as
#: one :class:`shrinkdrop.ensemble.StackedNoisyMLP`; ``sequential`` one network at a time
class Engine(str, enum.Enum):
    """How training methods run: all grid points of all splits of a (data set, method) as one
    stacked ensemble, or one network at a time."""

    STACKED = "stacked"
    SEQUENTIAL = "sequential"


#: the engines' names
ENGINES: tuple[str, ...] = tuple(e.value for e in Engine)


def skip_reason(task: UnitTask) -> str:
    """Why ``task`` is not run ("" if it is): MCMC on a training split above the threshold."""
    n, limit = task.x_train.shape[0], task.settings.mcmc_max_rows
    if task.objective == "mcmc" and n > limit:
        return (f"{SKIPPED}: the training split has {n} rows > --mcmc-max-rows {limit} "
                "(MCMC runs only on small data sets)")
    return ""


def unit_seed(settings: Settings, dataset: str, split: int, method: str) -> int:
    """The seed of one unit: stable across processes; a ``+tau`` method has its base method's."""
    # zlib.crc32, not hash(): Python salts str hashes per process. A +tau method has its base
    # method's seed: the same networks, scored with a fitted precision.
    key = f"{dataset}/{split}/{base_method(method)}"
    return (settings.seed * 1_000_003 + zlib.crc32(key.encode())) % (2 ** 31 - 20_000)


def make_tasks(datasets: list[UCIData], splits: list[int] | None, methods: list[str],
               settings: Settings, name: str = "splits") -> list[UnitTask]:
    """All units, split-major (so ``--jobs`` spreads splits over processes); ``name`` spells
    the ``splits`` argument in an error message."""
    tasks = []
    for data in datasets:
        chosen = check_splits(data, splits, settings.quick, name)
        for k in chosen:
            sp = data.splits[k]
            for m in methods:
                mcmc = m.endswith("-mcmc")
                t = UnitTask(
                    dataset=data.name, split=k, method=m,
                    x_train=data.features[sp.train], y_train=data.target[sp.train],
                    x_test=data.features[sp.test], y_test=data.target[sp.test],
                    configs=method_configs(m, data, settings.quick), n_hidden=data.n_hidden,
                    epochs=0 if mcmc else settings.epochs(data), settings=settings,
                    task=data.task, n_classes=data.n_classes,
                    seed=unit_seed(settings, data.name, k, m))
                tasks.append(replace(t, skip=skip_reason(t)))
    return tasks


def check_splits(data: UCIData, splits: list[int] | None, quick: bool,
                 name: str = "splits") -> list[int]:
    """The splits to run on ``data`` (None: all; ``quick``: the first 2); a DataError names a
    split the data set does not have, a ValueError one listed twice (``name`` spells the
    argument)."""
    if splits is None:
        n = min(QUICK_SPLITS, data.n_splits) if quick else data.n_splits
        return list(range(n))
    if isinstance(splits, (str, bytes)) or not all(
            isinstance(k, int) and not isinstance(k, bool) for k in splits):
        raise TypeError(f"{name} has to be a list of split numbers, but got {splits!r}")
    if not splits:
        raise ValueError(f"{name} has to name at least one split, but got none")
    seen = set()
    for k in splits:
        if k in seen:
            raise ValueError(f"{name} has to name each split once, but got {k} twice")
        seen.add(k)
        if not 0 <= k < data.n_splits:
            where = f" ({data.source}/n_splits.txt)" if not data.source.startswith("builtin:") \
                else ""
            raise DataError(f"{name} has to be in 0-{data.n_splits - 1}, but got {k}: split {k} "
                            f"requested but {data.name} has {data.n_splits} splits "
                            f"(0-{data.n_splits - 1}){where}")
    return list(splits)

