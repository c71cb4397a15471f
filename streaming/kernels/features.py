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
def _win_push(st, r, ring, m, k, w, o):
    """Add value k of ``ring`` (already stored) to the shifted-sum window at ``o``.

    Slots at o: S1 = sum(x - c), S2 = sum((x - c)^2), mass = sum of every d^2
    added or removed since the last exact recompute, shift c, index of c.
    Returns (M2, S1, n): M2 = sum of squared deviations of the last n values.
    """
    x = st[r, ring + (k & m)]
    n = k + 1 if k + 1 < w else w
    if k == 0 or k - int(st[r, o + 4]) >= w:
        recompute = True  # the shift is leaving the window: re-centre on the newest value
    else:
        c = st[r, o + 3]
        d = x - c
        s1 = st[r, o] + d
        d2 = d * d
        s2 = st[r, o + 1] + d2
        mass = st[r, o + 2] + d2
        if k >= w:
            dy = st[r, ring + ((k - w) & m)] - c
            dy2 = dy * dy
            s1 -= dy
            s2 -= dy2
            mass += dy2
        m2 = s2 - s1 * s1 / n
        # rounding error of the running sums is ~ n * eps * mass: keep it below
        # ~1e-11 of M2, else recompute exactly (this also makes a flat window exactly 0)
        recompute = m2 * MASS_RATIO < mass
        if not recompute:
            st[r, o] = s1
            st[r, o + 1] = s2
            st[r, o + 2] = mass
    if recompute:
        s1 = 0.0
        s2 = 0.0
        for i in range(k - n + 1, k + 1):
            d = st[r, ring + (i & m)] - x
            s1 += d
            s2 += d * d
        st[r, o] = s1
        st[r, o + 1] = s2
        st[r, o + 2] = s2
        st[r, o + 3] = x
        st[r, o + 4] = k
        m2 = s2 - s1 * s1 / n
    if m2 < 0.0:
        m2 = 0.0
    return m2, s1, n


@njit(cache=True, error_model="numpy", inline="always")
def _extremes(st, r, o, L, cap, P, m, k, x, want_min, col):
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
    head = int(st[r, o])
    tail = int(st[r, o + 1])
    nmax = 0
    for j in range(nL):
        if L[j] > nmax:
            nmax = L[j]
    if tail > head and int(st[r, b + (head & cm)]) <= k - nmax:
        head += 1
    while tail > head:
        y = st[r, P + (int(st[r, b + ((tail - 1) & cm)]) & m)]
        if (y >= x) if want_min else (y <= x):
            tail -= 1
        else:
            break
    st[r, b + (tail & cm)] = k
    tail += 1
    st[r, o] = head
    st[r, o + 1] = tail
    for j in range(nL):
        n = L[j]
        f = int(st[r, o + 2 + j])
        if f < head:
            f = head
        if f > tail - 1:
            f = tail - 1
        while int(st[r, b + (f & cm)]) <= k - n:
            f += 1
        st[r, o + 2 + j] = f
        if k >= n - 1:
            st[r, col + j] = st[r, P + (int(st[r, b + (f & cm)]) & m)]
        else:
            st[r, col + j] = _NAN


@njit(cache=True, error_model="numpy")
def _update(st, R, V, M, VP, L, lay, kinds, rows, x1, x2, out):
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
    a_fast = 2.0 / (lay[11] + 1.0)
    a_slow = 2.0 / (lay[12] + 1.0)
    a_sig = 2.0 / (lay[13] + 1.0)
    for i in range(rows.shape[0]):
        r = rows[i]
        if kinds[i] == 1:
            bid = x1[i]
            ask = x2[i]
            mid = (bid + ask) * 0.5
            spread = ask - bid
            st[r, H_MID] = mid
            st[r, H_SPREAD] = spread
            st[r, H_QUOTES] += 1.0
            st[r, OL + cMID] = mid
            st[r, OL + cMID + 1] = spread
            for f in range(nF):
                out[i, f] = st[r, OL + f]
            continue
        p = x1[i]
        q = x2[i]
        k = int(st[r, H_COUNT])
        st[r, H_COUNT] = k + 1
        st[r, OP + (k & m)] = p
        st[r, OQ + (k & m)] = q
        # returns
        for j in range(nR):
            n = R[j]
            if k >= n:
                st[r, OL + j] = p / st[r, OP + ((k - n) & m)] - 1.0
            else:
                st[r, OL + j] = _NAN
        # log returns -> volatility; price changes -> RSI
        if k >= 1:
            pp = st[r, OP + ((k - 1) & m)]
            kr = k - 1
            st[r, OR + (kr & m)] = math.log(p / pp)
            for j in range(nV):
                w = V[j]
                m2, s1, n = _win_push(st, r, OR, m, kr, w, OVOL + 6 * j)
                if kr >= w - 1:
                    st[r, OL + cV + j] = math.sqrt(m2 / (w - 1))
                else:
                    st[r, OL + cV + j] = _NAN
            ch = p - pp
            for j in range(nM):
                n = M[j]
                og = ORSI + 2 * j
                if k <= n:
                    if ch < 0.0:
                        st[r, og + 1] -= ch
                    else:
                        st[r, og] += ch
                    if k == n:
                        st[r, og] /= n
                        st[r, og + 1] /= n
                else:
                    g = st[r, og] * (n - 1)
                    lo = st[r, og + 1] * (n - 1)
                    if ch < 0.0:
                        lo -= ch
                    else:
                        g += ch
                    st[r, og] = g / n
                    st[r, og + 1] = lo / n
                if k >= n:
                    g = st[r, og]
                    s = g + st[r, og + 1]
                    st[r, OL + cM + j] = 100.0 * (g / s) if s != 0.0 else 0.0
                else:
                    st[r, OL + cM + j] = _NAN
        else:
            for j in range(nV):
                st[r, OL + cV + j] = _NAN
            for j in range(nM):
                st[r, OL + cM + j] = _NAN
        # volume mean, ratio, vwap: running sums of positive terms, recomputed exactly
        # every v updates or when what was removed dwarfs what is left
        for j in range(nVP):
            v = VP[j]
            o = OVM + 6 * j
            recompute = k == 0 or k - int(st[r, o + 4]) >= v
            if not recompute:
                pq = p * q
                sq = st[r, o] + q
                spq = st[r, o + 1] + pq
                mass = st[r, o + 2] + q
                mass_pq = st[r, o + 3] + pq
                nnz = st[r, o + 5] + (1.0 if q != 0.0 else 0.0)
                if k >= v:
                    t = (k - v) & m
                    qq = st[r, OQ + t]
                    pq = st[r, OP + t] * qq
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
                    qq = st[r, OQ + (t & m)]
                    sq += qq
                    spq += st[r, OP + (t & m)] * qq
                    if qq != 0.0:
                        nnz += 1.0
                mass = sq
                mass_pq = spq
                st[r, o + 4] = k
            st[r, o] = sq
            st[r, o + 1] = spq
            st[r, o + 2] = mass
            st[r, o + 3] = mass_pq
            st[r, o + 5] = nnz
            if k >= v - 1:
                if nnz > 0.0:
                    ma = sq / v
                    st[r, OL + cVMA + j] = ma
                    st[r, OL + cVR + j] = q / ma
                    st[r, OL + cVW + j] = spq / sq
                else:
                    st[r, OL + cVMA + j] = 0.0
                    st[r, OL + cVR + j] = _NAN
                    st[r, OL + cVW + j] = _NAN
            else:
                st[r, OL + cVMA + j] = _NAN
                st[r, OL + cVR + j] = _NAN
                st[r, OL + cVW + j] = _NAN
        # support / resistance
        dq = lay[14]
        _extremes(st, r, ODQ, L, dq, OP, m, k, p, True, OL + cSUP)
        _extremes(st, r, ODQ + 2 + nL + dq, L, dq, OP, m, k, p, False, OL + cRES)
        # z-score of the price in its window
        for j in range(nV):
            w = V[j]
            oz = OZ + 6 * j
            m2, s1, n = _win_push(st, r, OP, m, k, w, oz)
            if k >= w - 1 and m2 > 0.0:
                st[r, OL + cZ + j] = ((p - st[r, oz + 3]) - s1 / w) / math.sqrt(m2 / (w - 1))
            else:
                st[r, OL + cZ + j] = _NAN
        # EMAs seeded by the first price, MACD, its signal seeded by the first MACD
        if k == 0:
            ef = p
            es = p
            macd = 0.0
            sig = 0.0
        else:
            ef = st[r, H_EMA_FAST]
            es = st[r, H_EMA_SLOW]
            ef = (p - ef) * a_fast + ef
            es = (p - es) * a_slow + es
            macd = ef - es
            sig = st[r, H_SIGNAL]
            sig = (macd - sig) * a_sig + sig
        st[r, H_EMA_FAST] = ef
        st[r, H_EMA_SLOW] = es
        st[r, H_SIGNAL] = sig
        st[r, OL + cEMA] = ef
        st[r, OL + cEMA + 1] = es
        st[r, OL + cEMA + 2] = macd
        st[r, OL + cEMA + 3] = sig
        st[r, OL + cMID] = st[r, H_MID]
        st[r, OL + cMID + 1] = st[r, H_SPREAD]
        for f in range(nF):
            out[i, f] = st[r, OL + f]


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
