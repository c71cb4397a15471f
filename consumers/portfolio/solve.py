"""One optimization over a price window, exactly as the portfolio consumer runs it. Pure.

Both the consumer's rebalances and ``ticktide optimize`` call ``optimize_window``:
estimates (``risk_models.estimate``) over the window, the scenario returns for
``max_drawdown``, and ``optimizer.optimize`` with the config's objective,
constraints and risk-free rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from consumers.portfolio.config import PortfolioConfig
from consumers.portfolio.optimizer import Constraints, OptimizationResult, optimize
from consumers.portfolio.risk_models import estimate, returns_from_prices


@dataclass
class WindowResult:
    result: OptimizationResult
    mu: pd.Series
    cov: pd.DataFrame


def optimize_window(prices: pd.DataFrame, cfg: PortfolioConfig, *, current_weights: dict[str, float] | None = None,
                    constraints: Constraints | None = None, objective: str | None = None,
                    target_volatility: float | None = None) -> WindowResult:
    """The optimal portfolio over ``prices`` (rows: periods, oldest first; one column per symbol)."""
    c = constraints if constraints is not None else cfg.optimizer_constraints()
    mu, cov = estimate(prices, cfg.risk_model, cfg.frequency, cfg.n_factors)
    scenarios = returns_from_prices(prices) if c.max_drawdown is not None else None
    res = optimize(mu, cov, objective or cfg.objective, c, risk_free_rate=cfg.risk_free_rate,
                   target_volatility=target_volatility if target_volatility is not None else cfg.target_volatility,
                   current_weights=current_weights, scenarios=scenarios)
    return WindowResult(res, mu, cov)


@dataclass
class FrontierPoint:
    volatility: float
    expected_return: float
    sharpe: float | None
    weights: dict[str, float]


def efficient_frontier(prices: pd.DataFrame, cfg: PortfolioConfig, points: int = 20) -> list[FrontierPoint]:
    """``points`` portfolios from the lowest volatility to the highest return within the config's constraints.

    Each point is ``max_return`` at a target volatility spaced evenly between the
    min-variance portfolio's volatility and the unconstrained-volatility max-return
    portfolio's; a target the constraints cannot meet is left out.
    """
    from consumers.portfolio.optimizer import InfeasibleError, OptimizationError

    if points < 2:
        raise ValueError("the frontier needs at least 2 points")
    low = optimize_window(prices, cfg, objective="min_variance").result
    high_cap = float(4.0 * max(low.volatility, 1e-6) + 10.0)  # loose enough never to bind
    high = optimize_window(prices, cfg, objective="max_return", target_volatility=high_cap).result
    out: list[FrontierPoint] = []
    for i in range(points):
        target = low.volatility + (high.volatility - low.volatility) * i / (points - 1)
        try:
            res = low if i == 0 else optimize_window(prices, cfg, objective="max_return",
                                                     target_volatility=target * (1 + 1e-9)).result
        except (InfeasibleError, OptimizationError):
            continue
        out.append(FrontierPoint(res.volatility, res.expected_return, res.sharpe, res.weights))
    return out
