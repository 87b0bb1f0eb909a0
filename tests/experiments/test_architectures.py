"""The ``shrinkdrop architectures`` verb end to end (tiny settings), its models and read-outs."""

from __future__ import annotations

import csv
import importlib.util
import json
import math

import pytest
import torch

from shrinkdrop import noise as N
from shrinkdrop.cli import main
from shrinkdrop.experiments import architectures as A
from shrinkdrop.experiments.models import Forecaster, ResidualMLP, layer_scale_posterior

HAS_STATSMODELS = importlib.util.find_spec("statsmodels") is not None


def _tiny(seeds: int = 2) -> A.Settings:
    return A.Settings(seeds=seeds, resnet_epochs=2, cnn_epochs=1, lstm_epochs=2,
                      eval_samples=2, lr=4e-3)


@pytest.fixture(scope="module")
def arch_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("architectures")
    mp = pytest.MonkeyPatch()
    mp.setattr(A.Settings, "quick", classmethod(lambda cls, seeds=2: _tiny(seeds)))
    try:
        assert main(["architectures", "--out", str(out), "--quick"]) == 0
    finally:
        mp.undo()
    return out


def _rows(path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _check_rows(rows, models, seeds, metrics):
    assert sorted((r["model"], int(r["seed"])) for r in rows) == sorted(
        (m, s) for m, _, _ in models for s in range(seeds))
    for r in rows:
        for k in metrics:
            assert math.isfinite(float(r[k])), (k, r)


def test_resnet_and_cnn_outputs(arch_out):
    _check_rows(_rows(arch_out / "resnet.csv"), A.RESNET_MODELS, 2,
                ["test_ll", "test_rmse", "tau", "train_seconds"])
    layers = _rows(arch_out / "resnet_layers.csv")
    assert len(layers) == len(A.RESNET_MODELS) * 2 * A.RESNET_DEPTH
    for r in layers:
        assert float(r["contribution"]) >= 0
        has_add = "ADD" in r["model"]
        assert math.isfinite(float(r["inclusion"])) == has_add, r
        if has_add:
            assert 0 <= float(r["inclusion"]) <= 1
    cnn = _rows(arch_out / "cnn.csv")
    _check_rows(cnn, A.CNN_MODELS, 2, ["test_acc", "test_ll", "test_acc_mean"])
    assert all(0 <= float(r["test_acc"]) <= 1 and float(r["test_ll"]) <= 0 for r in cnn)
    for name in ("resnet_layers.png", "cnn.png", "section.json"):
        assert (arch_out / name).stat().st_size > 0, name


def test_section(arch_out):
    sec = json.loads((arch_out / "section.json").read_text())
    assert sec["command"].startswith("shrinkdrop architectures") and "--quick" in sec["command"]
    assert sec["seconds"] > 0
    tables = [b for b in sec["blocks"] if b["kind"] == "table"]
    assert len(tables) >= 3 if HAS_STATSMODELS else len(tables) >= 2
    for b in sec["blocks"]:
        if b["kind"] == "figure":
            assert (arch_out / b["path"]).is_file(), b["path"]
    # every mean ± SE cell is a pair of numbers
    for b in tables:
        for row in b["rows"]:
            for cell in row:
                if " ± " in cell:
                    m, se = cell.split(" ± ")
                    assert math.isfinite(float(m)) and math.isfinite(float(se)), cell
    if not HAS_STATSMODELS:
        assert any("skipped" in b.get("text", "") and A.EXTRA in b.get("text", "")
                   for b in sec["blocks"])


def test_lstm_outputs_and_input_vd_equivalence(arch_out):
    pytest.importorskip("statsmodels")
    rows = _rows(arch_out / "lstm.csv")
    _check_rows(rows, A.LSTM_MODELS, 2, ["test_ll", "test_rmse", "tau"])
    assert (arch_out / "lstm.png").stat().st_size > 0
    # NoisyLSTM(Bernoulli, tie_gates=True) is input-only variational dropout: with the same seed
    # the independent nn.LSTM + per-sequence mask implementation gives the same numbers
    by = {(r["model"], r["seed"]): r for r in rows}
    for s in ("0", "1"):
        for k in ("test_ll", "test_rmse", "final_loss"):
            assert float(by["input VD", s][k]) == pytest.approx(
                float(by["Bernoulli tied", s][k]), rel=1e-5), k


def test_macrodata_split_is_purged():
    pytest.importorskip("statsmodels")
    tr, va, te = A.blocked_split(194, 8)
    assert not set(tr) & set(te) and not set(tr) & set(va) and not set(va) & set(te)
    # no window of one part lies within `window` steps after a window of another part
    owner = {int(i): p for p, idx in enumerate((tr, va, te)) for i in idx}
    for i, p in owner.items():
        for j in range(i - 8, i):
            assert owner.get(j, p) == p, (i, j)
    d = A.load_macrodata()
    assert d.x[0].shape[1:] == (8, len(A.MACRO_FEATURES))
    assert [len(y) for y in d.y] == [len(tr), len(va), len(te)]


def test_missing_extra_is_named(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "statsmodels" else real(name, *a))
    assert main(["architectures", "--out", str(tmp_path), "--only", "lstm"]) == 2
    err = capsys.readouterr().err
    assert f"shrinkdrop[{A.EXTRA}]" in err and "statsmodels" in err


@pytest.mark.parametrize("argv, needle", [
    (["--only", "resnet,rnn"], "'resnet', 'cnn', 'lstm'"),
    (["--only", ","], "--only"),
    (["--seeds", "0"], "--seeds"),
])
def test_bad_arguments(tmp_path, capsys, argv, needle):
    assert main(["architectures", "--out", str(tmp_path / "o"), *argv]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_layer_posterior_prior_for_a_dead_block_and_one_for_a_needed_block():
    """A block that computes nothing keeps exactly its prior inclusion; a block the data need
    (the data were made by the network with every block on) gets inclusion ~1."""
    torch.manual_seed(0)
    model = ResidualMLP(3, width=8, depth=4, layer_noise=N.Bernoulli(0.7)).eval()
    with torch.no_grad():
        for p in model.blocks[2].block.parameters():
            p.zero_()
        for p in model.blocks[1].block.parameters():
            p.mul_(5.0)
    x = torch.randn(200, 3)
    with torch.no_grad():
        y = model(x).squeeze(-1) + 0.05 * torch.randn(200)
    post = layer_scale_posterior(
        model, x, y, 0.7, lambda out, yy: -0.5 * ((out.squeeze(-1) - yy) / 0.05) ** 2)
    assert float(post["inclusion"][2]) == pytest.approx(0.7, abs=1e-6)
    assert float(post["log_bf_drop"][2]) == pytest.approx(0.0, abs=1e-6)
    assert float(post["inclusion"][1]) > 0.999
    # eval-mode forward equals forward_with_scales with every block on
    torch.testing.assert_close(model.forward_with_scales(x, torch.ones(4)), model(x))


def test_tied_noisy_lstm_is_masked_nn_lstm():
    """Bernoulli NoisyLSTM(tie_gates=True) and nn.LSTM after a per-sequence UnitNoise mask: same
    initial weights and the same mask draws under one seed, so the same outputs."""
    x = torch.randn(5, 7, 3)
    outs = []
    for kind in ("tied", "masked"):
        torch.manual_seed(1)
        m = Forecaster(3, 4, N.Bernoulli(0.6), kind).train()
        torch.manual_seed(2)
        outs.append(m(x))
    torch.testing.assert_close(outs[0], outs[1])
