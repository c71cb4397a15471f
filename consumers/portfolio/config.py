"""Portfolio consumer configuration (TOML, flat or under ``[portfolio]``)::

    portfolio_id = "main"
    inputs = ["features.v1"]        # features.v1 (FeatureVector source="bar") and/or bars.v1
    symbols = ["AAPL", "MSFT"]      # the universe; empty = every symbol seen
    objective = "max_sharpe"        # max_sharpe | min_variance | max_return
    risk_model = "sample"           # sample | ledoit_wolf | factor
    n_factors = 3                   # factor model
    risk_free_rate = 0.02           # annual
    target_volatility = 0.15        # max_return
    lookback = 252                  # price rows the estimates use
    min_history = 60                # rows needed before the first rebalance
    frequency = 252                 # periods per year of the input prices
    active_from = "2016-04-11"      # optional: collect history before, rebalance from (UTC)

    [schedule]
    frequency = "monthly"           # daily | weekly | monthly | quarterly
    time = "00:00"                  # UTC; the first price at/after it rebalances
    weekday = 0                     # weekly: 0 = Monday

    [triggers]                      # either may be absent (null) to switch it off
    performance = 0.05              # |return since the last rebalance| >= 5 %
    drift = 0.05                    # sum |drifted - target weights| >= 5 %

    [constraints]
    min_weight = 0.0
    max_weight = 0.25
    min_positions = 5               # mixed-integer (SCIP) when either is set
    max_positions = 12
    min_position_weight = 0.01
    max_volatility = 0.25
    max_drawdown = 0.15             # in-sample max drawdown of the uncompounded cumulative
                                    # returns over the window (riskfolio-lib's MDD), a linear constraint
    transaction_cost = 0.001        # per unit of turnover
    sector_lower = { energy = 0.05 }
    sector_upper = { tech = 0.40 }

    [sectors]                       # symbol -> sector
    AAPL = "tech"

Unknown keys are errors, so a typo does not silently switch a constraint off.
"""

from __future__ import annotations

import msgspec
import pandas as pd

from consumers.portfolio.optimizer import OBJECTIVES, Constraints
from consumers.portfolio.rebalance import FREQUENCIES, Schedule, Triggers
from consumers.portfolio.risk_models import RISK_MODELS
from streaming.config import TomlConfig


class ScheduleConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    frequency: str = "monthly"
    time: str = "00:00"
    weekday: int = 0


class TriggersConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    performance: float | None = 0.05
    drift: float | None = 0.05


class ConstraintsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    min_weight: float = 0.0
    max_weight: float = 0.25
    bounds: dict[str, tuple[float, float]] = msgspec.field(default_factory=dict)
    min_positions: int | None = None
    max_positions: int | None = None
    min_position_weight: float = 0.01
    max_volatility: float | None = None
    max_drawdown: float | None = None
    transaction_cost: float = 0.001
    sector_lower: dict[str, float] = msgspec.field(default_factory=dict)
    sector_upper: dict[str, float] = msgspec.field(default_factory=dict)


class PortfolioConfig(TomlConfig, kw_only=True, forbid_unknown_fields=True):
    toml_section = "portfolio"

    portfolio_id: str = "main"
    inputs: list[str] = msgspec.field(default_factory=lambda: ["features.v1"])
    symbols: list[str] = msgspec.field(default_factory=list)
    objective: str = "max_sharpe"
    risk_model: str = "sample"
    n_factors: int = 3
    risk_free_rate: float = 0.02
    target_volatility: float | None = 0.15
    lookback: int = 252
    min_history: int = 60
    frequency: int = 252
    active_from: str | None = None
    schedule: ScheduleConfig = msgspec.field(default_factory=ScheduleConfig)
    triggers: TriggersConfig = msgspec.field(default_factory=TriggersConfig)
    constraints: ConstraintsConfig = msgspec.field(default_factory=ConstraintsConfig)
    sectors: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}")
        if self.risk_model not in RISK_MODELS:
            raise ValueError(f"risk_model must be one of {', '.join(RISK_MODELS)}, not {self.risk_model!r}")
        if self.schedule.frequency not in FREQUENCIES:
            raise ValueError(f"schedule.frequency must be one of {', '.join(FREQUENCIES)}")
        if self.min_history < 2 or self.lookback < self.min_history:
            raise ValueError("need 2 <= min_history <= lookback")
        mdd = self.constraints.max_drawdown
        if mdd is not None and not 0 < mdd < 1:
            raise ValueError(f"constraints.max_drawdown must be a fraction in (0, 1), e.g. 0.15, not {mdd!r}")
        bad = [t for t in self.inputs if t not in ("features.v1", "bars.v1")]
        if bad or not self.inputs:
            raise ValueError(f"inputs must be features.v1 and/or bars.v1, not {bad or self.inputs}")

    def optimizer_constraints(self) -> Constraints:
        c = self.constraints
        return Constraints(
            min_weight=c.min_weight, max_weight=c.max_weight, bounds=dict(c.bounds),
            min_positions=c.min_positions, max_positions=c.max_positions,
            min_position_weight=c.min_position_weight, max_volatility=c.max_volatility,
            sectors=dict(self.sectors), sector_lower=dict(c.sector_lower), sector_upper=dict(c.sector_upper),
            transaction_cost=c.transaction_cost, max_drawdown=c.max_drawdown)

    def active_from_ns(self) -> int | None:
        if not self.active_from:
            return None
        ts = pd.Timestamp(self.active_from)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return int(ts.value)

    def schedule_rule(self) -> Schedule:
        s = self.schedule
        return Schedule(s.frequency, s.time, s.weekday)

    def trigger_rule(self) -> Triggers:
        return Triggers(self.triggers.performance, self.triggers.drift)
