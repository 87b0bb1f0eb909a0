"""Each family owns its law, fast draw, Pyro form and dropout matching (issue 25): no switch
on the family elsewhere. These tests pin the family-level API the layers and the inference
code call."""

from __future__ import annotations

import math

import pytest
import torch

import shrinkdrop.noise as N
from shrinkdrop import functional as F
from shrinkdrop.noise.base import NoiseDistribution

LAWS = [N.Bernoulli(0.8), N.Gaussian(1.0, 0.5), N.Rayleigh(0.7), N.InverseNakagami(5.0, 1.0),
        N.HalfCauchy(1.0), N.Beta(2.0, 1.5), N.Uniform(0.2, 1.8), N.LogNormal(0.1, 0.4),
        N.LogUniform(0.01, 2.0)]


@pytest.mark.parametrize("law", LAWS, ids=repr)
def test_every_family_has_its_fast_draw_and_pyro_form(law):
    cls = type(law)
    assert cls._fast_draw is not NoiseDistribution._fast_draw
    assert cls.pyro_law is not NoiseDistribution.pyro_law
    # Bernoulli's is the keep given, in double precision (issue 26), the others' the tensor's
    assert law.scalar_mean == (0.8 if cls is N.Bernoulli else float(law.mean))
    assert law.is_discrete == (cls is N.Bernoulli)
    assert (law._dropout_keep is not None) == (cls is N.Bernoulli)
    assert (law._gaussian_params is not None) == (cls is N.Gaussian)


class _Shifted(NoiseDistribution):
    """A family with no fast draw of its own: the layers fall back on its ``sample``."""

    arg_constraints = {}

    def __init__(self) -> None:
        super().__init__(torch.Size(), validate_args=False)

    def _draw(self, shape, generator):
        return 1.0 + torch.rand(shape, generator=generator)

    @property
    def mean(self):
        return torch.tensor(1.5)


def test_a_family_without_fast_draw_uses_its_sample():
    law = _Shifted()
    xi = F.draw_noise(law, (4, 3), normalize=False, generator=torch.Generator().manual_seed(0))
    ref = law.sample((4, 3), generator=torch.Generator().manual_seed(0))
    assert torch.equal(xi, ref)
    xn = F.draw_noise(law, (4, 3), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(xn, ref / 1.5)
    with pytest.raises(NotImplementedError, match="no Pyro form"):
        law.pyro_law()


@pytest.mark.parametrize("name", ["gaussian", "inverse_nakagami", "beta", "uniform",
                                  "log_normal"])
@pytest.mark.parametrize("rate", [0.05, 0.2])
def test_matched_to_dropout_has_dropouts_variance(name, rate):
    params = N.FAMILIES[name].matched_to_dropout(rate)
    law = N.FAMILIES[name](**{k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()})
    assert math.isclose(float(law.variance) / float(law.mean) ** 2, rate / (1 - rate),
                        rel_tol=1e-6)  # Gaussian: its std is float32


def test_matched_to_dropout_special_cases():
    assert N.Bernoulli.matched_to_dropout(0.1) == {"keep": 0.9}
    assert N.Rayleigh.matched_to_dropout(0.3) == {"scale": 1.0}
    assert N.Gaussian.matched_to_dropout(0.0) is None
    assert N.Uniform.matched_to_dropout(0.4) is None  # p / (1 - p) > 1/3: out of reach
    with pytest.raises(ValueError, match="scale grid"):
        N.HalfCauchy.matched_to_dropout(0.1)
