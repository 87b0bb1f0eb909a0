"""``report.complete`` means that no Bernoulli dropout can still act: every kind of site convert
cannot swap is listed in ``report.not_converted`` (scripted / traced modules, functional dropout
imported by name or called in a helper, LayerDrop read from a config, drop path of any naming is
converted). Each case has a clean twin that must stay complete (so the check can fail both ways).
Deterministic but for the drop-path law (fixed seed, binomial test rejects at p < 1e-4).
"""

from __future__ import annotations

import pytest
import scipy.stats as st
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.functional import dropout

import shrinkdrop as sd
from shrinkdrop import noise as N


def _left(report):
    return {(n.name, n.attribute) for n in report.not_converted}


# ---------------------------------------------------------------- torch.jit
def test_scripted_and_traced_modules_are_reported():
    scripted = torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)))
    traced = torch.jit.trace(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.3)).train(),
                             torch.randn(2, 4), check_trace=False)
    clean = torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
    model = nn.Sequential(scripted, traced, clean, nn.Dropout(0.2))
    report = sd.convert(model, "bernoulli")
    assert not report.complete
    assert _left(report) == {("0", "graph"), ("1", "graph")}
    assert [r.name for r in report.replaced] == ["3"]
    assert "torch.jit" in str(report)
    whole = torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)))
    assert _left(sd.convert(whole, "bernoulli")) == {("<model>", "graph")}
    assert sd.convert(nn.Sequential(clean), "bernoulli").complete


# ---------------------------------------------------------------- functional dropout
def _helper(x, p, training):
    return F.dropout(x, p, training)


def _mask(x):
    return x * x.new_empty(x.shape).bernoulli_(0.8) / 0.8


class _ByName(nn.Module):
    def forward(self, x):
        return dropout(x, 0.1, self.training)  # from torch.nn.functional import dropout


class _Helper(nn.Module):
    def forward(self, x):
        return _helper(x, 0.1, self.training)


class _Method(nn.Module):
    def _drop(self, x):
        return torch.dropout(x, 0.1, self.training)

    def forward(self, x):
        return self._drop(x)


class _BernoulliMask(nn.Module):
    def forward(self, x):
        return _mask(x) if self.training else x


class _Clean(nn.Module):
    """Calls its dropout submodule and a dropout-free helper: nothing left after convert."""

    def __init__(self):
        super().__init__()
        self.lin, self.dropout = nn.Linear(4, 4), nn.Dropout(0.1)

    def forward(self, x, dropout=0.5):  # a local named dropout is not a call
        return torch.relu(self.dropout(self.lin(x)))


@pytest.mark.parametrize("cls,call", [(_ByName, "dropout"), (_Helper, "F.dropout"),
                                      (_Method, "torch.dropout"),
                                      (_BernoulliMask, "bernoulli_")])
def test_functional_dropout_anywhere_in_forward_is_reported(cls, call):
    report = sd.convert(nn.Sequential(cls(), _Clean()), "bernoulli")
    assert _left(report) == {("0", "forward")}
    assert call in report.not_converted[0].why
    assert [r.name for r in report.replaced] == ["1.dropout"]
    clean = sd.convert(nn.Sequential(_Clean()), "bernoulli")
    assert clean.complete and not clean.skipped


# ---------------------------------------------------------------- LayerDrop from a config
def test_layerdrop_read_from_the_config_is_reported():
    t = pytest.importorskip("transformers")

    def wav2vec2(layerdrop):
        return t.Wav2Vec2Model(t.Wav2Vec2Config(
            hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
            conv_dim=(8, 8), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=4,
            num_conv_pos_embedding_groups=2, layerdrop=layerdrop))

    report = sd.convert(wav2vec2(0.1), "bernoulli")  # read as self.config.layerdrop
    assert _left(report) == {("encoder", "config.layerdrop")}
    assert report.not_converted[0].p == pytest.approx(0.1)
    assert sd.convert(wav2vec2(0.0), "bernoulli").complete

    def bart(layerdrop):
        return t.BartModel(t.BartConfig(
            vocab_size=64, d_model=16, encoder_layers=1, decoder_layers=1,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
            decoder_ffn_dim=32, dropout=0.0, encoder_layerdrop=layerdrop,
            max_position_embeddings=32))

    assert _left(sd.convert(bart(0.2), "bernoulli")) == {("encoder", "layerdrop")}
    assert sd.convert(bart(0.0), "bernoulli").complete


# ---------------------------------------------------------------- drop path of any naming
def _drop_path_class(name, attr):
    def forward(self, x):  # timm's drop_path
        if not self.training:
            return x
        keep = 1 - getattr(self, attr)
        return x * x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep) / keep

    def init(self, p):
        nn.Module.__init__(self)
        setattr(self, attr, p)

    return type(name, (nn.Module,), {"__init__": init, "forward": forward})


@pytest.mark.parametrize("name,attr", [("DropPath", "drop_prob"), ("SwinDropPath", "drop_prob"),
                                       ("ConvNextDropPath", "drop_prob"),
                                       ("StochasticDepth", "p"), ("MyDrop_Path", "drop_rate")])
def test_drop_path_of_any_naming_is_converted_per_example(name, attr):
    model = nn.Sequential(_drop_path_class(name, attr)(0.3))
    report = sd.convert(model, "bernoulli", generator=torch.Generator().manual_seed(0))
    assert report.complete and [r.name for r in report.replaced] == ["0"]
    layer = model[0]
    assert isinstance(layer, sd.nn.LayerNoise) and float(layer.noise.keep) == pytest.approx(0.7)
    x = torch.rand(400, 3, 5) + 0.5
    y = layer(x)
    dropped = (y == 0).all(-1).all(-1)
    assert torch.equal(dropped, (y == 0).any(-1).any(-1))  # one draw per example
    torch.testing.assert_close(y[~dropped], x[~dropped] / 0.7)
    assert st.binomtest(int(dropped.sum()), 400, 0.3).pvalue > 1e-4


def test_drop_path_without_a_known_rate_is_reported():
    odd = _drop_path_class("DropPath", "survival")(0.8)
    assert _left(sd.convert(nn.Sequential(odd), "bernoulli")) == {("0", "forward")}


def test_transformers_drop_path_modules_are_converted():
    t = pytest.importorskip("transformers")
    model = t.SwinModel(t.SwinConfig(image_size=16, patch_size=4, embed_dim=8, depths=[2, 1],
                                     num_heads=[1, 2], window_size=2, drop_path_rate=0.2))
    report = sd.convert(model, "bernoulli")
    paths = [r for r in report.replaced if r.name.endswith("drop_path")]
    assert report.complete and len(paths) == 2  # rates 0.1 and 0.2 (the first block's is 0)
    assert all(isinstance(model.get_submodule(r.name), sd.nn.LayerNoise) for r in paths)


# ---------------------------------------------------------------- the noise argument
def test_a_noise_class_is_refused_naming_the_argument():
    model = nn.Sequential(nn.Dropout(0.2))
    with pytest.raises(TypeError, match=r"noise .*class Bernoulli"):
        sd.convert(model, N.Bernoulli)
    assert isinstance(model[0], nn.Dropout)
