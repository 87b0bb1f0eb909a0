"""Exact table sampler for the Beta and inverse-Nakagami noise of the layers (CPU).

Rectangle-wedge-tail (Marsaglia, MacLaren & Bray 1964), in a form that costs one 31-bit random
integer, two table look-ups and one fused multiply-add per element on the fast path. The density
``f`` of the noise is split *exactly* into

* ``n_rect`` rectangles of area exactly ``A = 1 / K`` (``K = 2^12`` slots), each lying under ``f``:
  bin ``j`` is ``[low_j, low_j + w_j)`` with height ``A / w_j <= inf f`` on the bin;
* the remainder ``r = f - sum of rectangles`` (mass exactly ``1 - n_rect / K`` because ``f``
  integrates to 1): the caps (wedges) ``f - A / w_j`` above the rectangles and the two tails
  beyond the outermost bins.

A draw picks one of the ``K`` slots uniformly from the low 12 bits of a random integer. Slot
``j < n_rect`` is rectangle ``j`` (probability exactly ``A``): the point is uniform on the bin,
placed by the next 19 bits (a grid of ``2^19`` cells, its midpoint; float64 output uses 12 + 51
bits of a 64-bit word, a ``2^51`` grid); the words' top bit is not used. The other ``K - n_rect``
slots (probability exactly the remainder's mass; about 1% of the draws) draw from ``r`` by
rejection from an envelope: caps under ``sup f - A / w_j`` on their bin, tails under closed-form
envelopes (power laws for Beta; a Pareto law and, in ``t = beta / xi^2``, an exponential for
inverse Nakagami), accepted against the exact density in float64. The mixture is ``f`` exactly; the
only approximations are float rounding (the bin edges and the output are rounded to the output
dtype, one ulp or so) and the position grid.

The bins are built once per law (a scalar Python loop, cached): from the stationary point of
``f`` (mode or antimode; ``f`` is monotone on each side, so its infimum and supremum on a bin are
at the bin's ends) outward, each bin the narrowest with ``w * inf f >= A`` (a fixed-point
iteration from below), until the next bin no longer fits under ``f`` or the tail beyond it has
envelope mass under ``A / 8``. Bounds carry a relative safety margin of 1e-9 against float64
rounding of ``f``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

K_BITS = 12
#: number of slots; each rectangle has probability exactly 1 / K
K = 1 << K_BITS
_A = 1.0 / K
#: a side stops growing once the envelope mass of the tail beyond it is below this
_TAU = _A / 8
_SAFE = 1e-9
#: a side also stops where a bin would be narrower than this relative to its position (a pole
#: at a finite end, e.g. Beta's at 1 for b < 1, whose last bins the float edges cannot resolve)
_MIN_REL_WIDTH = 2.0**-36
_Q31 = 31 - K_BITS  # position bits of a 31-bit word (float32 output)
_Q63 = 63 - K_BITS  # position bits of a 63-bit word (float64 output)


# ============================================================================= laws
class _Tail:
    """A tail piece of the remainder: envelope mass and a draw of (x, log f(x) / env(x))."""

    def __init__(self, mass: float, draw: _TailDraw) -> None:
        self.mass = mass
        self.draw = draw  # draw(u: float64 tensor in (0, 1]) -> (x, log acceptance ratio)


def _exp(v: float) -> float:
    """exp that returns inf instead of raising OverflowError (an unusable envelope)."""
    return math.exp(v) if v < 709.0 else math.inf


def _exp_tail(h: Callable, dh: Callable[[float], float], yc: float, d: int,
              to_x: Callable[[Tensor], Tensor]) -> _Tail | None:
    """Tail ``d * (y - yc) > 0`` of a log-concave density ``exp(h(y))`` in a coordinate ``y``
    (``x = to_x(y)``) under the tangent exponential at ``yc``; None if the tangent rises there."""
    slope = dh(yc)
    if not slope * d < 0.0:
        return None
    hc, rate = h(yc), abs(slope)
    mass = _exp(hc) / rate

    def draw(u):
        y = yc - d * torch.log(u) / rate
        return to_x(y), h(y) - hc - slope * (y - yc)

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

    def logpdf_t(self, x: Tensor) -> Tensor:
        return (torch.special.xlogy(self.a - 1.0, x) + torch.special.xlog1py(self.b - 1.0, -x)
                - self.logB)

    def _h(self, y):
        """Log density of logit(xi) (log-concave for all a, b > 0); float or tensor ``y``."""
        if isinstance(y, Tensor):
            return self.a * y - (self.a + self.b) * torch.logaddexp(torch.zeros_like(y), y) \
                - self.logB
        sp = y + math.log1p(math.exp(-y)) if y > 0 else math.log1p(math.exp(y))
        return self.a * y - (self.a + self.b) * sp - self.logB

    def _dh(self, y: float) -> float:
        return self.a - (self.a + self.b) / (1.0 + math.exp(-y))

    def tail(self, cut: float, side: int) -> _Tail | None:
        """The tighter of a power-law envelope in x and a tangent exponential in logit(x)."""
        if not 0.0 < cut < 1.0:
            return None
        yc = math.log(cut) - math.log1p(-cut)
        return _tighter(self._power_tail(cut, side),
                        _exp_tail(self._h, self._dh, yc, side, torch.sigmoid))

    def _power_tail(self, cut: float, side: int) -> _Tail | None:
        a, b = self.a, self.b
        if side < 0:  # (0, cut): f <= C x^(a-1), C = max of (1-x)^(b-1) / B on the piece
            if cut <= 0.0:
                return None
            logC = -self.logB + (0.0 if b >= 1.0 else (b - 1.0) * math.log1p(-cut))
            mass = _exp(logC + a * math.log(cut)) / a

            def draw(u):
                x = torch.exp(math.log(cut) + torch.log(u) / a)
                return x, torch.special.xlog1py(b - 1.0, -x) - self.logB - logC
        else:  # (cut, 1): f <= C (1-x)^(b-1), C = max of x^(a-1) / B on the piece
            if cut >= 1.0:
                return None
            logC = -self.logB + (0.0 if a >= 1.0 else (a - 1.0) * math.log(cut))
            mass = _exp(logC + b * math.log1p(-cut)) / b

            def draw(u):
                x = 1.0 - torch.exp(math.log1p(-cut) + torch.log(u) / b)
                return x, torch.special.xlogy(a - 1.0, x) - self.logB - logC
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

    def logpdf_t(self, x: Tensor) -> Tensor:
        return self.c0 - (2.0 * self.alpha + 1.0) * torch.log(x) - 1.0 / (x * x)

    def _h(self, y):
        """Log density of log G = -2 log xi (log-concave for all alpha > 0)."""
        e = torch.exp(y) if isinstance(y, Tensor) else math.exp(y)
        return self.alpha * y - e - math.lgamma(self.alpha)

    def _dh(self, y: float) -> float:
        return self.alpha - math.exp(y)

    def tail(self, cut: float, side: int) -> _Tail | None:
        """The tighter of the envelopes below and a tangent exponential in log G."""
        if not 0.0 < cut < math.inf:
            return None
        return _tighter(self._simple_tail(cut, side),
                        _exp_tail(self._h, self._dh, -2.0 * math.log(cut), -side,
                                  lambda y: torch.exp(-0.5 * y)))

    def _simple_tail(self, cut: float, side: int) -> _Tail | None:
        al = self.alpha
        if side > 0:  # (cut, inf): f <= exp(c0) x^(-2 alpha - 1), a Pareto law
            mass = _exp(self.c0 - 2.0 * al * math.log(cut)) / (2.0 * al)

            def draw(u):
                x = torch.exp(math.log(cut) - torch.log(u) / (2.0 * al))
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

            def draw(u):
                t = t0 - torch.log(u) / lam
                logr = (al - 1.0) * torch.log(t / t0) - (1.0 - lam) * (t - t0)
                return torch.rsqrt(t), logr
        return _Tail(mass, draw)


#: a tail's draw: uniforms in (0, 1] -> (x, log acceptance ratio)
_TailDraw = Callable[[Tensor], tuple[Tensor, Tensor]]
#: the law of a table
_Law = _BetaLaw | _InvNakagamiLaw


# ============================================================================= table
@dataclass
class Table:
    """The bins of one law (float64) and the pieces of its remainder."""

    n_rect: int
    low: Tensor  # (n_rect,) float64 lower bin edges
    width: Tensor  # (n_rect,) float64
    law: object
    tails: tuple  # (left tail or None, right tail or None)
    cum: Tensor  # cumulative envelope masses of [caps..., left tail, right tail]
    rect_h: Tensor  # A / width
    cap_h: Tensor  # sup f on the bin (with margin) - A / width
    _fast: dict = field(default_factory=dict)
    _pieces: tuple | None = None

    def pieces(self) -> tuple[Tensor, Tensor]:
        """The remainder's pieces for :func:`_remainder` (cached): a Walker alias table over
        the ``n_rect + 2`` pieces (caps, left tail, right tail) as ``(P, 2)`` float64 rows
        ``(threshold, alias)``, piece ``j`` or its alias chosen with probability exactly
        ``mass_j / total`` up to float rounding; and the caps' ``(low, width, rect_h, cap_h)``
        as ``(n_rect, 4)`` float64 rows, one look-up per candidate."""
        if self._pieces is None:
            masses = torch.diff(self.cum, prepend=self.cum.new_zeros(1))
            self._pieces = (_alias(masses),
                            torch.stack([self.low, self.width, self.rect_h, self.cap_h], 1))
        return self._pieces

    @property
    def remainder_mass(self) -> float:
        return 1.0 - self.n_rect / K

    def fast(self, dtype: torch.dtype, scale: float) -> Tensor:
        """(left + half a grid cell, cell width / 2^K_BITS) per slot, scaled, packed as one 8-byte
        float32 pair (complex128 float64 pair for float64 output) per slot (cached). The grid
        position reaches :func:`sample` as ``cell * 2^K_BITS`` (the word with its slot bits
        masked off), hence the second factor."""
        key = (dtype, scale)
        got = self._fast.get(key)
        if got is None:
            qbits = _Q63 if dtype == torch.float64 else _Q31
            c = torch.zeros(K, dtype=torch.float64)
            left = torch.zeros(K, dtype=torch.float64)
            cell = self.width * (scale * 2.0**-qbits)
            c[: self.n_rect] = cell * 2.0**-K_BITS
            left[: self.n_rect] = self.low * scale + 0.5 * cell
            if dtype == torch.float64:  # (left, c) pairs as one complex128 per slot
                got = torch.complex(left, c)
            else:  # as one 8-byte word per slot: a single look-up fetches both
                got = torch.stack([left, c], 1).to(torch.float32).view(torch.float64)[:, 0]
                got = got.contiguous()
            if len(self._fast) > 16:
                self._fast.clear()
            self._fast[key] = got
        return got


def _bounds(law: _Law, x0: float, x1: float, f0: float, f1: float) -> tuple[float, float]:
    """(inf, sup) of f on [x0, x1] (f is monotone on either side of its stationary point)."""
    lo, hi = min(f0, f1), max(f0, f1)
    s = law.stat
    if s is not None and min(x0, x1) < s < max(x0, x1):
        fs = math.exp(law.logpdf(s))
        lo, hi = (lo, max(hi, fs)) if law.is_mode else (min(lo, fs), hi)
    return lo, hi


def _side(law: _Law, x0: float, d: int, room: int) -> list[float]:
    """Bin edges from x0 in direction d (excluding x0), at most ``room`` bins."""
    target, aim = _A * (1.0 + _SAFE), _A * (1.0 + 2.0 * _SAFE)
    edges = []
    x, fx = x0, math.exp(law.logpdf(x0))
    while len(edges) < room:
        tail = law.tail(x, d)  # None: no envelope usable from x (yet); keep building
        if (tail is not None and tail.mass < _TAU) or not (math.isfinite(fx) and fx > 0.0):
            break
        w, ok = aim / fx, False
        for _ in range(100):
            y = x + d * w
            wy = (y - x) * d  # the width the float edges really have
            if not law.lo < y < law.hi or wy <= _MIN_REL_WIDTH * abs(x):
                break
            fy = math.exp(law.logpdf(y))
            inf = _bounds(law, x, y, fx, fy)[0]
            if wy * inf >= target:
                ok = True
                break
            if not inf > 0.0:
                break
            w = aim / inf
        if not ok:
            break
        edges.append(y)
        x, fx = y, fy
    return edges


def _build(law: _Law) -> Table | None:
    x0 = law.start
    right = _side(law, x0, +1, K)
    left = _side(law, x0, -1, K - len(right))
    edges = [*reversed(left), x0, *right]
    n = len(edges) - 1
    e = torch.tensor(edges, dtype=torch.float64)
    low, width = e[:-1], e[1:] - e[:-1]
    f = torch.tensor([math.exp(law.logpdf(v)) for v in edges], dtype=torch.float64)
    sup = torch.tensor([_bounds(law, edges[j], edges[j + 1], float(f[j]), float(f[j + 1]))[1]
                        for j in range(n)], dtype=torch.float64) * (1.0 + _SAFE)
    rect_h = _A / width
    cap_h = (sup - rect_h).clamp_min(0.0)
    tails = (law.tail(edges[0], -1), law.tail(edges[-1], +1))
    for t, cut, end in zip(tails, (edges[0], edges[-1]), (law.lo, law.hi)):
        if t is None and cut != end:
            return None  # a tail without an envelope: no table (the caller keeps its sampler)
    masses = torch.cat([cap_h * width,
                        torch.tensor([0.0 if t is None else t.mass for t in tails],
                                     dtype=torch.float64)])
    cum = torch.cumsum(masses, 0)
    if n == 0 or not float(cum[-1]) >= (1.0 - n / K) * (1.0 - 1e-6):
        return None  # the envelope must hold the remainder's mass; else no table
    return Table(n, low, width, law, tails, cum, rect_h, cap_h)


@functools.lru_cache(maxsize=64)
def table(kind: str, a: float, b: float = 0.0) -> Table | None:
    """The table of ``Beta(a, b)`` (kind "beta") or of ``Gamma(a, 1)^(-1/2)``
    ("inv_sqrt_gamma"); None where no table could be built (the caller then keeps the gamma
    sampler)."""
    if kind == "beta":
        return _build(_BetaLaw(a, b))
    if kind == "inv_sqrt_gamma":
        return _build(_InvNakagamiLaw(a))
    raise ValueError(f"unknown table kind {kind!r}")


# ============================================================================= sampling
#: elements per chunk of the fast path: its scratch (about 1.3 MB) stays in cache and is reused
_CHUNK = 1 << 17


def _alias(masses: Tensor) -> Tensor:
    """Walker's alias table (Vose's construction) of the discrete law ``masses / sum``:
    ``(P, 2)`` float64 rows ``(threshold_j, alias_j)``. A draw takes ``s = P u`` for a uniform
    ``u``, ``j = floor(s)``, and returns ``j`` if ``s - j < threshold_j`` else ``alias_j``: one
    uniform and one look-up, O(1) per draw (a binary search over the cumulative masses costs
    ~12 dependent look-ups)."""
    P = masses.numel()
    masses = masses.double()
    q = (masses * (P / float(masses.sum()))).tolist()
    thr, alias = [1.0] * P, list(range(P))
    small = [j for j, v in enumerate(q) if v < 1.0]
    large = [j for j, v in enumerate(q) if v >= 1.0]
    while small and large:
        a, b = small.pop(), large[-1]
        thr[a], alias[a] = q[a], b
        q[b] -= 1.0 - q[a]
        if q[b] < 1.0:
            small.append(large.pop())
    # what is left has q = 1 up to rounding: threshold 1 (always itself)
    return torch.tensor([thr, [float(a) for a in alias]], dtype=torch.float64).t().contiguous()


def _remainder(tab: Table, m: int, generator: torch.Generator | None) -> Tensor:
    """``m`` float64 draws from the remainder law r / (1 - n_rect / K), by rejection.

    Each round draws enough candidates for all outstanding draws at the known acceptance rate
    (remainder mass / envelope mass) plus a margin, and keeps the first accepted ones (accepted
    candidates are iid from r, so any fixed rule of choosing among them that does not look at
    their values is exact). Every candidate is put through the cap formula and both tails'
    (a cap candidate: ``u1``, ``u2`` on its cap's box; a tail candidate: ``1 - u1`` into the
    tail's draw, ``u2`` against its acceptance ratio), and ``torch.where`` keeps its own piece's:
    fewer tensor operations than gathering each piece's candidates first, and operations are
    what a small draw's time is made of (10 draws: ~100 us, bench_sampling.py part 5)."""
    out = torch.empty(m, dtype=torch.float64)
    n = tab.n_rect
    table_, caps = tab.pieces()
    P = table_.shape[0]
    total = float(tab.cum[-1])
    rate = min(1.0, tab.remainder_mass / total)
    done = 0
    while done < m:
        need = m - done
        k = int((need + 4.0 * math.sqrt(need) + 8.0) / rate)
        u = torch.rand(3, k, dtype=torch.float64, generator=generator)
        # the piece by the alias table: j = floor(P u0), its threshold against the fraction
        s = u[0].mul(P)
        j = s.to(torch.int64).clamp_max_(P - 1)
        row = table_.index_select(0, j)
        piece = torch.where(s.sub_(j) < row[:, 0], j, row[:, 1].to(torch.int64))
        c = caps.index_select(0, piece.clamp_max(n - 1))
        x = torch.addcmul(c[:, 0], c[:, 1], u[1])
        acc = torch.addcmul(c[:, 2], c[:, 3], u[2]) <= torch.exp(tab.law.logpdf_t(x))
        if not bool((piece < n).all()):  # some candidates are tail candidates
            v, lv = 1.0 - u[1], torch.log1p(-u[2])  # uniforms in (0, 1]; log of 1 - u2
            for side, t in enumerate(tab.tails):
                if t is None:
                    continue
                here = piece == n + side
                xt, logr = t.draw(v)
                x = torch.where(here, xt, x)
                acc = torch.where(here, lv <= logr, acc)
        got = x.index_select(0, acc.nonzero().squeeze(1)[:need])
        out[done:done + got.numel()] = got
        done += got.numel()
    return out


def _flagged(flags: Tensor) -> Tensor:
    """Indices of the non-zero entries of the int8 ``flags`` (length a multiple of 8): scans
    eight flags per int64 word, then the few words hit."""
    words = flags.view(torch.int64).nonzero().squeeze(1)
    if not words.numel():
        return words
    row, col = flags.view(-1, 8)[words].nonzero(as_tuple=True)
    return words[row] * 8 + col


#: draws of at least this many elements take their random words from NumPy's SFC64 (seeded from
#: ``generator``), smaller ones from ``generator`` itself (the seeding takes 11 us:
#: benchmarks/bench_sampling.py part 5)
NUMPY_MIN = 1 << 15


def words_source(n: int, generator: torch.Generator | None, most: int
                 ) -> Callable[[int], Tensor]:
    """``source(k) -> (k,) int64`` random 64-bit words (``k <= most``) for a draw of ``n``
    elements.

    The words are most of the table sampler's time: torch's CPU generator (MT19937) fills 63
    random bits per ``random_`` word, NumPy's SFC64 64 bits in about 0.64x the time
    (``benchmarks/bench_sampling.py`` part 4). From ``NUMPY_MIN`` elements on the words come
    from a fresh ``SFC64`` seeded by two 63-bit words of ``generator`` (so ``torch.manual_seed``
    / a ``Generator`` still fixes every draw, and the generator advances by those two words);
    below, from ``generator`` into one reused buffer (``random_`` fills ``[0, 2^63)``: the sign
    bit is 0, which the sampler's masks never read)."""
    if n < NUMPY_MIN:
        buf = torch.empty(most, dtype=torch.int64)
        return lambda k: buf[:k].random_(generator=generator)
    seed = torch.empty(2, dtype=torch.int64).random_(generator=generator).tolist()
    bg = np.random.SFC64(np.random.SeedSequence(seed))
    return lambda k: torch.from_numpy(bg.random_raw(k).view(np.int64))


def sample(tab: Table, n: int, dtype: torch.dtype, scale: float,
           generator: torch.Generator | None) -> Tensor:
    """``n`` draws of ``scale * X``, X from ``tab``'s law, as a CPU tensor of ``dtype``.

    Fast path in chunks of ``_CHUNK`` elements: random words -> slot (low 12 bits) and grid
    position (the next 19 or 51) -> ``x = left[slot] + c[slot] * position`` (one look-up of
    the packed pair); elements whose slot is a remainder slot are collected and redrawn from
    the remainder at the end."""
    packed = tab.fast(dtype, scale)
    wide = packed.dtype == torch.complex128  # float64 pairs
    fd = torch.float64 if wide else torch.float32
    x = torch.empty(n, dtype=fd)
    ch = min(_CHUNK, -(-n // 8) * 8)
    # one 64-bit word per element and 51 grid bits (float64), or two 32-bit words per 64-bit
    # word and 19 grid bits each (float32)
    qbits, itype = (_Q63, torch.int64) if wide else (_Q31, torch.int32)
    source = words_source(n, generator, ch if wide else ch // 2)
    idx = torch.empty(ch, dtype=itype)
    flags = torch.zeros(ch, dtype=torch.int8)
    last = torch.tensor(tab.n_rect - 1, dtype=itype)
    qf = torch.empty(ch, dtype=fd)
    pair = torch.empty(ch, dtype=packed.dtype)
    rems = []
    for s in range(0, n, ch):
        m = min(ch, n - s)
        b = source(m if wide else (m + 1) // 2)
        w = (b if wide else b.view(torch.int32))[:m]
        # slot: the low K_BITS bits; position: the next qbits bits, left in place (cell * 2^12,
        # exact in the float type); the word's top (sign) bit is never read
        i = torch.bitwise_and(w, K - 1, out=idx[:m])
        w.bitwise_and_(((1 << qbits) - 1) << K_BITS)
        pr = torch.index_select(packed, 0, i, out=pair[:m]).view(fd).view(m, 2)
        torch.addcmul(pr[:, 0], pr[:, 1], qf[:m].copy_(w), out=x[s:s + m])
        if tab.n_rect < K:
            # (n_rect - 1 - slot) >> (bits - 1): -1 on a remainder slot, else 0
            if m < ch:
                flags.zero_()
            torch.sub(last, i, out=i)
            torch.bitwise_right_shift(i, 63 if wide else 31, out=flags[:m])
            pos = _flagged(flags[: -(-m // 8) * 8])
            if pos.numel():
                rems.append(pos + s)
    if rems:
        rem = torch.cat(rems)
        x[rem] = _remainder(tab, rem.numel(), generator).mul_(scale).to(x.dtype)
    return x if x.dtype == dtype else x.to(dtype)
