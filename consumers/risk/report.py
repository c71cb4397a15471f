"""From a portfolio's state and return series to a RiskUpdate and its limit breaches. Pure.

Both the live consumer and ``ticktide risk`` build their output here, so the
metric and stress numbers are computed by one code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from consumers.risk.config import LimitsConfig
from consumers.risk.metrics import risk_metrics
from consumers.risk.portfolio import sector_exposures
from schemas.events import RiskUpdate, StressResult


def build_update(*, portfolio_id: str, ts_event: int, ts_proc: int, value: float, cash: float,
                 positions: Mapping[str, float], exposures: Mapping[str, float],
                 sectors: Mapping[str, str], pnl: float, returns: np.ndarray | Sequence[float],
                 lookback: int | None, periods_per_year: int,
                 stress: list[StressResult] | None = None, ts_ingest: int = 0, risk_free_rate: float = 0.0,
                 benchmark: str | None = None, benchmark_returns=None) -> RiskUpdate:
    bench = benchmark_returns if benchmark else None
    m = risk_metrics(returns, periods=periods_per_year, lookback=lookback, risk_free=risk_free_rate,
                     benchmark=bench)
    return RiskUpdate(
        portfolio_id=portfolio_id, ts_event=ts_event, ts_proc=ts_proc, value=float(value), cash=float(cash),
        positions={k: float(v) for k, v in positions.items()},
        exposures={k: float(v) for k, v in exposures.items()},
        sector_exposures=sector_exposures(exposures, sectors), pnl=float(pnl),
        volatility=m["volatility"], var_95_historical=m["var_95_historical"],
        var_95_parametric=m["var_95_parametric"], cvar_95_historical=m["cvar_95_historical"],
        cvar_95_parametric=m["cvar_95_parametric"], max_drawdown=m["max_drawdown"],
        sharpe=m["sharpe"], sortino=m["sortino"], risk_level=m["risk_level"], risk_free_rate=risk_free_rate,
        annual_return=m["annual_return"], calmar=m["calmar"], benchmark=benchmark,
        beta=m.get("beta"), alpha=m.get("alpha"), tracking_error=m.get("tracking_error"),
        information_ratio=m.get("information_ratio"),
        stress=list(stress or []), ts_ingest=ts_ingest,
    )


@dataclass(frozen=True)
class Breach:
    limit: str  # max_position | max_volatility | max_drawdown
    symbol: str | None
    observed: float
    threshold: float

    @property
    def key(self) -> str:
        return f"{self.limit}:{self.symbol or ''}"

    def message(self, portfolio_id: str) -> str:
        what = {"max_position": f"position {self.symbol} exposure", "max_volatility": "annualized volatility",
                "max_drawdown": "max drawdown"}[self.limit]
        return (f"portfolio {portfolio_id}: {what} {self.observed:.2%} breaches the limit "
                f"{self.threshold:.2%} ({self.limit})")


def check_limits(update: RiskUpdate, limits: LimitsConfig) -> list[Breach]:
    """Every limit the update breaches, in a fixed order: above ``limit * (1 + breach_tolerance)``,
    where the live consumer starts a breach episode (``consumers.risk.limits``)."""
    band = 1.0 + limits.breach_tolerance
    out: list[Breach] = []
    if limits.max_position is not None:
        for sym, e in sorted(update.exposures.items()):
            if abs(e) > limits.max_position * band:
                out.append(Breach("max_position", sym, abs(e), limits.max_position))
    if limits.max_volatility is not None and update.volatility is not None \
            and update.volatility > limits.max_volatility * band:
        out.append(Breach("max_volatility", None, update.volatility, limits.max_volatility))
    if limits.max_drawdown is not None and update.max_drawdown is not None \
            and abs(update.max_drawdown) > limits.max_drawdown * band:
        out.append(Breach("max_drawdown", None, abs(update.max_drawdown), limits.max_drawdown))
    return out
