"""Per-head scales: HeadNoiseAttention against nn.MultiheadAttention, head removal for it and
for converted transformers attention (q/k/v/o_proj), equal to the masked model to 1e-5."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import shrinkdrop as sd
from shrinkdrop import compress as C
from shrinkdrop.inference import given_scales, scale_sites

LAW = sd.noise.Bernoulli(0.5)


@pytest.mark.parametrize("batch_first", [True, False])
def test_head_noise_attention_is_multihead_attention_at_scale_one(batch_first):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    ours = sd.nn.HeadNoiseAttention.from_module(mha, LAW, normalize=False).eval()
    x = torch.randn(3, 5, 16)
    ref, _ = mha(x, x, x, need_weights=False)
    torch.testing.assert_close(ours(x), ref, atol=1e-6, rtol=1e-5)


def test_head_noise_draws_one_scale_per_head():
    layer = sd.nn.HeadNoise(LAW, 4, normalize=False).train()
    x = torch.ones(200, 6, 4 * 3)
    y = layer(x).reshape(200, 6, 4, 3)
    # within a head (and a row) one value; across rows and heads both 0 and 1 appear
    assert (y == y[..., :1]).all()
    assert set(y.unique().tolist()) == {0.0, 1.0}
    frac = y[..., 0].mean().item()
    assert abs(frac - 0.5) < 0.05  # 4800 Bernoulli(0.5) draws: 7 SE


@pytest.mark.parametrize("continuous", [False, True])
def test_attention_heads_removed_equal_masked(continuous, tmp_path):
    torch.manual_seed(0)
    attn = sd.nn.HeadNoiseAttention(16, 4, LAW, normalize=False)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), attn, nn.Linear(16, 2))
    x = torch.randn(3, 5, 6)
    sites = scale_sites(model, x[:2])
    assert [s.name for s in sites] == ["2.head_noise.xi"]
    xi = torch.tensor([1.0, 0.0, 1.0, 0.0]) * (torch.tensor([0.5, 1, 1.7, 1])
                                               if continuous else 1.0)
    scales = {"2.head_noise.xi": xi}
    model.eval()
    with torch.no_grad(), given_scales(model, scales):
        ref = model(x)
    small = C.compact(model, scales, x)
    heads = [m for m in small.modules() if isinstance(m, C.HeadAttention)]
    assert heads[0].heads == 2
    torch.testing.assert_close(small(x), ref, atol=1e-5, rtol=1e-5)
    assert C.count_flops(small, x) < C.count_flops(model, x)
    C.save(small, tmp_path)
    torch.testing.assert_close(C.load(tmp_path)(x), small(x), atol=0, rtol=0)


def test_transformers_heads_removed_equal_masked():
    t = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = t.LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=4,
                        intermediate_size=48, num_hidden_layers=2, vocab_size=50)
    model = t.LlamaModel(cfg).eval()
    paths = sd.nn.add_head_noise(model, LAW, normalize=False)
    assert paths == ["layers.0.self_attn", "layers.1.self_attn"]
    ids = torch.randint(0, 50, (2, 7))
    scales = {"layers.0.self_attn.head_noise.xi": torch.tensor([1.0, 0.0, 0.7, 0.0]),
              "layers.1.self_attn.head_noise.xi": torch.tensor([0.0, 1.0, 1.0, 1.0])}
    with torch.no_grad(), given_scales(model, scales):
        ref = model(input_ids=ids).last_hidden_state
    small, kept = C.compact_hf_heads(model, scales)
    assert kept == {"layers.0.self_attn": 2, "layers.1.self_attn": 3}
    with torch.no_grad():
        torch.testing.assert_close(small(input_ids=ids).last_hidden_state, ref, atol=1e-5,
                                   rtol=1e-5)
    # the plain description: a fresh model of the config, shrunk, loads the state dict
    fresh = C.shrink_hf_heads(t.LlamaModel(cfg), kept).eval()
    fresh.load_state_dict(small.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh(input_ids=ids).last_hidden_state, ref, atol=1e-5,
                                   rtol=1e-5)
    assert C.count_parameters(small) < C.count_parameters(model)
