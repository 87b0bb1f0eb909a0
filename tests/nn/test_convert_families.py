"""convert on fourteen ``transformers`` architectures built from tiny random configs (no
download): the ``"shrinkdrop"`` attention is the model's own eager attention with only its dropout
step replaced, so a converted model equals the eager model -- outputs and the gradient of every
parameter -- with the noise path running (``mc_mode``, ``Bernoulli(1)``: xi = 1) and in eval.
Models whose attention convert cannot run as eager are refused (``ConversionError``).

The old implementation (a re-written eager attention) fails these tests: T5 moved by 0.2 (no
position bias), Gemma2 by 3e-3 (no softcapping). Deterministic but for the binomial test (fixed
seed, rejects at p < 1e-4).
"""

from __future__ import annotations

import copy

import pytest
import scipy.stats as st
import torch

import shrinkdrop as sd
from shrinkdrop import noise as N
from shrinkdrop.errors import ConversionError

t = pytest.importorskip("transformers")

V = 64
_S = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
          vocab_size=V)
_DEC = dict(_S, num_key_value_heads=1, attention_dropout=0.1)
_SEQ2SEQ = dict(vocab_size=V, d_model=16, encoder_layers=2, decoder_layers=2,
                encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                decoder_ffn_dim=32, attention_dropout=0.1)


def _tokens(b=2, length=7):
    return torch.randint(3, V, (b, length))


def _text(**extra):
    return lambda: dict(input_ids=_tokens(), **extra)


def _seq2seq():
    return dict(input_ids=_tokens(), decoder_input_ids=_tokens(2, 5))


def _image():
    return dict(pixel_values=torch.randn(2, 3, 16, 16))


#: name -> (model factory, input factory); tiny configs: 2 layers, hidden 16
FAMILIES = {
    # encoders
    "bert": (lambda: t.BertModel(t.BertConfig(**_S, attention_probs_dropout_prob=0.1)), _text()),
    "distilbert": (lambda: t.DistilBertModel(t.DistilBertConfig(
        vocab_size=V, dim=16, n_layers=2, n_heads=2, hidden_dim=32)), _text()),
    # decoders: GQA, logit softcapping + sliding window, sliding window, attention sinks
    "gpt2": (lambda: t.GPT2Model(t.GPT2Config(vocab_size=V, n_embd=16, n_layer=2, n_head=2,
                                              bos_token_id=0, eos_token_id=0)), _text()),
    "llama": (lambda: t.LlamaModel(t.LlamaConfig(**_DEC)), _text()),
    "gemma2": (lambda: t.Gemma2Model(t.Gemma2Config(
        **_DEC, head_dim=8, attn_logit_softcapping=1e-3, sliding_window=4)), _text()),
    "mistral": (lambda: t.MistralModel(t.MistralConfig(**_DEC, sliding_window=3)), _text()),
    "gpt_oss": (lambda: t.GptOssModel(t.GptOssConfig(
        **_DEC, head_dim=8, num_local_experts=2, num_experts_per_tok=1, sliding_window=4)),
        _text()),
    # encoder-decoders: relative position bias (T5), BART
    "t5": (lambda: t.T5Model(t.T5Config(vocab_size=V, d_model=16, d_kv=8, d_ff=32, num_layers=2,
                                        num_heads=2, dropout_rate=0.1)), _seq2seq),
    "bart": (lambda: t.BartModel(t.BartConfig(**_SEQ2SEQ, max_position_embeddings=32)),
             _seq2seq),
    # vision
    "vit": (lambda: t.ViTModel(t.ViTConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        image_size=16, patch_size=8, attention_probs_dropout_prob=0.1,
        hidden_dropout_prob=0.1)), _image),
    "swin": (lambda: t.SwinModel(t.SwinConfig(
        image_size=16, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2],
        window_size=2, drop_path_rate=0.2, attention_probs_dropout_prob=0.1)), _image),
    "convnext": (lambda: t.ConvNextModel(t.ConvNextConfig(
        num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], drop_path_rate=0.2,
        image_size=16)), _image),
    # audio
    "wav2vec2": (lambda: t.Wav2Vec2Model(t.Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=2, attention_dropout=0.1)),
        lambda: dict(input_values=torch.randn(2, 400))),
    "whisper": (lambda: t.WhisperModel(t.WhisperConfig(
        **_SEQ2SEQ, num_mel_bins=8, max_source_positions=10, max_target_positions=16,
        pad_token_id=1, bos_token_id=2, eos_token_id=2, decoder_start_token_id=2)),
        lambda: dict(input_features=torch.randn(2, 8, 20), decoder_input_ids=_tokens(2, 5))),
}


def _out(model, x):
    o = model(**x)
    return o.last_hidden_state if hasattr(o, "last_hidden_state") else o[0]


def _pair(name):
    make, data = FAMILIES[name]
    torch.manual_seed(0)
    model = make()
    ref = copy.deepcopy(model)
    ref.set_attn_implementation("eager")
    torch.manual_seed(1)
    return model, ref.eval(), data()


def _value_and_grads(model, x):
    y = _out(model, x)
    (y.square().sum() + y.sum()).backward()
    return y.detach(), {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_converted_attention_is_the_models_eager_attention(name):
    model, ref, x = _pair(name)
    report = sd.convert(model, N.Bernoulli(1.0))  # xi = 1: the noise path, exactly eager
    sites = [m for m in model.modules() if isinstance(m, sd.nn.AttentionNoise)]
    calls = []
    for m in sites:
        m.register_forward_hook(lambda *a: calls.append(1))
    if name != "convnext":  # ConvNeXt has no attention
        assert sites and model.config._attn_implementation == "shrinkdrop", str(report)
    model.eval()
    want, want_grads = _value_and_grads(ref, x)
    with sd.mc_mode(model):  # noise on in eval: every AttentionNoise runs
        got, grads = _value_and_grads(model, x)
    assert len(calls) >= len(sites)  # the noise layers were called, not bypassed
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert {n for n, g in grads.items() if g is None} == \
        {n for n, g in want_grads.items() if g is None}
    for n, g in want_grads.items():
        if g is not None:
            torch.testing.assert_close(grads[n], g, rtol=1e-5, atol=1e-5, msg=n)
    with torch.no_grad():  # and eval without mc_mode
        torch.testing.assert_close(_out(model, x), want, rtol=1e-5, atol=1e-5)


def test_t5_position_bias_reaches_the_relative_attention_bias():
    model, ref, x = _pair("t5")
    sd.convert(model, "bernoulli")
    model.train()
    _out(model, x).sum().backward()
    g = model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.grad
    assert g is not None and g.abs().sum() > 0


def test_gemma2_softcapping_is_honoured():
    """The softcap changes the eager output (so the equality above can fail), and convert keeps
    it."""
    model, ref, x = _pair("gemma2")
    sd.convert(model, "bernoulli")
    nocap = copy.deepcopy(ref)
    for m in nocap.modules():
        if hasattr(m, "attn_logit_softcapping"):
            m.attn_logit_softcapping = None
    with torch.no_grad():
        want = _out(ref, x)
        assert (_out(nocap, x) - want).abs().max() > 1e-4
        torch.testing.assert_close(_out(model.eval(), x), want, rtol=1e-5, atol=1e-5)


def test_t5_attention_noise_has_the_dropout_law():
    """Under mc_mode with Bernoulli(keep) the returned T5 attention weights are 0 with
    probability 1 - keep and clean / keep otherwise (the eager code's dropout, position bias
    included)."""
    model, _, _ = _pair("t5")
    keep = 0.6
    sd.convert(model, N.Bernoulli(keep))
    x = dict(input_ids=torch.randint(3, V, (30, 12)), decoder_input_ids=_tokens(30, 4))
    model.eval()
    with torch.no_grad():
        clean = model(**x, output_attentions=True).encoder_attentions[0]
        with sd.mc_mode(model, enabled=False):
            for m in model.modules():
                if isinstance(m, sd.nn.AttentionNoise):
                    m.mc = True
            noisy = model(**x, output_attentions=True).encoder_attentions[0]
    zero = noisy == 0
    assert st.binomtest(int(zero.sum()), noisy.numel(), 1 - keep).pvalue > 1e-4
    torch.testing.assert_close(noisy[~zero], clean[~zero] / keep)


# ---------------------------------------------------------------- refused, by construction
def _state(model):
    return ([(n, type(m), id(m)) for n, m in model.named_modules()],
            {n: p.detach().clone() for n, p in model.state_dict().items()},
            model.config._attn_implementation)


def test_gpt2_upcast_branch_is_refused_and_model_unchanged():
    """GPT-2 with reorder_and_upcast_attn takes another path only under 'eager'."""
    torch.manual_seed(0)
    model = t.GPT2Model(t.GPT2Config(vocab_size=V, n_embd=16, n_layer=2, n_head=2,
                                     reorder_and_upcast_attn=True, bos_token_id=0,
                                     eos_token_id=0))
    before = _state(model)
    with pytest.raises(ConversionError, match="reorder_and_upcast_attn"):
        sd.convert(model, "bernoulli")
    after = _state(model)
    assert before[0] == after[0] and before[2] == after[2]
    assert all(torch.equal(before[1][k], after[1][k]) for k in before[1])


class _NoFallback(torch.nn.Module):
    """An attention module (posing as transformers') that calls the interface with no eager
    fallback convert could run."""

    def __init__(self):
        super().__init__()
        self.attention_dropout = 0.1
        self.config = t.LlamaConfig(**_DEC)

    def forward(self, q):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        attention_interface = ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]
        return attention_interface(self, q, q, q, None, dropout=self.attention_dropout)[0]


_NoFallback.__module__ = "transformers.models.fake.modeling_fake"


def test_attention_without_an_eager_fallback_is_refused():
    model = torch.nn.Sequential(_NoFallback(), torch.nn.Dropout(0.1))
    with pytest.raises(ConversionError, match="0 .*get_interface"):
        sd.convert(model, "bernoulli")
    assert isinstance(model[1], torch.nn.Dropout) and not hasattr(model[0], "shrinkdrop_attention")


def _conditional_eager(module, query, key, value, attention_mask, dropout=0.0, **kwargs):
    w = torch.softmax(query @ key.transpose(-1, -2), -1)
    if dropout > 0:  # no dropout call in eval: noise under mc_mode would be skipped
        w = torch.nn.functional.dropout(w, p=dropout, training=module.training)
    return (w @ value).transpose(1, 2), w


class _Conditional(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attention_dropout = 0.1
        self.config = t.LlamaConfig(**_DEC)

    def forward(self, q):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, _conditional_eager)
        return attention_interface(self, q, q, q, None,
                                   dropout=self.attention_dropout if self.training else 0.0)[0]


_Conditional.__module__ = "transformers.models.fake.modeling_fake"


def test_a_skipped_dropout_step_is_an_error_not_silence():
    model = torch.nn.Sequential(_Conditional())
    sd.convert(model, "bernoulli")
    q = torch.randn(2, 2, 5, 4)
    assert model.train()(q).shape == (2, 5, 2, 4)  # training: the one dropout call is routed
    model.eval()
    model(q)  # eval without mc_mode: no noise to apply, no call needed
    with sd.mc_mode(model), pytest.raises(RuntimeError, match="called dropout 0 times"):
        model(q)


def _one_dropout_eager(module, query, key, value, attention_mask, dropout=0.0, **kwargs):
    w = torch.softmax(query @ key.transpose(-1, -2), -1)
    w = torch.nn.functional.dropout(w, p=dropout, training=module.training)
    return (w @ value).transpose(1, 2), w


class _ExtraDropout(torch.nn.Module):
    """An attention site that also drops its output functionally (at a literal rate)."""

    def __init__(self):
        super().__init__()
        self.attention_dropout = 0.1
        self.config = t.LlamaConfig(**_DEC)

    def forward(self, q):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, _one_dropout_eager)
        out = attention_interface(self, q, q, q, None,
                                  dropout=0.0 if not self.training else self.attention_dropout)[0]
        return torch.nn.functional.dropout(out, 0.2, self.training)


class _LiteralZero(_ExtraDropout):
    def __init__(self):
        super().__init__()
        self.attention_dropout = 0.0

    def forward(self, q):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, _one_dropout_eager)
        return attention_interface(self, q, q, q, None, dropout=0.0)[0]


_ExtraDropout.__module__ = _LiteralZero.__module__ = "transformers.models.fake.modeling_fake"


def test_attention_sites_are_scanned_too():
    """Other dropout in an attention module's forward is reported (its eager function's dropout
    is the converted site, not a leftover); a literal dropout=0.0 site is skipped."""
    report = sd.convert(torch.nn.Sequential(_ExtraDropout(), _LiteralZero()), "bernoulli")
    assert [r.name for r in report.replaced] == ["0"]
    assert [(n.name, n.attribute) for n in report.not_converted] == [("0", "forward")]
    assert "nn.functional.dropout" in report.not_converted[0].why
    assert "_one_dropout_eager" not in report.not_converted[0].why
    assert ("1.<literal>", "drop rate 0: no noise") in report.skipped
