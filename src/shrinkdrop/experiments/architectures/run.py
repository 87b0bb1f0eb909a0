"""Run the architecture experiments asked for and write their tables, plots and section."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...errors import MissingExtraError
from ..report import Section, write_section
from ..runner import write_csv_atomic
from .cnn import CNN_MODELS, cnn_section, run_cnn
from .common import Experiment, Log, Settings, errorbar_plot
from .lstm import LSTM_MODELS, lstm_section, run_lstm
from .resnet import plot_resnet_layers, resnet_section, run_resnet

__all__ = ["ArchitecturesOptions", "run", "RESNET_COLUMNS", "LAYER_COLUMNS", "CNN_COLUMNS",
           "LSTM_COLUMNS"]

RESNET_COLUMNS = ["model", "seed", "test_ll", "test_rmse", "test_rmse_mean", "val_ll", "tau",
                  "layers_on", "map_prob", "train_seconds", "final_loss"]
LAYER_COLUMNS = ["model", "seed", "layer", "inclusion", "log_bf_drop", "contribution"]
CNN_COLUMNS = ["model", "seed", "test_acc", "test_ll", "test_acc_mean", "test_ll_mean",
               "train_seconds", "eval_seconds", "final_loss"]
LSTM_COLUMNS = ["model", "seed", "test_ll", "test_rmse", "test_rmse_mean", "val_ll", "tau",
                "train_seconds", "final_loss"]



@dataclass(frozen=True)
class ArchitecturesOptions:
    """One ``shrinkdrop architectures`` run: where, which experiments, with what settings.

    ``strict``: an experiment whose optional data is missing is an error (it was asked for by
    name) instead of a note in the report."""

    out: str
    experiments: tuple[Experiment, ...] = tuple(Experiment)
    settings: Settings = field(default_factory=Settings)
    quick: bool = False
    strict: bool = False


def run(args: ArchitecturesOptions, *, command: str = "") -> int:
    """Run the experiments of ``args`` and write ``OUT``; ``command`` is the run's command line
    (the report shows it). Returns 0."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    # one thread (the machine is shared) and torch's global RNG left as it was for the caller
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            return _run(args, out, command)
    finally:
        torch.set_num_threads(threads)


def _resnet(out: Path, sec: Section, s: Settings, log: Log) -> None:
    rows, layer_rows = run_resnet(s, log)
    write_csv_atomic(out / "resnet.csv", rows, RESNET_COLUMNS)
    write_csv_atomic(out / "resnet_layers.csv", layer_rows, LAYER_COLUMNS)
    plot_resnet_layers(out / "resnet_layers.png", layer_rows)
    sec.p("**Residual MLP with ADD (section 5.1).**")
    resnet_section(sec, rows, layer_rows, s)


def _cnn(out: Path, sec: Section, s: Settings, log: Log) -> None:
    rows = run_cnn(s, log)
    write_csv_atomic(out / "cnn.csv", rows, CNN_COLUMNS)
    errorbar_plot(out / "cnn.png", rows, [m for m, _, _ in CNN_MODELS],
                  [("test_acc", "test accuracy (MC)"), ("test_ll", "test log-lik (MC)")],
                  "digits CNN")
    sec.p("**CNN priors on digits (section 5.3).**")
    cnn_section(sec, rows, s)


def _lstm(out: Path, sec: Section, s: Settings, log: Log, strict: bool) -> None:
    try:
        rows = run_lstm(s, log)
    except MissingExtraError as exc:
        if strict:
            raise
        print(f"shrinkdrop architectures: lstm skipped: {exc}", file=sys.stderr)
        sec.note(f"LSTM experiment skipped: {exc}")
        return
    write_csv_atomic(out / "lstm.csv", rows, LSTM_COLUMNS)
    errorbar_plot(out / "lstm.png", rows, [m for m, _, _ in LSTM_MODELS],
                  [("test_ll", "test log-lik (per quarter)"),
                   ("test_rmse", "test RMSE (% inflation)")], "macrodata LSTM")
    sec.p("**LSTM gate noise on macro data (section 5.2).**")
    lstm_section(sec, rows, s)


def _run(args: ArchitecturesOptions, out: Path, command: str) -> int:
    t0 = time.perf_counter()
    s = args.settings

    def log(msg: str) -> None:
        print(f"[architectures {time.perf_counter() - t0:6.1f} s] {msg}", flush=True)

    sec = Section("Architectures on real data (section 5: ADD, CNN priors, LSTM gate noise)",
                  command, 0.0)
    sec.p(f"{s.seeds} seeds per model (initialisation, noise and minibatch order); the data "
          "splits are fixed, so every model is scored on the same held-out points. Errors are "
          "mean ± standard error over seeds. Per-seed numbers: resnet.csv, resnet_layers.csv, "
          "cnn.csv, lstm.csv." + (" Quick mode: few epochs, so the numbers show that the "
                                   "pipeline runs, not which prior wins." if args.quick else ""))
    if Experiment.RESNET in args.experiments:
        _resnet(out, sec, s, log)
    if Experiment.CNN in args.experiments:
        _cnn(out, sec, s, log)
    if Experiment.LSTM in args.experiments:
        _lstm(out, sec, s, log, args.strict)
    sec.seconds = time.perf_counter() - t0
    write_section(out, sec)
    log(f"done: {out / 'section.json'}")
    return 0
