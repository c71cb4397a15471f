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
