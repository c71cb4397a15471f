"""Incremental per-symbol rolling features: the Numba kernel (the state row it
works on is laid out in :mod:`streaming.kernels.layout`).

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
  and price*volume sums (positive terms, no shift) use the same guard alone.
* min/max are exact (one monotonic deque for the nested price levels),
  RSI/EMA/MACD follow the TA-Lib recurrences and seeds operation for operation.

Null is NaN here; the event edge turns it into None.

Tick indices in the row (window shift positions, recompute marks, deque
entries) are int64 slots, read and written through ``row.view(np.int64)``.

Speed (see bench/results/features.md): the batch loop works on flat views of
the state and output arrays made once per batch and inlines every window
update by hand. A per-tick row view (``st[r]``) or an array passed to a
helper function costs an atomic reference-count increment and decrement per
tick, which was most of the old fixed cost. Steady-state windows multiply by
precomputed 1/w and 1/(w-1) (RSI keeps its TA-Lib divisions), and a
symbol's "last output" slots are written once per batch. Every array index
goes through ``_u`` (uint64): with a signed index Numba emits a negative-index
wraparound (compare + select) per access, ~150 of them per tick; all indices
here are >= 0. Volume ratio and vwap share one reciprocal of the volume sum,
and return_1 shares its division with the log return.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from streaming.kernels.layout import (
    H_COUNT,
    H_EMA_FAST,
    H_EMA_SLOW,
    H_MACD_FAST,
    H_MID,
    H_QUOTES,
    H_SIGNAL,
    H_SPREAD,
)

# exact recompute when the squares added/removed since the last one exceed this
# multiple of what is left: bounds the rounding error relative to M2 by ~n*eps*MASS_RATIO
MASS_RATIO = 1e3

_NAN = np.nan


@njit(inline="always")
def _u(x):
    # an unsigned index: Numba then skips the negative-index wraparound (a compare and
    # select per access); every index here is >= 0
    return np.uint64(x)


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
    n_fast = lay[11]
    n_slow = lay[12]
    n_sig = lay[13]
    a_fast = 2.0 / (n_fast + 1.0)
    a_slow = 2.0 / (n_slow + 1.0)
    a_sig = 2.0 / (n_sig + 1.0)
    # per-config constants: 1/w and 1/(w-1) of the variance windows, 1/v of the volume windows
    iV = inv[0]
    iV1 = inv[1]
    iVP = inv[2]
    nb = rows.shape[0]
    for i in range(nb):
        r = rows[_u(i)]
        scratch[_u(r), 0] = -1
        scratch[_u(r), 1] = -1
    for i in range(nb):
        if kinds[_u(i)] != 1:
            scratch[_u(rows[_u(i)]), 0] = i
    for i in range(nb):
        r = rows[_u(i)]
        b = r * W
        ob = i * nF
        if kinds[_u(i)] == 1:
            bid = x1[_u(i)]
            ask = x2[_u(i)]
            mid = (bid + ask) * 0.5
            spread = ask - bid
            F[_u(b + H_MID)] = mid
            F[_u(b + H_SPREAD)] = spread
            F[_u(b + H_QUOTES)] += 1.0
            F[_u(b + OL + cMID)] = mid
            F[_u(b + OL + cMID + 1)] = spread
            j = scratch[_u(r), 1]
            if j >= 0:
                jb = j * nF
                for f in range(cMID):
                    OF[_u(ob + f)] = OF[_u(jb + f)]
            else:
                for f in range(cMID):
                    OF[_u(ob + f)] = F[_u(b + OL + f)]
            OF[_u(ob + cMID)] = mid
            OF[_u(ob + cMID + 1)] = spread
            continue
        p = x1[_u(i)]
        q = x2[_u(i)]
        k = int(F[_u(b + H_COUNT)])
        F[_u(b + H_COUNT)] = k + 1
        km = k & m
        F[_u(b + OP + km)] = p
        F[_u(b + OQ + km)] = q
        # returns (p / p[k-1] is shared with the log return: one division less)
        if k >= 1:
            pp = F[_u(b + OP + ((k - 1) & m))]
            rat = p / pp
        else:
            pp = p
            rat = 1.0
        for j in range(nR):
            n = R[_u(j)]
            if k >= n:
                OF[_u(ob + j)] = (rat if n == 1 else p / F[_u(b + OP + ((k - n) & m))]) - 1.0
            else:
                OF[_u(ob + j)] = _NAN
        # log returns -> volatility; price changes -> RSI
        if k >= 1:
            kr = k - 1
            F[_u(b + OR + (kr & m))] = math.log(rat)
            ch = p - pp
            for j in range(nM):
                n = M[_u(j)]
                og = ORSI + 2 * j
                if k <= n:
                    if ch < 0.0:
                        F[_u(b + og + 1)] -= ch
                    else:
                        F[_u(b + og)] += ch
                    if k == n:
                        F[_u(b + og)] /= n
                        F[_u(b + og + 1)] /= n
                    g = F[_u(b + og)]
                    lo = F[_u(b + og + 1)]
                else:
                    g = F[_u(b + og)] * (n - 1)
                    lo = F[_u(b + og + 1)] * (n - 1)
                    if ch < 0.0:
                        lo -= ch
                    else:
                        g += ch
                    g = g / n
                    lo = lo / n
                    F[_u(b + og)] = g
                    F[_u(b + og + 1)] = lo
                if k >= n:
                    sg = g + lo
                    OF[_u(ob + cM + j)] = 100.0 * (g / sg) if sg != 0.0 else 0.0
                else:
                    OF[_u(ob + cM + j)] = _NAN
        else:
            for j in range(nV):
                OF[_u(ob + cV + j)] = _NAN
            for j in range(nM):
                OF[_u(ob + cM + j)] = _NAN
        # volume mean, ratio, vwap: running sums of positive terms, recomputed exactly
        # only when what was added/removed since the last recompute dwarfs what is left
        # (no periodic recompute: each rounding error is ~eps of the sum itself, and the
        # guard fires long before they add up; slot 4 keeps the tick of the last one)
        for j in range(nVP):
            v = VP[_u(j)]
            ov = OVM + 6 * j
            recompute = k == 0
            if not recompute:
                pq = p * q
                sq = F[_u(b + ov)] + q
                spq = F[_u(b + ov + 1)] + pq
                mass = F[_u(b + ov + 2)] + q
                mass_pq = F[_u(b + ov + 3)] + pq
                nnz = F[_u(b + ov + 5)] + (1.0 if q != 0.0 else 0.0)
                if k >= v:
                    t = (k - v) & m
                    qq = F[_u(b + OQ + t)]
                    pq = F[_u(b + OP + t)] * qq
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
                    qq = F[_u(b + OQ + (t & m))]
                    sq += qq
                    spq += F[_u(b + OP + (t & m))] * qq
                    if qq != 0.0:
                        nnz += 1.0
                mass = sq
                mass_pq = spq
                I[_u(b + ov + 4)] = k
            F[_u(b + ov)] = sq
            F[_u(b + ov + 1)] = spq
            F[_u(b + ov + 2)] = mass
            F[_u(b + ov + 3)] = mass_pq
            F[_u(b + ov + 5)] = nnz
            if k >= v - 1:
                if nnz > 0.0:
                    # one reciprocal for the ratio and the vwap (a few ulps, within 1e-12 rel.)
                    rs = 1.0 / sq
                    OF[_u(ob + cVMA + j)] = sq * iVP[_u(j)]
                    OF[_u(ob + cVR + j)] = (q * v) * rs
                    OF[_u(ob + cVW + j)] = spq * rs
                else:
                    OF[_u(ob + cVMA + j)] = 0.0
                    OF[_u(ob + cVR + j)] = _NAN
                    OF[_u(ob + cVW + j)] = _NAN
            else:
                OF[_u(ob + cVMA + j)] = _NAN
                OF[_u(ob + cVR + j)] = _NAN
                OF[_u(ob + cVW + j)] = _NAN
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
            ww = V[_u(jw)]
            xw = F[_u(rw + (kk & m))]
            if kk >= ww - 1:
                nw = ww
                inv_n = iV[_u(jw)]
            else:
                nw = kk + 1
                inv_n = 1.0 / nw
            if kk == 0 or kk - I[_u(ow + 4)] >= ww:
                recompute = True  # the shift is leaving the window: re-centre on the newest value
            else:
                cw = F[_u(ow + 3)]
                dw = xw - cw
                s1 = F[_u(ow)] + dw
                d2 = dw * dw
                s2 = F[_u(ow + 1)] + d2
                mass = F[_u(ow + 2)] + d2
                if kk >= ww:
                    dy = F[_u(rw + ((kk - ww) & m))] - cw
                    dy2 = dy * dy
                    s1 -= dy
                    s2 -= dy2
                    mass += dy2
                m2 = s2 - s1 * s1 * inv_n
                # rounding error of the running sums is ~ n * eps * mass: keep it below
                # ~1e-11 of M2, else recompute exactly (this also makes a flat window exactly 0)
                recompute = m2 * MASS_RATIO < mass
                if not recompute:
                    F[_u(ow)] = s1
                    F[_u(ow + 1)] = s2
                    F[_u(ow + 2)] = mass
            if recompute:
                s1 = 0.0
                s2 = 0.0
                for tw in range(kk - nw + 1, kk + 1):
                    dw = F[_u(rw + (tw & m))] - xw
                    s1 += dw
                    s2 += dw * dw
                F[_u(ow)] = s1
                F[_u(ow + 1)] = s2
                F[_u(ow + 2)] = s2
                F[_u(ow + 3)] = xw
                I[_u(ow + 4)] = kk
                m2 = s2 - s1 * s1 * inv_n
            if m2 < 0.0:
                m2 = 0.0
            if jj < nV:
                if kk >= ww - 1:
                    OF[_u(ob + cV + jw)] = math.sqrt(m2 * iV1[_u(jw)])
                else:
                    OF[_u(ob + cV + jw)] = _NAN
            elif kk >= ww - 1 and m2 > 0.0:
                OF[_u(ob + cZ + jw)] = ((p - F[_u(ow + 3)]) - s1 * iV[_u(jw)]) / math.sqrt(m2 * iV1[_u(jw)])
            else:
                OF[_u(ob + cZ + jw)] = _NAN
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
            head = I[_u(od)]
            tail = I[_u(od + 1)]
            if tail > head and I[_u(bq + (head & dm))] <= k - nmax:
                head += 1
            while tail > head:
                y = F[_u(b + OP + (I[_u(bq + ((tail - 1) & dm))] & m))]
                if (y >= p) if side == 0 else (y <= p):
                    tail -= 1
                else:
                    break
            I[_u(bq + (tail & dm))] = k
            tail += 1
            I[_u(od)] = head
            I[_u(od + 1)] = tail
            col = ob + (cSUP if side == 0 else cRES)
            for j in range(nL):
                n = L[_u(j)]
                f = I[_u(od + 2 + j)]
                if f < head:
                    f = head
                if f > tail - 1:
                    f = tail - 1
                idx = I[_u(bq + (f & dm))]
                if idx <= k - n:
                    f += 1
                    idx = I[_u(bq + (f & dm))]
                I[_u(od + 2 + j)] = f
                if k >= n - 1:
                    OF[_u(col + j)] = F[_u(b + OP + (idx & m))]
                else:
                    OF[_u(col + j)] = _NAN
        # EMAs the TA-Lib way: null until the span is seen, seeded by the simple mean of the
        # first n values (the slot holds their running sum until then), then the recurrence.
        # MACD is TA-Lib's: its fast EMA (H_MACD_FAST) is seeded on the n_fast prices that end
        # where the slow EMA becomes valid, so it differs from ema_fast until that seed fades.
        # The signal is the EMA of the MACD values, seeded by the mean of the first n_sig.
        if k < n_fast:
            ef = F[_u(b + H_EMA_FAST)] + p
            if k == n_fast - 1:
                ef = ef / n_fast
        else:
            ef = F[_u(b + H_EMA_FAST)]
            ef = (p - ef) * a_fast + ef
        if k < n_slow:
            es = F[_u(b + H_EMA_SLOW)] + p
            if k == n_slow - 1:
                es = es / n_slow
        else:
            es = F[_u(b + H_EMA_SLOW)]
            es = (p - es) * a_slow + es
        mf = F[_u(b + H_MACD_FAST)]
        if k < n_slow - n_fast:
            pass
        elif k < n_slow:
            mf = mf + p
            if k == n_slow - 1:
                mf = mf / n_fast
        else:
            mf = (p - mf) * a_fast + mf
        sig = F[_u(b + H_SIGNAL)]
        macd = _NAN
        if k >= n_slow - 1:
            macd = mf - es
            if k < n_slow - 1 + n_sig:
                sig = sig + macd
                if k == n_slow - 2 + n_sig:
                    sig = sig / n_sig
            else:
                sig = (macd - sig) * a_sig + sig
        F[_u(b + H_EMA_FAST)] = ef
        F[_u(b + H_EMA_SLOW)] = es
        F[_u(b + H_MACD_FAST)] = mf
        F[_u(b + H_SIGNAL)] = sig
        OF[_u(ob + cEMA)] = ef if k >= n_fast - 1 else _NAN
        OF[_u(ob + cEMA + 1)] = es if k >= n_slow - 1 else _NAN
        OF[_u(ob + cEMA + 2)] = macd
        OF[_u(ob + cEMA + 3)] = sig if k >= n_slow - 2 + n_sig else _NAN
        OF[_u(ob + cMID)] = F[_u(b + H_MID)]
        OF[_u(ob + cMID + 1)] = F[_u(b + H_SPREAD)]
        scratch[_u(r), 1] = i
        if scratch[_u(r), 0] == i:
            for f in range(nF):
                F[_u(b + OL + f)] = OF[_u(ob + f)]
