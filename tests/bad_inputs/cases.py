"""The bad-input table: every case is one call with one wrong argument, and what must happen.

A *library case* is ``(id, call, exception type, words)``: ``call()`` must raise the type (or a
subclass) with a message that holds every word (case-insensitive) - the argument's name and
something about what was expected - and one of :data:`EXPECT_MARKERS` (it says what was
expected). ``warn=True`` cases are legal but suspicious values: a warning of that type holding
the words, no exception.

A *CLI case* is ``(id, argv, words)``: ``shrinkdrop.cli.main(argv)`` in this process must return
2 with exactly one line on stderr, holding the words, and no traceback. ``{tmp}`` in the argv is
the case's scratch folder, ``{file}`` a plain file in it, ``{toy}`` a tiny data set in the UCI
layout. The verbs' experiments are replaced by :func:`cli_sandbox` with a stand-in that raises
:class:`Reached`: a bad value that gets that far went through unnoticed.

:func:`classify` sorts a case into ``clear`` / ``unclear`` (a traceback, a message that does not
name the argument or say what was expected, the wrong type, several stderr lines) / ``silent``
(no error: a bad result). ``tools/bad_input_census.py`` prints the counts; the tests in
``test_bad_inputs.py`` require ``clear`` (``owner`` cases are strict xfails: their fix lives in
another branch's files).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn

import shrinkdrop as sd
from shrinkdrop import ensemble as E
from shrinkdrop import functional as F
from shrinkdrop import gaps as G
from shrinkdrop import inference as I
from shrinkdrop import noise as N
from shrinkdrop import priors as P
from shrinkdrop import train as T
from shrinkdrop.data import find_uci_dirs, load_builtin, load_uci_dir, resolve_data, standardize
from shrinkdrop.experiments import runner as R

#: a message says what was expected when it holds one of these
EXPECT_MARKERS = ("has to", "must", "expected", "expects", "needs", "need ", "only", "at least",
                  "one of", "but got", "cannot", "is not", "not a", "does not", "no such",
                  "unknown", "should", "have to", "has no", "pass ")

#: owner of a fix that lives in another branch (the case is a strict xfail here)
WORK28 = "fixed in work28 branch"
#: files outside input26's area (inference/readout.py, diagnostics.py, linear_ss.py; noise/,
#: priors/, functional.py and the layers of layers26)
OTHER = "fix belongs to a file outside input26's area"
NAN, INF = math.nan, math.inf


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[], object]
    exc: type[BaseException] | tuple[type[BaseException], ...]
    words: tuple[str, ...]
    owner: str | None = None
    warn: bool = False


@dataclass(frozen=True)
class Cli:
    id: str
    argv: tuple[str, ...]
    words: tuple[str, ...]
    owner: str | None = None


LIB: list[Case] = []
CLI: list[Cli] = []


def _other(id: str) -> str:
    """Whose files a fix outside this branch's area belongs to (the xfail reason)."""
    if id.startswith(("nn.convert", "nn.NoisyMultiheadAttention")):
        return "fix belongs to conv26's files (nn/convert.py, nn/attention.py)"
    if id.startswith(("noise.", "functional.", "nn.")):
        return ("fix belongs to layers26's files (noise/, functional.py, nn/_base.py, "
                "nn/linear.py, nn/conv.py)")
    return "fix belongs to a file outside input26's area (priors/special.py, " \
        "inference/diagnostics.py)"


def case(id: str, call: Callable[[], object], exc, *words: str, owner: str | None = None,
         warn: bool = False) -> None:
    assert all(c.id != id for c in LIB), id
    if owner == OTHER:
        owner = _other(id)
    LIB.append(Case(id, call, exc, words, owner, warn))


def cli(id: str, argv: str, *words: str, owner: str | None = None) -> None:
    assert all(c.id != id for c in CLI), id
    CLI.append(Cli(id, tuple(argv.split()), words, owner))


VE, TE = ValueError, TypeError
VT = (ValueError, TypeError)


# ----------------------------------------------------------------------------- fixtures
def _x(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def _with(x: torch.Tensor, at: tuple, value: float) -> torch.Tensor:
    x = x.clone()
    x[at] = value
    return x


def _mlp(d: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, 8), nn.ReLU(), sd.nn.UnitNoise(N.Bernoulli(0.9)),
                         nn.Linear(8, 1))


def _mlp_in(d: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(sd.nn.UnitNoise(N.InverseNakagami(3.0, 1.0)), nn.Linear(d, 1))


def _stacked(d: int = 3, k: int = 2) -> E.StackedNoisyMLP:
    return E.StackedNoisyMLP([d, 8, 1], [N.Bernoulli(0.9)] * k, seeds=list(range(k)))


def _meta(*shape: int) -> torch.Tensor:
    return torch.empty(*shape, device="meta")


X40, Y40 = _x(40, 3), _x(40, 1)
BERN = N.Bernoulli(0.8)


# ----------------------------------------------------------------------------- noise families
_FAMILY_ARGS: dict[str, tuple[type, dict[str, float]]] = {
    "bernoulli": (N.Bernoulli, {"keep": 0.5}),
    "gaussian": (N.Gaussian, {"mean": 1.0, "std": 0.5}),
    "rayleigh": (N.Rayleigh, {"scale": 1.0}),
    "inverse_nakagami": (N.InverseNakagami, {"df": 3.0, "scale": 1.0}),
    "half_cauchy": (N.HalfCauchy, {"scale": 1.0}),
    "beta": (N.Beta, {"a": 2.0, "b": 2.0}),
    "uniform": (N.Uniform, {"low": 0.5, "high": 1.5}),
    "scaled_noncentral_chi2": (N.ScaledNoncentralChi2, {"loc": 1.0, "scale": 0.5}),
}
#: parameters that must be positive (all but the Gaussian's mean and the Uniform's bounds)
_POSITIVE = {"keep", "std", "scale", "df", "a", "b"}

for fam, (cls, kw) in _FAMILY_ARGS.items():
    for par in kw:
        bad_values: list[tuple[str, object, type]] = [
            ("nan", NAN, VE), ("str", "1", TE), ("none", None, TE)]
        if par in _POSITIVE:
            # keep = 0 is legal: Bernoulli(0) zeros the input as nn.Dropout(p=1) does
            zero = [] if (fam, par) == ("bernoulli", "keep") else [("zero", 0.0, VE)]
            bad_values += zero + [("negative", -1.0, VE)]
        if par in _POSITIVE | {"mean"}:
            bad_values += [("inf", INF, VE)]
        for tag, v, exc in bad_values:
            cid = f"noise.{fam}.{par}={tag}"
            case(cid, lambda cls=cls, kw=kw, par=par, v=v: cls(**{**kw, par: v}), exc, par)
case("noise.bernoulli.keep=1.5", lambda: N.Bernoulli(1.5), VE, "keep", "[0, 1]")
case("noise.bernoulli.keep=nan-tensor", lambda: N.Bernoulli(torch.tensor([0.5, NAN])), VE,
     "keep")
case("noise.bernoulli.keep=class", lambda: N.Bernoulli(N.Bernoulli), TE, "keep")
case("noise.uniform.low>high", lambda: N.Uniform(2.0, 1.0), VE, "low", "high")
# low < 0 is legal: the Uniform family's support is any real interval (Shen et al. use
# U(1 - h, 1 + h), h up to 1 and beyond; noise/uniform.py handles an interval straddling 0: its
# |xi| bounds, E[xi^-2] = inf, the prior's quadrature from 0), as torch's Uniform(-1, 1) is; the
# bad value is an infinite bound (tests/noise/test_noise.py checks Uniform(-1, 1) works)
case("noise.uniform.low=-inf", lambda: N.Uniform(-INF, 1.0), VE, "low", "finite")
case("noise.beta.a=list", lambda: N.Beta([1.0], 2.0), TE, "a")
case("noise.standard_gamma.negative",
     lambda: N.standard_gamma(torch.tensor([-1.0, 2.0])), VE, "concentration")
case("noise.standard_gamma.nan", lambda: N.standard_gamma(torch.tensor([NAN])), VE,
     "concentration")
case("noise.standard_gamma.list", lambda: N.standard_gamma([1.0, 2.0]), TE, "concentration")
case("noise.standard_gamma.int", lambda: N.standard_gamma(torch.tensor([1, 2])), TE,
     "concentration", "float")
case("noise.standard_gamma.generator", lambda: N.standard_gamma(torch.ones(3), generator=3),
     TE, "generator")

# ----------------------------------------------------------------------------- priors
case("priors.spike_slab.keep=1.5", lambda: P.SpikeAndSlab(1.5), VE, "keep")
case("priors.spike_slab.keep=nan", lambda: P.SpikeAndSlab(NAN), VE, "keep")
case("priors.spike_slab.sigma0=0", lambda: P.SpikeAndSlab(0.5, 0.0), VE, "sigma0")
case("priors.spike_slab.sigma0=inf", lambda: P.SpikeAndSlab(0.5, INF), VE, "sigma0")
case("priors.horseshoe.tau=0", lambda: P.Horseshoe(0.0), VE, "tau")
case("priors.horseshoe.tau=nan", lambda: P.Horseshoe(NAN), VE, "tau")
case("priors.horseshoe.tau=str", lambda: P.Horseshoe("1"), TE, "tau")
case("priors.variance_gamma.scale=-1", lambda: P.VarianceGamma(-1.0), VE, "scale")
case("priors.variance_gamma.scale=inf", lambda: P.VarianceGamma(INF), VE, "scale")
case("priors.gsm.density=float", lambda: P.GaussianScaleMixture(1.0), TE, "abs_log_density")
case("priors.gsm.sigma0=-1",
     lambda: P.GaussianScaleMixture(lambda s: -s, sigma0=-1.0), VE, "sigma0")
case("priors.gsm.lower>upper",
     lambda: P.GaussianScaleMixture(lambda s: -s, lower=2.0, upper=1.0), VE, "lower", "upper")
case("priors.log_bessel_k0.str", lambda: P.log_bessel_k0("1"), (TE, VE), "x")
case("priors.log_exp1_scaled.str", lambda: P.log_exp1_scaled("1"), (TE, VE), "u")

# ----------------------------------------------------------------------------- functional
case("functional.unit_noise.noise=float", lambda: F.unit_noise(_x(4, 3), 0.5), TE, "noise")
case("functional.unit_noise.noise=class", lambda: F.unit_noise(_x(4, 3), N.Bernoulli), TE,
     "noise")
case("functional.unit_noise.x=list", lambda: F.unit_noise([[1.0, 2.0]], BERN), TE, "input")
case("functional.unit_noise.x=int", lambda: F.unit_noise(torch.ones(4, 3, dtype=torch.long),
                                                         BERN), TE, "x", "float")
case("functional.unit_noise.generator=int",
     lambda: F.unit_noise(_x(4, 3), BERN, generator=1), TE, "generator")
case("functional.channel_noise.x=1d", lambda: F.channel_noise(_x(3), BERN), VE, "x")
case("functional.layer_noise.x=str", lambda: F.layer_noise("x", BERN), TE, "input")
case("functional.check_noise.str", lambda: F.check_noise("bernoulli"), TE, "noise")
case("functional.check_noise.class", lambda: F.check_noise(N.Bernoulli), TE, "noise")
case("functional.draw_noise.shape=-1", lambda: F.draw_noise(BERN, (-1, 3)), VE, "shape")
case("functional.draw_noise.shape=str", lambda: F.draw_noise(BERN, "ab"), TE, "shape")
case("functional.draw_noise.dtype=long",
     lambda: F.draw_noise(BERN, (2, 3), dtype=torch.long), VE, "dtype")
case("functional.sample_groups.0", lambda: F.sample_groups(0).__enter__(), VE, "S")
case("functional.sample_groups.-2", lambda: F.sample_groups(-2).__enter__(), VE, "S")
case("functional.sample_groups.1.5", lambda: F.sample_groups(1.5).__enter__(), VE, "S")
case("functional.weight_noise_linear.weight=1d",
     lambda: F.weight_noise_linear(_x(4, 3), _x(3), None, BERN), VE, "weight")
case("functional.weight_noise_linear.x width",
     lambda: F.weight_noise_linear(_x(4, 5), _x(2, 3), None, BERN), VE, "x", "3")
case("functional.noisy_conv2d.tie=bad",
     lambda: F.noisy_conv2d(_x(1, 2, 5, 5), _x(3, 2, 3, 3), None, BERN, tie="bad"), VE, "tie")
case("functional.noisy_residual.block=int",
     lambda: F.noisy_residual(_x(4, 3), 3, layer_noise=BERN), TE, "block")
case("functional.noisy_lstm.hidden_size=0",
     lambda: F.noisy_lstm(_x(5, 2, 3), None, [[_x(0, 3), _x(0, 0)]], BERN, hidden_size=0),
     VE, "hidden_size")

# ----------------------------------------------------------------------------- layers
for layer in ("UnitNoise", "ChannelNoise", "LayerNoise", "AttentionNoise"):
    cls = getattr(sd.nn, layer)
    case(f"nn.{layer}.noise=float", lambda cls=cls: cls(0.5), TE, "noise")
    case(f"nn.{layer}.noise=class", lambda cls=cls: cls(N.Bernoulli), TE, "noise")
    case(f"nn.{layer}.noise=str", lambda cls=cls: cls("bernoulli"), TE, "noise")
    case(f"nn.{layer}.generator=int", lambda cls=cls: cls(BERN, generator=1), TE, "generator")
    case(f"nn.{layer}.forward(list)", lambda cls=cls: cls(BERN)([[1.0]]), TE, "input")
case("nn.ChannelNoise.forward(1d)", lambda: sd.nn.ChannelNoise(BERN)(_x(3)), VE, "x")
case("nn.WeightNoiseLinear.in=0", lambda: sd.nn.WeightNoiseLinear(0, 3, BERN), VE,
     "in_features")
case("nn.WeightNoiseLinear.out=-1", lambda: sd.nn.WeightNoiseLinear(3, -1, BERN), VE,
     "out_features")
case("nn.WeightNoiseLinear.in=2.5", lambda: sd.nn.WeightNoiseLinear(2.5, 3, BERN), VT,
     "in_features")
case("nn.WeightNoiseLinear.noise=float", lambda: sd.nn.WeightNoiseLinear(3, 2, 0.5), TE,
     "noise")
case("nn.WeightNoiseLinear.forward(width)",
     lambda: sd.nn.WeightNoiseLinear(3, 2, BERN)(_x(4, 5)), VE, "3", "5")
case("nn.NoisyConv2d.in=0", lambda: sd.nn.NoisyConv2d(0, 3, 3, BERN), VE, "in_channels")
case("nn.NoisyConv2d.kernel=0", lambda: sd.nn.NoisyConv2d(2, 3, 0, BERN), VE, "kernel_size")
case("nn.NoisyConv2d.tie=bad", lambda: sd.nn.NoisyConv2d(2, 3, 3, BERN, tie="bad"), VE, "tie")
case("nn.NoisyConv2d.forward(channels)",
     lambda: sd.nn.NoisyConv2d(2, 3, 3, BERN)(_x(1, 4, 6, 6)), VE, "2", "4")
case("nn.NoisyResidual.block=int", lambda: sd.nn.NoisyResidual(3, layer_noise=BERN), TE,
     "block")
case("nn.NoisyResidual.noise=float", lambda: sd.nn.NoisyResidual(nn.Identity(), 0.5), TE,
     "layer_noise")
case("nn.NoisyResidual.no noise", lambda: sd.nn.NoisyResidual(nn.Identity()), VE, "noise")
case("nn.NoisyMultiheadAttention.heads", lambda: sd.nn.NoisyMultiheadAttention(5, 2, BERN),
     VE, "num_heads")
case("nn.NoisyMultiheadAttention.embed=0", lambda: sd.nn.NoisyMultiheadAttention(0, 1, BERN),
     VE, "embed_dim")
case("nn.NoisyMultiheadAttention.noise=float",
     lambda: sd.nn.NoisyMultiheadAttention(4, 2, 0.5), TE, "noise")
# the LSTM checks its inputs as nn.LSTM does (it calls the kernel directly)
case("nn.NoisyLSTM.input_size=0", lambda: sd.nn.NoisyLSTM(0, 4, BERN), VE, "input_size")
case("nn.NoisyLSTM.hidden_size=-1", lambda: sd.nn.NoisyLSTM(3, -1, BERN), VE, "hidden_size")
case("nn.NoisyLSTM.hidden_size=2.5", lambda: sd.nn.NoisyLSTM(3, 2.5, BERN), VT, "hidden_size")
case("nn.NoisyLSTM.num_layers=0", lambda: sd.nn.NoisyLSTM(3, 4, BERN, num_layers=0), VE,
     "num_layers")
case("nn.NoisyLSTM.noise=float", lambda: sd.nn.NoisyLSTM(3, 4, 0.5), TE, "noise")
case("nn.NoisyLSTM.forward(width)", lambda: sd.nn.NoisyLSTM(3, 4, BERN)(_x(5, 2, 7)), VE,
     "input", "3", "7")
case("nn.NoisyLSTM.forward(width,eval)",
     lambda: sd.nn.NoisyLSTM(3, 4, BERN).eval()(_x(5, 2, 7)), VE, "input", "3")
case("nn.NoisyLSTM.forward(4d)", lambda: sd.nn.NoisyLSTM(3, 4, BERN)(_x(5, 2, 3, 1)), VE,
     "input", "(T, N, D)")
case("nn.NoisyLSTM.forward(h0 batch)",
     lambda: sd.nn.NoisyLSTM(3, 4, BERN)(_x(5, 2, 3), (_x(1, 7, 4), _x(1, 7, 4))), VE, "h0",
     "(1, 2, 4)")
case("nn.NoisyLSTM.forward(c0 size)",
     lambda: sd.nn.NoisyLSTM(3, 4, BERN)(_x(5, 2, 3), (_x(1, 2, 4), _x(1, 2, 5))), VE, "c0")
case("nn.NoisyLSTM.forward(h0 layers)",
     lambda: sd.nn.NoisyLSTM(3, 4, BERN, num_layers=2)(_x(5, 2, 3), (_x(1, 2, 4), _x(1, 2, 4))),
     VE, "h0", "(2, 2, 4)")
case("nn.NoisyLSTM.forward(hx not tuple)",
     lambda: sd.nn.NoisyLSTM(3, 4, BERN)(_x(5, 2, 3), _x(1, 2, 4)), TE, "hx")
case("nn.NoisyLSTM.forward(batch_first width)",
     lambda: sd.nn.NoisyLSTM(3, 4, BERN, batch_first=True)(_x(2, 5, 6)), VE, "input", "3")
case("nn.NoisyLSTM.forward(int)",
     lambda: sd.nn.NoisyLSTM(3, 4, BERN)(torch.ones(5, 2, 3, dtype=torch.long)), TE, "input",
     "float")
case("nn.NoisyLSTM.forward(list)", lambda: sd.nn.NoisyLSTM(3, 4, BERN)([[1.0, 2.0, 3.0]]), TE,
     "input")
case("nn.NoisyLSTM.forward(meta)", lambda: sd.nn.NoisyLSTM(3, 4, BERN)(_meta(5, 2, 3)), VE,
     "input", "device")
case("nn.NoisyStackedRNN.mode", lambda: sd.nn.NoisyStackedRNN("foo", 3, 4, 1, BERN), VE,
     "mode")
case("nn.NoisyStackedRNN.num_layers=0", lambda: sd.nn.NoisyStackedRNN("LSTM", 3, 4, 0, BERN),
     VE, "num_layers")
case("nn.NoisyStackedRNN.hidden_size=0", lambda: sd.nn.NoisyStackedRNN("GRU", 3, 0, 1, BERN),
     VE, "hidden_size")
case("nn.NoisyStackedRNN.proj_size",
     lambda: sd.nn.NoisyStackedRNN("LSTM", 3, 4, 1, BERN, proj_size=4), VE, "proj_size")
case("nn.NoisyStackedRNN.noise=float", lambda: sd.nn.NoisyStackedRNN("GRU", 3, 4, 1, 0.5), TE,
     "noise")
case("nn.NoisyStackedRNN.forward(width)",
     lambda: sd.nn.NoisyStackedRNN("GRU", 3, 4, 1, BERN)(_x(5, 2, 7)), VE, "input", "3")
case("nn.NoisyStackedRNN.forward(h0 batch)",
     lambda: sd.nn.NoisyStackedRNN("GRU", 3, 4, 1, BERN)(_x(5, 2, 3), _x(1, 9, 4)), VE, "h",
     "(1, 2, 4)")
case("nn.convert.noise=class", lambda: sd.convert(nn.Sequential(nn.Dropout(0.2)), N.Bernoulli),
     TE, "noise", "instance")
case("nn.convert.noise=float", lambda: sd.convert(nn.Sequential(nn.Dropout(0.2)), 0.5), TE,
     "noise")
case("nn.convert.noise=str", lambda: sd.convert(nn.Sequential(nn.Dropout(0.2)), "nosuch"), VE,
     "noise")
case("nn.convert.model=str", lambda: sd.convert("model", BERN), TE, "model")
case("nn.convert.generator=int",
     lambda: sd.convert(nn.Sequential(nn.Dropout(0.2)), BERN, generator=3), TE, "generator")
case("nn.mc_mode.model=str", lambda: sd.mc_mode("model"), TE, "model")
case("nn.mc_mode.enabled=str", lambda: sd.mc_mode(_mlp(), "yes"), TE, "enabled")
case("nn.noisy_weights.model=str", lambda: sd.nn.noisy_weights("model"), TE, "model")

# ----------------------------------------------------------------------------- train
_LL = _x(8, 5)
case("train.mc_objective.list", lambda: T.mc_objective([[1.0]]), TE, "log_liks")
case("train.mc_objective.0d", lambda: T.mc_objective(torch.tensor(1.0)), VE, "log_liks",
     "(S, ...)")
case("train.marginal_map.0d", lambda: T.marginal_map(torch.tensor(1.0)), VE, "log_liks",
     "(S, ...)")
case("train.marginal_map.empty", lambda: T.marginal_map(torch.empty(0, 5)), VE, "log_liks")
case("train.tail_adaptive.beta=nan", lambda: T.tail_adaptive(_LL, beta=NAN), VE, "beta")
case("train.tail_adaptive.beta=inf", lambda: T.tail_adaptive(_LL, beta=INF), VE, "beta")
case("train.tail_adaptive_weights.beta=str", lambda: T.tail_adaptive_weights(_LL, beta="a"),
     TE, "beta")
case("train.objective.name", lambda: T.objective(_LL, "foo"), VE, "objective", "'mc'")
case("train.weight_decay.sigma0=0", lambda: T.weight_decay(0.0, 10), VE, "sigma0")
case("train.weight_decay.sigma0=nan", lambda: T.weight_decay(NAN, 10), VE, "sigma0")
case("train.weight_decay.n=0", lambda: T.weight_decay(1.0, 0), VE, "n")
case("train.weight_decay.n=-3", lambda: T.weight_decay(1.0, -3), VE, "n")
case("train.weight_decay.n=2.5", lambda: T.weight_decay(1.0, 2.5), VE, "n")
case("train.log_prior_ep.sigma0=0", lambda: T.log_prior_ep(_mlp(), 0.0), VE, "sigma0")
case("train.log_prior_ep.model=str", lambda: T.log_prior_ep("model", 1.0), TE,
     "model_or_params")
case("train.log_prior_hp.sigma0=-1", lambda: T.log_prior_hp(_mlp(), -1.0), VE, "sigma0")
case("train.log_prior_hp.xi=bad", lambda: T.log_prior_hp(_mlp(), 1.0, xi="foo"), VE, "xi")
case("train.expected_log_prior_hp.sigma0=inf",
     lambda: T.expected_log_prior_hp(_mlp_in(), INF), VE, "sigma0")
case("train.gaussian_ll.tau=0", lambda: T.gaussian_log_likelihood(Y40, Y40, 0.0), VE, "tau")
case("train.gaussian_ll.tau=nan", lambda: T.gaussian_log_likelihood(Y40, Y40, NAN), VE, "tau")
case("train.gaussian_ll.y shape (40,3)",
     lambda: T.gaussian_log_likelihood(Y40, _x(40, 3), 1.0), VE, "y", "(40, 1)")
case("train.gaussian_ll.y shape (40,1,1)",
     lambda: T.gaussian_log_likelihood(Y40, _x(40, 1, 1), 1.0), VE, "y", "(40, 1)")
case("train.gaussian_ll.y rows",
     lambda: T.gaussian_log_likelihood(Y40, _x(30, 1), 1.0), VE, "y", "(40, 1)")
case("train.categorical_ll.y fractional",
     lambda: T.categorical_log_likelihood(_x(6, 3), torch.full((6,), 0.5)), VE, "y",
     "class indices")
case("train.categorical_ll.y range",
     lambda: T.categorical_log_likelihood(_x(6, 3), torch.full((6,), 5)), VE, "y", "[0, 3)")
case("train.categorical_ll.y negative",
     lambda: T.categorical_log_likelihood(_x(6, 3), torch.full((6,), -1)), VE, "y", "[0, 3)")
case("train.categorical_ll.y rows",
     lambda: T.categorical_log_likelihood(_x(6, 3), torch.zeros(4, dtype=torch.long)), VE, "y",
     "(6,)")
case("train.log_likelihood.name", lambda: T.log_likelihood("foo"), VE, "likelihood")
case("train.log_likelihood.tau=None", lambda: T.log_likelihood("gaussian"), VE, "tau")
case("train.log_likelihood.tau=-1", lambda: T.log_likelihood("gaussian", -1.0), VE, "tau")
case("train.sample_outputs.samples=0", lambda: T.sample_outputs(_mlp(), X40, 0), VE, "samples")
case("train.sample_outputs.x=list", lambda: T.sample_outputs(_mlp(), [[1.0]], 2), TE, "x",
     )
case("train.predict.samples=0", lambda: T.predict(_mlp(), X40, 0), VE, "samples")
case("train.predict.mode", lambda: T.predict(_mlp(), X40, 4, mode="foo"), VE, "mode")
case("train.predict.likelihood", lambda: T.predict(_mlp(), X40, 4, likelihood="foo"), VE,
     "likelihood")
case("train.predict.x width", lambda: T.predict(_mlp(), _x(40, 5), 4), VE, "x", "3",
     )
case("train.predict.x nan", lambda: T.predict(_mlp(), _with(X40, (0, 0), NAN), 4), VE, "x",
     "finite")
case("train.predict.x empty", lambda: T.predict(_mlp(), torch.empty(0, 3), 4), VE, "x",
     "empty")
case("train.predictive_lls.samples=0",
     lambda: T.predictive_log_likelihoods(_mlp(), X40, Y40, 0, tau=1.0), VE, "samples")
case("train.predictive_lls.tau=-1",
     lambda: T.predictive_log_likelihoods(_mlp(), X40, Y40, 4, tau=-1.0), VE, "tau")
case("train.predictive_lls.y_std=0",
     lambda: T.predictive_log_likelihoods(_mlp(), X40, Y40, 4, tau=1.0, y_std=0.0), VE, "y_std",
     )
case("train.predictive_lls.y rows",
     lambda: T.predictive_log_likelihoods(_mlp(), X40, _x(30, 1), 4, tau=1.0), VE, "y")
case("train.predictive_ll.y nan",
     lambda: T.predictive_log_likelihood(_mlp(), X40, _with(Y40, (0, 0), NAN), 4, tau=1.0), VE,
     "y", "finite")
case("train.fit_predictive_precision.negative",
     lambda: T.fit_predictive_precision(-torch.ones(4, 5)), VE, "sq_errors")
case("train.fit_predictive_precision.nan",
     lambda: T.fit_predictive_precision(_with(torch.ones(4, 5), (0, 0), NAN)), VE, "sq_errors")
case("train.fit_predictive_precision.grid=0",
     lambda: T.fit_predictive_precision(torch.ones(4, 5), grid=0), VE, "grid")
case("train.fit_predictive_precision.iters=-1",
     lambda: T.fit_predictive_precision(torch.ones(4, 5), iters=-1), VE, "iters")
case("train.fit_predictive_precision.event_size=0",
     lambda: T.fit_predictive_precision(torch.ones(4, 5), event_size=0), VE, "event_size")
case("train.fit_predictive_precision.1d",
     lambda: T.fit_predictive_precision(torch.ones(5)), VE, "sq_errors")
case("train.fit_predictive_tau.samples=0",
     lambda: T.fit_predictive_tau(_mlp(), X40, Y40, samples=0), VE, "samples")
case("train.fit_predictive_tau.y_std=-1",
     lambda: T.fit_predictive_tau(_mlp(), X40, Y40, samples=4, y_std=-1.0), VE, "y_std")
case("train.fit_predictive_tau.y nan",
     lambda: T.fit_predictive_tau(_mlp(), X40, _with(Y40, (1, 0), NAN), samples=4), VE, "y",
     "finite")


def _fit(X=X40, y=Y40, **kw):
    kw = {"tau": 1.0, "epochs": 1, "progress": False, **kw}
    return sd.fit(_mlp(), X, y, **kw)


case("train.fit.objective", lambda: _fit(objective="foo"), VE, "objective")
case("train.fit.likelihood", lambda: _fit(likelihood="foo"), VE, "likelihood")
case("train.fit.samples=0", lambda: _fit(samples=0), VE, "samples")
case("train.fit.epochs=-1", lambda: _fit(epochs=-1), VE, "epochs")
case("train.fit.batch_size=0", lambda: _fit(batch_size=0), VE, "batch_size")
case("train.fit.lr=0", lambda: _fit(lr=0.0), VE, "lr")
case("train.fit.lr=nan", lambda: _fit(lr=NAN), VE, "lr")
case("train.fit.tau=0", lambda: _fit(tau=0.0), VE, "tau")
case("train.fit.sigma0=-1", lambda: _fit(sigma0=-1.0), VE, "sigma0")
case("train.fit.sigma0+weight_decay", lambda: _fit(sigma0=1.0, weight_decay=0.1), VE, "sigma0",
     "weight_decay")
case("train.fit.X=list", lambda: _fit(X=[[1.0, 2.0, 3.0]]), TE, "X")
case("train.fit.X rows", lambda: _fit(y=_x(30, 1)), VE, "y", "40")
case("train.fit.X nan", lambda: _fit(X=_with(X40, (3, 1), NAN)), VE, "X", "finite",
     )
case("train.fit.X inf", lambda: _fit(X=_with(X40, (3, 1), INF)), VE, "X", "finite",
     )
case("train.fit.y nan", lambda: _fit(y=_with(Y40, (3, 0), NAN)), VE, "y", "finite",
     )
case("train.fit.y inf", lambda: _fit(y=_with(Y40, (3, 0), -INF)), VE, "y", "finite",
     )
case("train.fit.y shape (40,3)", lambda: _fit(y=_x(40, 3)), VE, "y", "(40, 3)", "output")
case("train.fit.y shape (40,1,1)", lambda: _fit(y=_x(40, 1, 1)), VE, "y", "(40, 1, 1)",
     "output")
case("train.fit.X empty", lambda: _fit(X=torch.empty(0, 3), y=torch.empty(0, 1)), VE, "X",
     "row")
case("train.fit.X width", lambda: _fit(X=_x(40, 5)), VE, "X", "3")
case("train.fit.X meta", lambda: _fit(X=_meta(40, 3), y=_meta(40, 1)), VE, "X", "device",
     )
case("train.fit.seed=str", lambda: _fit(seed="a"), TE, "seed")

# ----------------------------------------------------------------------------- ensemble
case("ensemble.mlp.sizes=[3]", lambda: E.StackedNoisyMLP([3], [BERN]), VE, "sizes")
case("ensemble.mlp.sizes zero", lambda: E.StackedNoisyMLP([3, 0, 1], [BERN]), VE, "sizes")
case("ensemble.mlp.noises empty", lambda: E.StackedNoisyMLP([3, 4, 1], []), VE, "noises")
case("ensemble.mlp.noises float", lambda: E.StackedNoisyMLP([3, 4, 1], [0.5]), TE, "noises")
case("ensemble.mlp.seeds length",
     lambda: E.StackedNoisyMLP([3, 4, 1], [BERN, BERN], seeds=[1]), VE, "seeds")
case("ensemble.mlp.init", lambda: E.StackedNoisyMLP([3, 4, 1], [BERN], init="foo"), VE, "init")
case("ensemble.check_init", lambda: E.check_init("foo"), VE, "init")
case("ensemble.init_linears_.init", lambda: E.init_linears_([nn.Linear(2, 3)], "foo"), VE,
     "init")


XS, YS = torch.stack([X40, X40]), torch.stack([Y40[:, 0], Y40[:, 0]])


def _fs(X=XS, y=YS, **kw):
    kw = {"tau": 1.0, "epochs": 1, "progress": False, **kw}
    return E.fit_stacked(_stacked(), X, y, **kw)


case("ensemble.fit_stacked.X nan", lambda: _fs(X=_with(XS, (1, 2, 2), NAN)), VE, "X", "finite")
case("ensemble.fit_stacked.X inf", lambda: _fs(X=_with(XS, (0, 2, 2), INF)), VE, "X", "finite")
case("ensemble.fit_stacked.y nan", lambda: _fs(y=_with(YS, (1, 2), NAN)), VE, "y", "finite")
case("ensemble.fit_stacked.y inf", lambda: _fs(y=_with(YS, (0, 2), -INF)), VE, "y", "finite")
case("ensemble.fit_stacked.X width", lambda: _fs(X=_x(2, 40, 5)), VE, "X", "3")
case("ensemble.fit_stacked.X 2d", lambda: _fs(X=X40), VE, "X", "(G, N, d)")
case("ensemble.fit_stacked.y rows", lambda: _fs(y=_x(2, 30)), VE, "y", "40")
case("ensemble.fit_stacked.y shape (2,40,3)", lambda: _fs(y=_x(2, 40, 3)), VE, "y")
case("ensemble.fit_stacked.X empty", lambda: _fs(X=torch.empty(2, 0, 3), y=torch.empty(2, 0)),
     VE, "X", "row")
case("ensemble.fit_stacked.X meta", lambda: _fs(X=_meta(2, 40, 3), y=_meta(2, 40)), VE, "X",
     "device")
case("ensemble.fit_stacked.X list", lambda: _fs(X=[[1.0, 2.0, 3.0]]), TE, "X")
case("ensemble.fit_stacked.epochs=-1", lambda: _fs(epochs=-1), VE, "epochs")
case("ensemble.fit_stacked.samples=0", lambda: _fs(samples=0), VE, "samples")
case("ensemble.fit_stacked.batch_size=0", lambda: _fs(batch_size=0), VE, "batch_size")
case("ensemble.fit_stacked.lr=0", lambda: _fs(lr=0.0), VE, "lr")
case("ensemble.fit_stacked.lr=inf", lambda: _fs(lr=INF), VE, "lr")
case("ensemble.fit_stacked.tau=0", lambda: _fs(tau=0.0), VE, "tau")
case("ensemble.fit_stacked.tau=nan", lambda: _fs(tau=NAN), VE, "tau")
case("ensemble.fit_stacked.tau length", lambda: _fs(tau=[1.0, 2.0, 3.0]), VE, "tau")
case("ensemble.fit_stacked.weight_decay=-1", lambda: _fs(weight_decay=-1.0), VE,
     "weight_decay")
case("ensemble.fit_stacked.weight_decay=nan", lambda: _fs(weight_decay=NAN), VE,
     "weight_decay")
case("ensemble.fit_stacked.objective", lambda: _fs(objective="foo"), VE, "objective")
case("ensemble.fit_stacked.likelihood", lambda: _fs(likelihood="foo"), VE, "likelihood")
case("ensemble.fit_stacked.data_of length", lambda: _fs(data_of=[0]), VE, "data_of")
case("ensemble.fit_stacked.model", lambda: E.fit_stacked(_mlp(), XS, YS, tau=1.0), TE,
     "model")
case("ensemble.stacked_predictive.samples=0",
     lambda: E.stacked_predictive(_stacked(), XS, YS, 0, tau=1.0), VE, "samples")
case("ensemble.stacked_predictive.X nan",
     lambda: E.stacked_predictive(_stacked(), _with(XS, (0, 0, 0), NAN), YS, 4, tau=1.0), VE,
     "X", "finite")
case("ensemble.stacked_predictive.y rows",
     lambda: E.stacked_predictive(_stacked(), XS, _x(2, 30), 4, tau=1.0), VE, "y")
case("ensemble.stacked_predictive.tau=0",
     lambda: E.stacked_predictive(_stacked(), XS, YS, 4, tau=0.0), VE, "tau")
case("ensemble.stacked_fit_tau.samples=0",
     lambda: E.stacked_fit_tau(_stacked(), XS, YS, 0), VE, "samples")
case("ensemble.stacked_fit_tau.y nan",
     lambda: E.stacked_fit_tau(_stacked(), XS, _with(YS, (0, 0), NAN), 4), VE, "y", "finite")
case("ensemble.stacked_loss.tau=None",
     lambda: E.stacked_loss(_x(2, 1, 4, 1), _x(4, 1)), VE, "tau")

# ----------------------------------------------------------------------------- gaps
case("gaps.jensen_gap_mc.empty", lambda: G.jensen_gap_mc(torch.empty(0)), VE, "log_values")
case("gaps.jensen_gap_mc.list", lambda: G.jensen_gap_mc([1.0, 2.0]), TE, "log_values")
case("gaps.jensen_gap_mc.nan", lambda: G.jensen_gap_mc(torch.tensor([1.0, NAN])), VE,
     "log_values")
case("gaps.jensen_gap_enumerated.shape",
     lambda: G.jensen_gap_enumerated(torch.zeros(3), torch.zeros(4)), VE, "log_probs")
case("gaps.jensen_gap_enumerated.nan",
     lambda: G.jensen_gap_enumerated(torch.tensor([0.0, NAN]), torch.log(torch.tensor([.5, .5]))),
     VE, "log_values")
_FN = lambda xis: torch.zeros(())  # noqa: E731
case("gaps.ep_gap.samples=0", lambda: G.ep_gap(_FN, [BERN], [3], 10, samples=0), VE, "samples")
case("gaps.ep_gap.scales", lambda: G.ep_gap(_FN, [BERN], [3], 10, scales="foo"), VE, "scales")
case("gaps.ep_gap.dims", lambda: G.ep_gap(_FN, [BERN, BERN], [3], 10), VE, "dims")
case("gaps.ep_gap.n=0", lambda: G.ep_gap(_FN, [BERN], [3], 0), VE, "n")
case("gaps.ep_gap.chunk=0", lambda: G.ep_gap(_FN, [BERN], [3], 10, chunk=0), VE, "chunk")
case("gaps.ep_series.order=5", lambda: G.ep_series(_FN, [BERN], [3], 10, order=5), VE, "order")
case("gaps.hp_gap_mc.samples=0", lambda: G.hp_gap_mc(_x(3, 2), BERN, 1.0, samples=0), VE,
     "samples")
case("gaps.hp_gap_mc.sigma0=0", lambda: G.hp_gap_mc(_x(3, 2), BERN, 0.0), VE, "sigma0")
case("gaps.hp_gap_exact.sigma0=nan", lambda: G.hp_gap_exact(_x(3, 2), BERN, NAN), VE, "sigma0")
case("gaps.hp_gap_exact.noise", lambda: G.hp_gap_exact(_x(3, 2), 0.5, 1.0), TE, "noise")
case("gaps.hp_series.order=3", lambda: G.hp_series(_x(3, 2), BERN, 1.0, order=3), VE, "order")
case("gaps.hp_series.c=0", lambda: G.hp_series(_x(3, 2), BERN, 1.0, c=0.0), VE, "c")
case("gaps.noise_with_second_moment.family",
     lambda: G.noise_with_second_moment("foo", 1.5), VE, "family")
case("gaps.noise_with_second_moment.m2<1",
     lambda: G.noise_with_second_moment("gaussian", 0.5, mean=1.0), VE, "second_moment")
case("gaps.noise_with_second_moment.nan",
     lambda: G.noise_with_second_moment("bernoulli", NAN), VE, "second_moment")
case("gaps.input_scales.length",
     lambda: G.input_scales([nn.Linear(2, 2)], [torch.ones(2), torch.ones(2)]).__enter__(), VE,
     "xis")

# ----------------------------------------------------------------------------- inference
case("inference.NetSpec.layers", lambda: I.NetSpec([3]), VE, "layers")
case("inference.NetSpec.structure", lambda: I.NetSpec([3, 4, 1], structure="foo"), VE,
     "structure")
case("inference.NetSpec.activation", lambda: I.NetSpec([3, 4, 1], activation="foo"), VE,
     "activation")
case("inference.NetSpec.zero width", lambda: I.NetSpec([3, 0, 1]), VE, "layers")
case("inference.pyro_law.float", lambda: I.pyro_law(0.5), TE, "noise")
case("inference.relevance_auc.no real",
     lambda: I.relevance_auc([0.1, 0.2], [False, False]), VE, "labels", "both classes")
case("inference.relevance_auc.length",
     lambda: I.relevance_auc([0.1, 0.2, 0.3], [True, False]), VE, "labels", "one length")
case("inference.relevance_auc.nan",
     lambda: I.relevance_auc([0.1, NAN], [True, False]), VE, "scores")
case("inference.mixing_verdict.rhat_max", lambda: I.mixing_verdict({}, rhat_max=0.5), VE,
     "rhat_max")
case("inference.mixing_verdict.ess_min", lambda: I.mixing_verdict({}, ess_min=-1.0), VE,
     "ess_min")
case("inference.site_diagnostics.1d", lambda: I.site_diagnostics(_x(10)), VE, "draws")
case("inference.linear_ss.keep=1.5", lambda: I.linear_spike_slab(X40, Y40[:, 0], keep=1.5), VE,
     "keep")
case("inference.linear_ss.g=0", lambda: I.linear_spike_slab(X40, Y40[:, 0], g=0.0), VE, "g")
case("inference.linear_ss.X nan",
     lambda: I.linear_spike_slab(_with(X40, (0, 0), NAN), Y40[:, 0]), VE, "X", "finite")
case("inference.linear_ss.y inf",
     lambda: I.linear_spike_slab(X40, _with(Y40, (0, 0), INF)[:, 0]), VE, "y", "finite")
case("inference.linear_ss.sweeps=0",
     lambda: I.linear_spike_slab(_x(40, 20), Y40[:, 0], sweeps=0), VE, "sweeps")
case("inference.linear_ss.chains=0",
     lambda: I.linear_spike_slab(X40, Y40[:, 0], chains=0), VE, "chains")
case("inference.linear_ss.rows", lambda: I.linear_spike_slab(X40, _x(30)), VE, "y")
case("inference.log_marginal.include",
     lambda: I.log_marginal(X40, Y40[:, 0], [True, False]), VE, "include")


def _svi_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(sd.nn.UnitNoise(N.Bernoulli(0.5)), nn.Linear(3, 1))


def _svi(X=X40, y=Y40[:, 0], **kw):
    kw = {"epochs": 1, "progress": False, **kw}
    return I.fit_svi(_svi_net(), X, y, **kw)


case("inference.fit_svi.X nan", lambda: _svi(X=_with(X40, (0, 0), NAN)), VE, "X", "finite")
case("inference.fit_svi.y inf", lambda: _svi(y=_with(Y40[:, 0], (0,), INF)), VE, "y",
     "finite")
case("inference.fit_svi.epochs=0", lambda: _svi(epochs=0), VE, "epochs")
case("inference.fit_svi.lr=0", lambda: _svi(lr=0.0), VE, "lr")
case("inference.fit_svi.lr=nan", lambda: _svi(lr=NAN), VE, "lr")
case("inference.fit_svi.likelihood", lambda: _svi(likelihood="foo"), VE, "likelihood")
case("inference.fit_svi.precision=-1", lambda: _svi(precision=-1.0), VE, "precision")
case("inference.fit_svi.sigma0=0", lambda: _svi(sigma0=0.0), VE, "sigma0")
case("inference.fit_svi.batch_size=0", lambda: _svi(batch_size=0), VE, "batch_size")
case("inference.fit_svi.init_inclusion=1.5", lambda: _svi(init_inclusion=1.5), VE,
     "init_inclusion")
case("inference.fit_svi.init_sd=0", lambda: _svi(init_sd=0.0), VE, "init_sd")
case("inference.fit_svi.warmup=2", lambda: _svi(warmup=2.0), VE, "warmup")
case("inference.fit_svi.rows", lambda: _svi(y=_x(30)), VE, "y", "40")
case("inference.fit_svi.X empty", lambda: _svi(X=torch.empty(0, 3), y=torch.empty(0)), VE,
     "X", "row")
case("inference.fit_svi.X width", lambda: _svi(X=_x(40, 5)), VE, "X")
case("inference.fit_svi.model", lambda: I.fit_svi(nn.Linear(3, 1), X40, Y40[:, 0], epochs=1,
                                                  progress=False), VE, "model")
case("inference.fit_svi.X list", lambda: _svi(X=[[1.0, 2.0, 3.0]]), TE, "X")
case("inference.scale_sites.model", lambda: I.scale_sites("model", X40), TE, "model")

# ----------------------------------------------------------------------------- data
case("data.load_uci_dir.missing", lambda: load_uci_dir("/nonexistent/uci/x"), sd.DataError,
     "/nonexistent/uci/x")
case("data.load_uci_dir.file", lambda: load_uci_dir(__file__), sd.DataError, "cases.py")
case("data.load_builtin.name", lambda: load_builtin("foo"), sd.DataError, "foo")
case("data.resolve_data.empty", lambda: resolve_data(""), sd.DataError, "data")
case("data.resolve_data.int", lambda: resolve_data(3), TE, "name_or_path")
case("data.find_uci_dirs.missing", lambda: find_uci_dirs("/nonexistent/uci"), sd.DataError,
     "/nonexistent/uci")
case("data.standardize.empty", lambda: standardize(np.empty((0, 3))), VE, "x", "empty")
case("data.standardize.nan", lambda: standardize(np.array([[1.0, NAN], [2.0, 3.0]])), VE, "x",
     "finite")
case("data.standardize.1d", lambda: standardize(np.ones(4)), VE, "x", "2-D")
case("data.standardize.str", lambda: standardize("abc"), TE, "x")

# ----------------------------------------------------------------------------- runner
case("runner.run_units.jobs=0", lambda: R.run_units(abs, [1], jobs=0, progress=False), VE,
     "jobs")
case("runner.run_units.jobs=1.5", lambda: R.run_units(abs, [1], jobs=1.5, progress=False), VE,
     "jobs")
case("runner.dask_client.n_workers=0", lambda: R.dask_client(n_workers=0).__enter__(), VE,
     "n_workers")
case("runner.dask_client.scheduler=''", lambda: R.dask_client("  ").__enter__(), VE,
     "scheduler")
case("runner.atomic_write_text.under file",
     lambda: R.atomic_write_text(Path(__file__) / "x.txt", "x"), (sd.ShrinkdropError, OSError),
     "cases.py", "directory")


def _plan(tmp: str, **kw):
    from shrinkdrop.experiments import uci
    from shrinkdrop.experiments.uci.run import plan_run

    return plan_run([load_builtin("diabetes")], Path(tmp) / "never-written",
                    methods=["bernoulli-mc"], settings=uci.Settings(**kw), progress=False)


case("uci.plan_run.epochs_multiplier inf", lambda: _plan(tempfile.mkdtemp(),
                                                         epochs_multiplier=INF), VE,
     "epochs_multiplier", "finite")
case("uci.plan_run.test_samples 0", lambda: _plan(tempfile.mkdtemp(), test_samples=0), VE,
     "test_samples")
case("uci.plan_run.seed -1", lambda: _plan(tempfile.mkdtemp(), seed=-1), VE, "seed")
case("uci.plan_run.device meta", lambda: _plan(tempfile.mkdtemp(), device="meta"), VE,
     "device", "meta")
case("uci.plan_run.device cuda", lambda: _plan(tempfile.mkdtemp(), device="cuda:7"), VE,
     "device", "cuda:7")


# ----------------------------------------------------------------------------- the CLI
# uci
U = "uci --data {toy} --out {tmp}/o --quick --no-progress"
cli("uci.out under file", "uci --data {toy} --out {file}/o --quick --no-progress", "--out",
    "file")
cli("uci.out is file", "uci --data {toy} --out {file} --quick --no-progress", "--out")
cli("uci.epochs-multiplier nan", U + " --epochs-multiplier nan", "--epochs-multiplier")
cli("uci.epochs-multiplier inf", U + " --epochs-multiplier inf", "--epochs-multiplier")
cli("uci.epochs-multiplier 0", U + " --epochs-multiplier 0", "--epochs-multiplier")
cli("uci.epochs-multiplier -1", U + " --epochs-multiplier -1", "--epochs-multiplier")

cli("uci.epochs-multiplier word", U + " --epochs-multiplier many", "--epochs-multiplier")
cli("uci.test-samples 0", U + " --test-samples 0", "--test-samples")
cli("uci.test-samples -5", U + " --test-samples -5", "--test-samples")
cli("uci.train-samples 0", U + " --train-samples 0", "--train-samples")
cli("uci.splits repeated", U + " --splits 0,0", "--splits", "0")
cli("uci.splits out of range", U + " --splits 7", "--splits", "7")
cli("uci.splits negative", U + " --splits -1", "--splits", "-1")
cli("uci.splits word", U + " --splits a,b", "--splits")
cli("uci.jobs 0", U + " --jobs 0", "--jobs")
cli("uci.jobs -2", U + " --jobs -2", "--jobs")
cli("uci.stack-splits -1", U + " --stack-splits -1", "--stack-splits")
cli("uci.scheduler without dask", U + " --scheduler tcp://127.0.0.1:1", "--scheduler",
    "--executor")
cli("uci.device cuda", U + " --device cuda", "device", "cuda")
cli("uci.device meta", U + " --device meta", "device", "meta")
cli("uci.device foo", U + " --device foo", "device", "foo")
cli("uci.data missing", "uci --data /nonexistent/x --out {tmp}/o --quick --no-progress",
    "/nonexistent/x")
cli("uci.methods foo", U + " --methods foo", "--methods")
cli("uci.methods empty", U + " --methods ,", "--methods")
cli("uci.mcmc-sigma0 nan", U + " --mcmc-sigma0 nan", "--mcmc-sigma0")
cli("uci.mcmc-sigma0 inf", U + " --mcmc-sigma0 inf", "--mcmc-sigma0")
cli("uci.mcmc-chains 0", U + " --mcmc-chains 0", "--mcmc-chains")
cli("uci.mcmc-warmup -1", U + " --mcmc-warmup -1", "--mcmc-warmup")
cli("uci.mcmc-samples 0", U + " --mcmc-samples 0", "--mcmc-samples")
cli("uci.mcmc-max-rows 0", U + " --mcmc-max-rows 0", "--mcmc-max-rows")
cli("uci.seed -1", U + " --seed -1", "--seed")
cli("uci.engine bad", U + " --engine foo", "--engine")
cli("uci.init bad", U + " --init foo", "--init")
cli("uci.executor bad", U + " --executor foo", "--executor")
cli("uci.tau on classification", "uci --data iris --out {tmp}/o --quick --no-progress "
    "--methods bernoulli-mc+tau", "methods", "regression")
cli("uci.no data", "uci --out {tmp}/o", "--data")
cli("uci.unknown option", U + " --epochs 3", "--epochs")
# gap
# the verbs of issues 27-29
CO = "compress --data digits --arch lenet300 --out {tmp}/o --quick --no-progress"
for opt in ("epochs", "finetune", "seeds", "batch-size", "val"):
    cli(f"compress.{opt} 0", CO + f" --{opt} 0", f"--{opt}")
cli("compress.lr 0", CO + " --lr 0", "--lr")
cli("compress.q-lr nan", CO + " --q-lr nan", "--q-lr")
cli("compress.flops-target 0.5", CO + " --flops-target 0.5", "--flops-target")
cli("compress.flops-target inf", CO + " --flops-target inf", "--flops-target")
cli("compress.train-limit -1", CO + " --train-limit -1", "--train-limit")
cli("compress.retrain -1", CO + " --retrain -1", "--retrain")
cli("compress.methods foo", CO + " --methods foo", "--methods")
cli("compress.methods no dense", CO + " --methods ss", "--methods", "dense")
cli("compress.arch foo", "compress --data digits --arch foo --out {tmp}/o", "--arch")
cli("compress.out under file", "compress --data digits --arch lenet300 --out {file}/o",
    "--out")
UN = "uncertainty --data digits --out {tmp}/o --quick --no-progress"
for opt in ("epochs", "seeds", "samples", "ensemble", "train-subset", "test-subset",
            "batch-size"):
    cli(f"uncertainty.{opt} 0", UN + f" --{opt} 0", f"--{opt}")
cli("uncertainty.rate 1", UN + " --rate 1", "--rate")
cli("uncertainty.rate nan", UN + " --rate nan", "--rate")
cli("uncertainty.lr -1", UN + " --lr -1", "--lr")
cli("uncertainty.methods foo", UN + " --methods foo", "--methods")
cli("uncertainty.out is file", "uncertainty --data digits --out {file}", "--out")
MS = "mcmc-study --datasets diabetes --out {tmp}/o --no-progress"
for opt in ("hidden", "warmup", "samples", "chains", "max-tree-depth", "train-size"):
    cli(f"mcmc-study.{opt} 0", MS + f" --{opt} 0", f"--{opt}")
cli("mcmc-study.target-accept 1", MS + " --target-accept 1", "--target-accept")
cli("mcmc-study.target-accept nan", MS + " --target-accept nan", "--target-accept")
cli("mcmc-study.seeds word", MS + " --seeds a", "--seeds")
cli("mcmc-study.datasets empty", "mcmc-study --datasets , --out {tmp}/o", "--datasets")
cli("mcmc-study.backend foo", MS + " --backend foo", "--backend")

GP = "gap --out {tmp}/o --quick"
cli("gap.points 0", GP + " --points 0", "--points")
cli("gap.points -1", GP + " --points -1", "--points")
cli("gap.samples 0", GP + " --samples 0", "--samples")
cli("gap.epochs 0", GP + " --epochs 0", "--epochs")
cli("gap.tau 0", GP + " --tau 0", "--tau")
cli("gap.tau nan", GP + " --tau nan", "--tau")
cli("gap.tau inf", GP + " --tau inf", "--tau")
cli("gap.sigma0 -1", GP + " --sigma0 -1", "--sigma0")
cli("gap.sigma0 nan", GP + " --sigma0 nan", "--sigma0")
cli("gap.families foo", GP + " --families foo", "--families")
cli("gap.families empty", GP + " --families ,", "--families")
cli("gap.out under file", "gap --out {file}/o --quick", "--out")
cli("gap.seed -1", GP + " --seed -1", "--seed")
# priors
PR = "priors --out {tmp}/o --quick"
cli("priors.samples 50", PR + " --samples 50", "--samples")
cli("priors.samples 0", PR + " --samples 0", "--samples")
cli("priors.samples word", PR + " --samples many", "--samples")
cli("priors.out under file", "priors --out {file}/o --quick", "--out")
cli("priors.seed -1", PR + " --seed -1", "--seed")
# prune
PD = "prune --what depth --out {tmp}/o --quick --no-progress"
cli("prune.blocks 1", PD + " --blocks 1", "--blocks")
cli("prune.rule refit with svi", PD + " --fit svi", "--rule refit", "--fit point")
cli("prune.blocks 0", PD + " --blocks 0", "--blocks")
cli("prune.width 0", PD + " --width 0", "--width")
cli("prune.channels 0", "prune --what channels --out {tmp}/o --channels 0", "--channels")
cli("prune.keep 1", PD + " --keep 1", "--keep")
cli("prune.keep nan", PD + " --keep nan", "--keep")
cli("prune.threshold 0", PD + " --threshold 0", "--threshold")
cli("prune.epochs 0", PD + " --epochs 0", "--epochs")
cli("prune.epochs -3", PD + " --epochs -3", "--epochs")
cli("prune.seeds 0", PD + " --seeds 0", "--seeds")
cli("prune.test-samples 0", PD + " --test-samples 0", "--test-samples")
cli("prune.what bad", "prune --what foo --out {tmp}/o", "--what")
cli("prune.data missing", PD + " --data /nonexistent/x", "/nonexistent/x")
cli("prune.data classification", PD + " --data iris", "--data", "regression")
cli("prune.out under file", "prune --what depth --out {file}/o --quick", "--out")
cli("prune.seed -1 (no such option)", PD + " --seed 3", "--seed")
# relevance
RV = "relevance --data diabetes --out {tmp}/o --quick --no-progress"
cli("relevance.noise-features 0", RV + " --noise-features 0", "--noise-features")
cli("relevance.keep 0", RV + " --keep 0", "--keep")
cli("relevance.inclusion-prior", RV + " --inclusion-prior beta", "--inclusion-prior")
cli("relevance.ss-g nan", RV + " --ss-g nan", "--ss-g")
cli("relevance.lr 0", RV + " --lr 0", "--lr")
cli("relevance.lr nan", RV + " --lr nan", "--lr")
cli("relevance.lr inf", RV + " --lr inf", "--lr")
cli("relevance.epochs-multiplier nan", RV + " --epochs-multiplier nan", "--epochs-multiplier")
cli("relevance.epochs-multiplier 0", RV + " --epochs-multiplier 0", "--epochs-multiplier")
cli("relevance.split 99", RV + " --split 99", "--split", "99")
cli("relevance.split -1", RV + " --split -1", "--split", "-1")
cli("relevance.hidden 0", RV + " --hidden 0", "--hidden")
cli("relevance.scale 0", RV + " --noise half_cauchy --scale 0", "--scale")
cli("relevance.scale nan", RV + " --noise half_cauchy --scale nan", "--scale")
cli("relevance.df 0", RV + " --noise inverse_nakagami --df 0", "--df")
cli("relevance.restarts 0", RV + " --restarts 0", "--restarts")
cli("relevance.data missing", "relevance --data /nonexistent/x --out {tmp}/o --quick",
    "/nonexistent/x")
cli("relevance.data classification", "relevance --data iris --out {tmp}/o --quick",
    "regression")
cli("relevance.out under file", "relevance --data diabetes --out {file}/o --quick", "--out")
cli("relevance.seed -1", RV + " --seed -1", "--seed")
# architectures
AR = "architectures --out {tmp}/o --quick"
cli("architectures.seeds 0", AR + " --seeds 0", "--seeds")
cli("architectures.seeds -1", AR + " --seeds -1", "--seeds")
cli("architectures.only foo", AR + " --only foo", "--only")
cli("architectures.only empty", AR + " --only ,", "--only")
cli("architectures.out under file", "architectures --out {file}/o --quick", "--out")
# demo
cli("demo.only foo", "demo --out {tmp}/o --only foo", "--only", "foo")
cli("demo.only empty", "demo --out {tmp}/o --only ,", "--only")
cli("demo.out under file", "demo --out {file}/o --only priors", "--out")
# mcmc (its own checks live in cli/mcmc.py; --out is checked by main for every verb)
MC = "mcmc --data diabetes --noise half_cauchy --out {tmp}/o --quick"
cli("mcmc.out under file", "mcmc --data diabetes --noise half_cauchy --out {file}/o --quick",
    "--out")
cli("mcmc.depth -1", MC + " --depth -1", "--depth")
cli("mcmc.iw-only without iw-samples", MC + " --iw-only", "--iw-only", "--iw-samples")
cli("mcmc.noise bad", "mcmc --data diabetes --noise foo --out {tmp}/o", "--noise")
# the command itself
cli("main.no verb", "", "VERB")
cli("main.unknown verb", "frobnicate --out {tmp}/o", "frobnicate")


# ----------------------------------------------------------------------------- running them
class Reached(Exception):
    """Raised by the stand-in experiments: the command got past every check."""


def _reached(*args, **kwargs):
    raise Reached("the experiment started")


def _fake_unit(task) -> dict:
    return {"config": task.configs[0].label(), "val_ll": -1.0, "test_rmse": 1.0,
            "test_ll": -1.0, "test_rmse_mean": math.nan, "test_error": math.nan, "seconds": 0.0}


@contextlib.contextmanager
def cli_sandbox() -> Iterator[None]:
    """Stand-ins for the verbs' experiments (``uci`` runs with a fast fake trainer)."""
    from shrinkdrop.experiments import relevance
    from shrinkdrop.experiments.uci import run as uci_run

    with contextlib.ExitStack() as st:
        for target in ("shrinkdrop.cli.gap.run_gap", "shrinkdrop.cli.priors.run_priors",
                       "shrinkdrop.cli.prune.run_prune", "shrinkdrop.cli.mcmc.run_mcmc",
                       "shrinkdrop.experiments.architectures.run",
                       "shrinkdrop.cli.demo.build_report",
                       "shrinkdrop.cli.compress.run_compress",
                       "shrinkdrop.cli.uncertainty.run_uncertainty",
                       "shrinkdrop.cli.mcmc_study.run_study"):
            st.enter_context(mock.patch(target, _reached))
        st.enter_context(mock.patch.object(relevance, "_methods", _reached))
        st.enter_context(mock.patch.object(uci_run, "evaluate_unit", _fake_unit))
        st.enter_context(mock.patch.object(
            uci_run, "evaluate_stacked", lambda tasks: [_fake_unit(t) for t in tasks]))
        yield


def make_scratch(tmp: Path) -> dict[str, str]:
    """The folder, the plain file and the tiny UCI data set the CLI cases name."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        from test_data import make_uci
    finally:
        sys.path.pop(0)
    tmp.mkdir(parents=True, exist_ok=True)
    f = tmp / "plain.txt"
    f.write_text("not a folder\n")
    toy = tmp / "data"
    if not toy.exists():
        make_uci(toy, n=30, d=3, n_splits=2)
    return {"tmp": str(tmp), "file": str(f), "toy": str(toy / "toy")}


def _holds(msg: str, words: tuple[str, ...]) -> bool:
    low = msg.lower()
    return all(w.lower() in low for w in words) and any(m in low for m in EXPECT_MARKERS)


def classify_lib(c: Case) -> tuple[str, str]:
    """``(outcome, detail)`` of a library case: clear / unclear / silent."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = c.call()
        except Exception as exc:  # noqa: BLE001 - sorting every failure is the point
            msg = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, c.exc) and _holds(str(exc), c.words):
                return "clear", msg
            return "unclear", msg
    if c.warn and any(_holds(str(w.message), c.words) for w in caught):
        return "clear", "warned"
    return "silent", f"returned {type(out).__name__}"


def classify_cli(c: Cli, scratch: dict[str, str]) -> tuple[str, str]:
    """``(outcome, detail)`` of a CLI case, run in this process inside :func:`cli_sandbox`."""
    from shrinkdrop.cli import main

    argv = [a.format(**scratch) for a in c.argv]
    err, out = io.StringIO(), io.StringIO()
    tb = ""
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), cli_sandbox():
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
        except Reached:
            return "silent", "reached the experiment"
        except Exception:  # noqa: BLE001
            rc, tb = None, traceback.format_exc()
    text = err.getvalue()
    lines = [ln for ln in text.splitlines() if ln.strip() and "%|" not in ln]
    if tb or "Traceback" in text:
        return "unclear", "traceback: " + (tb or text).strip().splitlines()[-1]
    if rc == 0:
        return "silent", "exit 0"
    if rc == 2 and len(lines) == 1 and _holds(lines[0], c.words):
        return "clear", lines[0]
    return "unclear", f"exit {rc}, {len(lines)} line(s): " + " | ".join(lines)[-300:]


def all_ids() -> list[str]:
    return [c.id for c in LIB] + ["cli." + c.id for c in CLI]


if __name__ == "__main__":  # pragma: no cover
    print(len(LIB), "library cases,", len(CLI), "CLI cases", file=sys.stderr)
    os._exit(0)
