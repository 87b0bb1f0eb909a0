"""Generic Gaussian scale mixture ``w = xi * v`` by quadrature (no closed-form marginal)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch.distributions import Distribution, constraints

from .._validation import as_param, check_positive
from ._quadrature import _T_FLOOR, _nodes, log_mixture_integral, probe_quantiles

__all__ = ["GaussianScaleMixture"]

_EMPTY = torch.Size()


class GaussianScaleMixture(Distribution):
    r"""Law of ``w = xi * v``, ``v ~ N(0, sigma0^2)``, for noise ``xi`` without a closed form.

    .. math::
        p(w) = \int_{\mathrm{lower}}^{\mathrm{upper}} \mathcal N(w; 0, \sigma_0^2 x^2)\,
               p_{|\xi|}(x)\,dx, \qquad
        F(w) = \mathbb E\big[\Phi\big(w / (\sigma_0 |\xi|)\big)\big]

    computed in torch by tanh-sinh quadrature in ``t = log x`` over panels split at
    ``log(breakpoints)``, at quantiles of ``log|xi|`` (found once, at construction, on a grid of
    step 1/8), around ``log(|w| / sigma0)`` (below which the integrand vanishes) and around the
    integrand's peak (located per point by a first pass). Relative error < 1e-4 wherever
    ``p(w) > 1e-12`` (measured: Gaussian, Beta, Uniform, half-Cauchy, Rayleigh noise; ``|w|``
    from 1e-8 to the far tails), <= 1e-6 absolute for :meth:`cdf`; differentiable w.r.t. ``w``,
    ``sigma0`` and any tensor ``abs_log_density`` captures. About 550 integrand evaluations per
    point (two passes).

    ``log_prob(0)`` is ``+inf`` when ``lower == 0`` and ``p_{|xi|}`` does not vanish at 0
    (``p_{|xi|}(1e-304) > 1e-12``): then the integral diverges logarithmically.

    Args:
        abs_log_density: callable ``x -> log p_{|xi|}(x)``, torch-differentiable, for ``x`` in
            ``[lower, upper]`` (the *folded* density of ``|xi|``). It is called with ``x`` of shape
            ``(N, *value.shape)`` (quadrature nodes on the leading axis), so captured parameters
            of batch shape ``B`` broadcast against values of shape ``(..., *B)``. Values outside
            the support may be ``-inf`` (not NaN).
        sigma0: standard deviation of ``v``, positive.
        lower: lower end of the support of ``|xi|``, ``>= 0``.
        upper: upper end, ``> lower``, may be ``inf`` (then the integral runs to
            ``max(log(|w|/sigma0), 99.99..% quantile of log|xi|) + 40`` in ``t``). For Gaussian
            noise pass a finite bound such as ``|m| + 40 s``.
        breakpoints: points in ``(lower, upper)`` where ``p_{|xi|}`` has kinks, jumps or
            (integrable) singularities; they become panel ends. Also a good place for known
            features narrower than ~1/8 in ``log x`` (e.g. ``|m|`` for ``N(m, s^2)``, ``s << |m|``).
        sampler: ``(shape, generator) -> xi`` samples (signed or not), used by :meth:`sample`.
        second_moment: ``E[xi^2]``; :attr:`variance` is ``sigma0^2 * E[xi^2]``. If ``None`` and
            ``upper`` is finite it is computed by quadrature.
        name: shown by ``repr``.
        batch_shape: batch shape of the parameters captured by ``abs_log_density`` (default:
            broadcast of ``sigma0``, ``lower``, ``upper``).

    Example:
        >>> import math
        >>> rayleigh = lambda x: torch.log(x) - 0.5 * x**2   # |xi| ~ Rayleigh(1)
        >>> d = GaussianScaleMixture(rayleigh, 1.0, 0.0, math.inf)
        >>> d.log_prob(torch.tensor([1.0], dtype=torch.float64))  # Laplace(0, 1): -1 - log 2
        tensor([-1.6931], dtype=torch.float64)
    """

    arg_constraints = {"sigma0": constraints.positive}
    support = constraints.real
    has_rsample = False

    def __init__(
        self,
        abs_log_density: Callable[[torch.Tensor], torch.Tensor],
        sigma0: float | torch.Tensor = 1.0,
        lower: float | torch.Tensor = 0.0,
        upper: float | torch.Tensor = math.inf,
        breakpoints: Sequence[float | torch.Tensor] = (),
        sampler: Callable[..., torch.Tensor] | None = None,
        second_moment: float | torch.Tensor | None = None,
        name: str = "GaussianScaleMixture",
        batch_shape: torch.Size | tuple[int, ...] | None = None,
        validate_args: bool | None = None,
    ) -> None:
        if not callable(abs_log_density):
            raise TypeError(
                f"abs_log_density has to be callable, but got {type(abs_log_density).__name__}"
            )
        sigma0 = check_positive("sigma0", sigma0)
        dtype = sigma0.dtype
        lower = as_param("lower", lower, dtype)
        if (lower < 0).any() or torch.isinf(lower).any():
            raise ValueError(f"lower has to be finite and >= 0, but got {lower.tolist()}")
        upper = check_positive("upper", upper, allow_inf=True).to(dtype)
        if (upper <= lower).any():
            raise ValueError(
                f"upper has to be > lower, but got upper={upper.tolist()}, lower={lower.tolist()}"
            )
        bps = []
        for b in breakpoints:
            b = as_param("breakpoints", b, dtype)
            if ((b <= lower) | (b >= upper)).any():
                raise ValueError(
                    f"breakpoints have to lie in (lower, upper) = ({lower.tolist()}, "
                    f"{upper.tolist()}), but got {b.tolist()}"
                )
            bps.append(b)
        if second_moment is not None:
            second_moment = check_positive("second_moment", second_moment, allow_inf=True)
        self.abs_log_density = abs_log_density
        self.sigma0, self.lower, self.upper = sigma0, lower, upper
        self.breakpoints = tuple(bps)
        self.sampler = sampler
        self._second_moment = second_moment
        self.name = name
        shape = torch.broadcast_shapes(
            sigma0.shape, lower.shape, upper.shape, *(b.shape for b in bps),
            torch.Size(batch_shape or ()),
        )
        self._q = probe_quantiles(abs_log_density, lower, upper, torch.float64)
        with torch.no_grad():
            tiny = torch.full((1,), math.exp(_T_FLOOR), dtype=dtype)
            near0 = abs_log_density(tiny.reshape((1,) + (1,) * len(shape)))[0]
            self._pole_at_0 = (lower == 0) & (torch.nan_to_num(near0, nan=-math.inf) > -27.7)
        super().__init__(torch.Size(shape), validate_args=validate_args)

    def expand(self, batch_shape: torch.Size | tuple[int, ...],
               _instance: GaussianScaleMixture | None = None) -> GaussianScaleMixture:
        new = self._get_checked_instance(GaussianScaleMixture, _instance)
        batch_shape = torch.Size(batch_shape)
        for k in ("abs_log_density", "breakpoints", "sampler", "_second_moment", "name", "_q",
                  "lower", "upper", "_pole_at_0"):
            setattr(new, k, getattr(self, k))
        new.sigma0 = self.sigma0.expand(batch_shape)
        super(GaussianScaleMixture, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def __repr__(self) -> str:
        return f"GaussianScaleMixture({self.name}, sigma0: {self.sigma0.tolist()})"

    # ------------------------------------------------------------------ quadrature
    def _as_value(self, value: torch.Tensor | float) -> torch.Tensor:
        value = torch.as_tensor(value, device=self.sigma0.device)
        dtype = torch.promote_types(value.dtype, self.sigma0.dtype)
        if not dtype.is_floating_point:
            dtype = torch.get_default_dtype()
        return value.to(dtype)

    def _integral(self, kind: str, a: torch.Tensor) -> torch.Tensor:
        shape = torch.broadcast_shapes(a.shape, self.batch_shape)
        a = a.expand(shape)
        q = self._q.reshape(self._q.shape[:1] + (1,) * (len(shape) - self._q.dim() + 1)
                            + self._q.shape[1:]).to(a.dtype)
        cast = [b.to(a.dtype) for b in self.breakpoints]
        return log_mixture_integral(kind, a, self.sigma0.to(a.dtype), self.abs_log_density,
                                    self.lower.to(a.dtype), self.upper.to(a.dtype), cast, q)

    def _device_of(self, value: torch.Tensor | float) -> torch.device:
        """Where the result goes: a tensor value's device (the quadrature itself runs on the
        device of the prior's parameters)."""
        return value.device if isinstance(value, torch.Tensor) else self.sigma0.device

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        where = self._device_of(value)
        value = self._as_value(value)
        a = value.abs()
        pole = (a == 0) & self._pole_at_0
        out = self._integral("pdf", torch.where(pole, torch.ones_like(a), a))
        return torch.where(pole, torch.full_like(out, math.inf), out).to(where)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        where = self._device_of(value)
        value = self._as_value(value)
        sf = self._integral("sf", value.abs()).exp()  # P(w > |value|)
        out = torch.where(value >= 0, 1.0 - sf, sf)
        return torch.where(value == 0, torch.full_like(out, 0.5), out).to(where)  # symmetric

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = _EMPTY,
               generator: torch.Generator | None = None) -> torch.Tensor:
        if self.sampler is None:
            raise NotImplementedError(f"{self!r} was built without a sampler")
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            xi = torch.as_tensor(self.sampler(shape, generator), dtype=self.sigma0.dtype)
            z = torch.randn(shape, dtype=self.sigma0.dtype, device=self.sigma0.device,
                            generator=generator)
            return xi.expand(shape) * self.sigma0.expand(shape) * z

    # ------------------------------------------------------------------ moments
    @property
    def second_moment(self) -> torch.Tensor:
        """``E[xi^2]`` (given, or by quadrature when ``upper`` is finite)."""
        if self._second_moment is not None:
            return self._second_moment
        if not torch.isfinite(self.upper).all():
            raise NotImplementedError(
                f"{self!r}: E[xi^2] is unknown for unbounded |xi|; pass second_moment"
            )
        q = self._q
        t_lo = torch.clamp(torch.log(self.lower), min=_T_FLOOR)
        t_hi = torch.log(self.upper)
        edges = [t_lo, t_hi] + [torch.log(b) for b in self.breakpoints]
        edges += [torch.minimum(torch.maximum(e, t_lo), t_hi) for e in q]
        edges = torch.sort(torch.stack(torch.broadcast_tensors(*edges)), dim=0).values
        t, lw = _nodes(edges)
        f = self.abs_log_density(torch.exp(t)) + 3.0 * t + lw
        f = torch.where(torch.isnan(f), torch.full_like(f, -math.inf), f)
        return torch.logsumexp(f, dim=0).exp()

    @property
    def mean(self) -> torch.Tensor:
        """0: the law is symmetric (finite whenever ``E|xi| < inf``)."""
        return torch.zeros(self.batch_shape, dtype=self.sigma0.dtype, device=self.sigma0.device)

    @property
    def mode(self) -> torch.Tensor:
        return torch.zeros(self.batch_shape, dtype=self.sigma0.dtype, device=self.sigma0.device)

    @property
    def variance(self) -> torch.Tensor:
        v = self.sigma0**2 * self.second_moment
        return v.expand(self.batch_shape) if v.dim() <= len(self.batch_shape) else v
