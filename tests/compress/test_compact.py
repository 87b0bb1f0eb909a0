"""Compaction: the compacted plain model's outputs equal the masked model's (to 1e-5), it is
smaller, and it saves / loads with weights_only=True."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import shrinkdrop as sd
from shrinkdrop import compress as C
from shrinkdrop.errors import CompactionError
from shrinkdrop.inference import given_scales, scale_sites

LAW = sd.noise.Bernoulli(0.5)


def _un():
    return sd.nn.UnitNoise(LAW, normalize=False)


def _ch():
    return sd.nn.ChannelNoise(LAW, normalize=False)


def _random_scales(model, x, continuous, seed=0, p_off=0.4):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for s in scale_sites(model, x[:2]):
        v = (torch.rand(s.shape, generator=g) > p_off).double()
        if continuous:
            v = v * (0.2 + 2 * torch.rand(s.shape, generator=g, dtype=torch.float64))
        out[s.name] = v.float()
    return out


def _masked(model, scales, x):
    model.eval()
    with torch.no_grad(), given_scales(model, scales):
        return model(x)


def _check(model, x, continuous, seed=0, p_off=0.4):
    scales = _random_scales(model, x, continuous, seed, p_off)
    ref = _masked(model, scales, x)
    small = C.compact(model, scales, x)
    with torch.no_grad():
        got = small(x)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    assert C.count_parameters(small) < C.count_parameters(model)
    assert not any(isinstance(m, sd.nn.NoiseLayer) for m in small.modules())
    return small, scales


def _mlp():
    return nn.Sequential(_un(), nn.Linear(12, 30), nn.ReLU(), _un(), nn.Linear(30, 20),
                         nn.Tanh(), _un(), nn.Linear(20, 3))


def _cnn():
    m = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), _ch(), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Conv2d(8, 12, 3), _ch(), nn.BatchNorm2d(12), nn.ReLU(),
                      nn.Flatten(), _un(), nn.Linear(12 * 2 * 2, 16), nn.ReLU(), _un(),
                      nn.Linear(16, 5))
    g = torch.Generator().manual_seed(3)
    for bn in (m[1], m[7]):  # non-trivial statistics: eval-mode BatchNorm is an affine map
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
        bn.running_var.copy_(0.5 + torch.rand(bn.num_features, generator=g))
        bn.weight.data.copy_(0.5 + torch.rand(bn.num_features, generator=g))
        bn.bias.data.copy_(torch.randn(bn.num_features, generator=g))
    return m


def _resnet():
    def block():
        return sd.nn.NoisyResidual(nn.Sequential(nn.Linear(10, 16, bias=False), nn.ReLU(),
                                                 nn.Linear(16, 10, bias=False), nn.ReLU()),
                                   layer_noise=LAW, unit_noise=LAW, normalize=False)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), block(), block(), block(),
                         nn.Linear(10, 2))


@pytest.mark.parametrize("continuous", [False, True], ids=["bernoulli", "continuous"])
@pytest.mark.parametrize("make,shape", [(_mlp, (7, 12)), (_cnn, (5, 2, 8, 8)),
                                        (_resnet, (9, 6))], ids=["mlp", "cnn_bn", "resnet"])
def test_compacted_equals_masked(make, shape, continuous):
    torch.manual_seed(0)
    model = make()
    x = torch.randn(*shape)
    for seed in range(3):
        _check(model, x, continuous, seed)


def test_cnn_removes_filters_and_their_batchnorm_channels():
    torch.manual_seed(0)
    model, x = _cnn(), torch.randn(4, 2, 8, 8)
    scales = {s.name: torch.ones(s.shape) for s in scale_sites(model, x[:2])}
    scales["2.tau"][[1, 4, 5]] = 0.0
    small = C.compact(model, scales, x)
    convs = [m for m in small.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in small.modules() if isinstance(m, nn.BatchNorm2d)]
    assert convs[0].out_channels == 5 and convs[1].in_channels == 5
    assert bns[0].num_features == 5
    torch.testing.assert_close(small(x), _masked(model, scales, x), atol=1e-5, rtol=1e-5)


def test_residual_block_switched_off_is_removed():
    torch.manual_seed(0)
    model, x = _resnet(), torch.randn(5, 6)
    scales = {"2.tau": torch.tensor(0.0), "4.tau": torch.tensor(0.0)}
    small = C.compact(model, scales, x)
    assert sum(isinstance(m, C.Residual) for m in small) == 1
    torch.testing.assert_close(small(x), _masked(model, scales, x), atol=1e-5, rtol=1e-5)


def test_block_with_bias_cannot_be_removed():
    blk = sd.nn.NoisyResidual(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), layer_noise=LAW,
                              normalize=False)
    model = nn.Sequential(nn.Linear(3, 4), blk, nn.Linear(4, 1))
    with torch.no_grad():
        blk.block[0].bias.fill_(1.0)
    with pytest.raises(CompactionError, match="does not map 0 to 0"):
        C.compact(model, {"1.tau": torch.tensor(0.0)}, torch.randn(2, 3))


def test_unknown_layer_is_named():
    model = nn.Sequential(nn.Linear(3, 4), nn.LSTM(4, 4))
    with pytest.raises(CompactionError, match="LSTM"):
        C.compact(model, None, torch.randn(2, 3))


def test_flops_and_parameters_shrink_with_the_units():
    torch.manual_seed(0)
    model, x = _mlp(), torch.randn(3, 12)
    dense = C.compact(model, None, x)
    assert C.count_parameters(dense) == C.count_parameters(model)
    assert C.count_flops(dense, x) == 2 * (12 * 30 + 30 * 20 + 20 * 3)
    scales = {"3.xi": torch.cat([torch.zeros(10), torch.ones(20)])}
    small = C.compact(model, scales, x)
    assert C.count_flops(small, x) == 2 * (12 * 20 + 20 * 20 + 20 * 3)


def test_save_and_load_with_weights_only(tmp_path):
    torch.manual_seed(0)
    model, x = _cnn(), torch.randn(4, 2, 8, 8)
    small, scales = _check(model, x, True, seed=1)
    C.save(small, tmp_path / "m")
    sd_ = torch.load(tmp_path / "m" / "state_dict.pt", weights_only=True)
    assert set(sd_) == set(small.state_dict())
    back = C.load(tmp_path / "m")
    torch.testing.assert_close(back(x), small(x), atol=0, rtol=0)
    torch.manual_seed(0)
    res = _resnet()
    xr = torch.randn(5, 6)
    small_r, _ = _check(res, xr, True, seed=2)
    C.save(small_r, tmp_path / "r")
    torch.testing.assert_close(C.load(tmp_path / "r")(xr), small_r(xr), atol=0, rtol=0)
