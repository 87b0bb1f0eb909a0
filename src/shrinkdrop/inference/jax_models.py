"""NumPyro twins of the Pyro models of :mod:`shrinkdrop.inference.models`, and NUTS on them.

The compiled backend of ``shrinkdrop mcmc`` (extra ``mcmc-jax``): :func:`numpyro_model`
translates a model built by :func:`~shrinkdrop.inference.make_model` -- the same
:class:`~shrinkdrop.inference.NetSpec`, scale law, parametrization (EP / HP), likelihood,
``sigma0``, precision and bias priors, and the same site names and shapes -- into a NumPyro
model; the tests check that the two have the same log density and gradient in unconstrained
space (float64, to 1e-5) for every structure and continuous family. The Pyro models stay the
reference.

:func:`run_nuts_jax` runs NumPyro's NUTS on it, all chains at once in one compiled loop
(``chain_method="vectorized"``: 2 shared cores gain nothing from a process per chain, and one
vmapped loop compiles once for every chain). Bernoulli scales (dropout's prior) are discrete:
they are updated by NumPyro's :class:`~numpyro.infer.DiscreteHMCGibbs` (a Gibbs update of the
per-unit indicators from their full conditional given the weights, alternating with NUTS on the
continuous sites), the compiled counterpart of :func:`~shrinkdrop.inference.gibbs_bernoulli`.

JAX is imported only when this module's functions are called: the core install does not need
it. Float64 is switched on (``jax_enable_x64``), as the torch side of ``shrinkdrop mcmc`` runs in
float64.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import MissingExtraError
from .models import NutsResult

__all__ = ["require_jax", "numpyro_model", "run_nuts_jax"]


def require_jax() -> Any:
    """Import NumPyro (and JAX), switch JAX to float64, and return the ``numpyro`` module.

    Raises:
        MissingExtraError: when numpyro / jax are not installed (extra ``mcmc-jax``).
    """
    try:
        import jax
        import numpyro
    except ImportError as e:  # pragma: no cover - the test venv has the extra
        raise MissingExtraError(
            f"the jax backend of shrinkdrop mcmc needs numpyro and jax ({e}); install the "
            "extra: pip install 'shrinkdrop[mcmc-jax]', or pass --backend pyro") from e
    jax.config.update("jax_enable_x64", True)
    return numpyro


def _value(t) -> float | np.ndarray:
    x = torch.as_tensor(t).detach().double().numpy()
    return float(x) if x.ndim == 0 else x


def _numpyro_transform(t):
    """A torch / Pyro transform as its NumPyro counterpart (those the scale laws use)."""
    import numpyro.distributions.transforms as nt
    from torch.distributions import transforms as tt

    if isinstance(t, tt.PowerTransform):
        return nt.PowerTransform(_value(t.exponent))
    if isinstance(t, tt.ExpTransform):
        return nt.ExpTransform()
    if isinstance(t, tt.AffineTransform):
        return nt.AffineTransform(_value(t.loc), _value(t.scale))
    raise TypeError(f"no NumPyro counterpart for the transform {type(t).__name__}")


def _numpyro_law(law):
    """A Pyro law of a scale family (:func:`~shrinkdrop.inference.pyro_law`) as a NumPyro law."""
    import numpyro.distributions as nd
    import pyro.distributions as dist

    if isinstance(law, dist.HalfCauchy):
        return nd.HalfCauchy(_value(law.scale))
    if isinstance(law, dist.InverseGamma):
        return nd.InverseGamma(_value(law.concentration), _value(law.rate))
    if isinstance(law, dist.Normal):
        return nd.Normal(_value(law.loc), _value(law.scale))
    if isinstance(law, dist.Beta):
        return nd.Beta(_value(law.concentration1), _value(law.concentration0))
    if isinstance(law, dist.Uniform):
        return nd.Uniform(_value(law.low), _value(law.high))
    if isinstance(law, dist.Exponential):
        return nd.Exponential(_value(law.rate))
    if isinstance(law, dist.Gamma):
        return nd.Gamma(_value(law.concentration), _value(law.rate))
    if isinstance(law, dist.Bernoulli):
        return nd.Bernoulli(probs=_value(law.probs))
    if isinstance(law, dist.TransformedDistribution):
        return nd.TransformedDistribution(_numpyro_law(law.base_dist),
                                          [_numpyro_transform(t) for t in law.transforms])
    raise TypeError(f"no NumPyro counterpart for the scale law {type(law).__name__}")


def _forward(spec, weights, biases, X):
    """:func:`shrinkdrop.inference.forward` in JAX."""
    import jax
    import jax.numpy as jnp

    act = {"relu": jax.nn.relu, "tanh": jnp.tanh}[spec.activation]
    h = X
    for l, (W, b) in enumerate(zip(weights, biases)):
        a = h @ W
        if b is not None:
            a = a + b
        if l == spec.n_layers - 1:
            return a
        a = act(a)
        h = a + h if l in spec.residual_layers else a
    raise AssertionError("unreachable")


def _multiplier(spec, l: int, scales: dict):
    """The multiplier of layer ``l``'s weights, shaped (in, 1) or (), or None (no scale)."""
    out = None
    for s in spec.layer_scales(l):
        x = scales[s.name]
        x = x[:, None] if s.kind == "ard" else x
        out = x if out is None else out * x
    return out


def numpyro_model(model: Callable[..., object]) -> Callable[..., None]:
    """The NumPyro model ``model(X, y=None)`` of a Pyro model from
    :func:`~shrinkdrop.inference.make_model` (same sites, laws and likelihood).

    Bernoulli scales are sampled sites here (discrete: :class:`~numpyro.infer.DiscreteHMCGibbs`
    updates them); condition on values with ``numpyro.handlers.condition``.

    Example:
        >>> nmodel = numpyro_model(make_model(NetSpec([3, 8, 1]), shrinkdrop.noise.HalfCauchy()))
    """
    numpyro = require_jax()
    import jax.numpy as jnp
    import numpyro.distributions as nd

    from .models import pyro_law

    for attr in ("spec", "param", "likelihood", "noise", "sigma0"):
        if not hasattr(model, attr):
            raise TypeError("model has to come from shrinkdrop.inference.make_model, but it has "
                            f"no attribute {attr!r}")
    spec, param, likelihood = model.spec, model.param, model.likelihood
    law = _numpyro_law(pyro_law(model.noise))
    sigma0, bias_scale, precision = model.sigma0, model.bias_scale, model.precision
    a0, b0 = (float(v) for v in model.precision_prior)
    discrete = bool(model.noise.is_discrete)

    def nmodel(X, y=None):
        # discrete scales stay batched (DiscreteHMCGibbs enumerates each element's support);
        # NumPyro's density sums every site's log-probabilities either way
        scales = {s.name: numpyro.sample(s.name, law.expand(s.shape) if discrete
                                         else law.expand(s.shape).to_event(len(s.shape)))
                  for s in spec.sites}
        weights, biases = [], []
        for l in range(spec.n_layers):
            shape = spec.weight_shape(l)
            mult = _multiplier(spec, l, scales)
            if param == "ep":
                v = numpyro.sample(f"v_{l}", nd.Normal(0.0, sigma0).expand(shape).to_event(2))
                weights.append(v if mult is None else mult * v)
            else:
                sd_ = sigma0 * (jnp.abs(mult) if mult is not None else jnp.ones(()))
                weights.append(numpyro.sample(
                    f"w_{l}", nd.Normal(0.0, jnp.broadcast_to(sd_, shape)).to_event(2)))
            biases.append(numpyro.sample(f"b_{l}", nd.Normal(0.0, bias_scale).expand(
                (shape[1],)).to_event(1)) if spec.bias else None)
        prec = precision
        if likelihood == "gaussian" and prec is None:
            prec = numpyro.sample("precision", nd.Gamma(a0, b0))
        out = _forward(spec, weights, biases, X)
        with numpyro.plate("data", X.shape[0]):
            if likelihood == "gaussian":
                numpyro.sample("y", nd.Normal(out[..., 0], prec ** -0.5), obs=y)
            else:
                numpyro.sample("y", nd.Categorical(logits=out), obs=y)

    nmodel.spec, nmodel.param, nmodel.likelihood = spec, param, likelihood
    return nmodel


def _to_jax(X: torch.Tensor, y: torch.Tensor, likelihood: str):
    import jax.numpy as jnp

    Xj = jnp.asarray(X.detach().double().numpy())
    yj = jnp.asarray(y.detach().numpy()).astype(jnp.float64 if likelihood == "gaussian"
                                                  else jnp.int32)
    return Xj, yj


def _init_states(kernel, keys, num_warmup: int, args: tuple):
    """The chains' initial states along a leading chain axis, and the compiled transition of
    all chains. NUTS initialises a batch of keys at once (its ``sample`` is then vectorised
    already); the Gibbs wrapper takes one key at a time, and its ``sample`` is vmapped here."""
    import jax
    import jax.numpy as jnp

    if not hasattr(kernel, "inner_kernel"):
        state = kernel.init(keys, num_warmup, None, args, {})
        return state, jax.jit(lambda s, a: kernel.sample(s, a, {}))
    states = [kernel.init(k, num_warmup, None, args, {}) for k in keys]
    state = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
    return state, jax.jit(jax.vmap(lambda s, a: kernel.sample(s, a, {}), in_axes=(0, None)))


def run_nuts_jax(model: Callable[..., object], X: torch.Tensor, y: torch.Tensor, *,
                 num_warmup: int = 300, num_samples: int = 300, chains: int = 2, seed: int = 0,
                 max_tree_depth: int = 8, target_accept_prob: float = 0.8,
                 dense_mass: bool = False, progress: bool = False) -> NutsResult:
    """NumPyro's NUTS on the twin of ``model`` (:func:`numpyro_model`): ``chains`` chains
    vectorised; Bernoulli scales by :class:`~numpyro.infer.DiscreteHMCGibbs` around it.

    One transition of all chains (``jax.vmap`` of the kernel's ``sample``) is compiled once
    and called from a Python loop for warm-up and sampling alike -- the kernel adapts step size
    and mass matrix while its iteration count is below ``num_warmup`` -- so the run compiles
    once (NumPyro's :class:`~numpyro.infer.MCMC` compiles its loop again per phase, and per
    chain with ``progress_bar=False``). ``seconds`` is the whole run, compilation included;
    ``sample_seconds`` the sampling phase alone. Initial values: uniform on (-2, 2) in
    unconstrained space, as :func:`~shrinkdrop.inference.run_nuts`.

    Returns:
        :class:`~shrinkdrop.inference.NutsResult` with torch draws shaped (chain, draw, ...),
        the same sites as :func:`~shrinkdrop.inference.run_nuts` (and the 0/1 scales with
        Bernoulli).
    """
    require_jax()
    import jax
    import jax.numpy as jnp
    from numpyro.infer import NUTS, DiscreteHMCGibbs
    from tqdm.auto import tqdm

    for name, v in (("num_warmup", num_warmup), ("num_samples", num_samples),
                    ("chains", chains), ("max_tree_depth", max_tree_depth)):
        if int(v) < 1:
            raise ValueError(f"{name} has to be >= 1, but got {v}")
    num_warmup, num_samples, chains = int(num_warmup), int(num_samples), int(chains)
    nmodel = numpyro_model(model)
    kernel = NUTS(nmodel, max_tree_depth=int(max_tree_depth),
                  target_accept_prob=float(target_accept_prob), dense_mass=bool(dense_mass))
    if model.noise.is_discrete:
        kernel = DiscreteHMCGibbs(kernel)
    args = _to_jax(X, y, model.likelihood)
    t0 = time.perf_counter()
    state, step = _init_states(kernel, jax.random.split(jax.random.PRNGKey(int(seed)), chains),
                               num_warmup, args)
    zs, divs, steps = [], [], []
    t1 = t0
    for i in tqdm(range(num_warmup + num_samples), desc="nuts (jax)", disable=not progress,
                  leave=False):
        if i == num_warmup:
            jax.block_until_ready(state)
            t1 = time.perf_counter()
        state = step(state, args)
        hmc_state = state.hmc_state if hasattr(state, "hmc_state") else state
        steps.append(hmc_state.num_steps)
        if i >= num_warmup:
            zs.append(state.z)
            divs.append(hmc_state.diverging)
    post = jax.vmap(jax.vmap(kernel.postprocess_fn(args, {})))
    z = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs, 1), *zs)  # (chain, draw, ...)
    draws = jax.block_until_ready(post(z))
    t2 = time.perf_counter()
    div = int(np.asarray(jnp.stack(divs)).sum())
    grads = int(np.asarray(jnp.stack(steps)).sum())
    dtype = torch.get_default_dtype()
    samples = {k: torch.from_numpy(np.array(v)).to(dtype) for k, v in draws.items()
               if k != "y"}
    return NutsResult(samples, div, t2 - t0, t2 - t1, num_warmup, num_samples, grads)
