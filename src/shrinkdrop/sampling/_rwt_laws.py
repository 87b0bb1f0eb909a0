"""The laws of the table sampler (:mod:`shrinkdrop.sampling.rwt`): Beta and ``Gamma^(-1/2)``
densities, their tails' envelopes and draws, written once for tensors and Python floats (an
:class:`_Ops` namespace picks the elementwise functions)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class _Ops:
    """The elementwise functions the remainder's densities and tail draws use, for tensors
    (:data:`_TORCH`) or Python floats (:data:`_FLOAT`): one formula serves both."""

    log: Callable
    exp: Callable
    sigmoid: Callable
    softplus: Callable
    rsqrt: Callable
    xlogy: Callable
    xlog1py: Callable


_TORCH = _Ops(torch.log, torch.exp, torch.sigmoid,
              lambda y: torch.logaddexp(torch.zeros_like(y), y), torch.rsqrt,
              torch.special.xlogy, torch.special.xlog1py)


def _exp(v: float) -> float:
    """exp that returns inf instead of raising OverflowError (an unusable envelope)."""
    return math.exp(v) if v < 709.0 else math.inf


def _softplus(y: float) -> float:
    return y + math.log1p(math.exp(-y)) if y > 0 else math.log1p(math.exp(y))


def _xlogy(a: float, x: float) -> float:
    if a == 0.0:
        return 0.0
    return a * math.log(x) if x > 0.0 else math.copysign(math.inf, -a)


def _xlog1py(a: float, y: float) -> float:
    if a == 0.0:
        return 0.0
    return a * math.log1p(y) if y > -1.0 else math.copysign(math.inf, -a)


#: Python floats (the table's construction and the one-at-a-time remainder)
def _sigmoid(y: float) -> float:
    if y >= 0:
        return 1.0 / (1.0 + math.exp(-y))
    e = math.exp(y)
    return e / (1.0 + e)


_FLOAT = _Ops(math.log, _exp, _sigmoid, _softplus,
              lambda t: 1.0 / math.sqrt(t), _xlogy, _xlog1py)


class _Tail:
    """A tail piece of the remainder: envelope mass and a draw of (x, log f(x) / env(x))."""

    def __init__(self, mass: float, draw: _TailDraw) -> None:
        self.mass = mass
        # draw(u: float64 uniforms in (0, 1], ops) -> (x, log acceptance ratio)
        self.draw = draw


def _exp_tail(h: Callable, dh: Callable[[float], float], yc: float, d: int,
              to_x: Callable) -> _Tail | None:
    """Tail ``d * (y - yc) > 0`` of a log-concave density ``exp(h(y, ops))`` in a coordinate
    ``y`` (``x = to_x(y, ops)``) under the tangent exponential at ``yc``; None if the tangent
    rises there."""
    slope = dh(yc)
    if not slope * d < 0.0:
        return None
    hc, rate = h(yc), abs(slope)
    mass = _exp(hc) / rate

    def draw(u, ops=_TORCH):
        y = yc - d * ops.log(u) / rate
        return to_x(y, ops), h(y, ops) - hc - slope * (y - yc)

    return _Tail(mass, draw)


def _tighter(*tails):
    """The tail with the smallest envelope mass (all are valid envelopes of the same piece)."""
    tails = [t for t in tails if t is not None and math.isfinite(t.mass)]
    return min(tails, key=lambda t: t.mass) if tails else None


class _BetaLaw:
    """Beta(a, b) on (0, 1)."""

    def __init__(self, a: float, b: float) -> None:
        self.a, self.b = a, b
        self.lo, self.hi = 0.0, 1.0
        self.logB = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
        self.stat, self.is_mode = None, False
        if a != 1.0 and b != 1.0 and a + b != 2.0:
            s = (a - 1.0) / (a + b - 2.0)
            if 0.0 < s < 1.0:
                self.stat, self.is_mode = s, a > 1.0
        if self.stat is not None:
            self.start = self.stat
        else:  # monotone: start at the median (scipy's inverse incomplete beta; any start is exact)
            from scipy.special import betaincinv

            self.start = float(betaincinv(a, b, 0.5))

    def logpdf(self, x: float) -> float:
        if not 0.0 < x < 1.0:
            return -math.inf
        la = 0.0 if self.a == 1.0 else (self.a - 1.0) * math.log(x)
        lb = 0.0 if self.b == 1.0 else (self.b - 1.0) * math.log1p(-x)
        return la + lb - self.logB

    def logpdf_t(self, x, ops: _Ops = _TORCH):
        """Log density of a tensor (or, with NumPy's ``ops``, an array)."""
        return ops.xlogy(self.a - 1.0, x) + ops.xlog1py(self.b - 1.0, -x) - self.logB

    def _h(self, y, ops: _Ops = _FLOAT):
        """Log density of logit(xi) (log-concave for all a, b > 0)."""
        return self.a * y - (self.a + self.b) * ops.softplus(y) - self.logB

    def _dh(self, y: float) -> float:
        return self.a - (self.a + self.b) * _FLOAT.sigmoid(y)

    def tail(self, cut: float, side: int) -> _Tail | None:
        """The tighter of a power-law envelope in x and a tangent exponential in logit(x)."""
        if not 0.0 < cut < 1.0:
            return None
        yc = math.log(cut) - math.log1p(-cut)
        return _tighter(self._power_tail(cut, side),
                        _exp_tail(self._h, self._dh, yc, side, lambda y, ops: ops.sigmoid(y)))

    def _power_tail(self, cut: float, side: int) -> _Tail | None:
        a, b = self.a, self.b
        if side < 0:  # (0, cut): f <= C x^(a-1), C = max of (1-x)^(b-1) / B on the piece
            if cut <= 0.0:
                return None
            logC = -self.logB + (0.0 if b >= 1.0 else (b - 1.0) * math.log1p(-cut))
            mass = _exp(logC + a * math.log(cut)) / a

            def draw(u, ops=_TORCH):
                x = ops.exp(math.log(cut) + ops.log(u) / a)
                return x, ops.xlog1py(b - 1.0, -x) - self.logB - logC
        else:  # (cut, 1): f <= C (1-x)^(b-1), C = max of x^(a-1) / B on the piece
            if cut >= 1.0:
                return None
            logC = -self.logB + (0.0 if a >= 1.0 else (a - 1.0) * math.log(cut))
            mass = _exp(logC + b * math.log1p(-cut)) / b

            def draw(u, ops=_TORCH):
                x = 1.0 - ops.exp(math.log1p(-cut) + ops.log(u) / b)
                return x, ops.xlogy(a - 1.0, x) - self.logB - logC
        return _Tail(mass, draw)


class _InvNakagamiLaw:
    """xi = G^(-1/2), G ~ Gamma(alpha, 1) (inverse Nakagami with beta = 1; scale sqrt(beta))."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.lo, self.hi = 0.0, math.inf
        self.c0 = math.log(2.0) - math.lgamma(alpha)
        self.stat, self.is_mode = math.sqrt(2.0 / (2.0 * alpha + 1.0)), True
        self.start = self.stat

    def logpdf(self, x: float) -> float:
        if not x > 0.0:
            return -math.inf
        return self.c0 - (2.0 * self.alpha + 1.0) * math.log(x) - 1.0 / (x * x)

    def logpdf_t(self, x, ops: _Ops = _TORCH):
        """Log density of a tensor (or, with NumPy's ``ops``, an array)."""
        return self.c0 - (2.0 * self.alpha + 1.0) * ops.log(x) - 1.0 / (x * x)

    def _h(self, y, ops: _Ops = _FLOAT):
        """Log density of log G = -2 log xi (log-concave for all alpha > 0)."""
        return self.alpha * y - ops.exp(y) - math.lgamma(self.alpha)

    def _dh(self, y: float) -> float:
        return self.alpha - _exp(y)

    def tail(self, cut: float, side: int) -> _Tail | None:
        """The tighter of the envelopes below and a tangent exponential in log G."""
        if not 0.0 < cut < math.inf:
            return None
        return _tighter(self._simple_tail(cut, side),
                        _exp_tail(self._h, self._dh, -2.0 * math.log(cut), -side,
                                  lambda y, ops: ops.exp(-0.5 * y)))

    def _simple_tail(self, cut: float, side: int) -> _Tail | None:
        al = self.alpha
        if side > 0:  # (cut, inf): f <= exp(c0) x^(-2 alpha - 1), a Pareto law
            mass = _exp(self.c0 - 2.0 * al * math.log(cut)) / (2.0 * al)

            def draw(u, ops=_TORCH):
                x = ops.exp(math.log(cut) - ops.log(u) / (2.0 * al))
                return x, -1.0 / (x * x)
        else:  # (0, cut): t = 1 / x^2 > t0 is a Gamma(alpha) right tail under an exponential
            if cut <= 0.0:
                return None
            t0 = 1.0 / (cut * cut)
            lam = 1.0 - max(al - 1.0, 0.0) / t0  # tangent of the concave log density (alpha >= 1)
            if not lam > 0.0:
                return None
            logg0 = (al - 1.0) * math.log(t0) - t0 - math.lgamma(al)
            mass = _exp(logg0) / lam

            def draw(u, ops=_TORCH):
                t = t0 - ops.log(u) / lam
                logr = (al - 1.0) * ops.log(t / t0) - (1.0 - lam) * (t - t0)
                return ops.rsqrt(t), logr
        return _Tail(mass, draw)


#: a tail's draw: (uniforms in (0, 1], ops) -> (x, log acceptance ratio)
_TailDraw = Callable[..., tuple]
#: the law of a table
_Law = _BetaLaw | _InvNakagamiLaw
