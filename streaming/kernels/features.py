"""Incremental per-symbol rolling features: Numba kernels and the state layout.

Each symbol's whole state is one row of a preallocated 2-D float64 array:
ring buffers (prices, log returns, sizes), compensated running sums,
Wilder averages, EMAs, monotonic deques for rolling min/max and the last
output vector. One compiled call (``_update``) processes a whole batch of
events of many symbols, in order; there is no Python call per tick.

Numerics (why the results equal a full recompute to ~1e-13 relative):

* mean/variance windows (volatility on log returns, z-score on prices) keep
  *shifted* sums S1 = sum(x - c), S2 = sum((x - c)^2) where the shift ``c`` is
  always a value inside the current window (it is reset to the newest value
  by an exact recompute from the ring at least every ``w`` updates). By
  Samuelson's inequality the cancellation in ``S2 - S1^2/n`` is then at most
  a factor ``n``, whatever the price level (6e4, 1e5 ...).
* the sums are compensated (TwoSum), so adding and later removing the same
  value leaves ~eps^2 residue; removing a value that dominates what is left
  (a jump leaving the window, the start of a flat stretch) triggers an exact
  recompute, so a flat window gives exactly 0 variance.
* min/max are exact (monotonic deques), RSI/EMA follow the TA-Lib recurrences
  operation for operation.

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

# dominant-removal threshold: removing a term with d^2 > S2_left / REMOVE_RATIO recomputes
REMOVE_RATIO = 1e-3

_NAN = np.nan


@njit(cache=True)
def _kadd(st, r, i, x):
    """st[r, i] + st[r, i+1] += x, compensated (Knuth TwoSum)."""
    s = st[r, i]
    t = s + x
    bp = t - s
    st[r, i + 1] += (s - (t - bp)) + (x - bp)
    st[r, i] = t


@njit(cache=True)
def _win_push(st, r, ring, m, k, w, o):
    """Add value k of ``ring`` (already stored) to the shifted-sum window at ``o``.

    Slots at o: S1, S1c, S2, S2c, shift, index of the shift value.
    Returns (M2, S1, n): M2 = sum of squared deviations of the last n values.
    """
    x = st[r, ring + (k & m)]
    n = k + 1 if k + 1 < w else w
    recompute = k == 0 or k - int(st[r, o + 5]) >= w
    if not recompute:
        c = st[r, o + 4]
        d = x - c
        _kadd(st, r, o, d)
        _kadd(st, r, o + 2, d * d)
        if k >= w:
            dy = st[r, ring + ((k - w) & m)] - c
            dy2 = dy * dy
            _kadd(st, r, o, -dy)
            _kadd(st, r, o + 2, -dy2)
            if st[r, o + 2] + st[r, o + 3] < REMOVE_RATIO * dy2:
                recompute = True
    if recompute:
        st[r, o + 4] = x
        st[r, o + 5] = k
        for j in range(4):
            st[r, o + j] = 0.0
        for i in range(k - n + 1, k + 1):
            d = st[r, ring + (i & m)] - x
            _kadd(st, r, o, d)
            _kadd(st, r, o + 2, d * d)
    s1 = st[r, o] + st[r, o + 1]
    s2 = st[r, o + 2] + st[r, o + 3]
    m2 = s2 - s1 * s1 / n
    if m2 < 0.0:
        m2 = 0.0
    return m2, s1, n


@njit(cache=True)
def _deque_push(st, r, o, n, P, m, k, x, want_min):
    """Monotonic deque at o (slots: head, len, n indices); returns the window extreme."""
    head = int(st[r, o])
    ln = int(st[r, o + 1])
    b = o + 2
    if ln > 0 and int(st[r, b + head]) <= k - n:
        head += 1
        if head == n:
            head = 0
        ln -= 1
    while ln > 0:
        j = head + ln - 1
        if j >= n:
            j -= n
        y = st[r, P + (int(st[r, b + j]) & m)]
        if (y >= x) if want_min else (y <= x):
            ln -= 1
        else:
            break
    j = head + ln
    if j >= n:
        j -= n
    st[r, b + j] = k
    ln += 1
    st[r, o] = head
    st[r, o + 1] = ln
    return st[r, P + (int(st[r, b + head]) & m)]


@njit(cache=True)
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
        # volume mean, ratio, vwap: compensated sums, exact recompute every v updates
        for j in range(nVP):
            v = VP[j]
            o = OVM + 6 * j
            if k == 0 or k - int(st[r, o + 4]) >= v:
                n = k + 1 if k + 1 < v else v
                for t in range(4):
                    st[r, o + t] = 0.0
                st[r, o + 5] = 0.0
                for t in range(k - n + 1, k + 1):
                    qq = st[r, OQ + (t & m)]
                    _kadd(st, r, o, qq)
                    _kadd(st, r, o + 2, st[r, OP + (t & m)] * qq)
                    if qq != 0.0:
                        st[r, o + 5] += 1.0
                st[r, o + 4] = k
            else:
                _kadd(st, r, o, q)
                _kadd(st, r, o + 2, p * q)
                if q != 0.0:
                    st[r, o + 5] += 1.0
                if k >= v:
                    t = (k - v) & m
                    qq = st[r, OQ + t]
                    _kadd(st, r, o, -qq)
                    _kadd(st, r, o + 2, -(st[r, OP + t] * qq))
                    if qq != 0.0:
                        st[r, o + 5] -= 1.0
            if k >= v - 1:
                if st[r, o + 5] > 0.0:
                    sq = st[r, o] + st[r, o + 1]
                    ma = sq / v
                    st[r, OL + cVMA + j] = ma
                    st[r, OL + cVR + j] = q / ma
                    st[r, OL + cVW + j] = (st[r, o + 2] + st[r, o + 3]) / sq
                else:
                    st[r, OL + cVMA + j] = 0.0
                    st[r, OL + cVR + j] = _NAN
                    st[r, OL + cVW + j] = _NAN
            else:
                st[r, OL + cVMA + j] = _NAN
                st[r, OL + cVR + j] = _NAN
                st[r, OL + cVW + j] = _NAN
        # support / resistance
        o = ODQ
        for j in range(nL):
            n = L[j]
            lo = _deque_push(st, r, o, n, OP, m, k, p, True)
            o += 2 + n
            hi = _deque_push(st, r, o, n, OP, m, k, p, False)
            o += 2 + n
            if k >= n - 1:
                st[r, OL + cSUP + j] = lo
                st[r, OL + cRES + j] = hi
            else:
                st[r, OL + cSUP + j] = _NAN
                st[r, OL + cRES + j] = _NAN
        # z-score of the price in its window
        for j in range(nV):
            w = V[j]
            oz = OZ + 6 * j
            m2, s1, n = _win_push(st, r, OP, m, k, w, oz)
            if k >= w - 1 and m2 > 0.0:
                st[r, OL + cZ + j] = ((p - st[r, oz + 4]) - s1 / w) / math.sqrt(m2 / (w - 1))
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
        o += sum(2 * (2 + n) for n in c.price_levels)
        self.last = o
        o += len(self.names)
        self.width = o
        self.array = np.array(
            [self.ring, self.prices, self.log_returns, self.sizes, self.vol, self.zscore,
             self.rsi, self.volume, self.deques, self.last, len(self.names), EMA_FAST, EMA_SLOW,
             MACD_SIGNAL],
            dtype=np.int64,
        )

    def blank(self) -> np.ndarray:
        row = np.zeros(self.width, dtype=np.float64)
        row[H_MID] = np.nan
        row[H_SPREAD] = np.nan
        row[self.last:] = np.nan
        return row


class FeatureEngine:
    """Rows of state for many symbols and the compiled batch update.

    ``add_symbol(key) -> row``; ``update(kinds, rows, x1, x2, out)`` for a mixed,
    ordered batch; ``update_trades``/``update_quotes`` for homogeneous batches.
    """

    def __init__(self, config: FeatureConfig | None = None, capacity: int = 16):
        self.config = config or FeatureConfig()
        self.layout = Layout(self.config)
        self.names = self.layout.names
        self.n_features = len(self.names)
        self._params = tuple(
            np.asarray(v, dtype=np.int64)
            for v in (self.config.return_periods, self.config.volatility_windows,
                      self.config.momentum_periods, self.config.volume_periods,
                      self.config.price_levels)
        )
        self.state = np.empty((max(1, capacity), self.layout.width), dtype=np.float64)
        self._rows: dict[object, int] = {}
        self._keys: list[object | None] = []
        self._free: list[int] = []

    # -- rows ----------------------------------------------------------------
    @property
    def state_bytes_per_symbol(self) -> int:
        return self.layout.width * 8

    def __len__(self) -> int:
        return len(self._rows)

    def row_of(self, key) -> int | None:
        return self._rows.get(key)

    def add_symbol(self, key) -> int:
        """The row of ``key``, allocated (blank) on first sight; the array doubles when full."""
        row = self._rows.get(key)
        if row is not None:
            return row
        if self._free:
            row = self._free.pop()
            self._keys[row] = key
        else:
            row = len(self._keys)
            if row >= self.state.shape[0]:
                grown = np.empty((self.state.shape[0] * 2, self.layout.width), dtype=np.float64)
                grown[:row] = self.state[:row]
                self.state = grown
            self._keys.append(key)
        self.state[row] = self.layout.blank()
        self._rows[key] = row
        return row

    def remove_symbol(self, key) -> None:
        row = self._rows.pop(key, None)
        if row is not None:
            self._keys[row] = None
            self._free.append(row)

    def keys(self) -> list:
        return list(self._rows)

    def count(self, row: int) -> int:
        """Prices (trades/bars) processed by ``row``."""
        return int(self.state[row, H_COUNT])

    def state_of(self, row: int) -> bytes:
        return self.state[row].tobytes()

    def load_state(self, row: int, data: bytes) -> None:
        arr = np.frombuffer(data, dtype=np.float64)
        if arr.shape[0] != self.layout.width:
            raise ValueError(f"state has {arr.shape[0]} slots, this layout needs {self.layout.width}")
        self.state[row] = arr

    # -- updates -------------------------------------------------------------
    def new_out(self, n: int) -> np.ndarray:
        return np.empty((n, self.n_features), dtype=np.float64)

    def update(self, kinds, rows, x1, x2, out=None) -> np.ndarray:
        """Process an ordered batch: kind 0 = (price, size), kind 1 = (bid, ask)."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if out is None:
            out = self.new_out(rows.shape[0])
        _update(self.state, *self._params, self.layout.array,
                np.ascontiguousarray(kinds, dtype=np.int8), rows,
                np.ascontiguousarray(x1, dtype=np.float64),
                np.ascontiguousarray(x2, dtype=np.float64), out)
        return out

    def update_trades(self, rows, prices, sizes, out=None) -> np.ndarray:
        n = len(rows)
        return self.update(np.zeros(n, dtype=np.int8), rows, prices, sizes, out)

    def update_quotes(self, rows, bids, asks, out=None) -> np.ndarray:
        n = len(rows)
        return self.update(np.ones(n, dtype=np.int8), rows, bids, asks, out)


def compute(prices, sizes=None, config: FeatureConfig | None = None) -> np.ndarray:
    """Features of one series (convenience for tests and the CLI): an (n, n_features) array."""
    eng = FeatureEngine(config, capacity=1)
    row = eng.add_symbol(0)
    prices = np.asarray(prices, dtype=np.float64)
    sizes = np.zeros_like(prices) if sizes is None else np.asarray(sizes, dtype=np.float64)
    return eng.update_trades(np.full(prices.shape[0], row, dtype=np.int64), prices, sizes)
