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

Layout version 2 (``STATE_LAYOUT_VERSION``, part of the config fingerprint that
snapshots carry): the slots holding tick indices (window shift positions,
recompute marks, deque head/tail/pointers/entries) are int64 written through
``row.view(np.int64)`` instead of float64 values.

Speed (see bench/results/features.md): the batch loop works on flat views of
the state and output arrays made once per batch and inlines every window
update by hand. A per-tick row view (``st[r]``) or an array passed to a
helper function costs an atomic reference-count increment and decrement per
tick, which was most of the old fixed cost. Steady-state windows multiply by
precomputed 1/w and 1/(w-1) (RSI keeps its TA-Lib divisions), and a
symbol's "last output" slots are written once per batch.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from streaming.kernels.config import (
    EMA_FAST,
    EMA_SLOW,
    MACD_SIGNAL,
    STATE_LAYOUT_VERSION,
    FeatureConfig,
)

KIND_PRICE = 0  # a trade (price, size) or a bar (close, volume)
KIND_QUOTE = 1  # a quote (bid, ask): only mid and spread change

LAYOUT_VERSION = STATE_LAYOUT_VERSION  # bump it whenever the meaning of a state slot changes

# header slots of a state row (float64 unless noted)
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


@njit(cache=True, nogil=True, error_model="numpy")
def _update(st, R, V, M, VP, L, inv, lay, kinds, rows, x1, x2, out, scratch):
    """Process a batch in order; out[i] is the feature vector after event i.

    Outputs are computed straight into ``out`` (row-major, one contiguous row per
    event). A symbol's "last output" slots (a quote repeats them with its
    mid/spread) are written only by its last price event of the batch: a first
    pass over the batch finds it (``scratch[row, 0]``); quotes before it copy the
    latest output of the batch (``scratch[row, 1]``).
    """
    # flat views made once per batch: a per-tick row view (st[r], out[i]) would cost
    # a reference count increment and decrement (atomic) per view per tick
    W = st.shape[1]
    F = st.reshape(-1)
    I = F.view(np.int64)  # noqa: E741
    OF = out.reshape(-1)
    OI = OF.view(np.int64)
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
    dm = dq - 1
    nmax = lay[15]
    a_fast = 2.0 / (lay[11] + 1.0)
    a_slow = 2.0 / (lay[12] + 1.0)
    a_sig = 2.0 / (lay[13] + 1.0)
    # per-config constants: 1/w and 1/(w-1) of the variance windows, 1/v of the volume windows
    iV = inv[0]
    iV1 = inv[1]
    iVP = inv[2]
    nb = rows.shape[0]
    for i in range(nb):
        r = rows[i]
        scratch[r, 0] = -1
        scratch[r, 1] = -1
    for i in range(nb):
        if kinds[i] != 1:
            scratch[rows[i], 0] = i
    for i in range(nb):
        r = rows[i]
        b = r * W
        ob = i * nF
        if kinds[i] == 1:
            bid = x1[i]
            ask = x2[i]
            mid = (bid + ask) * 0.5
            spread = ask - bid
            F[b + H_MID] = mid
            F[b + H_SPREAD] = spread
            F[b + H_QUOTES] += 1.0
            F[b + OL + cMID] = mid
            F[b + OL + cMID + 1] = spread
            j = scratch[r, 1]
            if j >= 0:
                jb = j * nF
                for f in range(cMID):
                    OF[ob + f] = OF[jb + f]
            else:
                for f in range(cMID):
                    OF[ob + f] = F[b + OL + f]
            OF[ob + cMID] = mid
            OF[ob + cMID + 1] = spread
            continue
        p = x1[i]
        q = x2[i]
        k = int(F[b + H_COUNT])
        F[b + H_COUNT] = k + 1
        km = k & m
        F[b + OP + km] = p
        F[b + OQ + km] = q
        # returns
        for j in range(nR):
            n = R[j]
            if k >= n:
                OF[ob + j] = p / F[b + OP + ((k - n) & m)] - 1.0
            else:
                OF[ob + j] = _NAN
        # log returns -> volatility; price changes -> RSI
        if k >= 1:
            pp = F[b + OP + ((k - 1) & m)]
            kr = k - 1
            F[b + OR + (kr & m)] = math.log(p / pp)
            ch = p - pp
            for j in range(nM):
                n = M[j]
                og = ORSI + 2 * j
                if k <= n:
                    if ch < 0.0:
                        F[b + og + 1] -= ch
                    else:
                        F[b + og] += ch
                    if k == n:
                        F[b + og] /= n
                        F[b + og + 1] /= n
                    g = F[b + og]
                    lo = F[b + og + 1]
                else:
                    g = F[b + og] * (n - 1)
                    lo = F[b + og + 1] * (n - 1)
                    if ch < 0.0:
                        lo -= ch
                    else:
                        g += ch
                    g = g / n
                    lo = lo / n
                    F[b + og] = g
                    F[b + og + 1] = lo
                if k >= n:
                    sg = g + lo
                    OF[ob + cM + j] = 100.0 * (g / sg) if sg != 0.0 else 0.0
                else:
                    OF[ob + cM + j] = _NAN
        else:
            for j in range(nV):
                OF[ob + cV + j] = _NAN
            for j in range(nM):
                OF[ob + cM + j] = _NAN
        # volume mean, ratio, vwap: running sums of positive terms, recomputed exactly
        # every v updates or when what was removed dwarfs what is left
        for j in range(nVP):
            v = VP[j]
            ov = OVM + 6 * j
            recompute = k == 0 or k - I[b + ov + 4] >= v
            if not recompute:
                pq = p * q
                sq = F[b + ov] + q
                spq = F[b + ov + 1] + pq
                mass = F[b + ov + 2] + q
                mass_pq = F[b + ov + 3] + pq
                nnz = F[b + ov + 5] + (1.0 if q != 0.0 else 0.0)
                if k >= v:
                    t = (k - v) & m
                    qq = F[b + OQ + t]
                    pq = F[b + OP + t] * qq
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
                    qq = F[b + OQ + (t & m)]
                    sq += qq
                    spq += F[b + OP + (t & m)] * qq
                    if qq != 0.0:
                        nnz += 1.0
                mass = sq
                mass_pq = spq
                I[b + ov + 4] = k
            F[b + ov] = sq
            F[b + ov + 1] = spq
            F[b + ov + 2] = mass
            F[b + ov + 3] = mass_pq
            F[b + ov + 5] = nnz
            if k >= v - 1:
                if nnz > 0.0:
                    ma = sq * iVP[j]
                    OF[ob + cVMA + j] = ma
                    OF[ob + cVR + j] = q / ma
                    OF[ob + cVW + j] = spq / sq
                else:
                    OF[ob + cVMA + j] = 0.0
                    OF[ob + cVR + j] = _NAN
                    OF[ob + cVW + j] = _NAN
            else:
                OF[ob + cVMA + j] = _NAN
                OF[ob + cVR + j] = _NAN
                OF[ob + cVW + j] = _NAN
        # volatility (log returns, windows V, ending at k - 1) and z-score (prices,
        # windows V, ending at k): one loop over the 2 * nV shifted-sum windows.
        # Slots per window: S1 = sum(x - c), S2 = sum((x - c)^2), mass = sum of every
        # d^2 added or removed since the last exact recompute, shift c, index of c (int64).
        for jj in range(0 if k >= 1 else nV, 2 * nV):
            if jj < nV:
                jw = jj
                rw = b + OR
                kk = k - 1
                ow = b + OVOL + 6 * jw
            else:
                jw = jj - nV
                rw = b + OP
                kk = k
                ow = b + OZ + 6 * jw
            ww = V[jw]
            xw = F[rw + (kk & m)]
            if kk >= ww - 1:
                nw = ww
                inv_n = iV[jw]
            else:
                nw = kk + 1
                inv_n = 1.0 / nw
            if kk == 0 or kk - I[ow + 4] >= ww:
                recompute = True  # the shift is leaving the window: re-centre on the newest value
            else:
                cw = F[ow + 3]
                dw = xw - cw
                s1 = F[ow] + dw
                d2 = dw * dw
                s2 = F[ow + 1] + d2
                mass = F[ow + 2] + d2
                if kk >= ww:
                    dy = F[rw + ((kk - ww) & m)] - cw
                    dy2 = dy * dy
                    s1 -= dy
                    s2 -= dy2
                    mass += dy2
                m2 = s2 - s1 * s1 * inv_n
                # rounding error of the running sums is ~ n * eps * mass: keep it below
                # ~1e-11 of M2, else recompute exactly (this also makes a flat window exactly 0)
                recompute = m2 * MASS_RATIO < mass
                if not recompute:
                    F[ow] = s1
                    F[ow + 1] = s2
                    F[ow + 2] = mass
            if recompute:
                s1 = 0.0
                s2 = 0.0
                for tw in range(kk - nw + 1, kk + 1):
                    dw = F[rw + (tw & m)] - xw
                    s1 += dw
                    s2 += dw * dw
                F[ow] = s1
                F[ow + 1] = s2
                F[ow + 2] = s2
                F[ow + 3] = xw
                I[ow + 4] = kk
                m2 = s2 - s1 * s1 * inv_n
            if m2 < 0.0:
                m2 = 0.0
            if jj < nV:
                if kk >= ww - 1:
                    OF[ob + cV + jw] = math.sqrt(m2 * iV1[jw])
                else:
                    OF[ob + cV + jw] = _NAN
            elif kk >= ww - 1 and m2 > 0.0:
                OF[ob + cZ + jw] = ((p - F[ow + 3]) - s1 * iV[jw]) / math.sqrt(m2 * iV1[jw])
            else:
                OF[ob + cZ + jw] = _NAN
        # support / resistance
        # one monotonic deque per side (0: min, 1: max) sized for the largest level;
        # the levels are nested (all end at k), so level j's extreme is the first
        # entry younger than n_j, found from a per-level pointer that only moves
        # forward by one (or back to the tail when pops removed it).
        # Int64 slots per side: head, tail (absolute positions), one pointer per
        # level, then ``dq`` (a power of two) tick indices.
        for side in range(2):
            od = b + (ODQ if side == 0 else ODQ2)
            bq = od + 2 + nL
            head = I[od]
            tail = I[od + 1]
            if tail > head and I[bq + (head & dm)] <= k - nmax:
                head += 1
            while tail > head:
                y = F[b + OP + (I[bq + ((tail - 1) & dm)] & m)]
                if (y >= p) if side == 0 else (y <= p):
                    tail -= 1
                else:
                    break
            I[bq + (tail & dm)] = k
            tail += 1
            I[od] = head
            I[od + 1] = tail
            col = ob + (cSUP if side == 0 else cRES)
            for j in range(nL):
                n = L[j]
                f = I[od + 2 + j]
                if f < head:
                    f = head
                if f > tail - 1:
                    f = tail - 1
                idx = I[bq + (f & dm)]
                if idx <= k - n:
                    f += 1
                    idx = I[bq + (f & dm)]
                I[od + 2 + j] = f
                if k >= n - 1:
                    OF[col + j] = F[b + OP + (idx & m)]
                else:
                    OF[col + j] = _NAN
        # EMAs seeded by the first price, MACD, its signal seeded by the first MACD
        if k == 0:
            ef = p
            es = p
            macd = 0.0
            sig = 0.0
        else:
            ef = F[b + H_EMA_FAST]
            es = F[b + H_EMA_SLOW]
            ef = (p - ef) * a_fast + ef
            es = (p - es) * a_slow + es
            macd = ef - es
            sig = F[b + H_SIGNAL]
            sig = (macd - sig) * a_sig + sig
        F[b + H_EMA_FAST] = ef
        F[b + H_EMA_SLOW] = es
        F[b + H_SIGNAL] = sig
        OF[ob + cEMA] = ef
        OF[ob + cEMA + 1] = es
        OF[ob + cEMA + 2] = macd
        OF[ob + cEMA + 3] = sig
        OF[ob + cMID] = F[b + H_MID]
        OF[ob + cMID + 1] = F[b + H_SPREAD]
        scratch[r, 1] = i
        if scratch[r, 0] == i:
            for f in range(nF):
                F[b + OL + f] = OF[ob + f]


def _next_pow2(n: int) -> int:
    c = 1
    while c < n:
        c <<= 1
    return c


class Layout:
    """Offsets of one state row for a FeatureConfig (layout version ``LAYOUT_VERSION``).

    The row is float64; the slots holding tick indices (window shift positions,
    recompute marks, deque head/tail/pointers/entries) are int64, read and
    written through ``row.view(np.int64)``.
    """

    version = LAYOUT_VERSION

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
             MACD_SIGNAL, self.deque, max(c.price_levels)],
            dtype=np.int64,
        )
        n = max(len(c.volatility_windows), len(c.volume_periods))
        inv = np.zeros((3, n), dtype=np.float64)
        vw = np.asarray(c.volatility_windows, dtype=np.float64)
        inv[0, :len(vw)] = 1.0 / vw
        inv[1, :len(vw)] = 1.0 / (vw - 1.0)
        inv[2, :len(c.volume_periods)] = 1.0 / np.asarray(c.volume_periods, dtype=np.float64)
        self.inverses = inv

    def blank(self) -> np.ndarray:
        row = np.zeros(self.width, dtype=np.float64)
        row[H_MID] = np.nan
        row[H_SPREAD] = np.nan
        row[self.last:] = np.nan
        return row
