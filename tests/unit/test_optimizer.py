"""Optimizer and risk models: PyPortfolioOpt parity, objectives, constraints, infeasibility."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from consumers.portfolio import risk_models as rm
from consumers.portfolio.optimizer import Constraints, InfeasibleError, optimize

DATA = Path(__file__).resolve().parents[1] / "data" / "stock_prices_20.csv"
SECTORS = {"GOOG": "tech", "AAPL": "tech", "FB": "tech", "BABA": "tech", "AMD": "tech",
           "AMZN": "consumer", "WMT": "consumer", "UAA": "consumer", "SHLD": "consumer", "BBY": "consumer",
           "SBUX": "consumer", "GE": "industrial", "GM": "industrial", "BAC": "financial", "MA": "financial",
           "JPM": "financial", "T": "telecom", "XOM": "energy", "RRC": "energy", "PFE": "health"}


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    df = pd.read_csv(DATA, parse_dates=["date"], index_col="date")
    return df.loc["2016-04-01":"2018-04-11"]


@pytest.fixture(scope="module")
def estimates(prices):
    return rm.estimate(prices, "sample")


def test_max_sharpe_matches_pyportfolioopt(prices, estimates):
    from pypfopt import EfficientFrontier, expected_returns, risk_models

    lower, upper = {"energy": 0.05}, {"tech": 0.30, "consumer": 0.25, "financial": 0.20}
    mu = expected_returns.mean_historical_return(prices, compounding=False)
    ef = EfficientFrontier(mu, risk_models.sample_cov(prices), weight_bounds=(0.0, 0.15))
    ef.add_sector_constraints(SECTORS, lower, upper)
    ref = ef.max_sharpe(risk_free_rate=0.02)
    mu2, cov2 = estimates
    res = optimize(mu2, cov2, "max_sharpe", Constraints(max_weight=0.15, sectors=SECTORS, sector_lower=lower,
                                                        sector_upper=upper), risk_free_rate=0.02)
    assert set(res.weights) == set(ref)
    for s in ref:
        assert abs(res.weights[s] - ref[s]) < 1e-4, s
    _, vol, sharpe = ef.portfolio_performance(risk_free_rate=0.02)
    assert res.volatility == pytest.approx(vol, rel=1e-4)
    assert res.sharpe == pytest.approx(sharpe, rel=1e-4)


def test_estimators_follow_conventions(prices):
    from pypfopt import expected_returns, risk_models
    from sklearn.covariance import ledoit_wolf

    mu, cov = rm.estimate(prices, "sample")
    np.testing.assert_allclose(mu, expected_returns.mean_historical_return(prices, compounding=False), rtol=1e-12)
    np.testing.assert_allclose(cov, risk_models.sample_cov(prices), rtol=1e-9, atol=1e-12)
    _, lw = rm.estimate(prices, "ledoit_wolf")
    np.testing.assert_allclose(lw, ledoit_wolf(prices.pct_change().dropna().to_numpy())[0] * 252, rtol=1e-9)
    _, fm = rm.estimate(prices, "factor", n_factors=3)
    assert np.allclose(fm, fm.T) and np.linalg.eigvalsh(fm.to_numpy()).min() > 0
    # the factor model keeps the total variance of each asset
    np.testing.assert_allclose(np.diag(fm), np.diag(cov), rtol=1e-6)


def test_min_variance_and_target_volatility_with_cardinality(estimates):
    mu, cov = estimates
    c = Constraints(max_weight=0.3, min_positions=4, max_positions=6, min_position_weight=0.02,
                    sectors=SECTORS, sector_upper={"tech": 0.3})
    mv = optimize(mu, cov, "min_variance", c)
    held = [s for s, w in mv.weights.items() if w > 1e-6]
    assert 4 <= len(held) <= 6 and all(mv.weights[s] >= 0.02 - 1e-6 for s in held)
    assert sum(mv.weights.values()) == pytest.approx(1.0, abs=1e-6)
    assert max(mv.weights.values()) <= 0.3 + 1e-6
    assert sum(w for s, w in mv.weights.items() if SECTORS[s] == "tech") <= 0.3 + 1e-6
    mr = optimize(mu, cov, "max_return", Constraints(max_weight=0.3), target_volatility=0.15)
    assert mr.volatility == pytest.approx(0.15, abs=1e-4)
    assert mr.expected_return > mv.expected_return
    ms = optimize(mu, cov, "max_sharpe", Constraints(max_weight=0.3, max_positions=5, max_volatility=0.14),
                  risk_free_rate=0.02)
    assert sum(1 for w in ms.weights.values() if w > 1e-6) <= 5
    assert ms.volatility <= 0.14 + 1e-5


def test_turnover_penalty_stays_closer_to_current_weights(estimates):
    mu, cov = estimates
    current = {"AAPL": 0.25, "MA": 0.25, "JPM": 0.25, "WMT": 0.25}
    free = optimize(mu, cov, "max_sharpe", Constraints(max_weight=0.3), current_weights=current)
    costly = optimize(mu, cov, "max_sharpe", Constraints(max_weight=0.3, transaction_cost=0.02),
                      current_weights=current)
    assert costly.turnover < free.turnover
    assert costly.estimated_costs == pytest.approx(0.02 * costly.turnover)


def test_infeasible_constraints_are_named(estimates):
    mu, cov = estimates
    with pytest.raises(InfeasibleError) as e:
        optimize(mu, cov, "max_sharpe", Constraints(max_weight=0.3, max_positions=3))
    assert e.value.conflicts == ["weight_bounds", "max_positions"]
    with pytest.raises(InfeasibleError) as e:
        optimize(mu, cov, "min_variance", Constraints(max_volatility=0.05))
    assert e.value.conflicts == ["max_volatility"]
    with pytest.raises(InfeasibleError) as e:
        optimize(mu, cov, "max_sharpe", Constraints(sectors=SECTORS, sector_lower={"energy": 0.6, "tech": 0.5}))
    # without the (long-only) weight bounds, shorting the other sectors would fund both floors
    assert e.value.conflicts == ["weight_bounds", "sector_lower[energy]", "sector_lower[tech]"]
    assert "sector_lower[energy]" in str(e.value)
