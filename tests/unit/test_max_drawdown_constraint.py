"""The ``max_drawdown`` portfolio constraint against riskfolio-lib's MDD upper bound on real prices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from consumers.portfolio.optimizer import Constraints, InfeasibleError, optimize
from consumers.portfolio.risk_models import estimate, returns_from_prices

DATA = Path(__file__).resolve().parents[1] / "data"

SYMBOLS = ["AAPL", "MA", "JPM", "WMT", "XOM", "PFE", "T", "BAC", "GE", "SBUX"]


@pytest.fixture(scope="module")
def window():
    px = pd.read_csv(DATA / "stock_prices_20.csv", index_col=0, parse_dates=True)
    return px[SYMBOLS].loc["2008-01-01":"2009-12-31"].dropna()


def _cumulative_mdd(returns: pd.DataFrame, weights: dict[str, float]) -> float:
    path = np.concatenate(([0.0], np.cumsum(returns[list(weights)].to_numpy() @ np.array(list(weights.values())))))
    return float(np.max(np.maximum.accumulate(path) - path))


def _riskfolio(returns: pd.DataFrame, obj: str, limit: float) -> dict[str, float]:
    import riskfolio as rp  # a dev dependency: missing is a failure, not a skip

    port = rp.Portfolio(returns=returns)
    port.assets_stats(method_mu="hist", method_cov="hist")
    port.uppermdd = limit
    w = port.optimization(model="Classic", rm="MV", obj=obj, rf=0, hist=True)
    assert w is not None, "riskfolio found no solution"
    return {s: float(w.loc[s, "weights"]) for s in returns.columns}


@pytest.mark.parametrize("objective,rf_obj,limit", [("min_variance", "MinRisk", 0.22), ("max_sharpe", "Sharpe", 0.30)])
def test_max_drawdown_matches_riskfolio_within_1e4_per_weight(window, objective, rf_obj, limit):
    returns = returns_from_prices(window)
    mu, cov = estimate(window)
    free = optimize(mu, cov, objective, Constraints(), scenarios=returns)
    assert _cumulative_mdd(returns, free.weights) > limit + 0.005  # the limit binds
    ours = optimize(mu, cov, objective, Constraints(max_drawdown=limit), scenarios=returns)
    ref = _riskfolio(returns, rf_obj, limit)
    assert max(abs(ours.weights[s] - ref[s]) for s in SYMBOLS) < 1e-4
    assert _cumulative_mdd(returns, ours.weights) <= limit + 1e-6


def test_max_drawdown_below_the_reachable_minimum_is_explained(window):
    returns = returns_from_prices(window)
    mu, cov = estimate(window)
    with pytest.raises(InfeasibleError) as e:
        optimize(mu, cov, "min_variance", Constraints(max_drawdown=0.10), scenarios=returns)
    assert e.value.conflicts == ["max_drawdown"]
    msg = e.value.describe("wf.toml")
    assert "max_drawdown 10.00% < 19.3" in msg and "wf.toml [portfolio.constraints] max_drawdown" in msg


def test_max_drawdown_needs_scenarios(window):
    mu, cov = estimate(window)
    with pytest.raises(ValueError, match="scenario returns"):
        optimize(mu, cov, "min_variance", Constraints(max_drawdown=0.1))
