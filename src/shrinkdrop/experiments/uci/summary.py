"""``summary.md`` and the report's ``section.json`` of a UCI run, from its result rows."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from ...data import UCIData
from ..report import Section, write_section
from ..runner import atomic_write_text
from ..stats import mean_se, pm
from .methods import ALL_METHODS, TAU_FIT_SAMPLES, fits_tau
from .settings import SKIPPED, Settings

__all__ = ["write_summary", "is_skipped", "COMMANDS_FILE", "PROTOCOL_TEXT", "MCMC_TEXT",
           "TAU_TEXT"]

_REF = re.compile(r"test_ll_(?P<tag>(?P<mult>[0-9.]+)_xepochs_(?P<layers>\d+)_hidden_layers)$")


def _references(data: UCIData | None) -> list[dict]:
    """Reference result files paired as (test LL, test MC RMSE) by their epoch/layer tag."""
    if data is None:
        return []
    out = []
    for stem, ll in sorted(data.reference.items()):
        m = _REF.match(stem)
        if not m:
            continue
        rmse = data.reference.get(f"test_MC_rmse_{m['tag']}")
        out.append({"tag": m["tag"], "multiplier": float(m["mult"]), "layers": int(m["layers"]),
                    "ll": ll, "rmse": rmse})
    return out


PROTOCOL_TEXT = (
    "Protocol (MC dropout's, Gal & Ghahramani 2016): per split an inner 80/20 train/validation "
    "split (training rows in index order) chooses the configuration (noise parameter and tau; "
    "across methods, the selected row) by validation log-likelihood; refit on the whole training "
    "split; inputs and targets standardised on the training data; one hidden layer of n_hidden "
    "ReLU units, ARD noise of the method's family on the network's inputs and on the hidden "
    "units (where MC dropout has dropout); weight decay "
    "l^2 (1 - p) / (2 N tau), l = 1e-2; batch 128; Adam. Test RMSE is of the MC predictive mean "
    "and test LL is logsumexp over MC samples (both in the target's units). Mean ± standard "
    "error over splits.")

MCMC_TEXT = (
    "MCMC methods (<family>-mcmc): the same network as a Bayesian model in the EP "
    "(non-centred) parametrization, w = xi v, v ~ N(0, sigma0^2 / E[xi]^2) (E[xi] = 1 for "
    "half-Cauchy, which is not normalised), biases N(0, 1), the Gaussian noise precision "
    "(standardised units) learnt under a Gamma(2, 0.5) prior instead of a tau grid; the grid is "
    "the noise law alone, each grid point one MCMC run on the inner split (Pyro NUTS; Bernoulli "
    "scales: Gibbs sweeps alternating with NUTS), selected by the validation log-likelihood of "
    "the posterior predictive, then sampled again on the whole training split. Test LL: "
    "logsumexp over posterior draws of the Gaussian density (target's units); test RMSE: of the "
    "posterior predictive mean. Run only where the training split has at most mcmc_max_rows "
    "rows; other units are listed as skipped.")


TAU_TEXT = (
    "Methods with +tau: the same networks as the method without it (the same seeds and "
    "training), but the Gaussian likelihood's precision tau is not taken from the grid: per grid "
    "point it is the value that maximises the MC predictive log-likelihood of the validation "
    f"rows (fitted on {TAU_FIT_SAMPLES} draws). Its validation score (which picks the grid point "
    "and takes part in the selection across methods) is cross-fitted on fresh draws: the even "
    "rows at the tau fitted on the odd ones and vice versa, so the fit does not flatter it. The "
    "refit is scored on the test rows at the tau fitted on all validation rows. The grid's tau "
    "still sets the weight decay.")


def is_skipped(row: dict) -> bool:
    """Whether a result row is of a unit that was not run."""
    return str(row.get("note") or "").startswith(SKIPPED)


def _skip_lines(skipped: list[dict]) -> list[str]:
    """One line per (method, reason): which splits were skipped and why."""
    groups: dict[tuple[str, str], list[int]] = {}
    for r in skipped:
        groups.setdefault((r["method"], str(r["note"])), []).append(int(r["split"]))
    return [f"- {m}, split(s) {', '.join(map(str, sorted(ks)))}: {note}"
            for (m, note), ks in groups.items()]


#: every command run into an output folder, one per line, in order (``summary.md`` lists them)
COMMANDS_FILE = "commands.txt"


def _settings_line(settings: Settings) -> str:
    return (f"Settings: epochs = n_epochs x {settings.epochs_multiplier:g}; "
            f"{settings.test_samples} MC samples at validation and test; "
            f"{settings.train_samples} noise samples per step for marginal_map and "
            f"tail_adaptive (1 for mc); seed {settings.seed}"
            + ("; Keras initialisation (Glorot-uniform weights, zero biases)"
               if settings.init == "keras" else "; nn.Linear's initialisation")
            + (f"; trained on {settings.device}" if settings.device != "cpu" else "")
            + ("; QUICK run (reduced grid, epochs and samples: not comparable to the "
               "references)" if settings.quick else "") + ".")


def _head(rows: list[dict], settings: Settings, command: str,
          commands: Sequence[str]) -> tuple[list[str], Section]:
    """The text before the per-data-set tables, and the section with its paragraphs."""
    lines = ["# UCI benchmark", "", PROTOCOL_TEXT, "", _settings_line(settings)]
    mcmc = any(str(r["method"]).endswith("-mcmc") for r in rows)
    tau = any(fits_tau(str(r["method"])) for r in rows)
    if mcmc:
        z = settings.mcmc_sizes()
        lines += ["", MCMC_TEXT, "",
                  f"MCMC settings: {z['chains']} chain(s) x ({z['warmup']} warm-up + "
                  f"{z['samples']} draws), NUTS tree depth {z['tree_depth']}, sigma0 "
                  f"{settings.mcmc_sigma0:g}, mcmc_max_rows {settings.mcmc_max_rows}."]
    if tau:
        lines += ["", TAU_TEXT]
    others = [c for c in commands if c != command]
    if command and not others:
        lines += ["", f"Command: `{command}`"]
    elif command:
        lines += ["", f"Commands run into this folder ({COMMANDS_FILE}; each added its methods, "
                  "rerunning one resumes it; the last one is this summary's):", ""]
        lines += [f"- `{c}`" for c in others + [command]]
    lines.append("")
    # the time it took: the compute time of every finished unit (a resumed run adds up)
    seconds = float(sum(float(r["seconds"]) for r in rows
                        if math.isfinite(float(r.get("seconds") or 0.0))))
    section = Section(title="UCI benchmark", command=command, seconds=seconds)
    section.p(PROTOCOL_TEXT)
    if mcmc:
        section.p(MCMC_TEXT)
    if tau:
        section.p(TAU_TEXT)
    return lines, section


def _method_rows(drows: list[dict], metric: str, sel: dict[int, dict],
                 skipped: list[dict]) -> tuple[list[list], list[str]]:
    """The table's rows of the selected configurations and of every method, and the methods."""
    table = [["selected on validation", len(sel),
              pm(*mean_se([float(r[metric]) for r in sel.values()])),
              pm(*mean_se([float(r["test_ll"]) for r in sel.values()])), len(sel)]]
    methods = [m for m in ALL_METHODS if any(r["method"] == m for r in drows)]
    for m in methods:
        mr = [r for r in drows if r["method"] == m and not is_skipped(r)]
        n_skip = sum(r["method"] == m for r in skipped)
        label = m + (f" (skipped on {n_skip} split(s))" if n_skip else "")
        table.append([label, len(mr), pm(*mean_se([float(r[metric]) for r in mr])),
                      pm(*mean_se([float(r["test_ll"]) for r in mr])),
                      sum(int(r["selected"]) for r in mr)])
    return table, methods


def _reference_rows(drows: list[dict], data: UCIData | None, split_ids: list[int],
                    sel: dict[int, dict], methods: list[str]) -> tuple[list[list], list[str]]:
    """The reference results on the same splits, and the per-split wins against them."""
    table, wins = [], []
    for ref in _references(data):
        idx = [k for k in split_ids if k < len(ref["ll"])]
        label = (f"reference MC dropout ({ref['multiplier']:g}x epochs, {ref['layers']} "
                 f"hidden layer(s)), same splits")
        rm = ref["rmse"]
        table.append([label, len(idx),
                      pm(*mean_se([rm[k] for k in idx if k < len(rm)])) if rm is not None
                      else "-", pm(*mean_se([ref["ll"][k] for k in idx])), "-"])
        for who, rr in [("selected", sel)] + [
                (m, {int(r["split"]): r for r in drows if r["method"] == m})
                for m in ("bernoulli-mc",) if m in methods]:
            common = [k for k in idx if k in rr]
            if not common:
                continue
            ll_w = sum(float(rr[k]["test_ll"]) > ref["ll"][k] for k in common)
            rm_w = sum(float(rr[k]["test_rmse"]) < rm[k] for k in common
                       if rm is not None and k < len(rm))
            wins.append(f"- {who} vs reference ({ref['tag']}): better test LL on {ll_w}/"
                        f"{len(common)} splits, lower RMSE on {rm_w}/{len(common)}")
    return table, wins


def _dataset(name: str, drows: list[dict], data: UCIData | None, lines: list[str],
             section: Section) -> None:
    """One data set's block: appended to ``lines`` and to ``section``."""
    split_ids = sorted({int(r["split"]) for r in drows})
    epochs = sorted({int(r["epochs"]) for r in drows if int(r["epochs"]) > 0})
    epochs_text = f"{'/'.join(map(str, epochs))} epochs" if epochs else "MCMC only"
    lines += [f"## {name}", "",
              f"{len(split_ids)} split(s): {', '.join(map(str, split_ids))}; "
              f"{epochs_text}.", ""]
    skipped = [r for r in drows if is_skipped(r)]
    # classification rows have no RMSE: show the test error rate in that column instead
    metric = "test_rmse" if any(math.isfinite(float(r["test_rmse"])) for r in drows) \
        else "test_error"
    sel = {int(r["split"]): r for r in drows if int(r["selected"]) == 1}
    table, methods = _method_rows(drows, metric, sel, skipped)
    refs, wins = _reference_rows(drows, data, split_ids, sel, methods)
    table += refs
    header = ["method", "splits", "test RMSE" if metric == "test_rmse" else "test error",
              "test LL", "times selected"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in table:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    lines.append("")
    if wins:
        lines += ["Per-split wins:", "", *wins, ""]
    skip_lines = _skip_lines(skipped)
    if skip_lines:
        lines += ["Skipped units (not run; no metrics):", "", *skip_lines, ""]
    section.p(f"**{name}**: {len(split_ids)} split(s), {epochs_text}.")
    section.table(header, table)
    for w in wins + skip_lines:
        section.p(w[2:])


def write_summary(out: str | Path, rows: list[dict], datasets: dict[str, UCIData],
                  settings: Settings, command: str = "",
                  commands: Sequence[str] = ()) -> Path:
    """``summary.md`` (and ``section.json`` for the report) from the assembled rows."""
    out = Path(out)
    lines, section = _head(rows, settings, command, commands)
    for name in sorted({r["dataset"] for r in rows}):
        _dataset(name, [r for r in rows if r["dataset"] == name], datasets.get(name), lines,
                 section)
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    write_section(out, section)
    return out / "summary.md"
