"""Structured variational inference over the scales of any model built from shrinkdrop layers.

The model is the paper's expanded parametrization with *global* scales: every noise layer of
``model`` (``UnitNoise``: ARD, ``ChannelNoise`` / ``NoisyConv2d``: tied filters / channels,
``LayerNoise`` / ``NoisyResidual``: ADD, ARD+ADD) contributes one scale per unit of its structure,
``xi ~ p(xi)`` (the layer's noise law, unnormalized), and every weight tensor (a parameter with two
or more dimensions) is ``v ~ N(0, sigma0^2)``; 1-d parameters (biases, norms) are point estimates
without a prior. Training maximises the evidence lower bound

    ELBO(q) = E_q[log p(y | X, v, xi)] - KL(q(v) || p(v)) - KL(q(xi) || p(xi))

with ``q(v) = prod N(mu, sd^2)`` (mean field, reparametrised) and a structured ``q(xi)`` with one
factor per unit of each site:

* Bernoulli sites: ``q(xi_r) = Bernoulli(pi_r)``. Its gradient is the exact *local expectation*
  (Titsias & Lazaro-Gredilla 2015): ``d ELBO / d logit(pi_r) = pi_r (1 - pi_r) E_q[l(xi_r = 1) -
  l(xi_r = 0)] - d KL_r / d logit(pi_r)``, the expectation over the other units and the weights
  estimated with the same draw for both values (``U`` extra forward passes for ``U`` units, no
  backward). ``pi_r`` is the posterior inclusion probability ``p(xi_r != 0 | data)``.
* Continuous sites: ``q(xi_r) = T(N(m_r, s_r^2))`` with ``T`` the bijection onto the noise law's
  support (``exp`` for positive laws, a sigmoid for Beta / Uniform, the identity for Gaussian),
  reparametrised; ``KL(q || p)`` by the same draw (unbiased) with ``p``'s exact log density.

The Gaussian likelihood's precision is a point estimate maximising the ELBO (type-II), unless
``precision`` is given. Derivations and checks: ``docs/inference.md`` ("Structured VI").
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.distributions import biject_to, constraints
from torch.func import functional_call

from .. import noise as _noise
from .._validation import check_choice
from ..errors import ShrinkdropError
from ..nn import ChannelNoise, LayerNoise, NoiseLayer, NoisyConv2d, NoisyResidual, UnitNoise

__all__ = [
    "SVISite",
    "SVIResult",
    "fit_svi",
    "scale_sites",
    "given_scales",
    "bernoulli_kl",
    "local_expectation_grad",
]

_SUPPORTED = (UnitNoise, ChannelNoise, LayerNoise, NoisyResidual, NoisyConv2d)


class SVIError(ShrinkdropError, ValueError):
    """A model or argument that structured VI cannot handle."""


@dataclass
class SVISite:
    """One group of scales: ``path`` of the layer, ``role`` (``"xi"`` ARD / channels, ``"tau"``
    ADD / filters), ``structure`` in words, the noise law ``noise`` (the prior) and the shape of
    one draw (one entry per unit)."""

    path: str
    role: str
    structure: str
    noise: _noise.NoiseDistribution
    shape: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.path}.{self.role}" if self.path else self.role

    @property
    def bernoulli(self) -> bool:
        return isinstance(self.noise, _noise.Bernoulli)

    @property
    def units(self) -> int:
        return math.prod(self.shape)


# ----------------------------------------------------------------------------- the model side
def _apply(layer: nn.Module, x: Tensor, scales: dict[str, Tensor]) -> Tensor:
    """``layer``'s forward with the given global scales (unnormalized; no other noise)."""
    if isinstance(layer, UnitNoise):
        return x * scales["xi"]
    if isinstance(layer, ChannelNoise):
        tau = scales["tau"]
        return x * tau.reshape(tau.shape + (1,) * (x.dim() - 2))
    if isinstance(layer, LayerNoise):
        return x * scales["tau"]
    if isinstance(layer, NoisyResidual):
        z = x
        if "xi" in scales:
            z = z * scales["xi"]
        if "tau" in scales:
            z = z * scales["tau"]
        return x + layer.block(z)
    if isinstance(layer, NoisyConv2d):
        conv = torch.nn.functional.conv2d
        w = layer.weight
        if "xi" in scales:  # (C_in/g, F) -> (F, C_in/g, 1, 1)
            w = w * scales["xi"].transpose(-1, -2)[..., None, None]
        y = conv(x, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)
        if "tau" in scales:
            y = y * scales["tau"][:, None, None]
        return y if layer.bias is None else y + layer.bias[:, None, None]
    raise SVIError(f"{type(layer).__name__} is not supported by structured VI")  # pragma: no cover


@contextlib.contextmanager
def given_scales(model: nn.Module, scales: dict[str, Tensor] | Callable[[], dict[str, Tensor]]):
    """Run ``model``'s noise layers with the given global scales instead of drawing noise.

    ``scales`` maps site names (``SVISite.name``, e.g. ``"0.xi"``) to tensors of the site's shape,
    or is a callable returning that mapping at each forward pass (read lazily, so that it can be
    changed between passes and used inside ``torch.func.vmap``). Sites not in the mapping keep
    their scale at 1 (the unit is on). Restores the layers' own forwards on exit.
    """
    get = scales if callable(scales) else (lambda: scales)
    layers = _noise_layers(model)
    saved = []
    try:
        for path, layer in layers:
            def fwd(x, _layer=layer, _path=path):
                cur = get()
                own = {}
                for role in _roles(_layer):
                    key = f"{_path}.{role}" if _path else role
                    if key in cur:
                        own[role] = cur[key]
                    else:
                        own[role] = torch.ones((), dtype=x.dtype, device=x.device)
                return _apply(_layer, x, own)
            saved.append((layer, layer.__dict__.get("forward")))
            layer.forward = fwd
        yield model
    finally:
        for layer, old in saved:
            if old is None:
                layer.__dict__.pop("forward", None)
            else:  # pragma: no cover - a forward patched by someone else
                layer.forward = old


def _noise_layers(model: nn.Module) -> list[tuple[str, NoiseLayer]]:
    out = []
    for path, m in model.named_modules():
        if isinstance(m, NoiseLayer):
            if not isinstance(m, _SUPPORTED):
                raise SVIError(
                    f"model has a {type(m).__name__} at {path or '<root>'!r}; structured VI "
                    f"supports {', '.join(c.__name__ for c in _SUPPORTED)} (global scales per "
                    "unit, channel, filter or layer)")
            if any(path.startswith(p + ".") for p, _ in out if p):
                raise SVIError(f"noise layer {path!r} is nested inside another noise layer; "
                               "structured VI needs them side by side")
            out.append((path, m))
    return out


def _roles(layer: NoiseLayer) -> list[str]:
    if isinstance(layer, UnitNoise):
        return ["xi"]
    if isinstance(layer, (ChannelNoise, LayerNoise)):
        return ["tau"]
    if isinstance(layer, NoisyResidual):
        return [r for r, nz in (("xi", layer.unit_noise), ("tau", layer.layer_noise))
                if nz is not None]
    return {"filter": ["tau"], "channel": ["xi"], "both": ["xi", "tau"]}[layer.tie.value]


def scale_sites(model: nn.Module, example: Tensor) -> list[SVISite]:
    """The scale sites of ``model`` and their shapes, found by one forward pass on ``example``."""
    layers = _noise_layers(model)
    if not layers:
        raise SVIError("model has no shrinkdrop noise layer (UnitNoise, ChannelNoise, "
                       "LayerNoise, NoisyResidual, NoisyConv2d): nothing to infer")
    shapes: dict[str, torch.Size] = {}
    hooks = [layer.register_forward_pre_hook(
        lambda mod, args, _p=path: shapes.__setitem__(_p, args[0].shape))
        for path, layer in layers]
    try:
        with torch.no_grad(), given_scales(model, {}):
            model(example)
    finally:
        for h in hooks:
            h.remove()
    sites = []
    for path, layer in layers:
        if path not in shapes:
            raise SVIError(f"noise layer {path!r} is not used by model's forward pass")
        s = shapes[path]
        if isinstance(layer, UnitNoise):
            sites.append(SVISite(path, "xi", "ARD (per input unit)", layer.noise, (s[-1],)))
        elif isinstance(layer, ChannelNoise):
            sites.append(SVISite(path, "tau", "tied filters (per channel)", layer.noise, (s[1],)))
        elif isinstance(layer, LayerNoise):
            sites.append(SVISite(path, "tau", "ADD (per layer)", layer.noise, ()))
        elif isinstance(layer, NoisyResidual):
            if layer.unit_noise is not None:
                sites.append(SVISite(path, "xi", "ARD (per input unit of the block)",
                                     layer.unit_noise, (s[-1],)))
            if layer.layer_noise is not None:
                sites.append(SVISite(path, "tau", "ADD (per residual block)",
                                     layer.layer_noise, ()))
        else:
            F_out, C_g = layer.weight.shape[:2]
            if "xi" in _roles(layer):
                sites.append(SVISite(path, "xi", "tied channels (per input channel, filter)",
                                     layer.noise, (C_g, F_out)))
            if "tau" in _roles(layer):
                sites.append(SVISite(path, "tau", "tied filters (per filter)", layer.noise,
                                     (F_out,)))
    return sites


# ----------------------------------------------------------------------------- q(xi)
def bernoulli_kl(q: Tensor, p: float) -> Tensor:
    """``KL(Bernoulli(q) || Bernoulli(p))`` elementwise, finite at ``q in {0, 1}``."""
    q = q.clamp(0.0, 1.0)
    t1 = torch.where(q > 0, q * (torch.log(q) - math.log(p)), torch.zeros_like(q))
    if p < 1:
        t0 = torch.where(q < 1, (1 - q) * (torch.log1p(-q) - math.log1p(-p)),
                         torch.zeros_like(q))
    else:
        t0 = torch.where(q < 1, torch.full_like(q, math.inf), torch.zeros_like(q))
    return t1 + t0


def _support(noise) -> constraints.Constraint:
    return noise.support


def _positive(noise) -> bool:
    return _support(noise) is constraints.positive


def _takes_generator(noise) -> bool:
    import inspect

    return "generator" in inspect.signature(noise.sample).parameters


class _ContinuousQ(nn.Module):
    """``q(xi) = T(N(loc, scale^2))``, ``T = biject_to(support)``; one factor per unit."""

    def __init__(self, site: SVISite, dtype) -> None:
        super().__init__()
        self.site = site
        self.transform = biject_to(_support(site.noise))
        # start at the prior's median (a point where the law has mass), spread 0.1 in u-space
        g = torch.Generator().manual_seed(0)
        draws = site.noise.sample((4001,), generator=g) if _takes_generator(site.noise) \
            else site.noise.sample((4001,))
        u0 = float(self.transform.inv(draws.double().abs().median().clamp_min(1e-6)
                                      if _positive(site.noise) else draws.double().median()))
        if not math.isfinite(u0):
            u0 = 0.0
        self.loc = nn.Parameter(torch.full(site.shape, u0, dtype=dtype))
        self.log_scale = nn.Parameter(torch.full(site.shape, math.log(0.1), dtype=dtype))

    def rsample(self, generator) -> tuple[Tensor, Tensor]:
        """A reparametrised draw and ``log q - log p`` at it (the KL's one-draw estimate)."""
        eps = torch.randn(self.loc.shape, generator=generator, dtype=self.loc.dtype)
        s = self.log_scale.exp()
        u = self.loc + s * eps
        xi = self.transform(u)
        log_q = (-0.5 * eps**2 - self.log_scale - 0.5 * math.log(2 * math.pi)
                 - self.transform.log_abs_det_jacobian(u, xi))
        log_p = self.site.noise.log_prob(xi)
        return xi, (log_q - log_p).sum()

    def draws(self, n: int, generator) -> Tensor:
        eps = torch.randn((n, *self.loc.shape), generator=generator, dtype=self.loc.dtype)
        return self.transform(self.loc + self.log_scale.exp() * eps).detach()


class _BernoulliQ(nn.Module):
    def __init__(self, site: SVISite, dtype, init: float) -> None:
        super().__init__()
        self.site = site
        self.logit = nn.Parameter(torch.full(site.shape, math.log(init / (1 - init)),
                                             dtype=dtype))

    @property
    def probs(self) -> Tensor:
        return torch.sigmoid(self.logit)

    def draws(self, n: int, generator) -> Tensor:
        p = self.probs.detach()
        return (torch.rand((n, *p.shape), generator=generator, dtype=p.dtype) < p).to(p.dtype)

    def kl(self) -> Tensor:
        return bernoulli_kl(self.probs, float(self.site.noise.keep)).sum()


def local_expectation_grad(loglik: Callable[[dict[str, Tensor]], Tensor],
                           xi: dict[str, Tensor], names: list[str]) -> dict[str, Tensor]:
    """``l(xi_r = 1, xi_-r) - l(xi_r = 0, xi_-r)`` for every unit ``r`` of the Bernoulli sites
    ``names``, all other scales at ``xi`` (one forward pass per unit, batched by vmap).

    ``loglik(scales)`` maps a dict of scale tensors to the (scalar) log-likelihood.
    """
    out = {}
    with torch.no_grad():
        base = loglik(xi)
        for name in names:
            cur = xi[name]
            flat = cur.reshape(-1)
            U = flat.numel()
            flips = flat.expand(U, U).clone()
            idx = torch.arange(U)
            flips[idx, idx] = 1 - flat
            flips = flips.reshape(U, *cur.shape)
            rest = {k: v for k, v in xi.items() if k != name}

            def one(s, _name=name, _rest=rest):
                return loglik({**_rest, _name: s})

            try:
                flipped = torch.func.vmap(one)(flips)
            except Exception:  # noqa: BLE001 - a forward vmap cannot batch: loop
                flipped = torch.stack([one(f) for f in flips])
            sign = torch.where(flat > 0.5, 1.0, -1.0).to(base.dtype)
            out[name] = (sign * (base - flipped)).reshape(cur.shape)
    return out


def slab_owners(model: nn.Module, sites: list[SVISite], X: Tensor, probes: int = 3
                ) -> dict[str, Tensor]:
    """Which Bernoulli unit each weight entry is paired with (``-1``: none).

    Entry ``w`` is paired with unit ``r`` when switching ``xi_r`` off makes the output's gradient
    in ``w`` exactly zero although it is not zero with every unit on: ``w`` then acts only
    through unit ``r`` (the weights leaving an input unit for ARD, a filter for tied filters, a
    block's first layer for ADD). Checked at the model's parameters and at ``probes`` random
    ones (standard normal), on ``X`` and a random projection of the output, so that a hidden unit
    that happens to be dead at one point does not hide its weights. Units are numbered across
    the Bernoulli sites in order; an entry paired with several units keeps the first.
    """
    g = torch.Generator().manual_seed(12345)
    own = {k: p.detach() for k, p in model.named_parameters()}
    points = [own] + [{k: torch.randn(p.shape, generator=g, dtype=p.dtype) for k, p in
                       own.items()} for _ in range(probes)]
    weights = [k for k, v in own.items() if v.dim() >= 2]
    ones = {s.name: torch.ones(s.shape, dtype=X.dtype) for s in sites}

    def grads(scales, params):
        theta = {k: (v.clone().requires_grad_() if k in weights else v)
                 for k, v in params.items()}
        with given_scales(model, scales):
            out = functional_call(model, theta, (X,))
        proj = torch.randn(out.shape, generator=g, dtype=out.dtype)
        gs = torch.autograd.grad((out * proj).sum(), [theta[k] for k in weights],
                                 allow_unused=True)
        return {k: (torch.zeros_like(own[k]) if gr is None else gr)
                for k, gr in zip(weights, gs)}

    live = {k: torch.zeros(own[k].shape, dtype=torch.bool) for k in weights}
    for params in points:
        for k, gr in grads(ones, params).items():
            live[k] |= gr != 0
    owners = {k: torch.full(own[k].shape, -1, dtype=torch.long) for k in weights}
    unit = 0
    for s in sites:
        if not s.bernoulli:
            continue
        for r in range(s.units):
            off = dict(ones)
            x = torch.ones(s.units, dtype=X.dtype)
            x[r] = 0
            off[s.name] = x.reshape(s.shape)
            dead = {k: live[k] & (owners[k] < 0) for k in weights}
            for params in points:
                for k, gr in grads(off, params).items():
                    dead[k] &= gr == 0
            for k in weights:
                owners[k][dead[k]] = unit
            unit += 1
    return owners


# ----------------------------------------------------------------------------- fitting
@dataclass
class SVIResult:
    """What :func:`fit_svi` learnt: the sites, their ``q``, the weights' ``q`` and the history.

    Read-outs: :meth:`inclusion` (Bernoulli sites: ``p(xi_r != 0 | data)``), :meth:`relevance`
    (every site: inclusion probability, or ``1 - E_q[kappa]`` for continuous laws),
    :meth:`table`; prediction: :meth:`sample_outputs`, :meth:`log_likelihood`.
    """

    model: nn.Module
    sites: list[SVISite]
    q_scales: nn.ModuleDict
    mu: dict[str, Tensor]
    sd: dict[str, Tensor]
    points: dict[str, Tensor]
    likelihood: str
    precision: float | None
    sigma0: float
    n: int
    elbo: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def _q(self, site: SVISite):
        return self.q_scales[site.name.replace(".", "__")]

    def inclusion(self) -> dict[str, Tensor]:
        """Posterior inclusion probabilities of the Bernoulli sites."""
        return {s.name: self._q(s).probs.detach().clone() for s in self.sites if s.bernoulli}

    def relevance(self, draws: int = 2000, seed: int = 0) -> dict[str, Tensor]:
        """Per unit: inclusion probability (Bernoulli), else ``1 - E_q[kappa]``,
        ``kappa = 1 / (1 + n * precision * sigma0^2 * xi^2)`` (the shrinkage factor of
        Carvalho et al. 2010, as the MCMC read-outs use it); in [0, 1], 0.5 the threshold."""
        g = torch.Generator().manual_seed(seed)
        prec = self.precision if self.precision is not None else 1.0
        out = {}
        for s in self.sites:
            q = self._q(s)
            if s.bernoulli:
                out[s.name] = q.probs.detach().clone()
            else:
                xi = q.draws(draws, g)
                kappa = 1.0 / (1.0 + self.n * prec * self.sigma0**2 * xi**2)
                out[s.name] = (1 - kappa).mean(0)
        return out

    def table(self, draws: int = 2000) -> list[dict]:
        rel = self.relevance(draws)
        rows = []
        for s in self.sites:
            what = "p(on)" if s.bernoulli else "1 - E[kappa]"
            for i, v in enumerate(rel[s.name].reshape(-1).tolist()):
                rows.append(dict(site=s.name, structure=s.structure, unit=i, what=what,
                                 relevance=v))
        return rows

    def switched_off(self, threshold: float = 0.5) -> dict[str, Tensor]:
        """Boolean mask per site: units whose relevance is below ``threshold``."""
        return {k: v < threshold for k, v in self.relevance().items()}

    def sample_outputs(self, X: Tensor, samples: int = 100, *, seed: int = 0,
                       off: dict[str, Tensor] | None = None) -> Tensor:
        """``samples`` outputs under ``q`` (weights and scales drawn jointly), ``(S, N, ...)``.

        ``off`` maps site names to boolean masks of units forced to 0 (a pruned network).
        """
        g = torch.Generator().manual_seed(seed)
        outs = []
        with torch.no_grad():
            for _ in range(samples):
                params = _draw_params(self.mu, self.sd, self.points, g)
                xi = {s.name: self._q(s).draws(1, g)[0] for s in self.sites}
                if off:
                    for k, m in off.items():
                        xi[k] = torch.where(m, torch.zeros_like(xi[k]), xi[k])
                with given_scales(self.model, xi):
                    outs.append(functional_call(self.model, params, (X,)))
        return torch.stack(outs)

    def log_likelihood(self, X: Tensor, y: Tensor, samples: int = 1000, *, y_scale: float = 1.0,
                       seed: int = 0, off: dict[str, Tensor] | None = None) -> Tensor:
        """Per-row log predictive density ``log (1/S) sum_s p(y | X, v_s, xi_s)`` under ``q``;
        ``y_scale`` converts a standardized Gaussian target back to original units."""
        out = self.sample_outputs(X, samples, seed=seed, off=off)
        ll = _loglik(out, y, self.likelihood, self.precision)  # (S, N)
        ll = torch.logsumexp(ll, 0) - math.log(samples)
        if self.likelihood == "gaussian":
            ll = ll - math.log(y_scale)
        return ll


def _draw_params(mu, sd, points, g) -> dict[str, Tensor]:
    params = dict(points)
    for k, m in mu.items():
        params[k] = m + sd[k] * torch.randn(m.shape, generator=g, dtype=m.dtype)
    return params


def _loglik(out: Tensor, y: Tensor, likelihood: str, precision) -> Tensor:
    if likelihood == "gaussian":
        out = out.reshape(*out.shape[:-1]) if out.shape[-1] == 1 else out
        prec = torch.as_tensor(precision, dtype=out.dtype)
        return 0.5 * (torch.log(prec) - math.log(2 * math.pi)) - 0.5 * prec * (out - y) ** 2
    return torch.distributions.Categorical(logits=out).log_prob(y)


def _softplus_inv(x: float) -> float:
    return x + math.log(-math.expm1(-x))


@dataclass
class _State:
    """What one ELBO evaluation needs (see :func:`fit_svi`)."""

    model: nn.Module
    sites: list[SVISite]
    q_scales: nn.ModuleDict
    mu: dict[str, Tensor]
    rho: dict[str, Tensor]
    points: dict[str, Tensor]
    log_prec: Tensor | None
    precision: float | None
    sigma0: float
    owners: dict[str, Tensor]
    n_units: int
    bern: list[str]
    likelihood: str
    scales: dict[str, Tensor]

    def current(self) -> dict[str, Tensor]:
        return self.scales

    def q(self, name: str):
        return self.q_scales[name.replace(".", "__")]

    def loglik(self, scales, theta, xb, yb, prec, scale) -> Tensor:
        """``scale * sum_n log p(y_n | x_n, theta, scales)`` (one forward pass)."""
        self.scales = scales
        out = functional_call(self.model, theta, (xb,))
        return _loglik(out, yb, self.likelihood, prec).sum() * scale


def _weight_kl(st: _State, sd: dict[str, Tensor], probs: Tensor | None) -> Tensor:
    """``E_q(xi) KL(q(v | xi) || p(v))``: paired entries cost their KL with probability
    ``pi_r`` (``q(v_r | xi_r = 0)`` is the prior: spike-and-slab pairing), the rest always."""
    dtype = next(iter(sd.values())).dtype if sd else torch.float64
    kl = torch.zeros((), dtype=dtype)
    for k, m in st.mu.items():
        kl_e = (math.log(st.sigma0) - torch.log(sd[k]) + (m**2 + sd[k] ** 2)
                / (2 * st.sigma0**2) - 0.5)
        own = st.owners.get(k)
        if own is None or probs is None:
            kl = kl + kl_e.sum()
            continue
        paired = own >= 0
        per_unit = torch.zeros(st.n_units, dtype=dtype).index_add(0, own[paired], kl_e[paired])
        kl = kl + kl_e[~paired].sum() + (probs * per_unit).sum()
    return kl


def _precondition_slabs(st: _State) -> None:
    """Divide the gradient of each paired slab entry by its unit's ``pi_r``: the natural-
    gradient scaling of a mixture component, so that ``q(v_r | xi_r = 1)`` keeps following
    ``E[l | xi_r = 1] - KL_r`` however small ``pi_r`` has become (otherwise a unit switched off
    early keeps the weights it had then, and its ``pi_r`` never sees what its slab could do)."""
    with torch.no_grad():
        probs = torch.cat([st.q(b).probs.reshape(-1) for b in st.bern]).clamp_min(1e-3)
        for k, own in st.owners.items():
            paired = own >= 0
            for t in (st.mu[k], st.rho[k]):
                if t.grad is not None:
                    t.grad[paired] /= probs[own[paired]]


def _step_loss(st: _State, xb: Tensor, yb: Tensor, scale: float, frozen: bool, g
               ) -> tuple[Tensor, Tensor]:
    """``(-(ELBO + local-expectation surrogate), ELBO)`` for one minibatch, one draw."""
    dtype = xb.dtype
    sd = {k: torch.nn.functional.softplus(r) for k, r in st.rho.items()}
    theta = dict(st.points)
    for k, m in st.mu.items():
        theta[k] = m + sd[k] * torch.randn(m.shape, generator=g, dtype=dtype)
    prec = st.log_prec.exp() if st.log_prec is not None else st.precision
    xi, kl_cont = {}, torch.zeros((), dtype=dtype)
    for s in st.sites:
        if s.bernoulli:
            xi[s.name] = st.q(s.name).draws(1, g)[0]
        else:
            xi[s.name], klc = st.q(s.name).rsample(g)
            kl_cont = kl_cont + klc
    ell = st.loglik(xi, theta, xb, yb, prec, scale)
    surrogate = torch.zeros((), dtype=dtype)
    probs = None
    if st.bern:
        probs = torch.cat([st.q(b).probs.reshape(-1) for b in st.bern])
        if not frozen:
            theta_d = {k: v.detach() for k, v in theta.items()}
            prec_d = prec.detach() if isinstance(prec, Tensor) else prec
            deltas = local_expectation_grad(
                lambda sc: st.loglik(sc, theta_d, xb, yb, prec_d, scale),
                {k: v.detach() for k, v in xi.items()}, st.bern)
            surrogate = sum(((st.q(b).probs * deltas[b]).sum() for b in st.bern), surrogate)
    kl_b = sum((st.q(b).kl() for b in st.bern), torch.zeros((), dtype=dtype))
    elbo = ell - _weight_kl(st, sd, probs) - kl_cont - kl_b
    return -(elbo + surrogate), elbo.detach()


def fit_svi(model: nn.Module, X: Tensor, y: Tensor, *, likelihood: str = "gaussian",
            precision: float | None = None, sigma0: float = 1.0, epochs: int = 2000,
            lr: float = 1e-2, batch_size: int | None = None, init_inclusion: float = 0.9,
            init_sd: float = 0.1, warmup: float = 0.25, precondition: bool = False, seed: int = 0,
            progress: bool = True) -> SVIResult:
    """Structured VI over the scales (and mean-field VI over the weights) of ``model``.

    Args:
        model: an ``nn.Module`` with shrinkdrop noise layers (their noise laws are the priors of
            the scales; ``normalize`` is ignored: the model's scales are the raw ``xi``). Its
            current parameters are the initial means of ``q(v)``.
        X, y: training inputs and targets (standardize a regression target beforehand).
        likelihood: ``"gaussian"`` (``y`` float) or ``"categorical"`` (``y`` class indices).
        precision: the Gaussian likelihood's precision; ``None`` fits it (type-II, point).
        sigma0: the weights' prior scale, ``v ~ N(0, sigma0^2)``.
        epochs: passes over the data (full batch unless ``batch_size``).
        lr: Adam's learning rate.
        batch_size: minibatch size (the likelihood is scaled by ``n / batch``).
        init_inclusion: initial ``q(xi_r = 1)`` of Bernoulli sites.
        init_sd: initial standard deviation of ``q(v)``.
        warmup: fraction of the epochs during which ``q(xi)`` stays at its initial value while
            ``q(v)`` (and the precision) adapt: without it, units whose weights are still random
            are switched off before the data could speak, and a switched-off unit's weights get
            no likelihood gradient (a local optimum of the ELBO).
        precondition: scale the gradient of each unit's paired weights by ``1 / pi_r``
            (``q(v_r | xi_r = 1)`` is then fitted whatever ``pi_r`` is). Off by default: the
            rare, large likelihood kicks it gives a unit with small ``pi_r`` miscalibrate that
            ``pi_r`` (0.0003 against the enumerated 0.092 in the orthogonal-design test).
        seed: seeds the draws (weights, scales, minibatches).
        progress: show a tqdm bar.
    """
    likelihood = check_choice("likelihood", likelihood, ("gaussian", "categorical"))
    if not isinstance(model, nn.Module):
        raise SVIError(f"model has to be an nn.Module, but got {type(model).__name__}")
    if not isinstance(X, Tensor) or not isinstance(y, Tensor):
        raise SVIError(f"X and y have to be tensors, but got {type(X).__name__} and "
                       f"{type(y).__name__}")
    if X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise SVIError(f"X and y need the same, non-zero number of rows, but got {X.shape[0]} "
                       f"and {y.shape[0]}")
    for name, val, low in (("epochs", epochs, 1), ("batch_size", batch_size or 1, 1)):
        if not isinstance(val, int) or val < low:
            raise SVIError(f"{name} has to be an integer >= {low}, but got {val!r}")
    for name, val in (("sigma0", sigma0), ("lr", lr), ("init_sd", init_sd)):
        if not (isinstance(val, (int, float)) and math.isfinite(val) and val > 0):
            raise SVIError(f"{name} has to be a finite number > 0, but got {val!r}")
    if not (isinstance(warmup, (int, float)) and 0 <= warmup < 1):
        raise SVIError(f"warmup has to be a fraction in [0, 1), but got {warmup!r}")
    if not 0 < init_inclusion < 1:
        raise SVIError(f"init_inclusion has to be in (0, 1), but got {init_inclusion!r}")
    if precision is not None and not (math.isfinite(precision) and precision > 0):
        raise SVIError(f"precision has to be a finite number > 0 or None, but got {precision!r}")
    if likelihood == "gaussian" and not torch.isfinite(y).all():
        raise SVIError("y has non-finite values")
    if not torch.isfinite(X).all():
        raise SVIError("X has non-finite values")

    t0 = time.perf_counter()
    n_probe = 256
    g = torch.Generator().manual_seed(seed)
    dtype = X.dtype
    model = model.to(dtype)
    sites = scale_sites(model, X[:2])
    for s in sites:
        if s.bernoulli and not 0 < float(s.noise.keep) < 1:
            raise SVIError(f"site {s.name!r}: Bernoulli keep has to be in (0, 1) for inference, "
                           f"but got {float(s.noise.keep)}")
    q_scales = nn.ModuleDict({
        s.name.replace(".", "__"): (_BernoulliQ(s, dtype, init_inclusion) if s.bernoulli
                                    else _ContinuousQ(s, dtype))
        for s in sites})
    mu, rho, points = {}, {}, {}
    for k, p in model.named_parameters():
        if p.dim() >= 2:
            mu[k] = p.detach().clone().requires_grad_()
            rho[k] = torch.full_like(p, _softplus_inv(init_sd)).requires_grad_()
        else:
            points[k] = p.detach().clone().requires_grad_()
    owners = slab_owners(model, sites, X[: min(n_probe, X.shape[0])]) if any(
        s.bernoulli for s in sites) else {}
    n_units = sum(s.units for s in sites if s.bernoulli)
    log_prec = None
    if likelihood == "gaussian" and precision is None:
        resid_var = float(y.var()) if y.numel() > 1 else 1.0
        log_prec = torch.tensor(-math.log(max(resid_var, 1e-6)), dtype=dtype, requires_grad=True)
    params = (list(mu.values()) + list(rho.values()) + list(points.values())
              + list(q_scales.parameters()) + ([log_prec] if log_prec is not None else []))
    q_params = list(q_scales.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    warm_epochs = int(round(warmup * epochs))
    n = X.shape[0]
    B = n if batch_size is None else min(batch_size, n)
    bern = [s.name for s in sites if s.bernoulli]
    history: list[float] = []

    from tqdm.auto import tqdm

    state = _State(model, sites, q_scales, mu, rho, points, log_prec, precision, float(sigma0),
                   owners, n_units, bern, likelihood, {})
    bar = tqdm(range(epochs), desc="svi", disable=not progress, leave=False)
    with given_scales(model, state.current):
        for epoch in bar:
            frozen = epoch < warm_epochs
            for p in q_params:
                p.requires_grad_(not frozen)
            perm = torch.randperm(n, generator=g) if B < n else None
            for start in range(0, n, B):
                idx = perm[start:start + B] if perm is not None else None
                xb = X if idx is None else X[idx]
                yb = y if idx is None else y[idx]
                loss, elbo = _step_loss(state, xb, yb, n / xb.shape[0], frozen, g)
                if not torch.isfinite(loss):
                    raise SVIError("the ELBO became non-finite; lower lr or check the data "
                                   "scale (standardize X and a regression y)")
                opt.zero_grad()
                (loss / n).backward()
                if precondition and bern:
                    _precondition_slabs(state)
                opt.step()
            history.append(float(elbo))
            if progress:
                bar.set_postfix(elbo=f"{history[-1]:.1f}")
    for p in q_params:
        p.requires_grad_(True)
    sd = {k: torch.nn.functional.softplus(r).detach() for k, r in rho.items()}
    fitted_prec = (float(log_prec.detach().exp()) if log_prec is not None else
                   (float(precision) if precision is not None else None))
    return SVIResult(model=model, sites=sites, q_scales=q_scales,
                     mu={k: v.detach() for k, v in mu.items()}, sd=sd,
                     points={k: v.detach() for k, v in points.items()}, likelihood=likelihood,
                     precision=fitted_prec, sigma0=float(sigma0), n=n, elbo=history,
                     seconds=time.perf_counter() - t0)
