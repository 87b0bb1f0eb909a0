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


# ---------------------------------------------------------------- converted models (issue 26)
class _Mixed(nn.Module):
    """Every kind of site torch has: Dropout, a transformer encoder (MHA + its dropouts) and a
    stacked LSTM's dropout=."""

    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.2, batch_first=True)
        self.drop = nn.Dropout(0.3)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.rnn = nn.LSTM(8, 6, 2, dropout=0.25, batch_first=True)

    def forward(self, x):
        return self.rnn(self.enc(self.drop(x)))[0]


CONVERT_NOISE = {"bernoulli": "bernoulli", "rayleigh": N.Rayleigh(0.5),
                 "gaussian.dropout": N.Gaussian.dropout}


@pytest.mark.parametrize("key", ["bernoulli", "gaussian.dropout"])  # Rayleigh: below (BERT)
def test_converted_torch_model_state_dict_into_a_fresh_conversion(key):
    noise = CONVERT_NOISE[key]
    torch.manual_seed(0)
    a = _Mixed()
    sd.convert(a, noise)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(1)
    b = _Mixed()  # other weights
    sd.convert(b, noise)
    b.load_state_dict(torch.load(buf, weights_only=True))  # strict: the same keys
    x = torch.randn(3, 5, 8)
    _same_under_seed(a, b, x)
    torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=0)
    spec = sd.nn.converted_with(b)
    assert spec == sd.nn.converted_with(a) and spec["active"]
    # and the conversion is re-applied from the record on an unconverted copy
    torch.manual_seed(2)
    c = _Mixed()
    c.load_state_dict(a.state_dict())  # converted checkpoints load into the plain model
    c._shrinkdrop_conversion = {k: v for k, v in spec.items() if k != "active"}
    assert not sd.nn.converted_with(c)["active"]
    sd.nn.reconvert(c)
    _same_under_seed(a.train(), c, x)


def _bert():
    t = pytest.importorskip("transformers")
    torch.manual_seed(0)
    return t.BertForSequenceClassification(t.BertConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        vocab_size=64, num_labels=3))


def _t5():
    t = pytest.importorskip("transformers")
    torch.manual_seed(0)
    return t.T5ForConditionalGeneration(t.T5Config(
        vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
        dropout_rate=0.1, decoder_start_token_id=0))


class _Logits(nn.Module):
    def __init__(self, model, t5):
        super().__init__()
        self.model, self.t5 = model, t5

    def forward(self, x):
        if self.t5:
            return self.model(input_ids=x, decoder_input_ids=x[:, :3]).logits
        return self.model(input_ids=x).logits


@pytest.mark.parametrize("arch,key", [("bert", "bernoulli"), ("bert", "rayleigh"),
                                      ("t5", "gaussian.dropout")])
def test_converted_transformers_model_survives_save_pretrained(arch, key, tmp_path):
    make = _t5 if arch == "t5" else _bert
    model = make()
    sd.convert(model, CONVERT_NOISE[key])
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path)
    spec = sd.nn.converted_with(loaded)  # the loaded model says what it was converted with
    assert spec is not None and not spec["active"]
    assert {k: v for k, v in spec.items() if k != "active"} == \
        {k: v for k, v in sd.nn.converted_with(model).items() if k != "active"}
    assert loaded.config._attn_implementation != "shrinkdrop"  # plain dropout again ...
    report = sd.nn.reconvert(loaded)  # ... until the one-line re-apply
    assert report.complete and sd.nn.converted_with(loaded)["active"]
    assert loaded.config._attn_implementation == "shrinkdrop"
    assert [r.name for r in report.replaced] == [r.name for r in sd.convert(make(), CONVERT_NOISE[
        key]).replaced]
    x = torch.randint(3, 64, (2, 6))
    a, b = _Logits(model, arch == "t5").train(), _Logits(loaded, arch == "t5").train()
    _same_under_seed(a, b, x)
    torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=0)


def test_reconvert_refuses_what_it_cannot_rebuild():
    plain = nn.Sequential(nn.Dropout(0.1))
    assert sd.nn.converted_with(plain) is None
    with pytest.raises(sd.errors.ConversionError, match="no recorded conversion"):
        sd.nn.reconvert(plain)
    own = nn.Sequential(nn.Dropout(0.1))
    sd.convert(own, lambda p: N.Bernoulli(1 - p))
    assert "callable" in sd.nn.converted_with(own)["noise"]
    with pytest.raises(sd.errors.ConversionError, match=r"convert\(model, noise\)"):
        sd.nn.reconvert(own)
