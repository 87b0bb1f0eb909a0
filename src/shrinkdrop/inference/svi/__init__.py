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

Layout: ``sites`` (finding the sites, :func:`given_scales`), ``guides`` (``q(xi)``),
``estimators`` (the local-expectation gradient, slab pairing, the log-likelihood), ``result``
(:class:`SVIResult`), ``fit`` (:func:`fit_svi`). What each layer's scales mean (which weights
share a scale, the forward at given scales) is the layer's own answer
(:meth:`shrinkdrop.nn.NoiseLayer.scale_sites`, :meth:`~shrinkdrop.nn.NoiseLayer.forward_at_scales`).
"""

from .estimators import local_expectation_grad, slab_owners
from .fit import fit_svi
from .guides import bernoulli_kl
from .result import SVIResult
from .sites import SVISite, given_scales, scale_sites

__all__ = [
    "SVISite",
    "SVIResult",
    "fit_svi",
    "scale_sites",
    "given_scales",
    "bernoulli_kl",
    "local_expectation_grad",
    "slab_owners",
]
