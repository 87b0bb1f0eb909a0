"""Parity with PyTorch's dropout family (issue 26, item 4).

The semantic checks of PyTorch's own ``test/nn/test_dropout.py`` (``_test_dropout``,
``_test_dropout_discontiguous``, ``_test_dropout_stride_mean_preserve``, the Dropout1d/2d/3d
rank, no-batch and whole-channel checks, ``test_empty_dropout``) ported to the shrinkdrop
equivalents: ``UnitNoise`` / ``unit_noise`` ~ ``nn.Dropout`` / ``F.dropout``, ``ChannelNoise``
(``spatial_dims=1/2/3``) / ``channel_noise`` ~ ``nn.Dropout1d/2d/3d``; plus ``p = 1``, exact
``keep``, float16 / bfloat16 draws of every family, ``torch.compile(fullgraph=True)`` of every
family and structure, and the ``torch.jit.script`` refusal. Where we deliberately differ from
torch a test pins ours (docs/layers.md, "Parity with torch's dropout").

Randomized checks use fixed seeds; tolerances are torch's own (0.05 on the mean of 1000+ draws,
more than 5 standard errors) unless stated.
"""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from torch import nn

import shrinkdrop as sd
from shrinkdrop import functional as F
from shrinkdrop import noise as N
from shrinkdrop.errors import UnsupportedLayerError


def _families():
    return {
        "bernoulli": N.Bernoulli(0.8),
        "gaussian": N.Gaussian(1.0, 0.5),
        "rayleigh": N.Rayleigh(0.7),
        "inverse_nakagami": N.InverseNakagami(5.0, 1.0),
        "half_cauchy": N.HalfCauchy(1.0),
        "beta": N.Beta(2.0, 1.5),
        "uniform": N.Uniform(0.2, 1.8),
    }


def _layer(dims):
    """UnitNoise for ``dims=0`` (nn.Dropout), ChannelNoise(spatial_dims=dims) otherwise."""
    def make(keep, inplace=False):
        if dims == 0:
            return sd.nn.UnitNoise(N.Bernoulli(keep), inplace=inplace)
        return sd.nn.ChannelNoise(N.Bernoulli(keep), inplace=inplace, spatial_dims=dims)
    return make


# ------------------------------------------------------------------ torch's _test_dropout
@pytest.mark.parametrize("dims,shape", [(0, (1000,)), (1, (100, 40, 3)), (2, (1000, 3, 2, 2)),
                                        (3, (1000, 2, 1, 2, 2))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_mean_grad_inplace_eval(dims, shape, dtype):
    """torch's ``_test_dropout``: output and gradient means ~ 1 - p, in place too; eval is the
    identity; repr works. The means are fractions of kept elements or channels (at least 3,000
    of them here: 0.05 is over 6 standard errors; torch's own Dropout1d case, 10-15 per side,
    is not: about 1.5)."""
    torch.manual_seed(0)
    p = 0.2
    make = _layer(dims)
    inp = torch.empty(shape, dtype=dtype).fill_(1 - p)
    for inplace in (False, True):
        x = inp.clone().requires_grad_()
        out = make(1 - p, inplace)(x + 0 if inplace else x)
        assert out.dtype == dtype
        assert abs(out.float().mean() - (1 - p)) < 0.05
        out.backward(inp)
        assert abs(x.grad.float().mean() - (1 - p)) < 0.05
        module = make(1 - p, inplace).eval()
        assert torch.equal(module(inp), inp)
    assert "inplace=True" in repr(make(1 - p, True)) and str(make(1 - p))


@pytest.mark.parametrize("dims", [0, 2, 3])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_discontiguous_and_close_to_zero_p(dims, fmt):
    """torch's ``_test_dropout_discontiguous``: p = 0 and p = 1e-10 give the input's values; for
    p != 0 the output is contiguous in the input's memory format. p = 1e-10 is a real draw (the
    exact keep of docs/layers.md), not the input object (torch's behaviour; it used to be)."""
    for p in (0.0, 1e-10):
        shape = (2, 3, 3, 3) if dims != 3 else (2, 3, 1, 3, 3)
        inp = torch.ones(shape)
        fmt_ = fmt if dims != 3 else torch.channels_last_3d
        big = list(shape[:-1]) + [shape[-1] * 2]
        disc = torch.empty(big, memory_format=fmt_ if fmt is torch.channels_last else fmt)[..., ::2]
        disc.copy_(inp)
        out = _layer(dims)(1 - p)(disc)
        assert torch.equal(out, disc)
        if p == 0:
            assert out is disc  # torch returns its input for p = 0
        else:
            assert out is not disc
            assert out.is_contiguous(memory_format=fmt_ if fmt is torch.channels_last else fmt)


def test_stride_and_mean_preserved():
    """torch's ``_test_dropout_stride_mean_preserve`` for UnitNoise (a few permutations of its
    24, both draw paths: torch's kernel at small sizes and ours with a generator)."""
    torch.manual_seed(0)
    inp = torch.ones(2, 3, 4, 5)
    perms = [(0, 1, 2, 3), (0, 2, 3, 1), (3, 1, 0, 2), (2, 3, 1, 0)]
    for perm, shift, p in itertools.product(perms, [(0, 0), (1, 1)], [1e-10, 0.3, 0.7]):
        inv = tuple(perm.index(i) for i in range(4))
        x = inp.permute(perm).contiguous().permute(inv)[shift[0]:, shift[1]:]
        for gen in (None, torch.Generator().manual_seed(1)):
            out = sd.nn.UnitNoise(N.Bernoulli(1 - p), generator=gen)(x)
            assert out.permute(perm).is_contiguous()
            assert abs(out.mean() - 1) <= 1.0
            assert torch.equal(out, x) == (p == 1e-10)


# ------------------------------------------------------------------ p = 1, keep, 0-d, empty
@pytest.mark.parametrize("gen", [None, 7])
def test_p_one_gives_zeros_like_torch(gen):
    """``Bernoulli(0)`` (``p = 1``): zeros and zero gradient in training, as ``nn.Dropout(1)``,
    also on the sizes our own samplers draw (bits, gaps, a generator); eval the identity."""
    g = None if gen is None else torch.Generator().manual_seed(gen)
    for shape in ((5, 4), (300, 100)):
        x = torch.randn(shape, requires_grad=True)
        ref = nn.Dropout(1.0)(x)
        layer = sd.nn.UnitNoise(N.Bernoulli(0.0), generator=g)
        y = layer(x)
        assert torch.equal(y, ref) and torch.equal(y, torch.zeros(shape))
        y.sum().backward()
        assert torch.equal(x.grad, torch.zeros(shape))
        assert layer.eval()(x) is x
        img = torch.randn(4, 3, 5, 5)
        assert torch.equal(sd.nn.ChannelNoise(N.Bernoulli(0.0), generator=g)(img),
                           torch.zeros_like(img))
        # raw noise (normalize=False): zeros in training and in eval (x * E[xi] = 0)
        raw = sd.nn.UnitNoise(N.Bernoulli(0.0), normalize=False, generator=g)
        assert torch.equal(raw(x), torch.zeros(shape))
        assert torch.equal(raw.eval()(x), torch.zeros(shape))
    assert torch.equal(F.draw_noise(N.Bernoulli(0.0), (3, 4), generator=g), torch.zeros(3, 4))
    # torch's range is [0, 1]; so is keep's
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError, match=r"keep has to be in \[0, 1\]"):
            N.Bernoulli(bad)


def test_keep_is_exact_not_float32():
    """``keep`` given as a Python float is used in double precision (docs/layers.md): 1 - 1e-10
    is not rounded to 1.0 (which returned the input object itself)."""
    assert N.Bernoulli(1 - 1e-10)._dropout_keep == 1 - 1e-10
    assert N.Bernoulli(0.3)._dropout_keep == 0.3 != float(torch.tensor(0.3))
    assert N.Bernoulli(torch.tensor(0.3))._dropout_keep == float(torch.tensor(0.3))
    assert N.Bernoulli(0.3).scalar_mean == 0.3
    x = torch.randn(64, 32)
    for gen in (None, torch.Generator().manual_seed(0)):
        y = F.unit_noise(x, N.Bernoulli(1 - 1e-10), generator=gen)
        assert y is not x and torch.equal(y, x)
    # float64 noise carries the exact 1 / keep
    xi = F.draw_noise(N.Bernoulli(0.8), (50, 40), generator=torch.Generator().manual_seed(0),
                      dtype=torch.float64)
    assert set(xi.unique().tolist()) == {0.0, 1 / 0.8}
    assert F.unit_noise(x, N.Bernoulli(1.0)) is x  # p = 0: the input itself, as torch


def test_zero_dim_and_empty_inputs():
    """torch's dropout takes 0-d and empty inputs (``test_empty_dropout``); so do UnitNoise and
    unit_noise, with every family, in training and eval."""
    torch.manual_seed(0)
    for name, nz in _families().items():
        norm = name != "half_cauchy"
        layer = sd.nn.UnitNoise(nz, normalize=norm)
        for x in (torch.tensor(2.0), torch.tensor([]), torch.empty(0, 3)):
            y = layer.train()(x)
            assert y.shape == x.shape and torch.isfinite(y).all()
            if norm:
                assert layer.eval()(x) is x
    y = sd.nn.UnitNoise(N.Bernoulli(0.5))(torch.tensor(3.0))
    assert y.item() in (0.0, 6.0)
    assert F.unit_noise(torch.tensor([]), N.Bernoulli(0.5)).shape == (0,)


# ------------------------------------------------------------------ Dropout1d / 2d / 3d
def _channel_whole(y, channel_numel):
    """Every (example, channel) map is all zero or all non-zero (torch's channel-zero check)."""
    nz = (y != 0).flatten(2).sum(-1)
    return bool(((nz == 0) | (nz == channel_numel)).all())


@pytest.mark.parametrize("inplace", [False, True])
def test_dropout1d_ranks_no_batch_and_whole_channels(inplace):
    torch.manual_seed(0)
    make = _layer(1)
    for bad in ((1, 2, 2, 2), (2,)):
        with pytest.raises(ValueError, match=rf"Expected 2D or 3D input.*received a {len(bad)}D"):
            make(0.5, inplace)(torch.rand(bad))
        with pytest.raises(ValueError, match="Expected 2D or 3D input"):
            make(0.5, inplace).eval()(torch.rand(bad))  # as torch: checked in eval too
    x = torch.rand(50, 2)
    # no batch dims: the same draws as the batched input (torch's freeze_rng_state check), with
    # the global generator and with a seeded one
    torch.manual_seed(3)
    a = make(0.5, inplace)(x.clone())
    torch.manual_seed(3)
    b = make(0.5, inplace)(x.clone().unsqueeze(0)).squeeze(0)
    assert torch.equal(a, b)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    lay = sd.nn.ChannelNoise(N.Gaussian(1.0, 0.5), spatial_dims=1, inplace=inplace, generator=g1)
    lay2 = sd.nn.ChannelNoise(N.Gaussian(1.0, 0.5), spatial_dims=1, inplace=inplace, generator=g2)
    assert torch.equal(lay(x.clone()), lay2(x.clone().unsqueeze(0)).squeeze(0))
    assert make(0.5, inplace).eval()(x).shape == (50, 2)  # unbatched (C, L) in eval
    # one scale per channel: an unbatched (C, L) input drops whole rows
    y = make(0.5, inplace)(torch.ones(50, 2))
    assert _channel_whole(y.unsqueeze(0), 2) and 0 < int((y == 0).sum()) < 100
    assert _channel_whole(make(0.5, inplace)(torch.ones(10, 4, 2)), 2)


def test_dropout2d_ranks_like_torch():
    """3D input: torch warns and reads it as (N, C, L); ours the same (same warning words).
    Other ranks: torch warns that they 'will result in an error in a future release'; ours
    raise now (deliberate, docs/layers.md)."""
    torch.manual_seed(0)
    make = _layer(2)
    with pytest.warns(UserWarning, match="reads it as \\(N, C, L\\)"):
        y = make(0.5)(torch.ones(20, 4, 3))
    assert _channel_whole(y, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = nn.Dropout2d(0.5)(torch.ones(20, 4, 3))
    assert _channel_whole(ref, 3)  # torch: the same per-(N, C) structure
    for bad in ((1, 2, 2, 2, 2), (1, 2)):
        with pytest.raises(ValueError, match="Expected 3D or 4D input"):
            make(0.5)(torch.rand(bad))
    assert _channel_whole(make(0.5)(torch.ones(10, 4, 2, 2)), 4)
    assert _channel_whole(make(0.5, True)(torch.ones(10, 4, 2, 2)), 4)


@pytest.mark.parametrize("inplace", [False, True])
def test_dropout3d_unbatched_drops_per_channel(inplace):
    """An unbatched (C, D, H, W) input draws one scale per channel C (not per depth slice, as
    the batched reading (N=C, C=D, ...) of ChannelNoise() without spatial_dims would)."""
    torch.manual_seed(0)
    make = _layer(3)
    for bad in ((1, 2, 2, 2, 2, 2), (1, 2, 2)):
        with pytest.raises(ValueError, match="Expected 4D or 5D input"):
            make(0.5, inplace)(torch.rand(bad))
    y = make(0.5, inplace)(torch.ones(50, 2, 2, 2))
    per_channel = y.flatten(1)
    assert bool(((per_channel == 0).all(1) | (per_channel != 0).all(1)).all())
    assert 0 < int((per_channel[:, 0] == 0).sum()) < 50
    torch.manual_seed(5)
    a = make(0.5, inplace)(torch.rand(50, 2, 2, 2, generator=torch.Generator().manual_seed(1)))
    torch.manual_seed(5)
    b = make(0.5, inplace)(
        torch.rand(50, 2, 2, 2, generator=torch.Generator().manual_seed(1)).unsqueeze(0))
    assert torch.equal(a, b.squeeze(0))
    assert _channel_whole(make(0.5, inplace)(torch.ones(10, 4, 2, 2, 2)), 8)
    # the scale sites and the forward at given scales read the channel axis the same way
    layer = sd.nn.ChannelNoise(N.Gaussian(1.0, 0.5), spatial_dims=3)
    assert layer.scale_sites((50, 2, 2, 2))[0].shape == (50,)
    assert layer.scale_sites((7, 50, 2, 2, 2))[0].shape == (50,)
    tau = torch.arange(50.0)
    out = layer.forward_at_scales(torch.ones(50, 2, 2, 2), {"tau": tau})
    assert torch.equal(out[:, 1, 1, 1], tau)


def test_inplace_semantics():
    """``inplace=True``: the input is multiplied in place and returned (training), returned
    unchanged in eval; a leaf that requires grad is refused by torch, as for nn.Dropout."""
    torch.manual_seed(0)
    for layer in (sd.nn.UnitNoise(N.Bernoulli(0.5), inplace=True),
                  sd.nn.UnitNoise(N.Gaussian(1.0, 0.5), inplace=True),
                  sd.nn.UnitNoise(N.Bernoulli(0.5), inplace=True,
                                  generator=torch.Generator().manual_seed(0)),
                  sd.nn.ChannelNoise(N.Rayleigh(1.0), inplace=True),
                  sd.nn.LayerNoise(N.Bernoulli(0.5), inplace=True)):
        x = torch.ones(6, 4, 3)
        before = x.clone()
        y = layer.train()(x)
        assert y is x and not torch.equal(x, before)
        z = torch.ones(6, 4, 3)
        assert layer.eval()(z) is z and torch.equal(z, torch.ones(6, 4, 3))
        leaf = torch.ones(6, 4, 3, requires_grad=True)
        with pytest.raises(RuntimeError, match="leaf Variable"):
            layer.train()(leaf)
        with pytest.raises(RuntimeError, match="leaf Variable"):
            nn.Dropout(0.5, inplace=True)(leaf)


# ------------------------------------------------------------------ dtypes
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_every_family_in_half_precision_on_cpu(dtype):
    """Every family draws float16 / bfloat16 noise on the CPU at any size: small draws (torch's
    gamma kernel, which has no Half form) and large ones (the table samplers); the mean of the
    normalised noise is 1 (12,000 draws: tolerance 0.06, over 6 standard errors for every family
    here, whose normalised std is at most 0.75)."""
    for name, nz in _families().items():
        norm = name != "half_cauchy"
        for shape in ((7, 3), (3000, 4)):
            for gen in (None, torch.Generator().manual_seed(0)):
                x = torch.ones(shape, dtype=dtype)
                y = F.unit_noise(x, nz, normalize=norm, generator=gen)
                assert y.dtype == dtype and y.shape == shape and torch.isfinite(y).all(), name
                if norm and shape[0] > 100:
                    assert abs(y.float().mean().item() - 1) < 0.06, (name, gen)
        img = torch.ones(4, 3, 5, 5, dtype=dtype)
        assert sd.nn.ChannelNoise(nz, normalize=norm)(img).dtype == dtype
        out = torch.empty(40, 5, dtype=dtype)
        assert torch.isfinite(F._draw_into(nz, out, normalize=norm)).all()


# ------------------------------------------------------------------ compile, script
class _AllStructures(nn.Module):
    """Every structure of the library around one family (a small graph)."""

    def __init__(self, nz, norm):
        super().__init__()
        kw = dict(normalize=norm)
        self.conv = sd.nn.NoisyConv2d(3, 4, 3, nz, tie="both", padding=1, **kw)
        self.ch = sd.nn.ChannelNoise(nz, **kw)
        self.ch1 = sd.nn.ChannelNoise(nz, spatial_dims=1, **kw)
        self.ln = sd.nn.LayerNoise(nz, **kw)
        self.res = sd.nn.NoisyResidual(nn.Sequential(nn.Linear(16, 16), nn.ReLU()),
                                       layer_noise=nz, unit_noise=nz, **kw)
        self.un = sd.nn.UnitNoise(nz, **kw)
        self.big = sd.nn.UnitNoise(nz, **kw)  # large draws: tables, gaps, 31-bit words
        self.wn = sd.nn.WeightNoiseLinear(16, 3, nz, **kw)
        self.wns = sd.nn.WeightNoiseLinear(16, 3, nz, share_across_batch=True, **kw)
        self.lstm = sd.nn.NoisyLSTM(4, 3, nz, tie_gates=False, **kw)
        self.mha = sd.nn.NoisyMultiheadAttention(4, 2, nz, batch_first=True, **kw)

    def forward(self, x, big):
        h = self.ln(self.ch(self.conv(x))).flatten(1)[:, :16]
        h = self.un(self.res(h))
        seq = self.ch1(h.reshape(-1, 4, 4))
        s = self.lstm(seq.transpose(0, 1))[0].sum() + self.mha(seq, seq, seq)[0].sum()
        return self.wn(h).sum() + self.wns(h).sum() + s + self.big(big).sum()


# raised inside Dynamo's own tensor inspection, not by shrinkdrop; harmless
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor:UserWarning")
def test_compile_fullgraph_every_family_and_structure():
    """``torch.compile(fullgraph=True)`` traces every family in every structure, in training
    (noise on; large draws included), forward and backward, in one graph. The "eager" backend
    checks the tracing (what fullgraph is about); tests/nn/test_compile_distributed.py runs
    inductor end to end (eval returns its input before any draw)."""
    torch.manual_seed(0)
    model = nn.ModuleList([_AllStructures(nz, name != "half_cauchy")
                           for name, nz in _families().items()
                           if name != "half_cauchy"])
    # half-Cauchy cannot be normalised: its own raw-noise model
    model.append(_AllStructures(N.HalfCauchy(1.0), False))
    model.append(sd.nn.UnitNoise(N.Bernoulli(0.5)))  # the 31-bit-word path at large sizes

    def run(x, big):
        return sum(m(x, big) for m in model[:-1]) + model[-1](big).sum()

    compiled = torch.compile(run, backend="eager", fullgraph=True)
    x = torch.randn(6, 3, 4, 4, requires_grad=True)
    big = torch.randn(100, 100)  # 10,000 elements: above every small-draw switch
    y = compiled(x, big)
    y.backward()
    assert torch.isfinite(x.grad).all()
    assert not torch.equal(compiled(x, big), compiled(x, big))  # the noise is on


def test_compile_with_a_generator_names_the_reason():
    """A layer built with ``generator=`` cannot compile its draw into the graph (torch.compile
    does not trace a torch.Generator): fullgraph=True raises, naming the reason; without
    fullgraph the draw runs eagerly and equals the eager layer's."""
    layer = sd.nn.UnitNoise(N.Gaussian(1.0, 0.5), generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 5)
    with pytest.raises(Exception, match="cannot trace a torch.Generator"):
        torch.compile(layer, backend="eager", fullgraph=True)(x)
    torch._dynamo.reset()
    layer.generator.manual_seed(1)
    got = torch.compile(layer, backend="eager")(x)
    layer.generator.manual_seed(1)
    assert torch.equal(got, layer(x))


def test_jit_script_is_refused_clearly():
    model = nn.Sequential(nn.Linear(3, 3), sd.nn.UnitNoise(N.Bernoulli(0.5)))
    with pytest.raises(UnsupportedLayerError, match="torch.jit.script cannot compile UnitNoise"):
        torch.jit.script(model)
    with pytest.raises(UnsupportedLayerError, match="torch.compile"):
        torch.jit.script(sd.nn.NoisyConv2d(3, 4, 3, N.Gaussian(1.0, 0.5)))


class _MoreStructures(nn.Module):
    """The structures _AllStructures leaves out: tied LSTM gates, the stacked RNN, the conv's
    filter and channel ties, shared noise under sample_groups."""

    def __init__(self, nz):
        super().__init__()
        self.lstm = sd.nn.NoisyLSTM(4, 3, nz, tie_gates=True)
        self.rnn = sd.nn.NoisyStackedRNN("LSTM", 4, 3, 2, nz)
        self.cf = sd.nn.NoisyConv2d(3, 4, 3, nz, tie="filter", padding=1)
        self.cc = sd.nn.NoisyConv2d(4, 4, 3, nz, tie="channel", padding=1)
        self.shared = sd.nn.UnitNoise(nz, share_across_batch=True)

    def forward(self, seq, img):
        with sd.nn.sample_groups(2):
            s = self.shared(seq.reshape(-1, 4)).sum()
        return self.lstm(seq)[0].sum() + self.rnn(seq)[0].sum() + self.cc(self.cf(img)).sum() + s


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor:UserWarning")
def test_compile_fullgraph_the_other_structures():
    """fullgraph compilation of the structures the test above leaves out, for a discrete, a
    location-scale and the two gamma-based families, with local reparameterization (Gaussian
    only) on the side; forward and backward in one graph, noise on."""
    torch.manual_seed(0)
    fams = [N.Bernoulli(0.8), N.Gaussian(1.0, 0.5), N.Beta(2.0, 3.0),
            N.InverseNakagami(3.0, 1.0)]
    model = nn.ModuleList([_MoreStructures(nz) for nz in fams])
    lr = sd.nn.WeightNoiseLinear(4, 3, N.Gaussian(1.0, 0.5), local_reparameterization=True)

    def run(seq, img):
        return sum(m(seq, img) for m in model) + lr(seq).sum()

    compiled = torch.compile(run, backend="eager", fullgraph=True)
    seq = torch.randn(6, 2, 4, requires_grad=True)
    img = torch.randn(2, 3, 5, 5)
    compiled(seq, img).backward()
    assert torch.isfinite(seq.grad).all()
    assert not torch.equal(compiled(seq, img), compiled(seq, img))  # the noise is on
