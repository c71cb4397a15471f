"""FeatureEngine: per-symbol state rows (grown by doubling) and the batch update call."""

from __future__ import annotations

import numpy as np

from streaming.kernels.config import FeatureConfig
from streaming.kernels.features import _update
from streaming.kernels.layout import H_COUNT, Layout


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
        # per row: index of its last price event in the current batch, of its latest so far
        self._scratch = np.empty((self.state.shape[0], 2), dtype=np.int64)
        lay = self.layout
        self._args = (*self._params, lay.inverses, lay.array)
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
                self._scratch = np.empty((grown.shape[0], 2), dtype=np.int64)
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
        n = rows.shape[0]
        if out is None:
            out = self.new_out(n)
        if out.shape != (n, self.n_features):
            raise ValueError(f"out has shape {out.shape}, expected {(n, self.n_features)}")
        dst = out if out.flags.c_contiguous and out.dtype == np.float64 else self.new_out(n)
        _update(self.state, *self._args,
                np.ascontiguousarray(kinds, dtype=np.int8), rows,
                np.ascontiguousarray(x1, dtype=np.float64),
                np.ascontiguousarray(x2, dtype=np.float64), dst, self._scratch)
        if dst is not out:
            out[...] = dst
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
