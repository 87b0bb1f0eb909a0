"""Every public computation on every device torch has here: CPU always, CUDA where present.

On a CPU-only machine (CI) the ``cuda`` cases are skipped and the ``cpu`` cases check the same
device bookkeeping (results on the inputs' device, identical to the plain CPU computation). The
``cuda`` cases were run on an NVIDIA H100 (see docs/layers.md, "Devices").

Calibration of the randomized tests: draws on the device use a seeded generator *on that device*
(fixed seeds: deterministic); the goodness-of-fit tests reject at alpha = 1e-4 with n = 20,000
(continuous laws: Kolmogorov-Smirnov against scipy.stats; Bernoulli: exact binomial test), so a
right law would fail 0.01% of the time under fresh seeds. Their power against a wrong law is
shown in tests/noise and tests/test_functional.py (the same tests on a wrong scale fail), and
here by ``test_device_draw_test_has_power``.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from scipy import stats
from torch import nn

import shrinkdrop as sd
import shrinkdrop.noise as N
from shrinkdrop import _lstm as L
from shrinkdrop import functional as F
from shrinkdrop.ensemble import StackedNoisyMLP, fit_stacked, stacked_fit_tau, stacked_predictive
from shrinkdrop.train import (
    expected_log_prior_hp,
    fit,
    log_prior_ep,
    log_prior_hp,
    predict,
    predictive_log_likelihood,
)

ALPHA = 1e-4
NDRAWS = 20_000
HAS_CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not HAS_CUDA, reason="no CUDA device here (run on a GPU machine)"))]


@pytest.fixture(autouse=True)
def _no_tf32():
    """Full float32 on CUDA while comparing with the CPU: cuDNN convolutions default to TF32
    (10-bit mantissa), which would make a 1e-5 comparison meaningless. Restored afterwards."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _gen(device, seed=0):
    return torch.Generator(device=device).manual_seed(seed)


# family -> (class, parameters, reference law of the *unnormalised* draws as a scipy frozen
# distribution; inverse Nakagami: the law of xi^2, an inverse gamma)
PARAMS = {
    "bernoulli": (N.Bernoulli, {"keep": 0.8}, None),
    "gaussian": (N.Gaussian, {"mean": 1.0, "std": 0.5}, stats.norm(1.0, 0.5)),
    "rayleigh": (N.Rayleigh, {"scale": 0.6}, stats.rayleigh(scale=0.6)),
    "inverse_nakagami": (N.InverseNakagami, {"df": 5.0, "scale": 0.8},
                         stats.invgamma(a=2.5, scale=5.0 * 0.64 / 2)),
    "half_cauchy": (N.HalfCauchy, {"scale": 0.3}, stats.halfcauchy(scale=0.3)),
    "beta": (N.Beta, {"a": 5.5, "b": 2.0}, stats.beta(5.5, 2.0)),
    "uniform": (N.Uniform, {"low": 0.5, "high": 1.5}, stats.uniform(0.5, 1.0)),
}
#: family -> (factory of the law from Python numbers, reference)
LAWS = {f: ((lambda c=c, p=p: c(**p)), ref) for f, (c, p, ref) in PARAMS.items()}


def _gof_pvalue(family, x):
    """p-value of the draws ``x`` (CPU float64) against the family's reference law."""
    law, ref = LAWS[family]
    if family == "bernoulli":
        kept = int((x != 0).sum())
        return stats.binomtest(kept, x.numel(), float(law().keep)).pvalue
    if family == "inverse_nakagami":
        x = x**2
    return stats.kstest(x.numpy(), ref.cdf).pvalue


# ------------------------------------------------------------------------------- noise draws
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", sorted(LAWS))
@pytest.mark.parametrize("source", ["generator", "global"])
def test_draw_noise_on_device_follows_the_law(device, family, source):
    """Draws from a generator on the device, and from torch's global generator (on CUDA the
    gamma-based laws then use torch's native gamma kernel, Bernoulli its bernoulli_ kernel)."""
    law = LAWS[family][0]()
    gen = _gen(device, 11) if source == "generator" else None
    torch.manual_seed(11)
    x = F.draw_noise(law, (NDRAWS,), normalize=False, generator=gen,
                     dtype=torch.float64, device=device)
    assert x.device.type == device and x.dtype == torch.float64 and x.shape == (NDRAWS,)
    assert _gof_pvalue(family, x.cpu()) > ALPHA


@pytest.mark.parametrize("device", DEVICES)
def test_device_draw_test_has_power(device):
    """The same test on draws of a 5% wider Rayleigh, and a keep of 0.79 for 0.8, rejects."""
    x = F.draw_noise(N.Rayleigh(0.63), (NDRAWS,), normalize=False, generator=_gen(device, 11),
                     dtype=torch.float64, device=device)
    assert _gof_pvalue("rayleigh", x.cpu()) < ALPHA
    b = F.draw_noise(N.Bernoulli(0.78), (NDRAWS,), normalize=False, generator=_gen(device, 11),
                     dtype=torch.float64, device=device)
    assert _gof_pvalue("bernoulli", b.cpu()) < ALPHA


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", sorted(LAWS))
def test_noise_built_on_device_samples_and_scores_there(device, family):
    """A law whose parameters are tensors on the device: sample, log_prob and moments stay
    there and equal the CPU law's (torch.distributions' convention)."""
    cls, params, _ = PARAMS[family]
    cpu_law = cls(**params)
    law = cls(**{k: torch.tensor(v, dtype=torch.float64, device=device)
                 for k, v in params.items()})
    x = law.sample((500,), generator=_gen(device, 3))
    assert x.device.type == device
    lp = law.log_prob(x)
    assert lp.device.type == device
    torch.testing.assert_close(lp.cpu(), cpu_law.log_prob(x.cpu().to(torch.float32))
                               .to(torch.float64), rtol=1e-5, atol=1e-5)
    for name in ("mean", "variance"):
        v = getattr(law, name)
        assert v.device.type == device
        torch.testing.assert_close(v.cpu().float(), getattr(cpu_law, name).float(),
                                   equal_nan=True)


# ------------------------------------------------------------------------------------ layers
def _layers():
    """(name, factory of a CPU module, input shape, mc_only) for every layer."""
    torch.manual_seed(0)
    out = []
    for family in sorted(LAWS):
        normalize = family != "half_cauchy"
        out.append((f"UnitNoise[{family}]",
                    lambda f=family, nz=normalize: nn.Sequential(
                        sd.nn.UnitNoise(LAWS[f][0](), normalize=nz), nn.Linear(6, 3)),
                    (5, 6), not normalize))
    out += [
        ("ChannelNoise", lambda: nn.Sequential(nn.Conv2d(3, 4, 3),
                                               sd.nn.ChannelNoise(N.Bernoulli(0.8))),
         (2, 3, 6, 6), False),
        ("LayerNoise", lambda: sd.nn.LayerNoise(N.Gaussian(1.0, 0.3)), (5, 6), False),
        ("WeightNoiseLinear shared", lambda: sd.nn.WeightNoiseLinear(
            6, 3, N.Bernoulli(0.7), share_across_batch=True), (5, 6), False),
        ("WeightNoiseLinear local reparam", lambda: sd.nn.WeightNoiseLinear(
            6, 3, N.Gaussian(1.0, 0.5), local_reparameterization=True), (5, 6), False),
        ("NoisyResidual ARD+ADD", lambda: sd.nn.NoisyResidual(
            nn.Sequential(nn.Linear(6, 6, bias=False), nn.ReLU()),
            layer_noise=N.Bernoulli(0.8), unit_noise=N.Rayleigh(1.0)), (5, 6), False),
    ]
    for tie in ("filter", "channel", "both"):
        out.append((f"NoisyConv2d[{tie}]", lambda t=tie: sd.nn.NoisyConv2d(
            3, 4, 3, N.Beta(2.0, 2.0), tie=t, padding=1), (2, 3, 6, 6), False))
    for tied in (True, False):
        out.append((f"NoisyLSTM[tie_gates={tied}]", lambda t=tied: sd.nn.NoisyLSTM(
            5, 4, N.Bernoulli(0.75), tie_gates=t, num_layers=2), (7, 3, 5), False))
    return out


LAYERS = _layers()


def _first(y):
    return y[0] if isinstance(y, tuple) else y


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_runs_on_device_and_matches_cpu_in_eval(device, case):
    _, make, shape, mc_only = case
    torch.manual_seed(1)
    cpu = make()
    dev = copy.deepcopy(cpu).to(device)
    x = torch.randn(*shape)
    xd = x.to(device).requires_grad_(True)
    # training mode: noise drawn on the device, gradients land there
    dev.train()
    y = _first(dev(xd))
    assert y.device.type == device and torch.isfinite(y).all()
    y.square().sum().backward()
    assert xd.grad is not None and xd.grad.device.type == device
    for p in dev.parameters():
        assert p.grad is not None and p.grad.device.type == device
        assert torch.isfinite(p.grad).all()
    # MC mode: noise on in eval
    with sd.nn.mc_mode(dev):
        ym = _first(dev(xd.detach()))
    assert ym.device.type == device and torch.isfinite(ym).all()
    if mc_only:  # unnormalised infinite-mean noise has no eval rule
        return
    # eval: deterministic, and the same numbers as the CPU module
    cpu.eval()
    dev.eval()
    with torch.no_grad():
        torch.testing.assert_close(_first(dev(x.to(device))).cpu(), _first(cpu(x)),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("source", ["generator", "global"])
def test_unit_noise_matches_dropout_on_device(device, source):
    """Bernoulli UnitNoise and nn.Dropout on the same device: values {0, 1/keep} and the same
    drop rate (exact binomial tests on 10^6 units at alpha = 1e-4 each). With torch's global
    generator on CUDA, UnitNoise runs torch's dropout kernel itself."""
    keep = 0.8
    x = torch.ones(1000, 1000, device=device)
    torch.manual_seed(4)
    gen = _gen(device, 5) if source == "generator" else None
    ours = sd.nn.UnitNoise(N.Bernoulli(keep), generator=gen).train()(x)
    torch.manual_seed(5)
    peer = nn.Dropout(1 - keep).train()(x)
    for y in (ours, peer):
        assert y.device.type == device
        vals = torch.unique(y).cpu()
        torch.testing.assert_close(vals, torch.tensor([0.0, 1.0 / keep]))
        kept = int((y != 0).sum())
        assert stats.binomtest(kept, y.numel(), keep).pvalue > ALPHA


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("source", ["generator", "global"])
def test_channel_noise_matches_dropout2d_on_device(device, source):
    """Whole channels dropped, as nn.Dropout2d on the same device; the same rate."""
    keep = 0.7
    x = torch.ones(500, 64, 3, 3, device=device)
    torch.manual_seed(7)
    gen = _gen(device, 6) if source == "generator" else None
    ours = sd.nn.ChannelNoise(N.Bernoulli(keep), generator=gen).train()(x)
    torch.manual_seed(6)
    peer = nn.Dropout2d(1 - keep).train()(x)
    for y in (ours, peer):
        assert y.device.type == device
        per_channel = y.flatten(2)
        assert bool((per_channel == per_channel[..., :1]).all())  # constant within a channel
        kept = int((per_channel[..., 0] != 0).sum())
        assert stats.binomtest(kept, 500 * 64, keep).pvalue > ALPHA


# -------------------------------------------------------------------------------- objectives
def _regression(device, n=64, d=4):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=g)
    y = X @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(n, generator=g)
    return X.to(device), y.unsqueeze(-1).to(device)


def _net():
    torch.manual_seed(2)
    return nn.Sequential(sd.nn.UnitNoise(N.Gaussian(1.0, 0.3)), nn.Linear(4, 16), nn.ReLU(),
                         sd.nn.UnitNoise(N.Bernoulli(0.9)), nn.Linear(16, 1))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("objective", ["mc", "marginal_map", "tail_adaptive"])
def test_fit_on_device_trains_and_leaves_global_rng_alone(device, objective):
    X, y = _regression(device)
    model = _net().to(device)
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state() if device == "cuda" else None
    h = fit(model, X, y, tau=10.0, objective=objective, samples=3, weight_decay=1e-4,
            epochs=40, batch_size=16, lr=1e-2, seed=4, progress=False)
    assert torch.equal(torch.get_rng_state(), cpu_state)
    if cuda_state is not None:
        assert torch.equal(torch.cuda.get_rng_state(), cuda_state)
    assert all(math.isfinite(v) for v in h.loss) and h.loss[-1] < 0.5 * h.loss[0]
    assert all(p.device.type == device for p in model.parameters())
    mean = predict(model, X, 50, mode="mc")
    assert mean.device.type == device and mean.shape == (64, 1)
    ll = predictive_log_likelihood(model, X, y, 50, tau=10.0)
    assert math.isfinite(ll)


@pytest.mark.parametrize("device", DEVICES)
def test_fit_is_the_same_computation_on_every_device(device):
    """Noise off (keep = 1 and a zero-variance Gaussian): fit is deterministic, so the device
    changes nothing but rounding."""
    X, y = _regression("cpu")
    torch.manual_seed(3)
    cpu = nn.Sequential(sd.nn.UnitNoise(N.Bernoulli(1.0)), nn.Linear(4, 8), nn.Tanh(),
                        nn.Linear(8, 1))
    dev = copy.deepcopy(cpu).to(device)
    kw = dict(tau=5.0, weight_decay=1e-3, epochs=20, batch_size=16, lr=1e-2, seed=1,
              progress=False)
    h_cpu = fit(cpu, X, y, **kw)
    h_dev = fit(dev, X.to(device), y.to(device), **kw)
    assert h_dev.loss == pytest.approx(h_cpu.loss, rel=1e-4)
    for a, b in zip(cpu.parameters(), dev.parameters()):
        torch.testing.assert_close(b.detach().cpu(), a.detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_priors_of_a_model_on_device(device):
    """EP and HP log priors of a model on the device: the CPU values, gradients on the device,
    and a sampled HP prior (ARD scales drawn on the device with a device generator)."""
    cpu = _net()
    dev = copy.deepcopy(cpu).to(device)
    for fn in (lambda m: log_prior_ep(m, 0.7), lambda m: log_prior_hp(m, 0.7),
               lambda m: expected_log_prior_hp(m, 0.7)):
        try:
            ref = fn(cpu)
        except sd.train.InfiniteObjectiveError:
            with pytest.raises(sd.train.InfiniteObjectiveError):
                fn(dev)
            continue
        val = fn(dev)
        assert val.item() == pytest.approx(ref.item(), rel=1e-5)
        dev.zero_grad()
        val.backward()
        w = dev[1].weight
        assert w.grad is not None and w.grad.device.type == device
    hp = log_prior_hp([(dev[1].weight, N.Gaussian(1.0, 0.3), 1.0)], 0.7, xi="sample",
                      generator=_gen(device, 9))
    assert math.isfinite(hp.item())
    hp.backward()
    assert dev[1].weight.grad.device.type == device


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", sorted(LAWS))
def test_marginal_prior_log_prob_of_device_weights(device, family):
    """The marginal prior of a law built from Python numbers (parameters on the CPU) scores
    weights on any device with the CPU numbers and passes gradients back to them."""
    prior = LAWS[family][0]().marginal_prior(0.8)
    w = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64)
    wd = w.to(device).requires_grad_(True)
    lp = prior.log_prob(wd)
    torch.testing.assert_close(lp.cpu(), prior.log_prob(w), equal_nan=True)
    finite = torch.isfinite(lp)
    lp[finite].sum().backward()
    assert wd.grad is not None and wd.grad.device.type == device


# ---------------------------------------------------------------------------------- ensemble
@pytest.mark.parametrize("device", DEVICES)
def test_stacked_ensemble_on_device(device):
    """StackedNoisyMLP, fit_stacked and stacked_predictive on the device: results there,
    finite, training lowers the loss, eval outputs equal the CPU copy's."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(2, 96, 3, generator=g)
    y = X.sum(-1) + 0.1 * torch.randn(2, 96, generator=g)
    noises = [N.Bernoulli(0.9)] * 2 + [N.Gaussian(1.0, 0.4)] * 2
    cpu = StackedNoisyMLP([3, 8, 1], noises, seeds=[1, 2, 3, 4])
    dev = copy.deepcopy(cpu).to(device)
    dev.generator = _gen(device, 1)
    Xd, yd = X.to(device), y.to(device)
    h = fit_stacked(dev, Xd, yd, data_of=[0, 1, 0, 1], tau=[10.0, 10.0, 5.0, 5.0],
                    weight_decay=1e-4, objective="marginal_map", samples=2, epochs=30,
                    batch_size=32, lr=1e-2, progress=False)
    assert all(p.device.type == device for p in dev.parameters())
    first, last = torch.tensor(h.loss[0]), torch.tensor(h.loss[-1])
    assert torch.all(torch.isfinite(last)) and torch.all(last < first)
    pred = stacked_predictive(dev, Xd, yd, 300, data_of=[0, 1, 0, 1], tau=10.0,
                              y_mean=0.5, y_std=2.0)
    for k in ("ll", "ll_points", "mc_mean", "mean_pred"):
        assert pred[k].device.type == device and torch.isfinite(pred[k]).all(), k
    tau = stacked_fit_tau(dev, Xd, yd, 200, data_of=[0, 1, 0, 1], y_mean=0.5, y_std=2.0)
    assert tau.shape == (4,) and torch.all(torch.isfinite(tau) & (tau > 0))
    both = stacked_predictive(dev, Xd, yd, 300, data_of=[0, 1, 0, 1], y_mean=0.5, y_std=2.0,
                              tau=torch.stack([torch.full((4,), 10.0, dtype=torch.float64),
                                               tau], 1))
    assert both["ll"].shape == (4, 2) and both["ll"].device.type == device
    cpu.load_state_dict({k: v.cpu() for k, v in dev.state_dict().items()})
    with torch.no_grad():
        torch.testing.assert_close(dev(Xd[[0, 1, 0, 1]], noise=False).cpu(),
                                   cpu(X[[0, 1, 0, 1]], noise=False), rtol=1e-5, atol=1e-5)


def test_stacked_ensemble_device_mismatch_is_a_clear_error():
    net = StackedNoisyMLP([3, 4, 1], [N.Bernoulli(0.9)])
    X, y = torch.randn(1, 8, 3), torch.randn(1, 8)
    with pytest.raises(ValueError, match="y has to be on X's device"):
        fit_stacked(net, X, y.to("meta"), tau=1.0, epochs=1, progress=False)
    with pytest.raises(ValueError, match="X has to be on the model's device cpu, but got meta"):
        fit_stacked(net, X.to("meta"), y.to("meta"), tau=1.0, epochs=1, progress=False)


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device here")
def test_stacked_ensemble_cpu_generator_with_cuda_data_is_a_clear_error():
    net = StackedNoisyMLP([3, 4, 1], [N.Bernoulli(0.9)], generator=torch.Generator()).cuda()
    X, y = torch.randn(1, 8, 3, device="cuda"), torch.randn(1, 8, device="cuda")
    with pytest.raises(ValueError, match="noise generator is on cpu"):
        fit_stacked(net, X, y, tau=1.0, epochs=1, progress=False)


# ------------------------------------------------------------------------------- UCI runner
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("engine", ["stacked", "sequential"])
def test_uci_runner_on_device(tmp_path, device, engine):
    """``shrinkdrop uci --device``: both engines train there; the device is recorded in
    run.json (only when it is not the CPU: older CPU runs still resume) and summary.md."""
    import csv
    import json

    from shrinkdrop.data import resolve_data
    from shrinkdrop.experiments import uci

    data = resolve_data("diabetes")
    s = uci.Settings(quick=True, epochs_multiplier=0.05, test_samples=20, engine=engine,
                     device=device)
    path = uci.run_uci(data, tmp_path, splits=[0], methods=["bernoulli-mc", "bernoulli-mc+tau",
                       "gaussian-marginal_map"], settings=s, progress=False)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and sum(int(r["selected"]) for r in rows) == 1
    assert "fitted_tau=" in rows[1]["config"]
    assert all(math.isfinite(float(r["test_ll"])) and float(r["test_rmse"]) > 0 for r in rows)
    recorded = json.loads((tmp_path / "run.json").read_text())["settings"]
    assert recorded.get("device", "cpu") == device and ("device" in recorded) == (device != "cpu")
    assert (f"trained on {device}" in (tmp_path / "summary.md").read_text()) == (device != "cpu")


def test_uci_device_errors():
    from shrinkdrop.experiments import uci

    with pytest.raises(ValueError, match="device has to be"):
        uci.check_device("tpu")
    if not HAS_CUDA:
        with pytest.raises(ValueError, match="sees no CUDA device"):
            uci.check_device("cuda")


@pytest.mark.parametrize("device", DEVICES)
def test_fused_lstm_recurrence_equals_the_loop(device):
    """Untied NoisyLSTM's recurrence on CUDA runs through torch's LSTM kernel with an identity
    input weight; it has to give the Python loop's outputs, states and gradients."""
    g = torch.Generator().manual_seed(0)
    T, Nb, H = 6, 3, 5
    gx = torch.randn(T, Nb, 4 * H, generator=g, dtype=torch.float64)
    h0 = torch.randn(Nb, H, generator=g, dtype=torch.float64)
    c0 = torch.randn(Nb, H, generator=g, dtype=torch.float64)
    w = torch.randn(4 * H, H, generator=g, dtype=torch.float64) / 3
    results = []
    for fn in (L._lstm_recurrence, L._lstm_recurrence_fused):
        args = [t.to(device).requires_grad_(True) for t in (gx, h0, c0, w)]
        out, h, c = fn(*args)
        (out.sin().sum() + h.square().sum() + c.cos().sum()).backward()
        results.append([out, h, c] + [a.grad for a in args])
    for a, b in zip(*results):
        torch.testing.assert_close(b.cpu(), a.cpu(), rtol=1e-9, atol=1e-9)
