"""Stress scenarios over portfolio weights and asset return history. Pure numpy.

Inputs: ``weights`` (symbol -> signed fraction of portfolio value; cash is
the rest), per-asset periodic (daily) returns ``history`` (symbol -> array,
aligned, NaN where missing) and optional relative ``spreads`` (symbol ->
(ask - bid) / mid). Every result is a fraction of portfolio value, negative
for a loss, with the position that loses most.

``market_crash``      the market falls ``crash_shock`` (-30 %). With a
    benchmark, each position moves ``beta * shock`` (beta of its daily returns
    to the benchmark's over the common history, clipped to [-3, 3]; 1 for a
    symbol without history), so a short or negative-beta position gains.
    Without a benchmark the shock is applied uniformly to every position (and
    the ``method`` says so).
``volatility_spike_var95`` (function ``volatility_spike``): not a replayed path
    but a loss quantile, hence the name: the 10-day (``vol_days``) 95 % parametric
    VaR with every volatility multiplied by ``vol_multiplier`` (2), ``z95 * multiplier * sigma * sqrt(days)``, per
    position with its own sigma and for the portfolio with the covariance.
``liquidity_crisis``  liquidity falls by ``drop`` (50 %) for ``days`` (5):
    spreads widen by ``1 / (1 - drop)`` and an exit takes ``days`` days
    instead of one. Loss = half the widened spread on every position
    (crossing it to exit) plus the 95 % market loss while exiting linearly
    over ``days`` (variance of a linearly decaying exposure: ``sigma^2 *
    days / 3``).
``historical_worst_window`` the worst ``historical_days`` (21) window of
    compounded returns of the benchmark (or, without one, of the portfolio
    at today's weights) in the loaded history, replayed on today's weights:
    each position compounds its own returns over those days.

Every result carries a one-line ``method`` saying how it was computed.
Without enough history (fewer than 2 complete rows) a daily sigma of
``default_daily_vol`` and zero correlation are assumed.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Mapping

import msgspec
import numpy as np

from schemas.events import StressResult

Z95 = NormalDist().inv_cdf(0.05)  # -1.6449


class StressConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Scenario parameters; also the ``[stress]`` table of the risk config."""

    crash_shock: float = -0.30
    crash_days: int = 21
    vol_multiplier: float = 2.0
    vol_days: int = 10
    liquidity_drop: float = 0.50
    liquidity_days: int = 5
    default_spread: float = 0.001  # 10 bp when no spread is known
    default_daily_vol: float = 0.02
    historical_days: int = 21  # the window of historical_worst_window


def _matrix(symbols: list[str], history: Mapping[str, np.ndarray] | None) -> np.ndarray:
    if not history or not symbols or any(s not in history for s in symbols):
        return np.empty((0, len(symbols)))
    cols = [np.asarray(history[s], dtype=float) for s in symbols]
    n = min(len(c) for c in cols)
    m = np.column_stack([c[len(c) - n:] for c in cols]) if n else np.empty((0, len(symbols)))
    return m[~np.isnan(m).any(axis=1)]


def _covariance(symbols, history, cfg: StressConfig) -> np.ndarray:
    m = _matrix(symbols, history)
    if m.shape[0] < 2:
        return np.eye(len(symbols)) * cfg.default_daily_vol ** 2
    return np.atleast_2d(np.cov(m, rowvar=False, ddof=1))


def _betas(symbols, history, benchmark: np.ndarray) -> tuple[np.ndarray, int]:
    """Each symbol's beta to the benchmark over their common history (1 without it); the rows used."""
    out, rows = [], 0
    for s in symbols:
        m = _matrix([s, "__benchmark__"], {s: history[s], "__benchmark__": benchmark}) \
            if history and s in history else np.empty((0, 2))
        var = np.var(m[:, 1], ddof=1) if m.shape[0] >= 2 else 0.0
        if var <= 0:
            out.append(1.0)
            continue
        rows = max(rows, m.shape[0])
        out.append(float(np.clip(np.cov(m[:, 0], m[:, 1], ddof=1)[0, 1] / var, -3.0, 3.0)))
    return np.array(out), rows


def _result(name: str, symbols: list[str], per_position: np.ndarray, total: float, method: str) -> StressResult:
    if len(symbols) == 0:
        return StressResult(scenario=name, portfolio_loss=0.0, method=method)
    i = int(np.argmin(per_position))
    return StressResult(scenario=name, portfolio_loss=float(total), worst_position=symbols[i],
                        worst_position_loss=float(per_position[i]), method=method)


def market_crash(weights: Mapping[str, float], history=None, cfg: StressConfig = StressConfig(),
                 benchmark: tuple[str, np.ndarray] | None = None) -> StressResult:
    """``benchmark``: (symbol, its periodic returns aligned with ``history``'s last rows)."""
    symbols = [s for s, w in weights.items() if w]
    w = np.array([weights[s] for s in symbols], dtype=float)
    shock = cfg.crash_shock
    if benchmark is None:
        per = w * shock
        method = (f"uniform {shock:.0%} shock on every position (no benchmark configured, "
                  "so betas are unknown)")
        return _result("market_crash", symbols, per, float(per.sum()), method)
    name, bench = benchmark
    beta, rows = _betas(symbols, history, np.asarray(bench, dtype=float))
    per = w * np.maximum(beta * shock, -1.0)
    method = (f"{name} falls {shock:.0%}; each position moves beta × {shock:.0%}, beta of its daily returns "
              f"to {name}'s over {rows} days (clipped to [-3, 3]; 1 without history)")
    return _result("market_crash", symbols, per, float(per.sum()), method)


def historical_worst_window(weights: Mapping[str, float], history=None, cfg: StressConfig = StressConfig(),
                            benchmark: tuple[str, np.ndarray] | None = None) -> StressResult:
    """The worst ``historical_days`` window of the benchmark (else the portfolio) replayed on ``weights``."""
    symbols = [s for s, w in weights.items() if w]
    w = np.array([weights[s] for s in symbols], dtype=float)
    name = "historical_worst_window"
    cols = dict(history or {})
    if benchmark is not None:
        cols["__benchmark__"] = np.asarray(benchmark[1], dtype=float)
    keys = symbols + (["__benchmark__"] if benchmark is not None else [])
    m = _matrix(keys, cols) if keys else np.empty((0, 0))
    if not symbols or m.shape[0] == 0:
        return _result(name, symbols, np.zeros(len(symbols)), 0.0, "no common return history to replay")
    assets = m[:, : len(symbols)]
    source = m[:, -1] if benchmark is not None else assets @ w
    what = benchmark[0] if benchmark is not None else "the portfolio at today's weights"
    n = max(1, min(cfg.historical_days, m.shape[0]))
    growth = np.cumprod(np.concatenate(([1.0], 1.0 + source)))
    window = growth[n:] / growth[:-n] - 1.0  # window ending at row i + n - 1
    i = int(np.argmin(window))
    moves = np.prod(1.0 + assets[i:i + n], axis=0) - 1.0
    per = w * moves
    ago = m.shape[0] - (i + n)
    method = (f"worst {n}-day window of {what} in {m.shape[0]} days of history ({window[i]:.2%}, ending "
              f"{ago} days before the last) replayed on today's weights, each position compounding its own returns")
    return _result(name, symbols, per, float(per.sum()), method)


def volatility_spike(weights: Mapping[str, float], history=None, cfg: StressConfig = StressConfig()) -> StressResult:
    symbols = [s for s, w in weights.items() if w]
    w = np.array([weights[s] for s in symbols], dtype=float)
    cov = _covariance(symbols, history, cfg)
    scale = cfg.vol_multiplier * math.sqrt(cfg.vol_days)
    per = Z95 * scale * np.abs(w) * np.sqrt(np.diag(cov))
    total = Z95 * scale * math.sqrt(max(float(w @ cov @ w), 0.0)) if symbols else 0.0
    method = (f"a loss quantile, not a replayed path: the {cfg.vol_days}-day 95% parametric VaR with every "
              f"volatility × {cfg.vol_multiplier:g}, z95 × {cfg.vol_multiplier:g} × sigma × sqrt({cfg.vol_days}), "
              "on the covariance of the daily returns")
    return _result("volatility_spike_var95", symbols, per, total, method)


def liquidity_crisis(weights: Mapping[str, float], history=None, spreads: Mapping[str, float] | None = None,
                     cfg: StressConfig = StressConfig()) -> StressResult:
    symbols = [s for s, w in weights.items() if w]
    w = np.array([weights[s] for s in symbols], dtype=float)
    spreads = spreads or {}
    widen = 1.0 / (1.0 - cfg.liquidity_drop)
    spread = np.array([spreads.get(s) or cfg.default_spread for s in symbols], dtype=float)
    cost = -np.abs(w) * spread * widen / 2.0
    cov = _covariance(symbols, history, cfg)
    horizon = math.sqrt(cfg.liquidity_days / 3.0)
    per = cost + Z95 * horizon * np.abs(w) * np.sqrt(np.diag(cov))
    total = float(cost.sum()) + (Z95 * horizon * math.sqrt(max(float(w @ cov @ w), 0.0)) if symbols else 0.0)
    method = (f"spreads widen × {1 / (1 - cfg.liquidity_drop):g} (half crossed to exit) plus the 95% parametric "
              f"loss while selling evenly over {cfg.liquidity_days} days")
    return _result("liquidity_crisis", symbols, per, total, method)


def run_all(weights: Mapping[str, float], history=None, spreads=None, cfg: StressConfig = StressConfig(),
            benchmark: tuple[str, np.ndarray] | None = None) -> list[StressResult]:
    """The four scenarios, in a fixed order; ``benchmark``: (symbol, its periodic returns)."""
    return [market_crash(weights, history, cfg, benchmark), volatility_spike(weights, history, cfg),
            liquidity_crisis(weights, history, spreads, cfg), historical_worst_window(weights, history, cfg, benchmark)]
