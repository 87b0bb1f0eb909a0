"""NetSpec's scale sites come from the layers: names, shapes and kinds as pinned, words from nn."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import shrinkdrop as sd
from shrinkdrop.inference.models import NetSpec

# (spec, [(name, layer, kind, shape), ...]) as NetSpec built them by hand before it asked the layers
PINNED = [
    (dict(layers=[3, 1]), [("xi_0", 0, "ard", (3,))]),
    (dict(layers=[4, 5, 2]), [("xi_0", 0, "ard", (4,)), ("xi_1", 1, "ard", (5,))]),
    (dict(layers=[2, 3, 3, 1]),
     [("xi_0", 0, "ard", (2,)), ("xi_1", 1, "ard", (3,)), ("xi_2", 2, "ard", (3,))]),
    (dict(layers=[4, 6, 6, 6, 1], residual=True),
     [("xi_0", 0, "ard", (4,)), ("xi_1", 1, "ard", (6,)), ("xi_2", 2, "ard", (6,)),
      ("xi_3", 3, "ard", (6,))]),
    (dict(layers=[4, 6, 6, 6, 1], residual=True, structure="add"),
     [("xi_0", 0, "ard", (4,)), ("tau_1", 1, "add", ()), ("tau_2", 2, "add", ()),
      ("xi_3", 3, "ard", (6,))]),
    (dict(layers=[4, 6, 6, 6, 1], residual=True, structure="ard+add"),
     [("xi_0", 0, "ard", (4,)), ("xi_1", 1, "ard", (6,)), ("tau_1", 1, "add", ()),
      ("xi_2", 2, "ard", (6,)), ("tau_2", 2, "add", ()), ("xi_3", 3, "ard", (6,))]),
]


@pytest.mark.parametrize("kw, pinned", PINNED)
def test_sites_are_as_pinned(kw, pinned):
    sites = NetSpec(**kw).sites
    assert [(s.name, s.layer, s.kind, s.shape) for s in sites] == pinned
    assert [s.name for s in sites] == [f"{'xi' if s.kind == 'ard' else 'tau'}_{s.layer}"
                                       for s in sites]


@pytest.mark.parametrize("kw, pinned", PINNED)
def test_structure_words_come_from_the_layers(kw, pinned):
    spec = NetSpec(**kw)
    law = sd.noise.Bernoulli(keep=0.5)
    for s in spec.sites:
        width = spec.layers[s.layer]
        if s.layer in spec.residual_layers:
            layer = sd.nn.NoisyResidual(nn.Identity(), layer_noise=law, unit_noise=law)
        else:
            layer = sd.nn.UnitNoise(law)
        role = "xi" if s.kind == "ard" else "tau"
        (own,) = [o for o in layer.scale_sites((1, width)) if o.role == role]
        assert s.structure == own.structure == type(layer)._MEANINGS[role].structure
        assert s.shape == own.shape


def test_structure_words_do_not_enter_equality():
    site = NetSpec([3, 1]).sites[0]
    assert site == sd.inference.ScaleSite("xi_0", 0, "ard", (3,))
    assert site.structure == "ARD (per input unit)"


def test_ard_sites_match_a_unit_noise_model():
    """The ARD sites of a plain MLP are the SVI sites of the same MLP built from UnitNoise."""
    spec = NetSpec([3, 5, 2])
    law = sd.noise.Bernoulli(keep=0.9)
    model = nn.Sequential(sd.nn.UnitNoise(law), nn.Linear(3, 5), nn.ReLU(),
                          sd.nn.UnitNoise(law), nn.Linear(5, 2))
    svi = sd.inference.scale_sites(model, torch.randn(2, 3))
    assert [(s.shape, s.structure) for s in spec.sites] == [(s.shape, s.structure) for s in svi]
