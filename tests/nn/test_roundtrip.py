"""Every shrinkdrop layer round-trips like ``nn.Dropout``: state_dict, deepcopy, torch.save /
torch.load(weights_only=True), torch.export.export.

Deterministic: the noise of both copies is drawn from torch's global RNG re-seeded to the same
value before each forward pass, so equal outputs mean the copies hold the same parameters and the
same noise law and settings; each case also checks that two different seeds give different outputs
(so equality is not vacuous).
"""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn

import shrinkdrop as sd
from shrinkdrop import noise as N

FAMILIES = [N.Bernoulli(0.8), N.Gaussian(1.0, 0.5), N.Rayleigh(1.0)]


def _cases(fam):
    """(name, module factory, input factory); the factory makes a fresh (re-initialised) module."""
    return [
        ("UnitNoise", lambda: sd.nn.UnitNoise(fam), lambda: torch.randn(4, 6)),
        ("ChannelNoise", lambda: sd.nn.ChannelNoise(fam), lambda: torch.randn(4, 3, 5)),
        ("LayerNoise", lambda: sd.nn.LayerNoise(fam), lambda: torch.randn(4, 6)),
        ("WeightNoiseLinear", lambda: sd.nn.WeightNoiseLinear(6, 3, fam),
         lambda: torch.randn(4, 6)),
        ("NoisyResidual", lambda: sd.nn.NoisyResidual(
            nn.Sequential(nn.Linear(6, 6), nn.ReLU()), fam, fam), lambda: torch.randn(4, 6)),
        ("NoisyConv2d", lambda: sd.nn.NoisyConv2d(3, 4, 3, fam, tie="both", padding=1),
         lambda: torch.randn(2, 3, 5, 5)),
        ("NoisyLSTM", lambda: _First(sd.nn.NoisyLSTM(6, 5, fam, tie_gates=False, num_layers=2)),
         lambda: torch.randn(7, 4, 6)),
        ("NoisyStackedRNN", lambda: _First(sd.nn.NoisyStackedRNN.from_module(
            nn.LSTM(6, 5, num_layers=2, dropout=0.5), fam)), lambda: torch.randn(7, 4, 6)),
        ("AttentionNoise", lambda: sd.nn.AttentionNoise(fam), lambda: torch.rand(2, 2, 3, 3)),
        ("NoisyMultiheadAttention", lambda: _SelfAttention(sd.nn.NoisyMultiheadAttention(
            8, 2, fam, batch_first=True)), lambda: torch.randn(2, 5, 8)),
        ("nn.Dropout (peer)", lambda: nn.Dropout(0.2), lambda: torch.randn(4, 6)),
    ]


class _First(nn.Module):
    """The output tensor of an RNN (export and comparisons want one tensor)."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0]


class _SelfAttention(nn.Module):
    def __init__(self, mha):
        super().__init__()
        self.mha = mha

    def forward(self, x):
        return self.mha(x, x, x, need_weights=False)[0]


ALL = [(f"{name}-{fam!r}", make, data) for fam in FAMILIES for name, make, data in _cases(fam)
       if not (name.startswith("nn.Dropout") and fam is not FAMILIES[0])]
IDS = [c[0] for c in ALL]


def _run(module, x, seed):
    torch.manual_seed(seed)
    return module(x)


def _same_under_seed(a, b, x):
    torch.testing.assert_close(_run(a, x, 3), _run(b, x, 3), rtol=0, atol=0)
    assert not torch.equal(_run(a, x, 3), _run(a, x, 4))  # the noise is on: seeds matter


@pytest.mark.parametrize("case", ALL, ids=IDS)
def test_state_dict_into_fresh_instance(case):
    _, make, data = case
    torch.manual_seed(0)
    a, x = make(), data()
    torch.manual_seed(1)
    b = make()  # other initial weights
    b.load_state_dict(a.state_dict())
    _same_under_seed(a, b, x)


@pytest.mark.parametrize("case", ALL, ids=IDS)
def test_deepcopy(case):
    _, make, data = case
    torch.manual_seed(0)
    a, x = make(), data()
    _same_under_seed(a, copy.deepcopy(a), x)


@pytest.mark.parametrize("case", ALL, ids=IDS)
def test_save_load_weights_only(case):
    _, make, data = case
    torch.manual_seed(0)
    a, x = make(), data()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(1)
    b = make()
    b.load_state_dict(torch.load(buf, weights_only=True))
    _same_under_seed(a, b, x)
    # the whole module pickles like nn.Dropout: weights_only=False loads it, weights_only=True
    # refuses (its class is not an allow-listed global) -- the same for nn.Dropout itself
    buf = io.BytesIO()
    torch.save(a, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        torch.load(buf, weights_only=True)
    buf.seek(0)
    _same_under_seed(a, torch.load(buf, weights_only=False), x)


@pytest.mark.parametrize("case", ALL, ids=IDS)
def test_export_eval(case):
    _, make, data = case
    torch.manual_seed(0)
    a, x = make().eval(), data()
    ep = torch.export.export(a, (x,))
    torch.testing.assert_close(ep.module()(x), a(x))


def _export_train(module, x):
    module.train()
    try:
        return torch.export.export(module, (x,)), None
    except Exception as e:  # noqa: BLE001 - reported by the test below
        return None, e


@pytest.mark.parametrize("case", ALL, ids=IDS)
def test_export_train_mode_keeps_the_noise_random(case):
    _, make, data = case
    torch.manual_seed(0)
    a, x = make(), data()
    ep, err = _export_train(a, x)
    assert err is None, f"{case[0]}: {type(err).__name__}: {err}"
    m = ep.module()
    y1, y2 = m(x), m(x)
    assert torch.isfinite(y1).all()
    assert not torch.equal(y1, y2)  # the draws are in the graph, not baked in as constants
