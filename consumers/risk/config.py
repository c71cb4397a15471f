"""Risk consumer configuration (TOML, flat or under ``[risk]``)::

    initial_cash = 1000000.0      # cash of a portfolio before its first fill
    lookback = 252                # return samples the metrics use
    periods_per_year = 252        # annualization of the sampled returns
    sample_interval_s = 86400     # equity sampled once per bar/day (event time)
    publish_interval_s = 60       # at most one mark-driven risk.v1 update per this (event time)
    inputs = ["fills.v1", "ticks.v1", "features.v1", "targets.v1", "risk-requests.v1"]
    risk_free_rate = 0.02         # annual; Sharpe and Sortino (the optimizer's default)
    benchmark = "SPY"             # optional: a symbol marked like any other (ticks, bars, features);
                                  # adds beta, alpha, tracking error, information ratio and a
                                  # beta-scaled market crash (without it the crash is uniform)

    [sectors]                     # symbol -> sector for sector exposures
    AAPL = "tech"

    [limits]                      # one alert when a breach starts, one when it clears
    max_position = 0.30           # |exposure| of one symbol, fraction of value (the
                                  # optimizer's max_weight is 0.25: a fresh target is never in breach)
    max_volatility = 0.30         # annualized portfolio volatility
    max_drawdown = 0.20           # |max drawdown| over the lookback
    breach_tolerance = 0.02       # a breach starts above limit * (1 + this), clears below the limit
    min_episode_bars = 5          # an episode lasts at least this many sample intervals (with updates)

    [stress]                      # see consumers.risk.stress.StressConfig
    crash_shock = -0.30
"""

from __future__ import annotations

import msgspec

from consumers.risk.stress import StressConfig
from streaming.config import TomlConfig


class LimitsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_position: float | None = 0.30
    max_volatility: float | None = 0.30
    max_drawdown: float | None = 0.20
    breach_tolerance: float = 0.02
    min_episode_bars: int = 5
    cooldown_s: float | None = None  # no longer used (one alert per episode): accepted, logged

    def __post_init__(self) -> None:
        if not 0.0 <= self.breach_tolerance < 1.0:
            raise ValueError(f"limits.breach_tolerance: {self.breach_tolerance} is not in [0, 1)")
        if self.min_episode_bars < 0:
            raise ValueError(f"limits.min_episode_bars: {self.min_episode_bars} is negative")


class RiskConfig(TomlConfig, kw_only=True, forbid_unknown_fields=True):
    toml_section = "risk"

    initial_cash: float = 1_000_000.0
    lookback: int = 252
    periods_per_year: int = 252
    sample_interval_s: float = 86400.0
    publish_interval_s: float = 60.0
    inputs: list[str] = msgspec.field(
        default_factory=lambda: ["fills.v1", "ticks.v1", "features.v1", "targets.v1", "risk-requests.v1"])
    sectors: dict[str, str] = msgspec.field(default_factory=dict)
    risk_free_rate: float = 0.02
    benchmark: str | None = None
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    stress: StressConfig = msgspec.field(default_factory=StressConfig)

    def stress_config(self) -> StressConfig:
        return self.stress
