"""Tests of the structured noise layers against their PyTorch peers.

Calibration of the randomized tests: every statistical test uses a fixed seed and rejects at
p < 1e-4 (binomial / KS tests from scipy.stats), so with fresh seeds each would fail about once
in 10^4 runs; with the fixed seeds they are deterministic. Each test draws enough samples that a
wrong law is rejected: ``test_binomial_test_has_power`` shows the drop-count test rejects
keep = 0.85 when the truth is 0.8, and ``test_ks_has_power`` that the KS test rejects a law whose
scale is off by 5%. Moment checks use 6-sigma bounds (failure rate < 1e-8).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
import torch
from torch import nn

import shrinkdrop as sd
from shrinkdrop import functional as F
from shrinkdrop import noise as N
from shrinkdrop.noise import NotNormalizableError

ALPHA = 1e-4


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- UnitNoise vs nn.Dropout
@pytest.mark.parametrize("keep", [0.5, 0.8, 0.97])
def test_unit_bernoulli_has_dropout_law(keep):
    x = torch.rand(400, 500) + 0.5  # no zeros, so zeros of the output are drops
    layer = sd.nn.UnitNoise(N.Bernoulli(keep), generator=gen(1))
    y = layer(x)
    dropped = int((y == 0).sum())
    assert st.binomtest(dropped, x.numel(), 1 - keep).pvalue > ALPHA
    # the peer: same law
    torch.manual_seed(1)
    yd = nn.Dropout(1 - keep)(x)
    assert st.binomtest(int((yd == 0).sum()), x.numel(), 1 - keep).pvalue > ALPHA
    # kept values are x / keep, as nn.Dropout's
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / keep)
    torch.testing.assert_close(yd[yd != 0], x[yd != 0] / keep)


def test_binomial_test_has_power():
    x = torch.ones(400, 500)
    y = sd.nn.UnitNoise(N.Bernoulli(0.8), generator=gen(2))(x)
    dropped = int((y == 0).sum())
    assert st.binomtest(dropped, x.numel(), 0.2).pvalue > ALPHA
    assert st.binomtest(dropped, x.numel(), 0.15).pvalue < 1e-12


def test_eval_is_identity_and_keep_one():
    x = torch.randn(5, 7)
    layer = sd.nn.UnitNoise(N.Bernoulli(0.5)).eval()
    assert layer(x) is x
    assert sd.nn.UnitNoise(N.Bernoulli(1.0))(x) is x
    # gradient: d y / d x = mask / keep, like nn.Dropout
    x.requires_grad_(True)
    y = sd.nn.UnitNoise(N.Bernoulli(0.5), generator=gen(3))(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).float() / 0.5)


def test_unbatched_equals_batched_under_same_generator():
    x = torch.randn(10)
    a = sd.nn.UnitNoise(N.Rayleigh(1.0), generator=gen(5))(x)
    b = sd.nn.UnitNoise(N.Rayleigh(1.0), generator=gen(5))(x[None])[0]
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- continuous families
def _scipy_cdf(fam):
    if isinstance(fam, N.Gaussian):
        return st.norm(float(fam.mean_), float(fam.std)).cdf
    if isinstance(fam, N.Rayleigh):
        return st.rayleigh(scale=float(fam.scale)).cdf
    if isinstance(fam, N.Uniform):
        return st.uniform(float(fam.low), float(fam.high - fam.low)).cdf
    if isinstance(fam, N.Beta):
        return st.beta(float(fam.a), float(fam.b)).cdf
    if isinstance(fam, N.InverseNakagami):
        nu, s = float(fam.df), float(fam.scale)
        ig = st.invgamma(nu / 2, scale=nu * s**2 / 2)
        return lambda v: ig.cdf(np.asarray(v) ** 2)
    raise AssertionError(fam)


CONTINUOUS = [N.Gaussian(1.0, 0.5), N.Gaussian(2.0, 1.0), N.Rayleigh(0.7), N.Uniform(0.2, 1.5),
              N.Beta(2.0, 3.0), N.Beta(0.6, 0.8), N.InverseNakagami(5.0, 1.3)]


@pytest.mark.parametrize("fam", CONTINUOUS, ids=repr)
def test_continuous_law_and_mean_one(fam):
    x = torch.ones(200, 500, dtype=torch.float64)
    y = sd.nn.UnitNoise(fam, generator=gen(11))(x)
    mean = float(fam.mean)
    # law: y * E[xi] has the family's law (KS against scipy)
    assert st.kstest((y * mean).flatten().numpy(), _scipy_cdf(fam)).pvalue > ALPHA
    # mean-1 output, 6 sigma
    sd_ = math.sqrt(float(fam.variance)) / mean / math.sqrt(y.numel())
    assert abs(float(y.mean()) - 1) < 6 * sd_
    # raw noise: eval multiplies by E[xi]
    raw = sd.nn.UnitNoise(fam, normalize=False).eval()
    torch.testing.assert_close(raw(x), x * mean)


def test_ks_has_power():
    fam = N.Rayleigh(1.0)
    y = sd.nn.UnitNoise(fam, normalize=False, generator=gen(12))(torch.ones(200, 500))
    assert st.kstest(y.flatten().numpy(), st.rayleigh(scale=1.0).cdf).pvalue > ALPHA
    assert st.kstest(y.flatten().numpy(), st.rayleigh(scale=1.05).cdf).pvalue < 1e-12


# ---------------------------------------------------------------- ChannelNoise vs Dropout2d
def test_channel_noise_all_or_nothing_like_dropout2d():
    x = torch.rand(64, 32, 5, 6) + 0.5
    keep = 0.7
    y = sd.nn.ChannelNoise(N.Bernoulli(keep), generator=gen(4))(x)
    torch.manual_seed(4)
    yd = nn.Dropout2d(1 - keep)(x)
    for out in (y, yd):
        zero = (out == 0).flatten(2)
        assert (zero.all(-1) | ~zero.any(-1)).all()  # every map dropped whole or kept
        kept = ~zero.any(-1)
        torch.testing.assert_close(out[kept], x[kept] / keep)
        assert st.binomtest(int((~kept).sum()), kept.numel(), 1 - keep).pvalue > ALPHA
    with pytest.raises(ValueError, match="Expected input of shape"):
        sd.nn.ChannelNoise(N.Bernoulli(keep))(torch.ones(3, 4))


# ---------------------------------------------------------------- per-example vs shared
@pytest.mark.parametrize("layer_cls", [sd.nn.UnitNoise, sd.nn.ChannelNoise, sd.nn.LayerNoise])
def test_per_example_independent_and_shared_identical(layer_cls):
    x = torch.ones(6, 4, 3)
    y = layer_cls(N.Gaussian(1.0, 0.5), generator=gen(6))(x)
    assert all(not torch.equal(y[0], y[i]) for i in range(1, 6))
    ys = layer_cls(N.Gaussian(1.0, 0.5), True, generator=gen(6))(x)
    assert all(torch.equal(ys[0], ys[i]) for i in range(1, 6))


@pytest.mark.parametrize("make", [
    lambda: sd.nn.UnitNoise(N.Bernoulli(0.5), True),
    lambda: sd.nn.ChannelNoise(N.Rayleigh(1.0), True),
    lambda: sd.nn.WeightNoiseLinear(3, 3, N.Gaussian(1.0, 1.0), True, bias=False),
    lambda: sd.nn.NoisyLSTM(3, 3, N.Uniform(0.0, 2.0), tie_gates=False, share_across_batch=True),
], ids=["unit", "channel", "weight", "lstm"])
def test_sample_groups_draw_one_noise_per_group(make):
    torch.manual_seed(7)
    layer = make()
    S, B = 3, 4
    base = torch.randn(B, 3) if not isinstance(layer, sd.nn.NoisyLSTM) else torch.randn(5, B, 3)
    if isinstance(layer, sd.nn.NoisyLSTM):
        x = base.repeat(1, S, 1)
        with sd.nn.sample_groups(S):
            y = layer(x)[0][-1]  # (S * B, H)
    else:
        if isinstance(layer, sd.nn.ChannelNoise):
            base = base[..., None]
        x = base.repeat(S, *([1] * (base.dim() - 1)))
        with sd.nn.sample_groups(S):
            y = layer(x)
    groups = y.reshape(S, B, -1)
    if isinstance(layer, (sd.nn.UnitNoise, sd.nn.ChannelNoise)):
        ratio = (y / x).reshape(S, B, -1)  # the noise itself
        assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio))  # shared within a group
    assert not torch.allclose(groups[0], groups[1]) and not torch.allclose(groups[1], groups[2])
    with pytest.raises(ValueError, match="multiple of 3"), sd.nn.sample_groups(S):
        layer(x[:-1] if not isinstance(layer, sd.nn.NoisyLSTM) else x[:, :-1])
    with pytest.raises(ValueError, match="positive int"), sd.nn.sample_groups(0):
        pass


# ---------------------------------------------------------------- NoisyResidual
def _block(bias):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 16, bias=bias), nn.ReLU())


def test_residual_bernoulli_is_row_stochastic_depth():
    keep = 0.7
    blk = _block(False)
    h = torch.randn(3000, 16)
    y = sd.nn.NoisyResidual(blk, layer_noise=N.Bernoulli(keep), generator=gen(8))(h)
    with torch.no_grad():
        full = h + blk(h) / keep
        y = y.detach()
    skipped = torch.isclose(y, h, atol=1e-5).all(1)
    kept = torch.isclose(y, full, atol=1e-5).all(1)
    bad = ~(skipped | kept)
    assert not bad.any(), (y[bad][:2] - h[bad][:2], full[bad][:2] - h[bad][:2])
    clear = skipped ^ kept  # rows where block(h) ~ 0 are both; leave them out of the count
    assert clear.sum() > 0.99 * len(h)
    assert st.binomtest(int(skipped[clear].sum()), int(clear.sum()), 1 - keep).pvalue > ALPHA
    # the peer (torchvision.ops.stochastic_depth, mode "row") has the same two outcomes
    torch.manual_seed(8)
    noise = torch.empty(len(h), 1).bernoulli_(keep).div_(keep)
    with torch.no_grad():
        peer = h + blk(h) * noise
    close = torch.isclose(peer, h, atol=1e-5).all(1) | torch.isclose(peer, full, atol=1e-5).all(1)
    assert close.all()
    # eval: h + block(h)
    res = sd.nn.NoisyResidual(blk, layer_noise=N.Bernoulli(keep)).eval()
    torch.testing.assert_close(res(h), h + blk(h))


def test_residual_with_bias_is_not_stochastic_depth():
    blk = _block(True)
    h = torch.randn(200, 16)
    y = sd.nn.NoisyResidual(blk, layer_noise=N.Bernoulli(0.5), generator=gen(9))(h).detach()
    # a skipped row is h + relu(b), not h
    skipped_rows = y - h
    assert not torch.isclose(skipped_rows, torch.zeros_like(h)).all(1).any()


def test_residual_ard_add_structure():
    blk = nn.Identity()
    h = torch.ones(5, 8)
    res = sd.nn.NoisyResidual(blk, N.Gaussian(1.0, 0.3), N.Rayleigh(1.0), generator=gen(10))
    z = res(h) - h  # tau * xi
    assert z.shape == h.shape and res.structure == "ARD+ADD"
    assert "layer_noise=Gaussian" in repr(res) and "unit_noise=Rayleigh" in repr(res)
    with pytest.raises(ValueError, match="layer_noise"):
        sd.nn.NoisyResidual(blk)


# ---------------------------------------------------------------- WeightNoiseLinear
def test_weight_noise_modes():
    torch.manual_seed(0)
    x = torch.randn(5, 4)
    fam = N.Bernoulli(0.6)
    layer = sd.nn.WeightNoiseLinear(4, 3, fam, generator=gen(13))
    y = layer(x)
    xi = F.draw_noise(fam, (5, 3, 4), generator=gen(13))
    ref = torch.stack([nn.functional.linear(x[n], layer.weight * xi[n], layer.bias)
                       for n in range(5)])
    torch.testing.assert_close(y, ref)
    shared = sd.nn.WeightNoiseLinear(4, 3, fam, True, generator=gen(14))
    xi = F.draw_noise(fam, (1, 3, 4), generator=gen(14))[0]
    torch.testing.assert_close(shared(x), nn.functional.linear(x, shared.weight * xi,
                                                                shared.bias))
    with pytest.raises(ValueError, match="Gaussian"):
        sd.nn.WeightNoiseLinear(4, 3, fam, local_reparameterization=True)


def test_local_reparameterization_exact_in_distribution():
    torch.manual_seed(0)
    fam = N.Gaussian(1.0, 0.8)
    x = torch.randn(1, 6, dtype=torch.float64).expand(40000, 6)
    exact = sd.nn.WeightNoiseLinear(6, 2, fam, generator=gen(15)).double()
    lrt = sd.nn.WeightNoiseLinear(6, 2, fam, local_reparameterization=True,
                                  generator=gen(16)).double()
    lrt.load_state_dict(exact.state_dict())
    with torch.no_grad():
        a, b = exact(x), lrt(x)
    for j in range(2):
        assert st.ks_2samp(a[:, j].numpy(), b[:, j].numpy()).pvalue > ALPHA


# ---------------------------------------------------------------- NoisyConv2d
def test_conv_structures():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 6, 6)
    fam = N.Rayleigh(1.0)
    for tie in ("filter", "channel", "both"):
        conv = sd.nn.NoisyConv2d(3, 5, 3, fam, tie=tie, padding=1, generator=gen(17))
        y = conv(x)
        g = gen(17)
        w, b = conv.weight, conv.bias
        if tie in ("channel", "both"):
            xi = F.draw_noise(fam, (4, 3, 5), generator=g)  # (N, C_in, F)
            ref = torch.cat([nn.functional.conv2d(x[n:n + 1], w * xi[n].t()[..., None, None],
                                                  None, padding=1) for n in range(4)])
        else:
            ref = nn.functional.conv2d(x, w, None, padding=1)
        if tie in ("filter", "both"):
            tau = F.draw_noise(fam, (4, 5), generator=g)  # (N, F)
            ref = ref * tau[:, :, None, None]
        torch.testing.assert_close(y, ref + b[:, None, None], rtol=1e-4, atol=1e-5)
        conv.eval()
        torch.testing.assert_close(conv(x), nn.functional.conv2d(x, w, b, padding=1))
    with pytest.raises(ValueError, match="tie has to be one of 'filter', 'channel', 'both'"):
        sd.nn.NoisyConv2d(3, 5, 3, fam, tie="row")


def test_conv_filter_bernoulli_is_dropout2d_on_output():
    conv = sd.nn.NoisyConv2d(3, 8, 3, N.Bernoulli(0.5), tie="filter", bias=False,
                             generator=gen(18))
    x = torch.randn(16, 3, 7, 7)
    y = conv(x).detach()
    plain = nn.functional.conv2d(x, conv.weight.detach())
    zero = (y == 0).flatten(2).all(-1)
    torch.testing.assert_close(y[~zero], plain[~zero] * 2)


# ---------------------------------------------------------------- NoisyLSTM
def _manual_lstm(x, xi_gates, w_ih, w_hh, b):
    """Reference: gate g uses x_t * xi_g (xi (N, 4, D)), constant over t."""
    T, Nb, _ = x.shape
    H = w_hh.shape[1]
    h = x.new_zeros(Nb, H)
    c = x.new_zeros(Nb, H)
    outs = []
    for t in range(T):
        pre = [(x[t] * xi_gates[:, g]) @ w_ih[g * H:(g + 1) * H].t() for g in range(4)]
        gates = torch.cat(pre, 1) + h @ w_hh.t() + b
        i, f, gg, o = gates.chunk(4, 1)
        c = f.sigmoid() * c + i.sigmoid() * gg.tanh()
        h = o.sigmoid() * c.tanh()
        outs.append(h)
    return torch.stack(outs)


@pytest.mark.parametrize("tie", [True, False])
def test_lstm_noise_once_per_sequence(tie):
    torch.manual_seed(0)
    fam = N.Gaussian(1.0, 0.5)
    T, Nb, D, H = 6, 5, 4, 3
    lstm = sd.nn.NoisyLSTM(D, H, fam, tie_gates=tie, generator=gen(19)).double()
    x = torch.randn(T, Nb, D, dtype=torch.float64)
    out, (h, c) = lstm(x)
    shape = (Nb, D) if tie else (Nb, 4, D)
    xi = F.draw_noise(fam, shape, generator=gen(19), dtype=torch.float64)
    xi_g = xi[:, None].expand(Nb, 4, D) if tie else xi
    ref = _manual_lstm(x, xi_g, lstm.weight_ih_l0, lstm.weight_hh_l0,
                       lstm.bias_ih_l0 + lstm.bias_hh_l0)
    torch.testing.assert_close(out, ref)  # the same xi at every t: constant within a sequence
    torch.testing.assert_close(h[0], ref[-1])
    assert all(not torch.equal(xi[0], xi[n]) for n in range(1, Nb))  # independent sequences
    if not tie:
        assert all(not torch.equal(xi[:, 0], xi[:, g]) for g in range(1, 4))  # distinct gates
    # batch_first gives the same
    lstm_bf = sd.nn.NoisyLSTM(D, H, fam, tie_gates=tie, batch_first=True,
                              generator=gen(19)).double()
    lstm_bf.load_state_dict(lstm.state_dict())
    torch.testing.assert_close(lstm_bf(x.transpose(0, 1))[0], out.transpose(0, 1))


def test_lstm_state_dict_interchanges_with_nn_lstm():
    ref = nn.LSTM(4, 3, num_layers=2)
    for tie in (True, False):
        lstm = sd.nn.NoisyLSTM(4, 3, N.Bernoulli(0.8), tie_gates=tie, num_layers=2)
        lstm.load_state_dict(ref.state_dict())
        x = torch.randn(5, 2, 4)
        lstm.eval()
        a, (h, c) = lstm(x)
        b, (h2, c2) = ref(x)
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(c, c2)
        lstm.train()
        out, (h, c) = lstm(x)
        assert out.shape == (5, 2, 3) and h.shape == (2, 2, 3)
    with pytest.raises(ValueError, match="Expected input"):
        lstm(torch.randn(2, 3, 4, 5))


# ---------------------------------------------------------------- common behaviour
def test_half_cauchy_fails_loudly():
    with pytest.raises(NotNormalizableError, match="HalfCauchy.*normalize=False"):
        sd.nn.UnitNoise(N.HalfCauchy(1.0))
    with pytest.raises(NotNormalizableError, match="E\\[xi\\] = 0"):
        sd.nn.ChannelNoise(N.Gaussian(0.0, 1.0))
    layer = sd.nn.UnitNoise(N.HalfCauchy(1.0), normalize=False)
    x = torch.randn(4, 5)
    assert torch.isfinite(layer(x)).all()
    layer.eval()
    with pytest.raises(sd.nn.EvalNoiseError, match="mc_mode"):
        layer(x)
    with sd.mc_mode(layer):
        assert torch.isfinite(layer(x)).all() and not layer.training
    with pytest.raises(sd.nn.EvalNoiseError):
        layer(x)


def test_mc_mode_plain_call_and_context():
    model = nn.Sequential(nn.Linear(4, 4), sd.nn.UnitNoise(N.Bernoulli(0.5)),
                          sd.nn.NoisyResidual(nn.Identity(), N.Rayleigh(1.0))).eval()
    x = torch.randn(8, 4)
    assert torch.equal(model(x), model(x))
    with sd.mc_mode(model) as m:
        assert m is model and not model.training
        assert not torch.equal(model(x), model(x))
    assert torch.equal(model(x), model(x))
    sd.mc_mode(model)
    assert all(layer.mc for layer in model.modules() if isinstance(layer, sd.nn.NoiseLayer))
    sd.mc_mode(model, enabled=False)
    assert torch.equal(model(x), model(x))


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="noise has to be a shrinkdrop.noise family.*float"):
        sd.nn.UnitNoise(0.5)
    with pytest.raises(TypeError, match="generator"):
        sd.nn.UnitNoise(N.Bernoulli(0.5), generator=3)
    with pytest.raises(ValueError, match="scalar parameters"):
        sd.nn.UnitNoise(N.Bernoulli(torch.tensor([0.5, 0.6])))
    with pytest.raises(ValueError, match="Expected 4D input"):
        sd.nn.NoisyConv2d(3, 4, 3, N.Bernoulli(0.5))(torch.randn(3, 8, 8))
    # issue 26: UnitNoise takes 0-d inputs as nn.Dropout does (tests/nn/test_torch_parity.py);
    # LayerNoise (one scale per example) still needs a batch dimension
    with pytest.raises(ValueError, match="received a 0D input"):
        sd.nn.LayerNoise(N.Bernoulli(0.5))(torch.tensor(1.0))


def test_extra_repr():
    assert repr(sd.nn.UnitNoise(N.Bernoulli(0.9))) == (
        "UnitNoise(noise=Bernoulli(keep=0.9), share_across_batch=False, normalize=True)")
    r = repr(sd.nn.NoisyConv2d(3, 4, 3, N.Rayleigh(1.0), tie="channel"))
    assert "tie='channel'" in r and "noise=Rayleigh(scale=1)" in r
    r = repr(sd.nn.NoisyLSTM(3, 4, N.Bernoulli(0.5), tie_gates=False))
    assert "tie_gates=False" in r
    r = repr(sd.nn.WeightNoiseLinear(3, 4, N.Gaussian(1.0, 1.0), local_reparameterization=True))
    assert "local_reparameterization=True" in r and "in_features=3" in r


def _has_priors():
    try:
        N.Bernoulli(0.5).marginal_prior(1.0)
        return True
    except (AttributeError, ImportError):
        return False


@pytest.mark.skipif(not _has_priors(), reason="shrinkdrop.priors not available yet")
def test_prior_descriptions():
    p = sd.nn.UnitNoise(N.Rayleigh(0.5)).prior(sigma0=2.0)
    assert p.structure == "ARD" and p.noise_shape == ("N", "D_in")
    assert "input unit r" in p.groups
    w = torch.linspace(-3, 3, 7)
    ref = N.Rayleigh(0.5).marginal_prior(2.0)
    torch.testing.assert_close(p.marginal.log_prob(w), ref.log_prob(w))
    assert sd.nn.ChannelNoise(N.Bernoulli(0.5), True).prior().noise_shape == ("1", "C")
    assert sd.nn.WeightNoiseLinear(2, 3, N.Bernoulli(0.5)).prior().structure == "DropConnect"
    assert sd.nn.NoisyResidual(nn.Identity(), N.Bernoulli(0.5)).prior().structure == "ADD"
    both = sd.nn.NoisyResidual(nn.Identity(), N.Bernoulli(0.5), N.Rayleigh(1.0)).prior()
    assert both.structure == "ARD+ADD" and both.marginal is None
    conv = sd.nn.NoisyConv2d(3, 4, 3, N.Bernoulli(0.5), tie="channel").prior()
    assert conv.noise_shape == ("N", "C_in/groups", "F")
    assert sd.nn.NoisyLSTM(3, 4, N.Bernoulli(0.5), False).prior().noise_shape == ("N", 4, "D_in")


# ---------------------------------------------------------------- convert
class StochasticDepth(nn.Module):
    """Stand-in with torchvision.ops.StochasticDepth's name and attributes."""

    def __init__(self, p, mode):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        return x


def test_convert_replaces_and_reports():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.Dropout2d(0.2), nn.Flatten(),
        nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 4)), nn.AlphaDropout(0.1),
        StochasticDepth(0.1, "batch"), nn.Dropout(0.0),
    )
    report = sd.convert(model, "bernoulli")
    assert isinstance(model[1], sd.nn.ChannelNoise)
    assert float(model[1].noise.keep) == pytest.approx(0.8)
    assert isinstance(model[3][0], sd.nn.UnitNoise)
    assert float(model[3][0].noise.keep) == pytest.approx(0.5)
    assert isinstance(model[5], sd.nn.LayerNoise) and model[5].share_across_batch
    assert isinstance(model[4], nn.AlphaDropout) and isinstance(model[6], nn.Dropout)
    assert [r.name for r in report.replaced] == ["1", "3.0", "5"]
    # alpha dropout still draws Bernoulli masks: reported, so the conversion is not complete
    assert {n for n, _ in report.skipped} == {"6"}
    assert [n.name for n in report.not_converted] == ["4"] and not report.complete
    alpha0 = sd.convert(nn.Sequential(nn.AlphaDropout(0.0)), "bernoulli")
    assert alpha0.complete and [n for n, _ in alpha0.skipped] == ["0"]
    assert "Dropout(p=0.5" in str(report)
    model2 = nn.Sequential(nn.Dropout(0.3))
    sd.convert(model2, N.Gaussian.dropout)
    assert isinstance(model2[0].noise, N.Gaussian)
    model3 = nn.Sequential(nn.Dropout(0.3))
    sd.convert(model3, N.Rayleigh(1.0))
    assert isinstance(model3[0].noise, N.Rayleigh)
    with pytest.raises(ValueError, match="'bernoulli' or 'gaussian'"):
        sd.convert(nn.Sequential(nn.Dropout(0.3)), "cauchy")


@pytest.mark.parametrize("mode,peer", [
    ("LSTM", lambda: nn.LSTM(4, 6, 2)), ("GRU", lambda: nn.GRU(4, 6, 2)),
    ("RNN_TANH", lambda: nn.RNN(4, 6, 2)),
    ("RNN_RELU", lambda: nn.RNN(4, 6, 2, nonlinearity="relu")),
])
def test_noisy_stacked_rnn_built_directly_is_torch_module_without_noise(mode, peer):
    """Built directly (not by convert), the layer has the peer's parameters, initialised from the
    same seed as torch initialises them, and in eval() its outputs equal the peer's (it used to
    hold no parameters and fail with an IndexError inside forward)."""
    torch.manual_seed(0)
    ref = peer().eval()
    torch.manual_seed(0)
    ours = sd.nn.NoisyStackedRNN(mode, 4, 6, 2, sd.noise.Bernoulli(0.7)).eval()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    x = torch.randn(5, 3, 4)
    out, h = ours(x)
    ref_out, ref_h = ref(x)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=0)
    ours.train()
    assert ours(x)[0].shape == (5, 3, 6)  # noise between the layers in training
