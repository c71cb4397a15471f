"""Incremental per-symbol rolling features: Numba kernels and the state layout.

Each symbol's whole state is one row of a preallocated 2-D float64 array:
ring buffers (prices, log returns, sizes), compensated running sums,
Wilder averages, EMAs, monotonic deques for rolling min/max and the last
output vector. One compiled call (``_update``) processes a whole batch of
events of many symbols, in order; there is no Python call per tick.
``streaming.kernels.engine.FeatureEngine`` owns the rows and calls it.

Numerics (why the results equal a full recompute to ~1e-13 relative):

* mean/variance windows (volatility on log returns, z-score on prices) keep
  *shifted* sums S1 = sum(x - c), S2 = sum((x - c)^2) where the shift ``c`` is
  always a value inside the current window (re-centred on the newest value
  by an exact recompute from the ring at least every ``w`` updates). By
  Samuelson's inequality the cancellation in ``S2 - S1^2/n`` is then at most
  a factor ``n``, whatever the price level (6e4, 1e5 ...).
* each window also keeps the "mass" of squares added and removed since its
  last exact recompute; when it exceeds MASS_RATIO times the current M2 (a
  jump or a volatile stretch leaving the window, a flat stretch starting)
  the window is recomputed exactly, so the running-sum rounding error stays
  below ~n*eps*MASS_RATIO of M2 and a flat window gives exactly 0. Volume
  and price*volume sums use the same guard.
* min/max are exact (one monotonic deque for the nested price levels),
  RSI/EMA follow the TA-Lib recurrences operation for operation.

Null is NaN here; the event edge turns it into None.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from streaming.kernels.config import EMA_FAST, EMA_SLOW, MACD_SIGNAL, FeatureConfig

KIND_PRICE = 0  # a trade (price, size) or a bar (close, volume)
KIND_QUOTE = 1  # a quote (bid, ask): only mid and spread change

# header slots of a state row
H_COUNT = 0  # prices processed
H_EMA_FAST = 1
H_EMA_SLOW = 2
H_SIGNAL = 3
H_MID = 4
H_SPREAD = 5
H_QUOTES = 6  # quotes processed
HEADER = 8

# exact recompute when the squares added/removed since the last one exceed this
# multiple of what is left: bounds the rounding error relative to M2 by ~n*eps*MASS_RATIO
MASS_RATIO = 1e3

_NAN = np.nan


@njit(cache=True, error_model="numpy", inline="always")
def _win_push(st, ring, m, k, w, o):
    """Add value k of ``ring`` (already stored) to the shifted-sum window at ``o``.

    Slots at o: S1 = sum(x - c), S2 = sum((x - c)^2), mass = sum of every d^2
    added or removed since the last exact recompute, shift c, index of c.
    Returns (M2, S1, n): M2 = sum of squared deviations of the last n values.
    """
    x = st[ring + (k & m)]
    n = k + 1 if k + 1 < w else w
    if k == 0 or k - int(st[o + 4]) >= w:
        recompute = True  # the shift is leaving the window: re-centre on the newest value
    else:
        c = st[o + 3]
        d = x - c
        s1 = st[o] + d
        d2 = d * d
        s2 = st[o + 1] + d2
        mass = st[o + 2] + d2
        if k >= w:
            dy = st[ring + ((k - w) & m)] - c
            dy2 = dy * dy
            s1 -= dy
            s2 -= dy2
            mass += dy2
        m2 = s2 - s1 * s1 / n
        # rounding error of the running sums is ~ n * eps * mass: keep it below
        # ~1e-11 of M2, else recompute exactly (this also makes a flat window exactly 0)
        recompute = m2 * MASS_RATIO < mass
        if not recompute:
            st[o] = s1
            st[o + 1] = s2
            st[o + 2] = mass
    if recompute:
        s1 = 0.0
        s2 = 0.0
        for i in range(k - n + 1, k + 1):
            d = st[ring + (i & m)] - x
            s1 += d
            s2 += d * d
        st[o] = s1
        st[o + 1] = s2
        st[o + 2] = s2
        st[o + 3] = x
        st[o + 4] = k
        m2 = s2 - s1 * s1 / n
    if m2 < 0.0:
        m2 = 0.0
    return m2, s1, n


@njit(cache=True, error_model="numpy", inline="always")
def _extremes(st, o, L, nmax, cap, P, m, k, x, want_min, out, col):
    """Rolling min (or max) of the last n prices for every n in L, with one deque.

    The windows all end at k, so they are nested: one monotonic deque sized for
    the largest window holds every candidate, and window j's extreme is the
    first entry younger than n_j; its position is kept in a per-window pointer
    that only moves forward (or back to the tail when pops removed it).
    Slots at o: head, tail (absolute positions), one pointer per window, then
    ``cap`` (a power of two) tick indices.
    """
    nL = L.shape[0]
    cm = cap - 1
    b = o + 2 + nL
    head = int(st[o])
    tail = int(st[o + 1])
    if tail > head and int(st[b + (head & cm)]) <= k - nmax:
        head += 1
    while tail > head:
        y = st[P + (int(st[b + ((tail - 1) & cm)]) & m)]
        if (y >= x) if want_min else (y <= x):
            tail -= 1
        else:
            break
    st[b + (tail & cm)] = k
    tail += 1
    st[o] = head
    st[o + 1] = tail
    for j in range(nL):
        n = L[j]
        f = int(st[o + 2 + j])
        if f < head:
            f = head
        if f > tail - 1:
            f = tail - 1
        # the window moved by one: only the entry at f (index k - n) can have left it,
        # and the next one is younger (indices increase), so one step is enough
        idx = int(st[b + (f & cm)])
        if idx <= k - n:
            f += 1
            idx = int(st[b + (f & cm)])
        st[o + 2 + j] = f
        if k >= n - 1:
            out[col + j] = st[P + (idx & m)]
        else:
            out[col + j] = _NAN


@njit(cache=True, error_model="numpy")
def _update(st, R, V, M, VP, L, lay, kinds, rows, x1, x2, out):
    """Process a batch in order; out[i] is the feature vector after event i.

    Outputs are computed straight into ``out`` (row-major, one contiguous row per
    event) and copied once into the symbol's "last output" slots (a quote
    repeats them with its mid/spread), while the state row is still in cache.
    """
    m = lay[0] - 1
    OP = lay[1]
    OR = lay[2]
    OQ = lay[3]
    OVOL = lay[4]
    OZ = lay[5]
    ORSI = lay[6]
    OVM = lay[7]
    ODQ = lay[8]
    OL = lay[9]
    nF = lay[10]
    dq = lay[14]
    nR = R.shape[0]
    nV = V.shape[0]
    nM = M.shape[0]
    nVP = VP.shape[0]
    nL = L.shape[0]
    cV = nR
    cM = cV + nV
    cVMA = cM + nM
    cVR = cVMA + nVP
    cSUP = cVR + nVP
    cRES = cSUP + nL
    cZ = cRES + nL
    cEMA = cZ + nV
    cVW = cEMA + 4
    cMID = cVW + nVP
    ODQ2 = ODQ + 2 + nL + dq
    nmax = 0
    for j in range(nL):
        if L[j] > nmax:
            nmax = L[j]
    a_fast = 2.0 / (lay[11] + 1.0)
    a_slow = 2.0 / (lay[12] + 1.0)
    a_sig = 2.0 / (lay[13] + 1.0)
    nb = rows.shape[0]
    for i in range(nb):
        r = rows[i]
        s = st[r]
        o = out[i]
        if kinds[i] == 1:
            bid = x1[i]
            ask = x2[i]
            mid = (bid + ask) * 0.5
            spread = ask - bid
            s[H_MID] = mid
            s[H_SPREAD] = spread
            s[H_QUOTES] += 1.0
            s[OL + cMID] = mid
            s[OL + cMID + 1] = spread
            for f in range(nF):
                o[f] = s[OL + f]
            continue
        p = x1[i]
        q = x2[i]
        k = int(s[H_COUNT])
        s[H_COUNT] = k + 1
        km = k & m
        s[OP + km] = p
        s[OQ + km] = q
        # returns
        for j in range(nR):
            n = R[j]
            if k >= n:
                o[j] = p / s[OP + ((k - n) & m)] - 1.0
            else:
                o[j] = _NAN
        # log returns -> volatility; price changes -> RSI
        if k >= 1:
            pp = s[OP + ((k - 1) & m)]
            kr = k - 1
            s[OR + (kr & m)] = math.log(p / pp)
            for j in range(nV):
                w = V[j]
                m2, s1, n = _win_push(s, OR, m, kr, w, OVOL + 6 * j)
                if kr >= w - 1:
                    o[cV + j] = math.sqrt(m2 / (w - 1))
                else:
                    o[cV + j] = _NAN
            ch = p - pp
            for j in range(nM):
                n = M[j]
                og = ORSI + 2 * j
                if k <= n:
                    if ch < 0.0:
                        s[og + 1] -= ch
                    else:
                        s[og] += ch
                    if k == n:
                        s[og] /= n
                        s[og + 1] /= n
                    g = s[og]
                    lo = s[og + 1]
                else:
                    g = s[og] * (n - 1)
                    lo = s[og + 1] * (n - 1)
                    if ch < 0.0:
                        lo -= ch
                    else:
                        g += ch
                    g = g / n
                    lo = lo / n
                    s[og] = g
                    s[og + 1] = lo
                if k >= n:
                    sg = g + lo
                    o[cM + j] = 100.0 * (g / sg) if sg != 0.0 else 0.0
                else:
                    o[cM + j] = _NAN
        else:
            for j in range(nV):
                o[cV + j] = _NAN
            for j in range(nM):
                o[cM + j] = _NAN
        # volume mean, ratio, vwap: running sums of positive terms, recomputed exactly
        # every v updates or when what was removed dwarfs what is left
        for j in range(nVP):
            v = VP[j]
            ov = OVM + 6 * j
            recompute = k == 0 or k - int(s[ov + 4]) >= v
            if not recompute:
                pq = p * q
                sq = s[ov] + q
                spq = s[ov + 1] + pq
                mass = s[ov + 2] + q
                mass_pq = s[ov + 3] + pq
                nnz = s[ov + 5] + (1.0 if q != 0.0 else 0.0)
                if k >= v:
                    t = (k - v) & m
                    qq = s[OQ + t]
                    pq = s[OP + t] * qq
                    sq -= qq
                    spq -= pq
                    mass += qq
                    mass_pq += pq
                    if qq != 0.0:
                        nnz -= 1.0
                recompute = sq * MASS_RATIO < mass or spq * MASS_RATIO < mass_pq
            if recompute:
                n = k + 1 if k + 1 < v else v
                sq = 0.0
                spq = 0.0
                nnz = 0.0
                for t in range(k - n + 1, k + 1):
                    qq = s[OQ + (t & m)]
                    sq += qq
                    spq += s[OP + (t & m)] * qq
                    if qq != 0.0:
                        nnz += 1.0
                mass = sq
                mass_pq = spq
                s[ov + 4] = k
            s[ov] = sq
            s[ov + 1] = spq
            s[ov + 2] = mass
            s[ov + 3] = mass_pq
            s[ov + 5] = nnz
            if k >= v - 1:
                if nnz > 0.0:
                    ma = sq / v
                    o[cVMA + j] = ma
                    o[cVR + j] = q / ma
                    o[cVW + j] = spq / sq
                else:
                    o[cVMA + j] = 0.0
                    o[cVR + j] = _NAN
                    o[cVW + j] = _NAN
            else:
                o[cVMA + j] = _NAN
                o[cVR + j] = _NAN
                o[cVW + j] = _NAN
        # support / resistance
        _extremes(s, ODQ, L, nmax, dq, OP, m, k, p, True, o, cSUP)
        _extremes(s, ODQ2, L, nmax, dq, OP, m, k, p, False, o, cRES)
        # z-score of the price in its window
        for j in range(nV):
            w = V[j]
            oz = OZ + 6 * j
            m2, s1, n = _win_push(s, OP, m, k, w, oz)
            if k >= w - 1 and m2 > 0.0:
                o[cZ + j] = ((p - s[oz + 3]) - s1 / w) / math.sqrt(m2 / (w - 1))
            else:
                o[cZ + j] = _NAN
        # EMAs seeded by the first price, MACD, its signal seeded by the first MACD
        if k == 0:
            ef = p
            es = p
            macd = 0.0
            sig = 0.0
        else:
            ef = s[H_EMA_FAST]
            es = s[H_EMA_SLOW]
            ef = (p - ef) * a_fast + ef
            es = (p - es) * a_slow + es
            macd = ef - es
            sig = s[H_SIGNAL]
            sig = (macd - sig) * a_sig + sig
        s[H_EMA_FAST] = ef
        s[H_EMA_SLOW] = es
        s[H_SIGNAL] = sig
        o[cEMA] = ef
        o[cEMA + 1] = es
        o[cEMA + 2] = macd
        o[cEMA + 3] = sig
        o[cMID] = s[H_MID]
        o[cMID + 1] = s[H_SPREAD]
        for f in range(nF):
            s[OL + f] = o[f]


def _next_pow2(n: int) -> int:
    c = 1
    while c < n:
        c <<= 1
    return c


class Layout:
    """Offsets of one state row for a FeatureConfig."""

    def __init__(self, config: FeatureConfig):
        self.config = config
        self.names = config.feature_names()
        c = config
        need = max(
            max(c.return_periods) + 1,
            max(c.volatility_windows) + 1,
            max(c.volume_periods) + 1,
            max(c.price_levels),
        )
        self.ring = _next_pow2(need)
        o = HEADER
        self.prices = o
        o += self.ring
        self.log_returns = o
        o += self.ring
        self.sizes = o
        o += self.ring
        self.vol = o
        o += 6 * len(c.volatility_windows)
        self.zscore = o
        o += 6 * len(c.volatility_windows)
        self.rsi = o
        o += 2 * len(c.momentum_periods)
        self.volume = o
        o += 6 * len(c.volume_periods)
        self.deques = o
        self.deque = _next_pow2(max(c.price_levels))
        o += 2 * (2 + len(c.price_levels) + self.deque)
        self.last = o
        o += len(self.names)
        self.width = o
        self.array = np.array(
            [self.ring, self.prices, self.log_returns, self.sizes, self.vol, self.zscore,
             self.rsi, self.volume, self.deques, self.last, len(self.names), EMA_FAST, EMA_SLOW,
             MACD_SIGNAL, self.deque],
            dtype=np.int64,
        )

    def blank(self) -> np.ndarray:
        row = np.zeros(self.width, dtype=np.float64)
        row[H_MID] = np.nan
        row[H_SPREAD] = np.nan
        row[self.last:] = np.nan
        return row
