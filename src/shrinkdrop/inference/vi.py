"""Mean-field Gaussian VI with closed-form updates of the ARD / ADD / ARD+ADD prior scales.

The weights have ``q(w) = N(mu, sd^2)`` (independent); the prior of a group of ``D`` weights
sharing a scale is ``N(0, s^2)``. For fixed ``q`` the ELBO's dependence on ``s`` is

    J(s) = E_q[log N(w; 0, s^2)] + log p(s) = -D log s - M / (2 s^2) + log p(s) + const,
    M = sum over the group of (mu^2 + sd^2),

and ``s`` is set to its maximiser at every step (a MAP / type-II estimate of the scale, as in
Nalisnick et al.'s 2019 code). Derivations in ``docs/inference.md``:

* inverse-gamma hyperprior on the *variance* ``v = s^2``, ``IG(a, b)``:
  ``v* = (M + 2 b) / (D + 2 a + 2)``;
* half-Cauchy hyperprior on the *std* ``s``, scale ``A``: with ``v = s^2`` the stationarity
  condition is ``(D + 2) v^2 - (M - D A^2) v - M A^2 = 0``, whose positive root is
  ``v* = [M - D A^2 + sqrt(M^2 + (2 D + 8) M A^2 + D^2 A^4)] / (2 (D + 2))``;
* ARD+ADD (``s_r = tau * lambda_r``): block coordinate ascent, each block by the rule above
  (``lambda_r`` with ``M_r / tau^2``; ``tau`` with ``sum_r M_r / lambda_r^2`` over all
  ``R * D`` weights); every step increases ``J``, and the tests check the fixed point against
  numerical optimisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .models import NetSpec, forward

__all__ = [
    "InverseGammaHyperprior",
    "HalfCauchyHyperprior",
    "scale_objective",
    "scale_update",
    "ard_add_update",
    "ard_add_objective",
    "VIResult",
    "fit_vi",
    "Hyperprior",
]


@dataclass(frozen=True)
class InverseGammaHyperprior:
    """``s^2 ~ InverseGamma(concentration, rate)`` (``a = b = 0``: the log-uniform limit)."""

    concentration: float = 1.0
    rate: float = 1.0

    def log_density(self, std: torch.Tensor) -> torch.Tensor:
        """``log p(s)`` up to a constant, elementwise."""
        v = std**2
        return -(self.concentration + 1) * torch.log(v) - self.rate / v


@dataclass(frozen=True)
class HalfCauchyHyperprior:
    """``s ~ HalfCauchy(scale)`` on the standard deviation."""

    scale: float = 1.0

    def log_density(self, std: torch.Tensor) -> torch.Tensor:
        """``log p(s)`` up to a constant, elementwise."""
        return -torch.log1p((std / self.scale) ** 2)


#: The hyperpriors :func:`scale_update` solves in closed form.
Hyperprior = InverseGammaHyperprior | HalfCauchyHyperprior
_Num = float | torch.Tensor


def scale_objective(std: _Num, moment: _Num, count: float, hyperprior: Hyperprior
                    ) -> torch.Tensor:
    """``J(s) = -D log s - M / (2 s^2) + log p(s)`` up to constants (see module docstring)."""
    std, moment = torch.as_tensor(std, dtype=torch.float64), torch.as_tensor(moment)
    return -count * torch.log(std) - moment / (2 * std**2) + hyperprior.log_density(std)


def scale_update(moment: _Num, count: float, hyperprior: Hyperprior) -> torch.Tensor:
    """The maximiser ``s*`` of :func:`scale_objective` (the optimal prior std of the group)."""
    M = torch.as_tensor(moment, dtype=torch.float64)
    D = float(count)
    if isinstance(hyperprior, InverseGammaHyperprior):
        a, b = hyperprior.concentration, hyperprior.rate
        return torch.sqrt((M + 2 * b) / (D + 2 * a + 2))
    if isinstance(hyperprior, HalfCauchyHyperprior):
        A2 = hyperprior.scale**2
        disc = M**2 + (2 * D + 8) * M * A2 + D**2 * A2**2
        return torch.sqrt((M - D * A2 + torch.sqrt(disc)) / (2 * (D + 2)))
    raise TypeError(f"hyperprior has to be InverseGammaHyperprior or HalfCauchyHyperprior, but "
                    f"got {type(hyperprior).__name__}")


def ard_add_objective(lam: _Num, tau: _Num, moments: _Num, count: float,
                      hyper_ard: Hyperprior, hyper_add: Hyperprior) -> torch.Tensor:
    """Joint ``J(lambda, tau)`` of one ARD+ADD layer: rows ``r`` of ``count`` weights each."""
    lam = torch.as_tensor(lam, dtype=torch.float64)
    tau = torch.as_tensor(tau, dtype=torch.float64)
    M = torch.as_tensor(moments, dtype=torch.float64)
    s = tau * lam
    return ((-count * torch.log(s) - M / (2 * s**2)).sum() + hyper_ard.log_density(lam).sum()
            + hyper_add.log_density(tau))


def ard_add_update(moments: _Num, count: float, hyper_ard: Hyperprior,
                   hyper_add: Hyperprior, *, tau: float = 1.0, iters: int = 5000,
                   tol: float = 1e-13) -> tuple[torch.Tensor, torch.Tensor]:
    """Block coordinate ascent of :func:`ard_add_objective`: returns ``(lambda (R,), tau)``."""
    M = torch.as_tensor(moments, dtype=torch.float64)
    tau = torch.as_tensor(float(tau), dtype=torch.float64)
    lam = scale_update(M / tau**2, count, hyper_ard)
    for _ in range(iters):
        lam = scale_update(M / tau**2, count, hyper_ard)
        new_tau = scale_update((M / lam**2).sum(), count * M.numel(), hyper_add)
        done = abs(new_tau - tau) <= tol * tau
        tau = new_tau
        if done:
            break
    lam = scale_update(M / tau**2, count, hyper_ard)
    return lam, tau


@dataclass
class VIResult:
    """Variational means / stds per layer (in, out), biases, prior stds per layer, ELBO trace."""

    mu: list[torch.Tensor]
    sd: list[torch.Tensor]
    biases: list[torch.Tensor | None]
    prior_std: list[torch.Tensor]
    elbo: list[float]
    scales: dict[str, torch.Tensor]


def _prior_stds(spec: NetSpec, mu: list[torch.Tensor], sd: list[torch.Tensor],
                hyperprior: Hyperprior, taus: dict[int, float]
                ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Closed-form prior stds per weight (in, out) for every layer, and the named scales."""
    stds, named = [], {}
    for l in range(spec.n_layers):
        m = (mu[l] ** 2 + sd[l] ** 2).detach().double()
        kinds = {s.kind for s in spec.layer_scales(l)}
        D_in, D_out = spec.weight_shape(l)
        if kinds == {"ard"}:
            lam = scale_update(m.sum(1), D_out, hyperprior)
            named[f"xi_{l}"] = lam
            s = lam[:, None].expand(D_in, D_out)
        elif kinds == {"add"}:
            tau = scale_update(m.sum(), D_in * D_out, hyperprior)
            named[f"tau_{l}"] = tau
            s = tau.expand(D_in, D_out)
        else:
            lam, tau = ard_add_update(m.sum(1), D_out, hyperprior, hyperprior,
                                      tau=taus.get(l, 1.0))
            taus[l] = float(tau)
            named[f"xi_{l}"], named[f"tau_{l}"] = lam, tau
            s = (tau * lam)[:, None].expand(D_in, D_out)
        stds.append(s.to(mu[l].dtype))
    return stds, named


def fit_vi(spec: NetSpec, X: torch.Tensor, y: torch.Tensor, *, hyperprior: Hyperprior,
           likelihood: str = "gaussian", precision: float = 1.0, samples: int = 4,
           steps: int = 2000, lr: float = 1e-2, seed: int = 0) -> VIResult:
    """Mean-field Gaussian VI with the structured prior's scales set in closed form each step.

    The loss is ``-(E_q log p(y | W) - KL(q || N(0, s*^2)) + log p(s*))`` with ``s*`` from
    :func:`scale_update` / :func:`ard_add_update` at the current ``q`` (held fixed in the
    gradient: at the maximiser the derivative in ``s`` vanishes). ``E_q`` by ``samples``
    reparametrized draws, full batch, Adam.
    """
    g = torch.Generator().manual_seed(seed)
    dtype = X.dtype
    mu, rho, biases = [], [], []
    for l in range(spec.n_layers):
        shape = spec.weight_shape(l)
        mu.append((torch.randn(shape, generator=g, dtype=dtype) / math.sqrt(shape[0]))
                  .requires_grad_())
        rho.append(torch.full(shape, -5.0, dtype=dtype, requires_grad=True))
        biases.append(torch.zeros(shape[1], dtype=dtype, requires_grad=True) if spec.bias
                      else None)
    opt = torch.optim.Adam(mu + rho + [b for b in biases if b is not None], lr=lr)
    taus: dict[int, float] = {}
    trace = []
    for _ in range(steps):
        sd = [torch.nn.functional.softplus(r) for r in rho]
        stds, named = _prior_stds(spec, mu, sd, hyperprior, taus)
        ws = [m + s * torch.randn((samples, *m.shape), generator=g, dtype=dtype)
              for m, s in zip(mu, sd)]
        out = forward(spec, ws, biases, X)
        if likelihood == "gaussian":
            lik = torch.distributions.Normal(out.squeeze(-1), precision**-0.5).log_prob(y)
        else:
            lik = torch.distributions.Categorical(logits=out).log_prob(y)
        ell = lik.sum(-1).mean()
        kl = sum((torch.log(p) - torch.log(s) + (m**2 + s**2) / (2 * p**2) - 0.5).sum()
                 for m, s, p in zip(mu, sd, stds))
        logp = 0.0
        for v in named.values():
            logp = logp + hyperprior.log_density(v).sum()
        elbo = ell - kl + logp
        opt.zero_grad()
        (-elbo / X.shape[0]).backward()
        opt.step()
        trace.append(elbo.item())
    sd = [torch.nn.functional.softplus(r).detach() for r in rho]
    stds, named = _prior_stds(spec, [m.detach() for m in mu], sd, hyperprior, taus)
    return VIResult([m.detach() for m in mu], sd,
                    [b.detach() if b is not None else None for b in biases], stds, trace, named)
