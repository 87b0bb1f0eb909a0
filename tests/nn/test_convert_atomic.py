"""A ``convert`` that raises leaves the model exactly as it was: the same module objects at the
same paths, the same parameter and buffer tensors (objects and values), the same hooks, the same
attributes and, for transformers models, the same attention implementation and config.
Deterministic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import shrinkdrop as sd
from shrinkdrop import noise as N
from shrinkdrop.errors import ConversionError


def _state(model):
    mods = list(model.named_modules())
    return {
        "modules": [(n, id(m), type(m)) for n, m in mods],
        "children": [(n, list(m._modules.items())) for n, m in mods],
        "params": [(n, id(p), p.detach().clone()) for n, p in model.named_parameters()],
        "buffers": [(n, id(b)) for n, b in model.named_buffers()],
        "hooks": [(n, list(m._forward_hooks), list(m._forward_pre_hooks),
                   list(m._backward_hooks)) for n, m in mods],
        "attrs": [(n, sorted(k for k in vars(m) if not k.startswith("_"))) for n, m in mods],
        "flags": [(n, getattr(m, "activation_relu_or_gelu", None),
                   getattr(m, "use_nested_tensor", None)) for n, m in mods],
        "config": [(n, m.config.to_json_string(), m.config._attn_implementation)
                   for n, m in mods if hasattr(getattr(m, "config", None), "to_json_string")],
    }


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if k == "params":
            assert [(n, i) for n, i, _ in a[k]] == [(n, i) for n, i, _ in b[k]]
            assert all(torch.equal(x, y) for (_, _, x), (_, _, y) in zip(a[k], b[k]))
        else:
            assert a[k] == b[k], k


class _Fails:
    """A noise callable that fails on its ``n``-th call (a site half-way through the model)."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, p):
        self.calls += 1
        if self.calls == self.n:
            raise ValueError("no family for this site")
        return N.Bernoulli(1 - p)


def _torch_model():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True)
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2),
                          nn.TransformerEncoder(layer, 2, enable_nested_tensor=False),
                          nn.LSTM(8, 8, 2, dropout=0.3, batch_first=True))
    model[0].register_forward_hook(lambda *a: None)
    model[1].register_forward_pre_hook(lambda *a: None)
    return model


@pytest.mark.parametrize("n", [1, 4, 9])
def test_failing_site_leaves_a_torch_model_unchanged(n):
    model = _torch_model()
    before = _state(model)
    noise = _Fails(n)
    with pytest.raises(ValueError, match="no family"):
        sd.convert(model, noise)
    assert noise.calls == n
    _same(before, _state(model))
    report = sd.convert(model, "bernoulli")  # and it still converts in full afterwards
    assert report.complete and len(report.replaced) == 10


def test_gaussian_rate_one_leaves_the_model_unchanged():
    model = nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 3), nn.Dropout(1.0))
    before = _state(model)
    with pytest.raises(ValueError, match=r"p has to be in \[0, 1\)"):
        sd.convert(model, "gaussian")
    _same(before, _state(model))


def test_refused_transformers_model_is_unchanged():
    t = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = t.GPT2Model(t.GPT2Config(vocab_size=64, n_embd=16, n_layer=2, n_head=2,
                                     reorder_and_upcast_attn=True, bos_token_id=0,
                                     eos_token_id=0))
    model.h[0].register_forward_hook(lambda *a: None)
    before = _state(model)
    with pytest.raises(ConversionError, match="unchanged"):
        sd.convert(model, "bernoulli")  # refused after every site was planned
    _same(before, _state(model))
    assert sd.nn.converted_with(model) is None


def test_failing_transformers_site_leaves_the_config_alone():
    t = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = t.BertModel(t.BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, vocab_size=64))
    before = _state(model)
    with pytest.raises(ValueError, match="no family"):
        sd.convert(model, _Fails(6))
    _same(before, _state(model))
    assert model.config._attn_implementation == before["config"][0][2]
