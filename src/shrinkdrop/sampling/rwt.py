"""Exact table sampler for the Beta and inverse-Nakagami noise of the layers (CPU).

Rectangle-wedge-tail (Marsaglia, MacLaren & Bray 1964), in a form that costs one 31-bit random
integer, two table look-ups and one fused multiply-add per element on the fast path. The density
``f`` of the noise is split *exactly* into

* ``n_rect`` rectangles of area exactly ``A = 1 / K`` (``K = 2^14`` slots), each lying under ``f``:
  bin ``j`` is ``[low_j, low_j + w_j)`` with height ``A / w_j <= inf f`` on the bin;
* the remainder ``r = f - sum of rectangles`` (mass exactly ``1 - n_rect / K`` because ``f``
  integrates to 1): the caps (wedges) ``f - A / w_j`` above the rectangles and the two tails
  beyond the outermost bins.

A draw picks one of the ``K`` slots uniformly from the low 14 bits of a random integer. Slot
``j < n_rect`` is rectangle ``j`` (probability exactly ``A``): the point is uniform on the bin,
placed by the next 17 bits (a grid of ``2^17`` cells, its midpoint; float64 output uses 14 + 49
bits of a 64-bit word, a ``2^49`` grid); the words' top bit is not used. The other ``K - n_rect``
slots (probability exactly the remainder's mass; 0.04-0.12% of the draws) draw from ``r`` by
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

from . import is_cpu
from ._rwt_laws import _FLOAT, _BetaLaw, _exp, _InvNakagamiLaw, _Law

K_BITS = 14
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
    _pieces_py: tuple | None = None

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

    def pieces_py(self) -> tuple[list, list, list, float]:
        """:meth:`pieces` as Python lists for :func:`_remainder_py` (cached): thresholds,
        aliases, the caps' ``(low, width, rect_h, cap_h)`` rows, and the acceptance rate."""
        if self._pieces_py is None:
            alias, caps = self.pieces()
            rate = min(1.0, self.remainder_mass / float(self.cum[-1]))
            self._pieces_py = (alias[:, 0].tolist(), [int(a) for a in alias[:, 1].tolist()],
                               [tuple(r) for r in caps.tolist()], rate)
        return self._pieces_py

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

    def fast_np(self, dtype: torch.dtype, scale: float) -> np.ndarray:
        """:meth:`fast` as a ``(K,)`` NumPy array sharing its memory: one 8-byte float64 word
        per slot holding the float32 pair, or one complex128 holding the float64 pair (a 1-d
        ``take`` is ~4x faster than indexing ``(K, 2)`` rows). Cached."""
        key = ("np", dtype, scale)
        got = self._fast.get(key)
        if got is None:
            got = self.fast(dtype, scale).numpy()
            self._fast[key] = got
        return got


def _bounds(law: _Law, x0: float, x1: float, f0: float, f1: float) -> tuple[float, float]:
    """(inf, sup) of f on [x0, x1] (f is monotone on either side of its stationary point)."""
    lo, hi = min(f0, f1), max(f0, f1)
    s = law.stat
    if s is not None and min(x0, x1) < s < max(x0, x1):
        fs = _exp(law.logpdf(s))
        lo, hi = (lo, max(hi, fs)) if law.is_mode else (min(lo, fs), hi)
    return lo, hi


def _side(law: _Law, x0: float, d: int, room: int) -> list[float]:
    """Bin edges from x0 in direction d (excluding x0), at most ``room`` bins."""
    target, aim = _A * (1.0 + _SAFE), _A * (1.0 + 2.0 * _SAFE)
    edges = []
    x, fx = x0, _exp(law.logpdf(x0))
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
            fy = _exp(law.logpdf(y))
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
    f = torch.tensor([_exp(law.logpdf(v)) for v in edges], dtype=torch.float64)
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


def _remainder_py(tab: Table, m: int, generator: torch.Generator | None,
                  u: list[float] | None = None) -> list[float]:
    """:func:`_remainder` one candidate at a time in Python floats, for the few remainder
    draws of a small sample (a few us per candidate; the formulas through :data:`_FLOAT`).
    The same law: candidates take uniforms in consecutive triples, first from ``u`` (uniforms
    on [0, 1) independent of everything else), then from batches of ``generator`` sized as in
    :func:`_remainder`; the first ``m`` accepted are kept."""
    thr, alias, caps, rate = tab.pieces_py()
    n, P, law, out = tab.n_rect, len(thr), tab.law, []
    while len(out) < m:
        if u is None:
            need = m - len(out)
            k = int((need + 4.0 * math.sqrt(need) + 8.0) / rate)
            u = torch.rand(3 * k, dtype=torch.float64, generator=generator).tolist()
        for i in range(0, len(u) - 2, 3):
            s = u[i] * P
            j = min(int(s), P - 1)
            piece = j if s - j < thr[j] else alias[j]
            if piece < n:
                low, width, rect_h, cap_h = caps[piece]
                x = low + width * u[i + 1]
                ok = rect_h + cap_h * u[i + 2] <= _exp(law.logpdf_t(x, _FLOAT))
            else:  # a zero-mass tail (None) is never picked
                x, logr = tab.tails[piece - n].draw(1.0 - u[i + 1], _FLOAT)
                ok = math.log1p(-u[i + 2]) <= logr
            if ok:
                out.append(x)
                if len(out) == m:
                    break
        u = None
    return out


def _remainder_draws(tab: Table, m: int, generator: torch.Generator | None,
                     spare: np.ndarray | None = None) -> np.ndarray:
    """``m`` remainder draws (float64 array): one at a time in Python up to
    :data:`PY_REMAINDER_MAX` (its first uniforms from the top 53 bits of the ``spare`` random
    words, if given), else by the tensor rounds of :func:`_remainder`."""
    if m <= PY_REMAINDER_MAX:
        u = None if spare is None else ((spare >> 10) * 2.0**-53).tolist()
        return np.array(_remainder_py(tab, m, generator, u))
    return _remainder(tab, m, generator).numpy()


def _sample_small(tab: Table, n: int, dtype: torch.dtype, scale: float,
                  generator: torch.Generator | None) -> Tensor:
    """:func:`sample` for fewer than :data:`SMALL_MAX` elements, in NumPy on torch's random
    words: the same words (one 64-bit word per float64 element, two 32-bit halves per word for
    float32), the same map of a word to a value, so the rectangle draws equal the tensor
    path's; 47 us against the tensor form's 147 us at 1,000 Beta(2, 2) float32 draws
    (``bench_sampling.py --only 5``)."""
    packed = tab.fast_np(dtype, scale)
    wide = packed.dtype == np.complex128
    nw = n if wide else (n + 1) // 2
    # _SPARE more words than the values need: the uniforms of a few remainder candidates
    words = torch.empty(nw + _SPARE, dtype=torch.int64).random_(generator=generator).numpy()
    w, qbits, fd = words[:nw], _Q63, np.float64
    if not wide:
        w, qbits, fd = w.view(np.int32)[:n], _Q31, np.float32
    slot = w & (K - 1)
    pr = packed.take(slot).view(fd)  # left, c, left, c, ...
    x = np.multiply(w & (((1 << qbits) - 1) << K_BITS), pr[1::2], dtype=fd)
    x += pr[0::2]
    if tab.n_rect < K:
        rem = (slot >= tab.n_rect).nonzero()[0]
        if rem.size:
            x[rem] = _remainder_draws(tab, rem.size, generator, words[nw:]) * scale
    out = torch.from_numpy(x)
    return out if out.dtype == dtype else out.to(dtype)


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
#: the families draw fewer elements than this with torch's gamma kernel instead (cheaper there,
#: 7-15 us, and a one-off small draw does not build a table, 0.1-0.4 s)
TABLE_MIN = 256
#: draws of fewer elements than this take the NumPy form of the sampler (:func:`_sample_small`,
#: torch's words), whose per-call cost is lower: 0.26-0.62x the tensor form's time from 1,000
#: to 32,000 elements (``bench_sampling.py --only 5``); it must not exceed NUMPY_MIN
SMALL_MAX = NUMPY_MIN
#: remainder draws of a small sample, up to this many, are drawn one at a time in Python
#: (2.5 us a draw plus 6 us; the tensor form costs ~100-300 us whatever the count)
PY_REMAINDER_MAX = 32
#: extra random words a small draw takes: uniforms for the first few remainder candidates
_SPARE = 12


def use_table(n: int, device: torch.device | str | None) -> bool:
    """Whether a family draws ``n`` elements on ``device`` by the table (CPU, at least
    :data:`TABLE_MIN` elements, not while ``torch.compile`` traces), else by its gamma
    sampler."""
    return n >= TABLE_MIN and is_cpu(device) and not torch.compiler.is_compiling()


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

    Fast path in chunks of ``_CHUNK`` elements: random words -> slot (low 14 bits) and grid
    position (the next 17 or 49) -> ``x = left[slot] + c[slot] * position`` (one look-up of
    the packed pair); elements whose slot is a remainder slot are collected and redrawn from
    the remainder at the end. Fewer than :data:`SMALL_MAX` elements: :func:`_sample_small`."""
    if n < SMALL_MAX:
        return _sample_small(tab, n, dtype, scale, generator)
    packed = tab.fast(dtype, scale)
    wide = packed.dtype == torch.complex128  # float64 pairs
    fd = torch.float64 if wide else torch.float32
    x = torch.empty(n, dtype=fd)
    ch = min(_CHUNK, -(-n // 8) * 8)
    # one 64-bit word per element and 49 grid bits (float64), or two 32-bit words per 64-bit
    # word and 17 grid bits each (float32)
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
        # slot: the low K_BITS bits; position: the next qbits bits, left in place (cell * 2^K_BITS,
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
        r = torch.from_numpy(_remainder_draws(tab, rem.numel(), generator))
        x[rem] = r.mul_(scale).to(x.dtype)
    return x if x.dtype == dtype else x.to(dtype)
