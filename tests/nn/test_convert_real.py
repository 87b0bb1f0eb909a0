"""convert on models nobody here wrote: torch's nn.Transformer* / nn.MultiheadAttention, stacked
RNNs with dropout=, and (optional extra ``hf``) transformers' BERT, GPT-2 and ViT.

Calibration: the binomial tests use fixed seeds and reject at p < 1e-4 (about one failure in 10^4
runs with fresh seeds); the rest is deterministic (equalities to 1e-5 against torch's own code).
"""

from __future__ import annotations

import copy

import pytest
import scipy.stats as st
import torch
from torch import nn

import shrinkdrop as sd
from shrinkdrop import noise as N

ALPHA = 1e-4


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- torch transformer layers
def _transformer():
    torch.manual_seed(0)
    return nn.Transformer(d_model=16, nhead=2, num_encoder_layers=2, num_decoder_layers=1,
                          dim_feedforward=32, batch_first=True)


def test_transformer_every_site_converted_and_reported():
    model = _transformer()
    ref = copy.deepcopy(model).eval()
    report = sd.convert(model, "bernoulli")
    assert report.complete and not report.skipped
    names = {r.name for r in report.replaced}
    enc = {f"encoder.layers.{i}.{s}" for i in range(2)
           for s in ("self_attn", "dropout", "dropout1", "dropout2")}
    dec = {f"decoder.layers.0.{s}" for s in ("self_attn", "multihead_attn", "dropout",
                                             "dropout1", "dropout2", "dropout3")}
    assert names == enc | dec
    assert all(r.structure for r in report.replaced)
    by = {r.name: r.structure for r in report.replaced}
    assert by["encoder.layers.0.self_attn"].startswith("attention probabilities")
    assert "column r of linear2.weight" in by["encoder.layers.0.dropout"]
    assert "row o" in by["decoder.layers.0.dropout3"]
    # nothing Bernoulli is left: no nn.Dropout, every attention has dropout 0
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    assert all(m.dropout == 0 for m in model.modules() if isinstance(m, nn.MultiheadAttention))
    assert any("fast path" in n for n in report.notes)
    assert set(model.state_dict()) == set(ref.state_dict())  # checkpoints interchange
    src, tgt = torch.randn(3, 5, 16), torch.randn(3, 4, 16)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(src, tgt), ref(src, tgt))
        assert torch.equal(model(src, tgt), model(src, tgt))  # eval without mc_mode
        # no_grad + eval is where the encoder's fast path would skip the noise layers
        with sd.mc_mode(model):
            a, b = model(src, tgt), model(src, tgt)
    assert torch.isfinite(a).all() and not torch.allclose(a, b)


class _Encoder(nn.Module):
    """An encoder classifier: dimension 0 is the batch, as predict / sample_outputs want."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.2, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.enc(x).mean(1))


def test_transformer_encoder_mc_prediction():
    model = _Encoder()
    sd.convert(model, N.Gaussian.dropout)
    x = torch.randn(4, 6, 16)
    outs = sd.train.sample_outputs(model.eval(), x, 8)
    assert outs.shape == (8, 4, 3) and torch.isfinite(outs).all()
    assert not torch.allclose(outs[0], outs[1])
    p = sd.train.predict(model, x, samples=16, likelihood="categorical")
    torch.testing.assert_close(p.sum(-1), torch.ones(4))
    assert torch.equal(model(x), model(x))


# ---------------------------------------------------------------- NoisyMultiheadAttention
MHA_CASES = {
    "batch_first": dict(kw=dict(batch_first=True), shape=(2, 5, 8), kv=(2, 5, 8)),
    "time_major_kpm": dict(kw={}, shape=(5, 2, 8), kv=(5, 2, 8), kpm=True),
    "attn_mask_2d_float": dict(kw=dict(batch_first=True), shape=(2, 5, 8), kv=(2, 5, 8),
                               mask2=True),
    "attn_mask_3d_bool": dict(kw=dict(batch_first=True), shape=(2, 5, 8), kv=(2, 5, 8),
                              mask3=True),
    "kdim_vdim": dict(kw=dict(batch_first=True, kdim=6, vdim=4), shape=(2, 5, 8),
                      kv=(2, 7, None)),
    "unbatched": dict(kw={}, shape=(5, 8), kv=(5, 8)),
}


@pytest.mark.parametrize("name", list(MHA_CASES))
def test_noisy_mha_equals_torch_mha_when_noise_is_one(name):
    c = MHA_CASES[name]
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(8, 2, dropout=0.3, **c["kw"]).eval()
    noisy = sd.nn.NoisyMultiheadAttention.from_module(ref, N.Bernoulli(1.0))
    assert noisy.in_proj_weight is ref.in_proj_weight and noisy.out_proj is ref.out_proj
    q = torch.randn(*c["shape"])
    kv = c["kv"]
    if len(kv) == 3 and kv[2] is None:  # kdim / vdim
        k, v = torch.randn(*kv[:2], 6), torch.randn(*kv[:2], 4)
    else:
        k = v = torch.randn(*kv)
    extra = {}
    L, S = 5, k.shape[-2] if c["kw"].get("batch_first") else k.shape[0]
    if c.get("kpm"):
        extra["key_padding_mask"] = torch.tensor([[False] * 4 + [True], [False] * 5])
    if c.get("mask2"):
        extra["attn_mask"] = torch.randn(L, S)
    if c.get("mask3"):
        extra["attn_mask"] = torch.rand(2 * 2, L, S) > 0.7
        extra["attn_mask"][..., 0] = False  # no fully masked row
    for avg in (True, False):
        a, wa = ref(q, k, v, average_attn_weights=avg, **extra)
        with sd.mc_mode(noisy):  # the noisy code path, with xi = 1
            b, wb = noisy(q, k, v, average_attn_weights=avg, **extra)
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(wb, wa, rtol=1e-5, atol=1e-6)


def test_noisy_mha_dropout_law_matches_torch_mha():
    keep = 0.7
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(8, 2, dropout=1 - keep, batch_first=True)
    noisy = sd.nn.NoisyMultiheadAttention.from_module(copy.deepcopy(ref), N.Bernoulli(keep))
    x = torch.randn(50, 20, 8)
    ref.eval()
    with torch.no_grad():
        probs = ref(x, x, x, average_attn_weights=False)[1]  # no dropout
        ref.train()
        wa = ref(x, x, x, average_attn_weights=False)[1]
        wb = noisy(x, x, x, average_attn_weights=False)[1]
    for w in (wa, wb):  # torch's dropped weights and ours: zeros at rate 1 - keep, else a / keep
        zero = w == 0
        assert st.binomtest(int(zero.sum()), w.numel(), 1 - keep).pvalue > ALPHA
        torch.testing.assert_close(w[~zero], probs[~zero] / keep)
    with pytest.raises(ValueError, match="add_bias_kv"):
        sd.nn.NoisyMultiheadAttention.from_module(
            nn.MultiheadAttention(8, 2, add_bias_kv=True), N.Bernoulli(0.9))


# ---------------------------------------------------------------- stacked RNN dropout=
@pytest.mark.parametrize("make", [
    lambda: nn.LSTM(4, 5, num_layers=3, dropout=0.3),
    lambda: nn.LSTM(4, 5, num_layers=2, dropout=0.3, bidirectional=True, batch_first=True),
    lambda: nn.LSTM(4, 5, num_layers=2, dropout=0.3, proj_size=3),
    lambda: nn.GRU(4, 5, num_layers=2, dropout=0.3, bidirectional=True),
    lambda: nn.RNN(4, 5, num_layers=2, dropout=0.3, nonlinearity="relu"),
], ids=["lstm", "lstm-bi-bf", "lstm-proj", "gru-bi", "rnn-relu"])
def test_stacked_rnn_eval_equals_torch_and_noise_between_layers(make):
    torch.manual_seed(0)
    rnn = make().double()
    model = nn.Sequential(rnn)
    report = sd.convert(model, N.Gaussian(1.0, 0.5), generator=gen(5))
    new = model[0]
    assert isinstance(new, sd.nn.NoisyStackedRNN) and report.replaced[0].structure.startswith(
        "between RNN layers")
    assert set(new.state_dict()) == set(rnn.state_dict())
    x = torch.randn(6, 3, 4, dtype=torch.float64)
    rnn.eval()
    new.eval()
    a, b = rnn(x), new(x)
    torch.testing.assert_close(b[0], a[0])
    for u, v in zip(b[1] if isinstance(b[1], tuple) else [b[1]],
                    a[1] if isinstance(a[1], tuple) else [a[1]]):
        torch.testing.assert_close(u, v)
    # train: layer l+1 reads out_l * xi, xi per element (reference: one-layer torch modules)
    new.train()
    out = new(x)[0]
    g, h = gen(5), x
    D = 2 if rnn.bidirectional else 1
    for layer in range(rnn.num_layers):
        if layer:
            hb = h if rnn.batch_first else h.transpose(0, 1)  # noise drawn batch-first
            xi = sd.functional.draw_noise(N.Gaussian(1.0, 0.5), hb.shape, generator=g,
                                          dtype=h.dtype)
            h = h * (xi if rnn.batch_first else xi.transpose(0, 1))
        one = type(rnn)(h.shape[-1], rnn.hidden_size, num_layers=1, bias=rnn.bias,
                        batch_first=rnn.batch_first, bidirectional=rnn.bidirectional,
                        **({"proj_size": rnn.proj_size} if isinstance(rnn, nn.LSTM) else {}),
                        **({"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN)
                           else {})).double()
        one.load_state_dict({k.replace(f"_l{layer}", "_l0"): v for k, v in rnn.state_dict().items()
                             if f"_l{layer}" in k})
        h = one(h)[0]
        assert h.shape[-1] == D * (getattr(rnn, "proj_size", 0) or rnn.hidden_size)
    torch.testing.assert_close(out, h)


def test_rnn_one_layer_dropout_is_skipped_and_packed_input_refused():
    with pytest.warns(UserWarning, match="num_layers"):
        lstm = nn.LSTM(3, 4, num_layers=1, dropout=0.5)
    report = sd.convert(nn.Sequential(lstm), "bernoulli")
    assert not report.replaced and report.skipped[0][0] == "0"
    model = nn.Sequential(nn.GRU(3, 4, 2, dropout=0.5))
    sd.convert(model, "bernoulli")
    packed = nn.utils.rnn.pack_sequence([torch.randn(3, 3), torch.randn(2, 3)])
    with pytest.raises(TypeError, match="PackedSequence"):
        model[0](packed)


# ---------------------------------------------------------------- what convert cannot reach
class _Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.attn_pdrop = 0.2

    def forward(self, x):
        return nn.functional.dropout(self.lin(x), self.attn_pdrop, self.training)


class _BareFunctional(nn.Module):
    def forward(self, x):
        return torch.nn.functional.dropout(x, 0.1, self.training)


def test_unreachable_sites_are_reported_by_path():
    model = nn.Sequential(_Functional(), nn.Sequential(_BareFunctional()),
                          nn.MultiheadAttention(4, 2, dropout=0.1, add_bias_kv=True),
                          nn.Dropout(0.5))
    report = sd.convert(model, "bernoulli")
    assert not report.complete
    left = {(n.name, n.attribute) for n in report.not_converted}
    assert left == {("0", "attn_pdrop"), ("1.0", "forward"), ("2", "dropout")}
    assert [r.name for r in report.replaced] == ["3"]
    text = str(report)
    assert "NOT converted 0.attn_pdrop (p=0.2)" in text and "add_bias_kv" in text


# ---------------------------------------------------------------- transformers (extra "hf")
def _hf():
    return pytest.importorskip("transformers")


def _dropout_paths(model):
    return {n for n, m in model.named_modules() if isinstance(m, nn.Dropout) and m.p > 0}


@pytest.mark.parametrize("arch", ["bert", "gpt2", "vit"])
def test_hf_default_config_inventory(arch):
    """The default configs (~100M random weights each, built in seconds; no download)."""
    t = _hf()
    make = {"bert": lambda: t.BertForSequenceClassification(t.BertConfig()),
            "gpt2": lambda: t.GPT2LMHeadModel(t.GPT2Config()),
            "vit": lambda: t.ViTModel(t.ViTConfig(hidden_dropout_prob=0.1,
                                                  attention_probs_dropout_prob=0.1))}[arch]
    torch.manual_seed(0)
    model = make()
    before = _dropout_paths(model)
    layers = model.config.num_hidden_layers
    report = sd.convert(model, "bernoulli")
    assert report.complete, str(report)
    assert all(r.structure for r in report.replaced)
    attention = [r for r in report.replaced if r.structure.startswith("attention probabilities")]
    assert len(attention) == layers
    holders = {n for n, _ in report.skipped}
    # every Bernoulli dropout module is either replaced or only holds an attention site's rate
    assert before == {r.name for r in report.replaced if r not in attention} | holders
    assert all(not isinstance(m, nn.Dropout) for n, m in model.named_modules()
               if n not in holders)
    assert not any("not inferred" in r.structure for r in report.replaced), str(report)
    assert model.config._attn_implementation == "shrinkdrop"


def _small(arch):
    t = _hf()
    torch.manual_seed(0)
    if arch == "bert":
        return t.BertModel(t.BertConfig(hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=64))
    if arch == "gpt2":
        return t.GPT2LMHeadModel(t.GPT2Config(n_embd=32, n_layer=2, n_head=2))
    return t.ViTModel(t.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, image_size=16, patch_size=8,
                                  hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1))


class _Logits(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        return out.logits if hasattr(out, "logits") else out.last_hidden_state[:, 0]


@pytest.mark.parametrize("arch", ["bert", "gpt2", "vit"])
def test_hf_converted_mc_prediction(arch):
    model = _small(arch)
    ref = copy.deepcopy(model).eval()
    sd.convert(model, N.Gaussian.dropout)
    assert set(model.state_dict()) == set(ref.state_dict())  # checkpoints interchange
    x = torch.randn(3, 3, 16, 16) if arch == "vit" else torch.randint(0, 100, (3, 6))
    net, ref_net = _Logits(model).eval(), _Logits(ref)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref_net(x), rtol=1e-5, atol=1e-5)  # eval: same model
        assert torch.equal(net(x), net(x))
    outs = sd.train.sample_outputs(net, x, 4)
    assert outs.shape[:2] == (4, 3) and torch.isfinite(outs).all()
    assert not torch.allclose(outs[0], outs[1])
    mean = sd.train.predict(net, x, samples=8)
    assert torch.isfinite(mean).all()
    model.train()  # training runs (BERT / GPT-2 read their rate holder's .p there)
    net(x).sum().backward()


def test_hf_attention_noise_acts_on_the_probabilities():
    model = _small("bert")
    keep = 0.6
    sd.convert(model, N.Bernoulli(keep))
    x = torch.randint(0, 100, (40, 12))
    model.eval()
    with torch.no_grad():
        clean = model(x, output_attentions=True).attentions[0]
        attention = [m for m in model.modules() if isinstance(m, sd.nn.AttentionNoise)]
        with sd.mc_mode(model, enabled=False):  # noise on the attention only
            for m in attention:
                m.mc = True
            noisy = model(x, output_attentions=True).attentions[0]
    zero = noisy == 0
    assert st.binomtest(int(zero.sum()), noisy.numel(), 1 - keep).pvalue > ALPHA
    torch.testing.assert_close(noisy[~zero], clean[~zero] / keep)


def test_converted_encoder_exports_in_eval_and_train():
    model = _Encoder()
    sd.convert(model, "bernoulli")
    x = torch.randn(2, 6, 16)
    ep = torch.export.export(model.eval(), (x,))
    torch.testing.assert_close(ep.module()(x), model(x))
    ep = torch.export.export(model.train(), (x,))
    y1, y2 = ep.module()(x), ep.module()(x)
    assert torch.isfinite(y1).all() and not torch.equal(y1, y2)  # the noise is in the graph


def test_attention_and_rnn_noise_are_not_paired_with_the_next_weight():
    model = nn.Sequential(nn.LSTM(3, 4, 2, dropout=0.2), nn.Linear(4, 2))
    sd.convert(model, "bernoulli")
    assert sd.train.noisy_weights(model) == []
    mha = nn.Sequential(nn.Dropout(0.1), nn.Linear(4, 4), _Wrap(nn.MultiheadAttention(4, 2, 0.1)),
                        nn.Linear(4, 4))
    sd.convert(mha, "bernoulli")
    pairs = sd.train.noisy_weights(mha)
    assert len(pairs) == 1 and pairs[0][0] is mha[1].weight  # only the UnitNoise -> Linear


class _Wrap(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x, x, x)[0]
