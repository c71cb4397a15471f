"""Portfolio consumer: features.v1 / bars.v1 -> targets.v1 and rebalances.v1.

- ``risk_models``: expected returns and covariance (sample, Ledoit-Wolf, PCA factor model);
- ``optimizer``: cvxpy programs (max Sharpe, min variance, max return at a target
  volatility) with bounds, cardinality (SCIP), volatility, sector and turnover terms;
- ``rebalance``: schedules and performance/drift triggers;
- ``processor``: the streaming adapter (``ticktide consume portfolio``);
- the historical workflow (``ticktide workflow run``) lives in the application layer, ``ticktide.workflow``.
"""

from __future__ import annotations


def create_processor(config_path: str | None = None):
    """What ``ticktide consume portfolio`` runs (imported here: the CLI starts without the heavy deps)."""
    from consumers.portfolio.config import PortfolioConfig
    from consumers.portfolio.processor import PortfolioProcessor

    return PortfolioProcessor(PortfolioConfig.load(config_path), source=config_path)
