"""The state row of one symbol for the feature kernel (:mod:`streaming.kernels.features`).

Each symbol's whole state is one row of a preallocated 2-D float64 array: a
header (counts, EMAs, the last mid and spread), ring buffers (prices, log
returns, sizes), per-window running sums, Wilder averages, monotonic deques
for rolling min/max and the last output vector. ``Layout`` computes the
offsets for a FeatureConfig; the kernel receives them as ``Layout.array``.

Layout version 2 (``STATE_LAYOUT_VERSION``, part of the config fingerprint that
snapshots carry): the slots holding tick indices (window shift positions,
recompute marks, deque head/tail/pointers/entries) are int64 written through
``row.view(np.int64)`` instead of float64 values.
Layout version 3: EMAs hold the running sum of their seed window until the
span is seen (TA-Lib's SMA seed), and slot 7 holds MACD's own fast EMA.
"""

from __future__ import annotations

import numpy as np

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
H_MACD_FAST = 7  # MACD's own fast EMA (TA-Lib seeds it where the slow EMA starts)
HEADER = 8

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
