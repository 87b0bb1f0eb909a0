"""Training objectives over S noise draws (Nalisnick & Smyth, Sec. 3-4).

With per-example log-likelihoods ``log_liks`` of shape ``(S, ...)`` (S noise draws, sample dim 0):

* :func:`mc_objective`: ``mean_s log p(y | W, xi_s)``, the Monte Carlo objective (Eq. 3 / 11);
* :func:`marginal_map`: ``logsumexp_s - log S``, the importance-weighted estimate of
  ``log E_xi p(y | W, xi)`` (Eq. 10); equal to the MC objective at ``S = 1``, never below it;
* :func:`tail_adaptive`: the rank-weighted surrogate of Wang, Liu & Liu (2018), used by
  Nalisnick, Hernandez-Lobato & Smyth (2019), whose gradient is ``sum_s w_s grad log p_s``.
"""

from __future__ import annotations

import math

import torch

from .._validation import check_choice
from ..enums import Objective

__all__ = ["mc_objective", "marginal_map", "tail_adaptive", "tail_adaptive_weights", "objective"]


def _check_log_liks(log_liks: torch.Tensor) -> torch.Tensor:
    if not isinstance(log_liks, torch.Tensor):
        raise TypeError(f"log_liks has to be a tensor, but got {type(log_liks).__name__}")
    if log_liks.ndim == 0 or log_liks.shape[0] == 0:
        raise ValueError(
            "log_liks has to have a non-empty sample dimension 0 (shape (S, ...)), but got "
            f"shape {tuple(log_liks.shape)}"
        )
    return log_liks


def _check_beta(beta: float) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)):
        raise TypeError(f"beta has to be a number, but got {type(beta).__name__}")
    if not math.isfinite(beta):
        raise ValueError(f"beta has to be a finite number, but got {beta!r}")
    return float(beta)


def mc_objective(log_liks: torch.Tensor) -> torch.Tensor:
    """Monte Carlo objective: mean over the sample dimension 0.

    Shape: ``(S, *batch) -> batch``.
    """
    return _check_log_liks(log_liks).mean(0)


def marginal_map(log_liks: torch.Tensor) -> torch.Tensor:
    """Importance-weighted marginal-MAP objective ``logsumexp_s(log_liks) - log S``.

    Estimates ``log E_xi p(y | W, xi)`` (Eq. 10). By Jensen it is ``>= mc_objective`` with
    equality at ``S = 1`` (and when all draws agree).

    Shape: ``(S, *batch) -> batch``.
    """
    log_liks = _check_log_liks(log_liks)
    return torch.logsumexp(log_liks, 0) - math.log(log_liks.shape[0])


def tail_adaptive_weights(log_liks: torch.Tensor, beta: float = -1.0) -> torch.Tensor:
    """Rank-based weights of the tail-adaptive f-divergence (Wang, Liu & Liu 2018, Alg. 1).

    ``w_s`` is proportional to ``F_hat(l_s) ** beta`` with the empirical tail probability
    ``F_hat(t) = (1/S) #{j : l_j >= t}``; weights are normalised over ``s`` and carry no gradient.
    With ``beta = -1`` the largest of S distinct values weighs ``S`` times the smallest;
    ``beta = 0`` gives uniform weights (the MC objective).

    Shape: ``(S, *batch) -> (S, *batch)``, summing to 1 over dim 0.
    """
    log_liks = _check_log_liks(log_liks).detach()
    beta = _check_beta(beta)
    S = log_liks.shape[0]
    # tail[i] = #{j : l_j >= l_i} / S
    tail = (log_liks.unsqueeze(0) >= log_liks.unsqueeze(1)).sum(1).to(log_liks.dtype) / S
    w = tail.pow(float(beta))
    return w / w.sum(0, keepdim=True)


def tail_adaptive(log_liks: torch.Tensor, beta: float = -1.0) -> torch.Tensor:
    """Tail-adaptive surrogate ``sum_s stopgrad(w_s) * log_liks[s]``.

    Its gradient is the tail-adaptive estimator (Wang, Liu & Liu 2018); its value lies between
    the MC objective and the maximum over draws.

    Shape: ``(S, *batch) -> batch``.
    """
    w = tail_adaptive_weights(log_liks, beta)
    return (w * log_liks).sum(0)


def objective(log_liks: torch.Tensor, name: str | Objective = "mc",
              beta: float = -1.0) -> torch.Tensor:
    """Dispatch on :class:`~shrinkdrop.enums.Objective`: ``'mc'``, ``'marginal_map'`` or
    ``'tail_adaptive'``."""
    name = check_choice("objective", name, Objective)
    if name is Objective.MC:
        return mc_objective(log_liks)
    if name is Objective.MARGINAL_MAP:
        return marginal_map(log_liks)
    return tail_adaptive(log_liks, beta)
