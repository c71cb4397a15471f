"""Infeasible optimizer constraints explain themselves: the numbers that clash, the file and key."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from consumers.portfolio.config import PortfolioConfig
from consumers.portfolio.optimizer import Constraints, InfeasibleError, optimize
from consumers.portfolio.risk_models import estimate
from consumers.portfolio.solve import optimize_window

DATA = Path(__file__).resolve().parents[1] / "data" / "stock_prices_20.csv"
SYMBOLS = ["AAPL", "MA", "JPM", "WMT", "XOM", "PFE", "T", "BAC", "GE", "SBUX"]


@pytest.fixture(scope="module")
def window():
    return pd.read_csv(DATA, index_col=0, parse_dates=True)[SYMBOLS].loc["2015-01-01":"2016-12-31"].dropna()


def _error(window, objective="max_sharpe", **constraints) -> InfeasibleError:
    mu, cov = estimate(window)
    with pytest.raises(InfeasibleError) as e:
        optimize(mu, cov, objective, Constraints(**constraints), risk_free_rate=0.02, target_volatility=0.2)
    return e.value


def test_weight_bounds_give_the_arithmetic_and_the_key(window):
    e = _error(window, max_weight=0.05)
    assert e.conflicts == ["weight_bounds"]
    assert ("weight_bounds: 10 assets × max_weight 0.05 = 0.50 < 1.0 "
            "(set in my.toml [portfolio.constraints] max_weight)") in e.describe("my.toml")
    e = _error(window, min_weight=0.2)
    assert "10 assets × min_weight 0.2 = 2.00 > 1.0" in str(e) and "min_weight" in str(e)


def test_max_positions_and_volatility_and_sectors_are_explained(window):
    e = _error(window, max_weight=0.3, max_positions=3)
    assert "max_positions 3 × max_weight 0.3 = 0.90 < 1.0" in str(e)
    e = _error(window, "min_variance", max_volatility=0.05)
    mu, cov = estimate(window)
    lowest = optimize(mu, cov, "min_variance").volatility
    assert f"max_volatility 5.00% < {lowest:.2%}, the lowest annualized volatility" in str(e)
    e = _error(window, max_weight=0.3, sectors={"XOM": "energy"}, sector_lower={"energy": 0.5})
    assert "sector_lower[energy] 0.5 > 0.30, the sum of the upper bounds of its 1 assets (XOM)" in str(e)
    assert "[portfolio.constraints] sector_lower.energy" in str(e)


def test_no_asset_above_the_risk_free_rate_is_explained(window):
    mu, cov = estimate(window)
    with pytest.raises(InfeasibleError) as e:
        optimize(mu, cov, "max_sharpe", risk_free_rate=5.0)
    assert "positive_excess_return" in e.value.conflicts
    best = mu.idxmax()
    assert f"the best asset, {best}, expects {mu[best]:.2%}" in str(e.value)
    assert "[portfolio] risk_free_rate" in str(e.value)


def test_the_consumer_names_its_config_file(window, tmp_path):
    from consumers.portfolio.processor import PortfolioProcessor

    cfg_file = tmp_path / "portfolio.toml"
    cfg_file.write_text("[portfolio]\nmin_history = 20\n[portfolio.constraints]\nmax_weight = 0.05\n")
    cfg = PortfolioConfig.load(cfg_file)
    with pytest.raises(InfeasibleError) as e:
        optimize_window(window, cfg)
    assert f"{cfg_file} [portfolio.constraints] max_weight" in e.value.describe(str(cfg_file))
    proc = PortfolioProcessor(cfg, source=str(cfg_file))
    assert proc.source == str(cfg_file)


def test_the_seed_max_drawdown_constraint_is_accepted_and_checked():
    cfg = PortfolioConfig.from_mapping({"constraints": {"max_drawdown": 0.15}})
    assert cfg.optimizer_constraints().max_drawdown == 0.15
    with pytest.raises(ValueError, match="max_drawdown must be a fraction"):
        PortfolioConfig.from_mapping({"constraints": {"max_drawdown": 15}})
