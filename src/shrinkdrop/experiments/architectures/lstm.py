"""``lstm``: tied and untied gate noise of an LSTM forecaster on macro data (section 5.2)."""

from __future__ import annotations

from ..report import Section
from .common import (
    Log,
    Settings,
    bernoulli_or_gaussian,
    fit,
    fit_row,
    grid,
    log_fit,
    model_table,
    regression_scores,
)
from .data import MACRO_FEATURES, load_macrodata

__all__ = ["LSTM_KEEP", "LSTM_GAUSS_STD", "LSTM_HIDDEN", "LSTM_WINDOW", "LSTM_TRAIN_TAU",
           "LSTM_MODELS", "run_lstm", "lstm_section"]

LSTM_KEEP = 0.8
LSTM_GAUSS_STD = 0.5
LSTM_HIDDEN, LSTM_WINDOW, LSTM_TRAIN_TAU = 16, 8, 2.0
LSTM_MODELS: list[tuple[str, str, dict]] = [
    ("none", "nn.LSTM, no noise", dict(kind="lstm")),
    ("input VD", f"nn.LSTM after a per-sequence Bernoulli({LSTM_KEEP}) input mask",
     dict(kind="masked", fam="b")),
    ("Bernoulli tied", f"NoisyLSTM tie_gates=True, Bernoulli({LSTM_KEEP})",
     dict(kind="tied", fam="b")),
    ("Bernoulli untied", f"NoisyLSTM tie_gates=False, Bernoulli({LSTM_KEEP})",
     dict(kind="untied", fam="b")),
    ("Gaussian tied", f"NoisyLSTM tie_gates=True, Gaussian(1, {LSTM_GAUSS_STD})",
     dict(kind="tied", fam="g")),
    ("Gaussian untied", f"NoisyLSTM tie_gates=False, Gaussian(1, {LSTM_GAUSS_STD})",
     dict(kind="untied", fam="g")),
]



def run_lstm(s: Settings, log: Log) -> list[dict]:
    """Per (model, seed) the regression scores on the test windows."""
    from ..models import Forecaster

    data = load_macrodata(LSTM_WINDOW)
    rows = []
    for name, kw, seed in grid(LSTM_MODELS, s.seeds):
        noise = bernoulli_or_gaussian(kw.get("fam"), LSTM_KEEP, LSTM_GAUSS_STD)
        model = Forecaster(data.x[0].shape[-1], LSTM_HIDDEN, noise, kw["kind"])
        hist = fit(model, data.x[0], data.y[0], likelihood="gaussian", tau=LSTM_TRAIN_TAU,
                   epochs=s.lstm_epochs, lr=s.lr, seed=seed, batch_size=32)
        sc = regression_scores(model, data, s.eval_samples, 3000 + seed)
        rows.append(fit_row(name, seed, hist, sc))
        log_fit(log, "lstm", name, seed, hist,
                f"test ll {sc['test_ll']:.3f}, rmse {sc['test_rmse']:.3f}")
    return rows


def lstm_section(sec: Section, rows: list[dict], s: Settings) -> None:
    """The lstm part of the report section."""
    sec.p(f"LSTM forecaster on statsmodels' bundled US macro data (1959-2009, quarterly): "
          f"windows of {LSTM_WINDOW} quarters of 10 series ("
          + ", ".join(MACRO_FEATURES) + f") predict next quarter's inflation; blocked split "
          f"of 6-year blocks with an {LSTM_WINDOW}-quarter purge between parts (test targets "
          f"1975-79 and 1999-2003, validation 1987-91, the rest train). nn.LSTM / NoisyLSTM with "
          f"{LSTM_HIDDEN} hidden units and a linear read-out of the last state, "
          f"{s.lstm_epochs} epochs (MC objective, Gaussian likelihood with training "
          f"tau = {LSTM_TRAIN_TAU} in standardised units, sigma0 = 1); {s.eval_samples} MC "
          f"samples, noise precision picked on the validation split; log-likelihood and RMSE "
          f"in % inflation.")
    table = model_table(LSTM_MODELS, rows, [("test_ll", 3), ("test_rmse", 3),
                                            ("test_rmse_mean", 3)])
    sec.table(["model", "input noise", "seeds", "test log-lik", "test RMSE (MC)",
               "test RMSE (mean)"], table)
    sec.figure("lstm.png", "LSTM on macrodata: test log-likelihood and RMSE per input-noise "
               "structure.")
    sec.note("Input-only variational dropout (Gal & Ghahramani 2016, without the recurrent "
             "mask) IS NoisyLSTM(Bernoulli, tie_gates=True): one Bernoulli mask per sequence "
             "and input dimension, shared by the four gates and all time steps (section 5.2, "
             "tied gate parameters). The 'input VD' row builds it independently (nn.LSTM after "
             "shrinkdrop.nn.UnitNoise drawn on an (N, 1, D) tensor and broadcast over time); its "
             "numbers equal those of 'Bernoulli tied' exactly: with "
             "the same seed both models get the same initial weights and the same mask draws, "
             "so the two implementations compute the same function. The untied prior "
             "gives each gate its own mask per input dimension.")

