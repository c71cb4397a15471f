"""Stress scenarios over portfolio weights and asset return history. Pure numpy.

Inputs: ``weights`` (symbol -> signed fraction of portfolio value; cash is
the rest), per-asset periodic (daily) returns ``history`` (symbol -> array,
aligned, NaN where missing) and optional relative ``spreads`` (symbol ->
(ask - bid) / mid). Every result is a fraction of portfolio value, negative
for a loss, with the position that loses most.

``market_crash``      the market falls ``shock`` (-30 %) compounded evenly over
    ``days`` (21) days; each asset moves ``beta * shock`` (beta against the
    equal-weighted average of the assets in the history, clipped to
    [0, 3]; 1 without history). Short positions gain.
``volatility_spike``  volatility multiplied by ``multiplier`` (2) for ``days``
    (10) days: the 95 % parametric loss over the period,
    ``z95 * multiplier * sigma * sqrt(days)``, per position with its own
    sigma and for the portfolio with the covariance (diversification).
``liquidity_crisis``  liquidity falls by ``drop`` (50 %) for ``days`` (5):
    spreads widen by ``1 / (1 - drop)`` and an exit takes ``days`` days
    instead of one. Loss = half the widened spread on every position
    (crossing it to exit) plus the 95 % market loss while exiting linearly
    over ``days`` (variance of a linearly decaying exposure: ``sigma^2 *
    days / 3``).

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


def _betas(symbols, history, all_history) -> np.ndarray:
    universe = sorted(all_history) if all_history else symbols
    m = _matrix(list(universe), all_history)
    if m.shape[0] < 2:
        return np.ones(len(symbols))
    market = m.mean(axis=1)
    var = np.var(market, ddof=1)
    if var <= 0:
        return np.ones(len(symbols))
    idx = {s: i for i, s in enumerate(universe)}
    out = []
    for s in symbols:
        if s not in idx:
            out.append(1.0)
            continue
        beta = np.cov(m[:, idx[s]], market, ddof=1)[0, 1] / var
        out.append(float(np.clip(beta, 0.0, 3.0)))
    return np.array(out)


def _result(name: str, symbols: list[str], per_position: np.ndarray, total: float) -> StressResult:
    if len(symbols) == 0:
        return StressResult(scenario=name, portfolio_loss=0.0)
    i = int(np.argmin(per_position))
    return StressResult(scenario=name, portfolio_loss=float(total), worst_position=symbols[i],
                        worst_position_loss=float(per_position[i]))


def market_crash(weights: Mapping[str, float], history=None, cfg: StressConfig = StressConfig()) -> StressResult:
    symbols = [s for s, w in weights.items() if w]
    w = np.array([weights[s] for s in symbols], dtype=float)
    beta = _betas(symbols, history, history)
    daily = (1.0 + cfg.crash_shock) ** (1.0 / cfg.crash_days) - 1.0  # the market's path
    market_total = (1.0 + daily) ** cfg.crash_days - 1.0  # == shock
    asset_move = np.maximum(beta * market_total, -1.0)
    per = w * asset_move
    return _result("market_crash", symbols, per, float(per.sum()))


def volatility_spike(weights: Mapping[str, float], history=None, cfg: StressConfig = StressConfig()) -> StressResult:
    symbols = [s for s, w in weights.items() if w]
    w = np.array([weights[s] for s in symbols], dtype=float)
    cov = _covariance(symbols, history, cfg)
    scale = cfg.vol_multiplier * math.sqrt(cfg.vol_days)
    per = Z95 * scale * np.abs(w) * np.sqrt(np.diag(cov))
    total = Z95 * scale * math.sqrt(max(float(w @ cov @ w), 0.0)) if symbols else 0.0
    return _result("volatility_spike", symbols, per, total)


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
    return _result("liquidity_crisis", symbols, per, total)


def run_all(weights: Mapping[str, float], history=None, spreads=None,
            cfg: StressConfig = StressConfig()) -> list[StressResult]:
    """The three scenarios, in a fixed order."""
    return [market_crash(weights, history, cfg), volatility_spike(weights, history, cfg),
            liquidity_crisis(weights, history, spreads, cfg)]
