"""What a layer means, asked of the layer: scale sites, forward at given scales, weight pairing."""

import pytest
import torch
from torch import nn

import shrinkdrop as sd
from shrinkdrop import noise as N
from shrinkdrop.errors import UnsupportedLayerError
from shrinkdrop.nn.sites import NoisyWeight, noisy_weights


class StandIn(nn.Module):
    """A duck-typed noise module (a ``noise`` attribute, not a NoiseLayer)."""

    def __init__(self, noise):
        super().__init__()
        self.noise = noise

    def forward(self, x):
        return x * self.noise.mean


class _Wrap(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x, x, x)[0]


def _models():
    blk = nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU())
    lstm = nn.Sequential(nn.LSTM(3, 4, 2, dropout=0.2), nn.Linear(4, 2))
    sd.convert(lstm, "bernoulli")
    mha = nn.Sequential(nn.Dropout(0.1), nn.Linear(4, 4), _Wrap(nn.MultiheadAttention(4, 2, 0.1)),
                        nn.Linear(4, 4))
    sd.convert(mha, "bernoulli")
    return {
        "standin mlp": nn.Sequential(StandIn(N.Bernoulli(0.8)), nn.Linear(5, 16), nn.ReLU(),
                                     StandIn(N.Uniform(0.0, 2.0)), nn.Linear(16, 1)),
        "unit": nn.Sequential(sd.nn.UnitNoise(N.Bernoulli(0.8)), nn.Linear(5, 3),
                              sd.nn.UnitNoise(N.Rayleigh(0.5), normalize=False), nn.Linear(3, 1)),
        "channel": nn.Sequential(nn.Conv2d(2, 3, 3), sd.nn.ChannelNoise(N.Gaussian(1.0, 0.5)),
                                 nn.Conv2d(3, 4, 3)),
        "residual": nn.Sequential(sd.nn.NoisyResidual(blk, N.Bernoulli(0.7), N.Rayleigh(1.0)),
                                  nn.Linear(4, 1)),
        "own weights": nn.Sequential(sd.nn.WeightNoiseLinear(4, 3, N.Bernoulli(0.5)),
                                     sd.nn.NoisyConv2d(1, 2, 3, N.Gaussian(1.0, 0.2))),
        "layer noise": nn.Sequential(nn.Linear(3, 3), sd.nn.LayerNoise(N.Bernoulli(0.5))),
        "lstm": sd.nn.NoisyLSTM(3, 4, N.Bernoulli(0.5)),
        "converted rnn": lstm,
        "converted attention": mha,
    }


def _reference_noisy_weights(model: nn.Module) -> list[tuple]:
    """The module walk ``objectives.noisy_weights`` did before the layers answered for
    themselves (issue 25), kept here as the oracle of the layers' answer."""
    pairs, pending = [], None
    for m in model.modules():
        noise = getattr(m, "noise", None)
        if noise is not None and getattr(m, "pairs_with_next_weight", True) is False:
            pending = None
            continue
        w = getattr(m, "weight", None)
        has_w = isinstance(w, torch.Tensor) and w.ndim >= 2
        if noise is not None:
            c = 1.0 / float(noise.mean.reshape(-1)[0]) if getattr(m, "normalize", False) else 1.0
            if has_w:
                pairs.append((w, noise, c))
                pending = None
            else:
                pending = (noise, c)
        elif has_w and pending is not None:
            pairs.append((w, pending[0], pending[1]))
            pending = None
    return pairs


@pytest.mark.parametrize("name", list(_models()))
def test_noisy_weights_match_the_module_walk(name):
    model = _models()[name]
    assert sd.train.noisy_weights is noisy_weights  # the priors ask the layers
    ours, theirs = noisy_weights(model), _reference_noisy_weights(model)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert isinstance(a, NoisyWeight)
        assert a.weight is b[0] and a.noise is b[1] and a.c == b[2]
    assert ours == theirs  # a NoisyWeight is the triple


def test_scale_sites_of_each_layer():
    u = sd.nn.UnitNoise(N.Bernoulli(0.5)).scale_sites((2, 7))
    assert [(s.role, s.shape, s.structure) for s in u] == [("xi", (7,), "ARD (per input unit)")]
    assert sd.nn.ChannelNoise(N.Bernoulli(0.5)).scale_sites((2, 5, 4, 4))[0].shape == (5,)
    assert sd.nn.LayerNoise(N.Bernoulli(0.5)).scale_sites((2, 5))[0].shape == ()
    res = sd.nn.NoisyResidual(nn.Identity(), N.Bernoulli(0.5), N.Rayleigh(1.0))
    sites = res.scale_sites((3, 6))
    assert [(s.role, s.shape) for s in sites] == [("xi", (6,)), ("tau", ())]
    assert isinstance(sites[0].noise, N.Rayleigh) and sites[1].bernoulli
    conv = sd.nn.NoisyConv2d(4, 6, 3, N.Bernoulli(0.5), tie="both", groups=2)
    assert [(s.role, s.shape) for s in conv.scale_sites((1, 4, 8, 8))] == [("xi", (2, 6)),
                                                                           ("tau", (6,))]
    assert all(s.path == "" for s in sites)


def test_forward_at_scales_is_the_layers_forward_at_those_scales():
    torch.manual_seed(0)
    x = torch.randn(5, 4)
    xi = torch.tensor([1.0, 0.0, 2.0, 0.5])
    torch.testing.assert_close(sd.nn.UnitNoise(N.Bernoulli(0.5)).forward_at_scales(x, {"xi": xi}),
                               x * xi)
    img = torch.randn(2, 3, 4, 4)
    tau = torch.tensor([1.0, 0.0, 3.0])
    out = sd.nn.ChannelNoise(N.Bernoulli(0.5)).forward_at_scales(img, {"tau": tau})
    torch.testing.assert_close(out, img * tau[:, None, None])


@pytest.mark.parametrize("layer", [
    sd.nn.NoisyLSTM(3, 4, N.Bernoulli(0.5)), sd.nn.WeightNoiseLinear(2, 3, N.Bernoulli(0.5)),
    sd.nn.AttentionNoise(N.Bernoulli(0.5))])
def test_layers_without_scale_sites_say_so(layer):
    name = type(layer).__name__
    assert not layer.has_scale_sites()
    for call in (lambda: layer.scale_sites((1, 3)), layer.scale_roles,
                 lambda: layer.forward_at_scales(torch.ones(1, 3), {})):
        with pytest.raises(UnsupportedLayerError, match=f"{name} has no .*UnitNoise"):
            call()


def test_prior_and_sites_share_the_words():
    layer = sd.nn.UnitNoise(N.Bernoulli(0.5))
    assert layer.prior().groups == layer._MEANINGS["xi"].groups
    conv = sd.nn.NoisyConv2d(2, 3, 3, N.Bernoulli(0.5), tie="channel")
    assert conv.prior().groups == conv._MEANINGS["xi"].groups
    assert conv.scale_sites((1, 2, 5, 5))[0].structure == conv._MEANINGS["xi"].structure


def test_scale_shape_is_the_ard_shape_of_the_weight():
    model = nn.Sequential(sd.nn.UnitNoise(N.Bernoulli(0.5)), nn.Linear(5, 3),
                          sd.nn.NoisyConv2d(2, 4, 3, N.Bernoulli(0.5)))
    assert [p.scale_shape() for p in noisy_weights(model)] == [(1, 5), (1, 2, 1, 1)]


def test_given_scales_leave_no_state_behind():
    from shrinkdrop.inference import given_scales

    layer = sd.nn.UnitNoise(N.Bernoulli(0.5))
    model = nn.Sequential(layer, nn.Linear(3, 1))
    assert "_given_scales" not in vars(layer)
    with given_scales(model, {"0.xi": torch.zeros(3)}):
        torch.testing.assert_close(model(torch.ones(2, 3)), model[1].bias.expand(2, 1))
    assert layer._given_scales is None and layer.forward.__func__ is type(layer).forward


def test_weight_pairing_of_zero_keep_is_a_clear_error():
    """Bernoulli(0) is legal (it zeros its input, as nn.Dropout(p=1)), but the weight it pairs
    with has no scale c = 1 / E[xi]: a NotNormalizableError naming the layer, not a
    ZeroDivisionError; with normalize=False c = 1."""
    from shrinkdrop.errors import NotNormalizableError

    model = nn.Sequential(sd.nn.UnitNoise(N.Bernoulli(0.0)), nn.Linear(3, 1))
    assert torch.equal(model(torch.ones(2, 3))[:, 0], model[1].bias.expand(2))
    with pytest.raises(NotNormalizableError, match=r"UnitNoise.*E\[xi\] = 0.*keep > 0"):
        noisy_weights(model)
    raw = nn.Sequential(sd.nn.UnitNoise(N.Bernoulli(0.0), normalize=False), nn.Linear(3, 1))
    (pair,) = noisy_weights(raw)
    assert pair.weight is raw[1].weight and pair[2] == 1.0
