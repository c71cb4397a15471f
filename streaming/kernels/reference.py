"""The reference twin: the same features by full recompute with numpy/pandas.

Used only by tests and benchmarks. Windowed statistics are recomputed from
scratch for every row (two-pass mean/std on the window, shifted by the
window's first value so that large price levels cost no precision); RSI,
EMAs and MACD follow the same TA-Lib recurrences and seeds as the kernels, in
plain Python.
No incremental state is shared with ``streaming.kernels.features``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from streaming.kernels.config import EMA_FAST, EMA_SLOW, MACD_SIGNAL, FeatureConfig


def _window_std_z(x: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """For each full window ending at i: sample std and (x_i - mean)/std (NaN if std == 0)."""
    n = x.shape[0]
    std = np.full(n, np.nan)
    z = np.full(n, np.nan)
    if n >= w:
        win = sliding_window_view(x, w)
        d = win - win[:, :1]
        mean = d.mean(axis=1)
        s = np.sqrt(((d - mean[:, None]) ** 2).sum(axis=1) / (w - 1))
        std[w - 1:] = s
        with np.errstate(divide="ignore", invalid="ignore"):
            zz = (d[:, -1] - mean) / s
        zz[s == 0.0] = np.nan
        z[w - 1:] = zz
    return std, z


def _ema(x: list[float], n: int, first: int = 0) -> list[float]:
    """TA-Lib EMA of ``x[first:]``: NaN before row first + n - 1, which is the mean of
    ``x[first:first + n]``; then the recurrence."""
    a = 2.0 / (n + 1.0)
    out = [np.nan] * len(x)
    if len(x) < first + n:
        return out
    total = 0.0
    for v in x[first:first + n]:
        total += v
    e = total / n
    out[first + n - 1] = e
    for i in range(first + n, len(x)):
        e = (x[i] - e) * a + e
        out[i] = e
    return out


def _rsi(p: list[float], n: int) -> np.ndarray:
    """TA-Lib RSI: simple means of the first n changes, then Wilder smoothing."""
    out = np.full(len(p), np.nan)
    if len(p) <= n:
        return out
    gain = loss = 0.0
    for i in range(1, n + 1):
        ch = p[i] - p[i - 1]
        if ch < 0:
            loss -= ch
        else:
            gain += ch
    gain /= n
    loss /= n
    s = gain + loss
    out[n] = 100.0 * (gain / s) if s != 0.0 else 0.0
    for i in range(n + 1, len(p)):
        ch = p[i] - p[i - 1]
        gain *= n - 1
        loss *= n - 1
        if ch < 0:
            loss -= ch
        else:
            gain += ch
        gain /= n
        loss /= n
        s = gain + loss
        out[i] = 100.0 * (gain / s) if s != 0.0 else 0.0
    return out


def reference_features(prices, sizes=None, config: FeatureConfig | None = None) -> pd.DataFrame:
    """All features of one price/size series, one row per input, NaN for null."""
    cfg = config or FeatureConfig()
    p = np.asarray(prices, dtype=np.float64)
    q = np.zeros_like(p) if sizes is None else np.asarray(sizes, dtype=np.float64)
    n = p.shape[0]
    ps = pd.Series(p)
    cols: dict[str, np.ndarray] = {}
    for r in cfg.return_periods:
        cols[f"return_{r}"] = (ps / ps.shift(r) - 1.0).to_numpy()
    lr = np.log(p[1:] / p[:-1])
    zs = {}
    for w in cfg.volatility_windows:
        std, _ = _window_std_z(lr, w)
        cols[f"volatility_{w}"] = np.concatenate([[np.nan], std])
        zs[w] = _window_std_z(p, w)[1]
    pl = p.tolist()
    for m in cfg.momentum_periods:
        cols[f"rsi_{m}"] = _rsi(pl, m)
    vma, vwap = {}, {}
    for v in cfg.volume_periods:
        ma = np.full(n, np.nan)
        vw = np.full(n, np.nan)
        if n >= v:
            qw = sliding_window_view(q, v)
            pqw = sliding_window_view(p * q, v)
            sq = qw.sum(axis=1)
            ma[v - 1:] = sq / v
            with np.errstate(divide="ignore", invalid="ignore"):
                vw[v - 1:] = np.where(sq != 0.0, pqw.sum(axis=1) / sq, np.nan)
        vma[v] = ma
        vwap[v] = vw
    for v in cfg.volume_periods:
        cols[f"volume_ma_{v}"] = vma[v]
    for v in cfg.volume_periods:
        with np.errstate(divide="ignore", invalid="ignore"):
            cols[f"volume_ratio_{v}"] = np.where(vma[v] != 0.0, q / vma[v], np.nan)
    for lv in cfg.price_levels:
        cols[f"support_{lv}"] = ps.rolling(lv).min().to_numpy()
    for lv in cfg.price_levels:
        cols[f"resistance_{lv}"] = ps.rolling(lv).max().to_numpy()
    for w in cfg.volatility_windows:
        cols[f"zscore_{w}"] = zs[w]
    es = _ema(pl, EMA_SLOW)
    # TA-Lib's MACD seeds its fast EMA on the EMA_FAST prices ending where the slow one starts
    macd_fast = _ema(pl, EMA_FAST, first=EMA_SLOW - EMA_FAST)
    macd = [a - b for a, b in zip(macd_fast, es)]
    cols[f"ema_{EMA_FAST}"] = np.array(_ema(pl, EMA_FAST))
    cols[f"ema_{EMA_SLOW}"] = np.array(es)
    cols["macd"] = np.array(macd)
    cols["macd_signal"] = np.array(_ema(macd, MACD_SIGNAL, first=EMA_SLOW - 1))
    for v in cfg.volume_periods:
        cols[f"vwap_{v}"] = vwap[v]
    cols["mid"] = np.full(n, np.nan)
    cols["spread"] = np.full(n, np.nan)
    df = pd.DataFrame(cols)
    return df[cfg.feature_names()]
