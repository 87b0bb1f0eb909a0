"""StackedNoisyMLP asks UnitNoise what its noise means: its sites are UnitNoise's."""

from __future__ import annotations

import torch

import shrinkdrop as sd
from shrinkdrop.ensemble import StackedNoisyMLP


def _stack() -> StackedNoisyMLP:
    b, g = sd.noise.Bernoulli(keep=0.9), sd.noise.Gaussian(1.0, 0.5)
    return StackedNoisyMLP([3, 5, 4, 1], [b, b, g])


def test_scale_sites_are_unit_noise_sites():
    stack = _stack()
    for k in range(stack.n_models):
        sites = stack.scale_sites(k)
        layer = sd.nn.UnitNoise(stack.noises[k])
        assert len(sites) == len(stack.weights)
        for s, d in zip(sites, stack.sizes[:-1]):
            (own,) = layer.scale_sites((1, d))
            assert (s.role, s.structure, s.shape) == (own.role, own.structure, own.shape)
            assert s.noise is stack.noises[k]


def test_scale_sites_equal_those_of_the_models():
    stack = _stack()
    for k in range(stack.n_models):
        assert stack.scale_sites(k) == sd.inference.scale_sites(stack.model(k), torch.randn(2, 3))


def test_unit_noise_is_the_models_layer():
    stack = _stack()
    layer = stack.unit_noise(2)
    assert isinstance(layer, sd.nn.UnitNoise)
    assert layer.noise is stack.noises[2] and layer.normalize == stack.normalize
    assert layer.prior().structure == "ARD"
