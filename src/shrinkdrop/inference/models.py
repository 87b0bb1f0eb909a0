"""Pyro models of small networks under structured shrinkage priors, in the EP and in the HP.

A :class:`NetSpec` describes an MLP (optionally residual) and which weights share a scale:

* ``"ard"``: one scale ``xi_{l,r}`` per input unit ``r`` of every layer ``l`` (dropout's structure);
* ``"add"``: one scale ``tau_l`` per residual layer (automatic depth determination); the first
  and the last layer, which have no skip connection, keep ARD scales (as in the authors' code);
* ``"ard+add"``: both, ``w = tau_l * xi_{l,r} * v`` on residual layers.

Two parametrizations of the same prior (Nalisnick & Smyth, Sec. 2):

* EP (expanded, non-centred): ``v ~ N(0, sigma0^2)``, ``w = scale * v`` -- noise in the network;
* HP (hierarchical, centred): ``w ~ N(0, sigma0^2 scale^2)``.

The scale laws are the Pyro counterparts of :mod:`shrinkdrop.noise` (see :func:`pyro_law`); the
tests check that their log densities agree. Bernoulli scales are discrete and are sampled by
:mod:`shrinkdrop.inference.gibbs`; here they can only be fixed (``fixed=``).

Sites (``l`` is the layer index, ``0`` maps the inputs to the first hidden layer):
``xi_l`` (in_l,), ``tau_l`` (), ``v_l`` / ``w_l`` (in_l, out_l), ``b_l`` (out_l,),
``precision`` () when the Gaussian noise precision is learnt, ``y`` the data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .. import noise as _noise
from .._validation import check_choice, check_positive
from ..enums import Likelihood, Param, Structure
from ..nn import NoisyResidual, UnitNoise

__all__ = [
    "Structure",
    "Param",
    "Likelihood",
    "NetSpec",
    "ScaleSite",
    "pyro_law",
    "make_model",
    "forward",
    "effective_weights",
    "log_likelihood",
    "run_nuts",
    "NutsResult",
    "predictive_metrics",
    "flatten_chains",
    "make_potential",
    "fit_map_noise",
]


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
}


@dataclass(frozen=True)
class ScaleSite:
    """One group of weights sharing a scale: site ``name`` of ``shape`` on ``layer``;
    ``structure`` is the words of the :mod:`shrinkdrop.nn` layer whose site it is (not compared)."""

    name: str
    layer: int
    kind: str  # "ard" or "add"
    shape: tuple[int, ...]
    structure: str = field(default="", compare=False)


#: the role of a layer's scales (:meth:`shrinkdrop.nn.NoiseLayer.scale_roles`) -> NetSpec's kind
_KINDS = {"xi": "ard", "tau": "add"}
#: a stand-in law for asking a layer about its sites (their shapes and words do not depend on it)
_ANY_LAW = _noise.Bernoulli(keep=0.5)


def _layer_sites(l: int, width: int, ard: bool, add: bool, residual: bool) -> list[ScaleSite]:
    """Layer ``l``'s scale sites as the :mod:`shrinkdrop.nn` layer of that structure names them:
    a plain layer is ``UnitNoise`` before ``Linear`` (ARD), a residual one ``NoisyResidual``
    (``unit_noise``: ARD, ``layer_noise``: ADD)."""
    if residual:
        layer = NoisyResidual(nn.Identity(), layer_noise=_ANY_LAW if add else None,
                              unit_noise=_ANY_LAW if ard else None, normalize=False)
    else:
        layer = UnitNoise(_ANY_LAW, normalize=False)
    return [ScaleSite(f"{s.role}_{l}", l, _KINDS[s.role], s.shape, s.structure)
            for s in layer.scale_sites((1, width))]


@dataclass
class NetSpec:
    """A small network and its prior structure.

    Args:
        layers: widths ``[D_in, H_1, ..., H_k, D_out]``; a linear model is ``[D_in, D_out]``.
        structure: ``"ard"``, ``"add"`` or ``"ard+add"`` (``add`` needs ``residual=True``).
        residual: skip connections ``h_l = f(h W_l + b_l) + h`` on the hidden-to-hidden layers
            (all hidden widths must be equal).
        bias: whether layers have biases (``b ~ N(0, bias_scale^2)``, never shrunk).
        activation: ``"relu"`` or ``"tanh"``.
    """

    layers: list[int]
    structure: str = "ard"
    residual: bool = False
    bias: bool = True
    activation: str = "relu"
    sites: list[ScaleSite] = field(init=False, repr=False)

    def __post_init__(self):
        self.layers = [int(d) for d in self.layers]
        if len(self.layers) < 2 or min(self.layers) < 1:
            raise ValueError(
                f"layers has to list at least two positive widths, but got {self.layers}"
            )
        self.structure = check_choice("structure", self.structure, Structure).value
        check_choice("activation", self.activation, list(_ACTIVATIONS))
        if self.residual and len(set(self.layers[1:-1])) > 1:
            raise ValueError(
                f"residual=True needs equal hidden widths, but got layers={self.layers}"
            )
        if self.structure != "ard" and not self.residual_layers:
            raise ValueError(
                f"structure={self.structure!r} needs residual layers (residual=True and at least "
                f"two hidden layers), but got layers={self.layers}, residual={self.residual}"
            )
        ard, add = self.structure in ("ard", "ard+add"), self.structure in ("add", "ard+add")
        self.sites = [s for l in range(self.n_layers)
                      for s in _layer_sites(l, self.layers[l], ard, add,
                                            l in self.residual_layers)]

    @property
    def n_layers(self) -> int:
        return len(self.layers) - 1

    @property
    def residual_layers(self) -> list[int]:
        if not self.residual:
            return []
        return list(range(1, self.n_layers - 1))

    def layer_scales(self, l: int) -> list[ScaleSite]:
        return [s for s in self.sites if s.layer == l]

    def weight_shape(self, l: int) -> tuple[int, int]:
        return (self.layers[l], self.layers[l + 1])


def pyro_law(noise: _noise.NoiseDistribution) -> dist.Distribution:
    """The Pyro distribution of a :mod:`shrinkdrop.noise` law (for NUTS' support transforms):
    the family's own :meth:`~shrinkdrop.noise.NoiseDistribution.pyro_law`."""
    if not isinstance(noise, _noise.NoiseDistribution):
        raise TypeError(
            f"noise has to be a shrinkdrop.noise family, but got {type(noise).__name__}")
    return noise.pyro_law()


def _scale_value(spec: NetSpec, l: int, scales: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The multiplier of layer ``l``'s weights, shaped (..., in, 1) or (..., 1, 1), or None."""
    out = None
    for s in spec.layer_scales(l):
        x = scales[s.name]
        x = x.unsqueeze(-1) if s.kind == "ard" else x.unsqueeze(-1).unsqueeze(-1)
        out = x if out is None else out * x
    return out


def forward(spec: NetSpec, weights: list[torch.Tensor], biases: list[torch.Tensor | None],
            X: torch.Tensor) -> torch.Tensor:
    """Network output for effective weights ``w_l`` (..., in, out): returns (..., N, out)."""
    act = _ACTIVATIONS[spec.activation]
    h = X
    for l, (W, b) in enumerate(zip(weights, biases)):
        a = h @ W
        if b is not None:
            a = a + b.unsqueeze(-2)
        if l == spec.n_layers - 1:
            return a
        a = act(a)
        h = a + h if l in spec.residual_layers else a
    raise AssertionError("unreachable")


def effective_weights(spec: NetSpec, params: dict[str, torch.Tensor], param: str = "ep"
                      ) -> list[torch.Tensor]:
    """The weights ``w_l`` seen by the network, from EP (``v_l`` times scales) or HP (``w_l``)."""
    param = check_choice("param", param, Param).value
    out = []
    for l in range(spec.n_layers):
        if param == "hp":
            out.append(params[f"w_{l}"])
            continue
        s = _scale_value(spec, l, params)
        v = params[f"v_{l}"]
        out.append(v if s is None else s * v)
    return out


def _biases(spec: NetSpec, params) -> list[torch.Tensor | None]:
    return [params.get(f"b_{l}") if spec.bias else None for l in range(spec.n_layers)]


def _lik_dist(likelihood: str, out: torch.Tensor, precision) -> dist.Distribution:
    if likelihood == "gaussian":
        prec = torch.as_tensor(precision, dtype=out.dtype)
        return dist.Normal(out.squeeze(-1), prec.unsqueeze(-1).rsqrt()
                           if prec.ndim > 0 else prec.rsqrt(), validate_args=False)
    return dist.Categorical(logits=out, validate_args=False)


def log_likelihood(spec: NetSpec, params: dict[str, torch.Tensor], X: torch.Tensor,
                   y: torch.Tensor, *, param: str = "ep", likelihood: str = "gaussian",
                   precision: float | torch.Tensor | None = None,
                   reduce: bool = True) -> torch.Tensor:
    """``log p(y | W, scales)`` summed over the data (or per point with ``reduce=False``).

    ``params`` may carry leading sample dimensions; ``precision`` defaults to
    ``params["precision"]``.
    """
    likelihood = check_choice("likelihood", likelihood, Likelihood).value
    out = forward(spec, effective_weights(spec, params, param), _biases(spec, params), X)
    prec = params.get("precision", precision) if likelihood == "gaussian" else None
    lp = _lik_dist(likelihood, out, prec).log_prob(y)
    return lp.sum(-1) if reduce else lp


def make_model(spec: NetSpec, noise: _noise.NoiseDistribution, param: str = "ep", *,
               likelihood: str = "gaussian", sigma0: float = 1.0, precision: float | None = None,
               precision_prior: tuple[float, float] = (2.0, 0.5), bias_scale: float = 1.0
               ) -> Callable[..., object]:
    """Build the Pyro model ``model(X, y=None, fixed=None)`` of ``spec`` under ``noise``.

    Args:
        spec: the network and its structure.
        noise: the law of every scale (a :mod:`shrinkdrop.noise` family, scalar parameters).
        param: ``"ep"`` (``w = scale * v``, non-centred) or ``"hp"`` (centred).
        likelihood: ``"gaussian"`` (output width 1) or ``"categorical"`` (logits).
        sigma0: the Gaussian part's standard deviation.
        precision: fixed Gaussian noise precision; ``None`` learns it under
            ``Gamma(*precision_prior)`` (shape, rate).
        bias_scale: standard deviation of the biases' Gaussian prior.
        fixed (model argument): values for scale sites, which then are not sampled (Gibbs).

    Example:
        >>> spec = NetSpec([3, 8, 1])
        >>> model = make_model(spec, shrinkdrop.noise.HalfCauchy(1.0), "ep")
    """
    param = check_choice("param", param, Param).value
    likelihood = check_choice("likelihood", likelihood, Likelihood).value
    sigma0 = float(check_positive("sigma0", sigma0))
    law = pyro_law(noise)
    if precision is not None:
        precision = float(check_positive("precision", precision))
    if likelihood == "gaussian" and spec.layers[-1] != 1:
        raise ValueError(
            f"a gaussian likelihood needs output width 1, but got layers={spec.layers}"
        )

    def model(X, y=None, fixed=None):
        fixed = fixed or {}
        scales = {}
        for s in spec.sites:
            if s.name in fixed:
                scales[s.name] = fixed[s.name]
            elif noise.is_discrete:
                raise ValueError(
                    f"Bernoulli scale {s.name} is discrete: NUTS cannot sample it; pass it in "
                    "`fixed` or use shrinkdrop.inference.gibbs"
                )
            else:
                scales[s.name] = pyro.sample(s.name, law.expand(s.shape).to_event(len(s.shape)))
        params = dict(scales)
        for l in range(spec.n_layers):
            shape = spec.weight_shape(l)
            if param == "ep":
                params[f"v_{l}"] = pyro.sample(
                    f"v_{l}", dist.Normal(0.0, sigma0).expand(shape).to_event(2))
            else:
                mult = _scale_value(spec, l, scales)
                scale = sigma0 * (mult.abs() if mult is not None else torch.ones(()))
                params[f"w_{l}"] = pyro.sample(
                    f"w_{l}", dist.Normal(0.0, scale.expand(shape)).to_event(2))
            if spec.bias:
                params[f"b_{l}"] = pyro.sample(
                    f"b_{l}", dist.Normal(0.0, bias_scale).expand((shape[1],)).to_event(1))
        prec = precision
        if likelihood == "gaussian" and precision is None:
            prec = pyro.sample("precision", dist.Gamma(*precision_prior))
        out = forward(spec, effective_weights(spec, params, param), _biases(spec, params), X)
        with pyro.plate("data", X.shape[0]):
            pyro.sample("y", _lik_dist(likelihood, out, prec), obs=y)

    model.spec, model.param, model.likelihood = spec, param, likelihood
    model.precision, model.sigma0, model.noise = precision, sigma0, noise
    model.precision_prior, model.bias_scale = precision_prior, bias_scale
    return model


def _latent_sites(model, fixed=None) -> list[tuple[str, dist.Distribution | None]]:
    """(name, law or None) of the model's latent sites in trace order; None = depends on scales."""
    spec, fixed = model.spec, fixed or {}
    law = pyro_law(model.noise)
    out = [(s.name, law.expand(s.shape).to_event(len(s.shape)))
           for s in spec.sites if s.name not in fixed]
    for l in range(spec.n_layers):
        shape = spec.weight_shape(l)
        if model.param == "ep":
            out.append((f"v_{l}", dist.Normal(0.0, model.sigma0).expand(shape).to_event(2)))
        else:
            out.append((f"w_{l}", None))
        if spec.bias:
            out.append((f"b_{l}", dist.Normal(0.0, model.bias_scale).expand((shape[1],))
                        .to_event(1)))
    if model.likelihood == "gaussian" and model.precision is None:
        out.append(("precision", dist.Gamma(*model.precision_prior)))
    return out


def make_potential(model, X: torch.Tensor, y: torch.Tensor, fixed=None):
    """``(potential_fn, transforms)`` of ``model``'s posterior in unconstrained space.

    The same density as Pyro's trace of ``model`` (a test checks it), written as one torch
    function: NUTS spends its time here, and needs no Pyro trace per gradient.
    ``fixed`` (scale values) is read at every call, so updating its tensors in place
    conditions the potential on new scales (the Gibbs sampler does this).
    """
    from torch.distributions import biject_to

    spec = model.spec
    with pyro.validation_enabled(False):  # NUTS may visit scales that underflow to 0 (HP)
        sites = _latent_sites(model, fixed)
    transforms = {}
    for name, d in sites:
        support = dist.Normal(0, 1).support if d is None else d.support
        transforms[name] = biject_to(support).inv
    fixed_ref = fixed if fixed is not None else {}

    def potential_fn(z):
        params, lp = dict(fixed_ref), 0.0
        for name, d in sites:
            t = transforms[name]
            x = t.inv(z[name])
            params[name] = x
            if d is None:  # HP weight: N(0, sigma0 |scale|)
                l = int(name.split("_")[1])
                mult = _scale_value(spec, l, params)
                sd_ = model.sigma0 * (mult.abs() if mult is not None else torch.ones(()))
                lp = lp + dist.Normal(0.0, sd_.expand(spec.weight_shape(l)),
                                      validate_args=False).log_prob(x).sum()
                continue
            lp = lp + d.log_prob(x).sum() - t.log_abs_det_jacobian(x, z[name]).sum()
        lp = lp + log_likelihood(spec, params, X, y, param=model.param,
                                 likelihood=model.likelihood, precision=model.precision)
        return -lp

    return potential_fn, transforms


def _init_params(model, transforms, generator, fixed=None):
    """Uniform(-2, 2) in unconstrained space (Pyro's init_to_uniform)."""
    out = {}
    for name, d in _latent_sites(model, fixed):
        shape = model.spec.weight_shape(int(name.split("_")[1])) if d is None else (
            d.batch_shape + d.event_shape)
        out[name] = 4 * torch.rand(shape, generator=generator,
                                   dtype=torch.get_default_dtype()) - 2
    return out


@dataclass
class NutsResult:
    """Draws shaped (chain, draw, ...) per site, with the sampler's cost and divergences."""

    samples: dict[str, torch.Tensor]
    divergences: int
    seconds: float
    sample_seconds: float
    num_warmup: int
    num_samples: int
    #: leapfrog steps (gradient evaluations) of all chains, warm-up included, where the
    #: sampler reports them (the jax backend); None otherwise
    gradients: int | None = None


def run_nuts(model: Callable[..., object], X: torch.Tensor, y: torch.Tensor, *,
             num_warmup: int = 300, num_samples: int = 300, chains: int = 2, seed: int = 0,
             max_tree_depth: int = 8, target_accept_prob: float = 0.8, progress: bool = False,
             fixed: dict[str, torch.Tensor] | None = None) -> NutsResult:
    """Run Pyro's NUTS on ``model(X, y)``: ``chains`` chains one after the other (seed + c).

    Chains run sequentially in this process (2 shared cores: processes cost more than they
    give here); each is seeded with ``pyro.set_rng_seed(seed + c)``.
    """
    from pyro.infer import MCMC, NUTS

    potential_fn, transforms = make_potential(model, X, y, fixed)
    draws: dict[str, list[torch.Tensor]] = {}
    divergences, total, sampling = 0, 0.0, 0.0
    for c in range(chains):
        pyro.set_rng_seed(seed + c)
        marks: dict[str, float] = {}

        def hook(kernel, params, stage, i, marks=marks):
            if stage == "Sample" and "sample" not in marks:
                marks["sample"] = time.perf_counter()

        kernel = NUTS(potential_fn=potential_fn, max_tree_depth=max_tree_depth,
                      target_accept_prob=target_accept_prob)
        g = torch.Generator().manual_seed(seed + c)
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=num_warmup,
                    initial_params=_init_params(model, transforms, g, fixed),
                    transforms=transforms, disable_progbar=not progress, hook_fn=hook)
        t0 = time.perf_counter()
        mcmc.run()
        t1 = time.perf_counter()
        total += t1 - t0
        sampling += t1 - marks.get("sample", t0)
        for k, v in mcmc.get_samples().items():
            draws.setdefault(k, []).append(v.detach())
        div = mcmc.diagnostics().get("divergences", {})
        divergences += sum(len(v) for v in div.values())
    samples = {k: torch.stack(v) for k, v in draws.items()}
    return NutsResult(samples, divergences, total, sampling, num_warmup, num_samples)


def predictive_metrics(spec: NetSpec, samples: dict[str, torch.Tensor], X: torch.Tensor,
                       y: torch.Tensor, *, param: str = "ep", likelihood: str = "gaussian",
                       precision: float | None = None, y_scale: float = 1.0) -> dict:
    """Test log-likelihood (per point, posterior predictive) and RMSE / accuracy.

    ``samples`` are shaped (chain, draw, ...); Gaussian outputs are in
    standardized units and ``y_scale`` maps them back (log-likelihood minus ``log y_scale``).
    """
    flat = flatten_chains(samples)
    lp = log_likelihood(spec, flat, X, y, param=param, likelihood=likelihood,
                        precision=precision, reduce=False)  # (S, N)
    S = lp.shape[0]
    ll = (torch.logsumexp(lp, 0) - math.log(S)).mean().item()
    out = forward(spec, effective_weights(spec, flat, param), _biases(spec, flat), X)
    if likelihood == "gaussian":
        mean = out.squeeze(-1).mean(0)
        rmse = torch.sqrt(((mean - y) ** 2).mean()).item() * y_scale
        return {"test_ll": ll - math.log(y_scale), "test_rmse": rmse}
    probs = torch.softmax(out, -1).mean(0)
    return {"test_ll": ll, "test_rmse": None,
            "test_accuracy": (probs.argmax(-1) == y).double().mean().item()}


def flatten_chains(samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """(chain, draw, ...) -> (chain * draw, ...) for every site."""
    return {k: v.reshape(-1, *v.shape[2:]) for k, v in samples.items()}


def fit_map_noise(model: Callable[..., object], X: torch.Tensor, y: torch.Tensor, *,
                  epochs: int = 2000, lr: float = 1e-2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Train an EP model's weights by MAP with noise (the MC objective, Eq. 3), full batch.

    Each step draws one global scale per unit (or layer) from the noise law -- the paper's
    global scales, shared by the whole batch -- and ascends
    ``log p(y | v, xi) + log p(v) + log p(b)``; the Gaussian ``log p(v)`` is weight decay
    ``1 / (2 sigma0^2) ||v||^2``. Returns the point estimates ``{v_l, b_l}``; the noise precision
    has to be fixed (``make_model(..., precision=...)``) for this read-out.

    A plain ARD MLP is trained by the library itself: :func:`shrinkdrop.fit` (MC objective, one
    sample, full batch, ``sigma0`` weight decay) on ``UnitNoise(noise, share_across_batch=True,
    normalize=False) -> Linear -> act -> ...``, the EP of this model (``normalize=False`` keeps
    ``xi`` on the prior's own scale, as here). As in :func:`shrinkdrop.fit` its biases are not
    decayed (flat prior). Residual / ADD networks use the loop below (same objective, biases
    under ``N(0, bias_scale^2)``).
    """
    if model.param != "ep":
        raise ValueError(f"fit_map_noise trains the EP (noise in the network), but got "
                         f"param={model.param!r}")
    if model.likelihood == "gaussian" and model.precision is None:
        raise ValueError("fit_map_noise needs a fixed noise precision, but the model learns it")
    spec = model.spec
    if spec.structure == "ard" and not spec.residual:
        return _fit_map_noise_library(model, X, y, epochs=epochs, lr=lr, seed=seed)
    g = torch.Generator().manual_seed(seed)
    dtype = torch.get_default_dtype()
    params = {}
    for l in range(spec.n_layers):
        fan_in = spec.layers[l]
        params[f"v_{l}"] = (torch.randn(spec.weight_shape(l), generator=g, dtype=dtype)
                            / math.sqrt(fan_in)).requires_grad_()
        if spec.bias:
            params[f"b_{l}"] = torch.zeros(spec.layers[l + 1], dtype=dtype, requires_grad=True)
    opt = torch.optim.Adam(list(params.values()), lr=lr)
    for _ in range(epochs):
        scales = {s.name: model.noise.sample(s.shape, generator=g).to(dtype) for s in spec.sites}
        lp = log_likelihood(spec, {**params, **scales}, X, y, likelihood=model.likelihood,
                            precision=model.precision)
        for k, v in params.items():
            sd_ = model.sigma0 if k.startswith("v_") else model.bias_scale
            lp = lp - 0.5 * (v**2).sum() / sd_**2
        opt.zero_grad()
        (-lp / X.shape[0]).backward()
        opt.step()
    return {k: v.detach() for k, v in params.items()}


def _fit_map_noise_library(model, X, y, *, epochs, lr, seed):
    """:func:`fit_map_noise` for a plain ARD MLP through :func:`shrinkdrop.fit` + ``UnitNoise``."""
    from .. import train

    spec = model.spec
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh}
    mods: list[nn.Module] = []
    linears = []
    for l in range(spec.n_layers):
        mods.append(UnitNoise(model.noise, share_across_batch=True, normalize=False))
        lin = nn.Linear(*spec.weight_shape(l), bias=spec.bias)
        linears.append(lin)
        mods.append(lin)
        if l < spec.n_layers - 1:
            mods.append(acts[spec.activation]())
    net = nn.Sequential(*mods).to(torch.get_default_dtype())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the same initialisation as the loop below
        for l, lin in enumerate(linears):
            lin.weight.copy_(torch.randn(spec.weight_shape(l), generator=g).T
                             / math.sqrt(spec.layers[l]))
            if lin.bias is not None:
                lin.bias.zero_()
    yy = y.to(torch.get_default_dtype()) if model.likelihood == "gaussian" else y
    train.fit(net, X, yy, likelihood=model.likelihood, tau=model.precision,
              sigma0=model.sigma0, epochs=epochs, batch_size=X.shape[0], lr=lr, seed=seed,
              progress=False)
    out = {}
    for l, lin in enumerate(linears):
        out[f"v_{l}"] = lin.weight.detach().T.contiguous()
        if lin.bias is not None:
            out[f"b_{l}"] = lin.bias.detach().clone()
    return out
