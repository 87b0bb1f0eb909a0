"""The base class of the noise families and the helpers they share.

A family (one file of this package each) is a :class:`NoiseDistribution` and owns, in one class:

* its law: ``_draw`` (behind ``sample`` / ``rsample``), ``log_prob``, ``cdf`` where known;
* its moments: ``mean``, ``variance``, ``second_moment``, ``inverse_square_mean``,
  ``inverse_square_variance``, ``log_abs_mean``;
* its prior hand-off: ``variance_prior()`` and ``marginal_prior(sigma0)``;
* its fast draw for the layers, :meth:`NoiseDistribution._fast_draw` (Python-float parameters
  computed once, in-place kernels, the samplers of :mod:`shrinkdrop.sampling`);
* its Pyro form, :meth:`NoiseDistribution.pyro_law`.

``docs/layers.md`` ("Adding a noise family") lists what a new family defines.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints
from torch.distributions.utils import broadcast_all

from .. import priors as _priors
from .._validation import check_positive
from ..errors import NotNormalizableError

__all__ = ["NoiseDistribution"]

_EULER = 0.5772156649015329
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _full(like: torch.Tensor, value: float) -> torch.Tensor:
    return torch.full_like(like, value)


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, dtype: torch.dtype,
             device: torch.device | str | None, out: Tensor | None) -> Tensor:
    """U(0, 1) of ``shape`` for a fast draw: a fresh tensor, or ``out`` filled in place."""
    if out is None:
        return torch.rand(shape, dtype=dtype, device=device, generator=generator)
    return out.uniform_(generator=generator)


def _into(xi: Tensor, out: Tensor | None) -> Tensor:
    """A fast draw's result: ``xi`` itself, or copied into ``out``."""
    return xi if out is None else out.copy_(xi)


class NoiseDistribution(Distribution):
    """Base class of the noise families.

    Beyond the :class:`~torch.distributions.Distribution` interface every family gives:

    * ``mean``, ``variance``: of xi; ``second_moment``: E[xi^2];
    * ``inverse_square_mean``: E[xi^-2]; ``inverse_square_variance``: Var[xi^-2];
    * ``log_abs_mean``: E[log|xi|] (used by the exact hierarchical Jensen gap);
    * ``variance_prior()``: the law of xi^2 where it has a name, else ``None``;
    * ``marginal_prior(sigma0)``: the law of ``w = xi * v``, ``v ~ N(0, sigma0^2)``;
    * ``normalized_sample(shape, generator)``: xi / E[xi], the noise a layer applies so that the
      layer is the identity in expectation (raises :class:`NotNormalizableError` if E[xi] is
      infinite or zero).
    """

    #: the family's CLI / report name (the key of ``shrinkdrop.noise.FAMILIES``)
    name: str = "noise"
    has_rsample = False

    @property
    def is_discrete(self) -> bool:
        """Whether xi takes discrete values, as its ``support`` says (no density: NUTS / SVI
        cannot sample it)."""
        return self.support.is_discrete

    def _set_params(self, validate_args: bool | None, **params: Tensor) -> None:
        """The constructors' common end: the checked ``params`` broadcast together and set as
        attributes (in order), the batch shape their common shape."""
        values = broadcast_all(*params.values())
        for k, v in zip(params, values):
            setattr(self, k, v)
        super().__init__(values[0].shape, validate_args=validate_args)
        if self.batch_shape == torch.Size():
            self._prime_fast_params()

    def _prime_fast_params(self) -> None:
        """Compute the cached Python-float parameters of the fast draw (every
        ``functools.cached_property`` of the class) now, at construction: ``torch.compile``
        cannot run their first computation (a lock and a ``float(tensor)``), so a compiled
        layer must find them done."""
        for klass in type(self).__mro__:
            for k, v in vars(klass).items():
                if isinstance(v, functools.cached_property) and k not in self.__dict__:
                    getattr(self, k)

    def sample(self, sample_shape: Sequence[int] = torch.Size(),
               generator: torch.Generator | None = None) -> Tensor:
        """Draw ``sample_shape + batch_shape`` values of xi (no gradient), from ``generator``
        (default: torch's global generator)."""
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            return self._draw(shape, generator)

    def rsample(self, sample_shape: Sequence[int] = torch.Size(),
                generator: torch.Generator | None = None) -> Tensor:
        """As :meth:`sample`, differentiable in the parameters (families with
        ``has_rsample``)."""
        if not self.has_rsample:
            raise NotImplementedError(f"{type(self).__name__} has no reparametrized sampler")
        return self._draw(self._extended_shape(torch.Size(sample_shape)), generator)

    def _draw(self, shape: torch.Size, generator: torch.Generator | None
              ) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def expand(self, batch_shape: Sequence[int],
               _instance: NoiseDistribution | None = None) -> NoiseDistribution:
        """Expand every parameter (the names in ``arg_constraints``) to ``batch_shape``."""
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        for k in self.arg_constraints:
            setattr(new, k, getattr(self, k).expand(batch_shape))
        Distribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    # ----- moments -------------------------------------------------------------------------
    @property
    def second_moment(self) -> torch.Tensor:
        """E[xi^2]."""
        return self.variance + self.mean**2

    @property
    def inverse_square_mean(self) -> torch.Tensor:  # pragma: no cover - abstract
        """E[xi^-2] (``inf`` where infinite)."""
        raise NotImplementedError

    @property
    def inverse_square_variance(self) -> torch.Tensor:  # pragma: no cover - abstract
        """Var[xi^-2] (``inf`` where infinite)."""
        raise NotImplementedError

    @property
    def log_abs_mean(self) -> torch.Tensor:  # pragma: no cover - abstract
        """E[log|xi|]."""
        raise NotImplementedError

    # ----- laws -----------------------------------------------------------------------------
    def variance_prior(self) -> Distribution | None:
        """The law of xi^2 where it has a name, else ``None``."""
        return None

    def marginal_prior(self, sigma0: float | Tensor = 1.0
                       ) -> Distribution:  # pragma: no cover - abstract
        """The law of ``w = xi * v``, ``v ~ N(0, sigma0^2)`` (the prior of the weights)."""
        raise NotImplementedError

    @property
    def parameters(self) -> dict[str, float | torch.Tensor]:
        """The family's parameters by name (scalars as floats)."""
        out = {}
        for k in self.arg_constraints:
            v = getattr(self, k)
            out[k] = v.item() if v.numel() == 1 else v
        return out

    def __repr__(self) -> str:
        args = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.parameters.items()
        )
        return f"{type(self).__name__}({args})"

    # ----- normalisation --------------------------------------------------------------------
    @property
    def can_normalize(self) -> bool:
        """Whether E[xi] is finite and non-zero (the noise can be normalised to mean 1)."""
        m = self.mean
        return bool(torch.isfinite(m).all() and (m != 0).all())

    def check_normalizable(self, what: str = "this layer") -> torch.Tensor:
        """E[xi]; raises :class:`NotNormalizableError` (naming ``what``) if it is infinite or
        zero."""
        m = self.mean
        if not torch.isfinite(m).all():
            raise NotNormalizableError(
                f"{self!r} has infinite mean E[xi], so {what} cannot normalise the noise to mean 1 "
                "and eval() cannot be the identity; pass normalize=False and predict by MC "
                "averaging with noise on (shrinkdrop.mc_mode)"
            )
        if (m == 0).any():
            raise NotNormalizableError(
                f"{self!r} has E[xi] = 0, so {what} cannot normalise the noise to mean 1; "
                "pass normalize=False and predict by MC averaging (shrinkdrop.mc_mode)"
            )
        return m

    def normalized_sample(self, sample_shape: Sequence[int] = torch.Size(),
                          generator: torch.Generator | None = None) -> Tensor:
        """``xi / E[xi]``: the noise a layer applies so that it is the identity in
        expectation."""
        m = self.check_normalizable()
        return self.sample(sample_shape, generator) / m

    def _sigma0(self, sigma0: float | Tensor) -> torch.Tensor:
        return check_positive("sigma0", sigma0).to(self._dtype)

    @property
    def _dtype(self) -> torch.dtype:
        return next(iter(self._params())).dtype

    def _params(self) -> Iterator[Tensor]:
        return (getattr(self, k) for k in self.arg_constraints)

    def _gsm(self, sigma0: float | Tensor, lower: float, upper: float,
             breakpoints: Sequence[float] = ()) -> Distribution:
        """Generic marginal prior by quadrature over |xi| (families with no closed form)."""
        s0 = self._sigma0(sigma0)
        if self.batch_shape != torch.Size():
            raise ValueError(
                f"marginal_prior by quadrature needs scalar parameters, but {self!r} has "
                f"batch_shape {tuple(self.batch_shape)}"
            )
        return _priors.GaussianScaleMixture(
            self._abs_log_density,
            s0,
            lower=lower,
            upper=upper,
            breakpoints=tuple(breakpoints),
            sampler=lambda shape, generator=None: self.sample(shape, generator),
            second_moment=self.second_moment,
            name=repr(self),
        )

    # ----- matched to dropout ---------------------------------------------------------------
    #: a one-parameter path ``t -> parameters`` through the family, mean-free (normalisation
    #: divides by E[xi]), and its range of ``t``: how :meth:`matched_to_dropout` reaches a given
    #: normalised variance (``None``: the family overrides the method or has no path)
    _dropout_path: tuple[Callable[[float], dict[str, float]], tuple[float, float]] | None = None

    @classmethod
    def matched_to_dropout(cls, rate: float) -> dict[str, float] | None:
        """Parameters whose mean-normalised noise has the variance of dropout at ``rate``.

        Inverted dropout of rate ``p`` has ``Var[xi] / E[xi]^2 = p / (1 - p)``; the family's
        ``_dropout_path`` is solved numerically (SciPy's ``brentq``) against its own ``mean``
        and ``variance`` in float64. Returns None where the family cannot reach that variance
        or for ``p = 0``."""
        if cls._dropout_path is None:
            raise ValueError(f"{cls.__name__} has no path of parameters matched to dropout")
        if rate <= 0:
            return None
        import numpy as np
        from scipy.optimize import brentq

        target = rate / (1.0 - rate)
        path, (lo, hi) = cls._dropout_path

        def f(t: float) -> float:  # float64 parameters: the moments to high relative accuracy
            law = cls(**{k: torch.tensor(v, dtype=torch.float64) for k, v in path(t).items()})
            return math.log(float(law.variance) / float(law.mean) ** 2) - math.log(target)

        try:
            flo, fhi = f(lo), f(hi)
        except ValueError:  # pragma: no cover - a family rejecting an end of its path
            return None
        if not (np.isfinite(flo) and np.isfinite(fhi)) or flo * fhi > 0:
            return None
        t = brentq(f, lo, hi, xtol=1e-12, rtol=1e-10)
        return {k: float(v) for k, v in path(t).items()}

    # ----- the layers' fast draw ----------------------------------------------------------
    @functools.cached_property
    def scalar_mean(self) -> float:
        """E[xi] as a Python float, computed once (scalar-parameter families)."""
        return float(self.mean)

    def normalizing_mean(self, what: str = "this layer") -> float:
        """E[xi] as a float (computed once); raises :class:`NotNormalizableError` (naming
        ``what``) where it is infinite or zero, so the noise cannot be normalised to mean 1."""
        m = self.scalar_mean
        if not math.isfinite(m) or m == 0:
            self.check_normalizable(what)  # raises, with the family's message
        return m

    #: the keep probability of Bernoulli noise (torch's own dropout kernels draw the same law),
    #: ``None`` for every other family
    _dropout_keep: float | None = None
    #: ``(mean, std)`` of Gaussian noise (a sum of Gaussian-scaled terms is Gaussian: the local
    #: reparameterization), ``None`` for every other family
    _gaussian_params: tuple[float, float] | None = None

    def _fast_draw(self, shape: tuple[int, ...], *, normalize: bool,
                   generator: torch.Generator | None, dtype: torch.dtype,
                   device: torch.device | str | None, out: Tensor | None = None) -> Tensor:
        """Noise of ``shape`` for the layers (scalar parameters), divided by E[xi] if
        ``normalize``, as a fresh ``dtype`` tensor on ``device`` or written into the contiguous
        ``out`` of that shape (then ``dtype`` and ``device`` are out's).

        The callers (:func:`shrinkdrop.functional.draw_noise`) have checked the parameters and
        the normalisation. This generic form is the law's own :meth:`sample`, moved to the
        device; the families override it with their fast kernels."""
        xi = self.sample(shape, generator).to(dtype=dtype, device=device)
        return self._normalized_into(xi, normalize, out)

    def _normalized_into(self, xi: Tensor, normalize: bool, out: Tensor | None) -> Tensor:
        """A fast draw's result: ``xi`` divided in place by E[xi] if ``normalize``, copied into
        ``out`` if given."""
        xi = xi.mul_(1.0 / self.scalar_mean) if normalize else xi
        return _into(xi, out)

    # ----- Pyro -----------------------------------------------------------------------------
    def pyro_law(self) -> Distribution:
        """The family as a :mod:`pyro.distributions` law (NUTS' support transforms,
        :mod:`shrinkdrop.inference.models`); its ``log_prob`` agrees with this law's."""
        raise NotImplementedError(f"{type(self).__name__} has no Pyro form")


class _InfiniteInverseSquare(NoiseDistribution):
    """A family whose ``xi^2`` has positive density at 0, so ``E[xi^-2]`` and its variance are
    infinite (Gaussian, half-Cauchy, Rayleigh); ``_like`` names the parameter whose shape and
    dtype they take."""

    _like: str

    @property
    def inverse_square_mean(self) -> Tensor:
        return _full(getattr(self, self._like), math.inf)

    @property
    def inverse_square_variance(self) -> Tensor:
        return _full(getattr(self, self._like), math.inf)


class _OneScaleFamily(_InfiniteInverseSquare):
    """A family on ``x > 0`` with one parameter, a positive ``scale`` (half-Cauchy, Rayleigh):
    drawn by its inverse CDF :meth:`_inverse_cdf` of a uniform; ``|xi| = xi``.

    Args:
        scale: ``s > 0``.
    """

    arg_constraints = {"scale": constraints.positive}
    support = constraints.positive
    has_rsample = True
    _like = "scale"

    def __init__(self, scale: float | Tensor, validate_args: bool | None = None) -> None:
        self._set_params(validate_args, scale=check_positive("scale", scale))

    def _inverse_cdf(self, u: Tensor) -> Tensor:  # pragma: no cover - abstract
        """The quantile function at ``u`` in [0, 1)."""
        raise NotImplementedError

    def _draw(self, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        u = torch.rand(shape, dtype=self.scale.dtype, device=self.scale.device, generator=generator)
        return self._inverse_cdf(u)

    def _abs_log_density(self, x: Tensor) -> Tensor:
        return self.log_prob(x)

    @functools.cached_property
    def _scale_value(self) -> float:
        return float(self.scale)
