"""Signals configuration: which built-in rules run, their parameters, cooldowns, plug-ins.

Loaded from TOML (``--config FILE``), either flat or under a ``[signals]``
table::

    cooldown_s = 300                 # default per-symbol, per-rule cooldown (event time)

    [rules.price_movement]           # |return_n| > k * volatility_w
    enabled = true
    return_window = 1
    volatility_window = 21
    k = 3.0

    [rules.volume_spike]             # volume_ratio_n > m
    window = 21
    m = 3.0

    [rules.rsi]                      # RSI crossing the oversold/overbought levels
    window = 14
    oversold = 30.0
    overbought = 70.0

    [rules.macd]                     # MACD crossing its signal line
    enabled = true

    [rules.breakout]                 # price through the previous support/resistance
    windows = [20, 50]

    [[plugins]]                      # user strategies, loaded by import path
    path = "examples.strategies.mean_reversion:MeanReversion"
    cooldown_s = 600
    params = { window = 21, threshold = 2.0 }

Every rule has ``enabled`` (default true) and an optional ``cooldown_s``
that overrides the global one. Unknown keys are errors, so a typo does not
silently switch a rule off.
"""

from __future__ import annotations

from typing import Any

import msgspec

from streaming.config import TomlConfig


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:  # also NaN
            raise ValueError(f"{name} must be > 0, got {value!r}")


def _at_least_one(**windows: int) -> None:
    for name, value in windows.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")


class PriceMovementConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    return_window: int = 1
    volatility_window: int = 21
    k: float = 3.0
    cooldown_s: float | None = None

    def __post_init__(self) -> None:
        _positive(k=self.k)  # the threshold is k x volatility: 0 would fire on any move (and divide by 0)
        _at_least_one(return_window=self.return_window, volatility_window=self.volatility_window)


class VolumeSpikeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    window: int = 21
    m: float = 3.0
    cooldown_s: float | None = None

    def __post_init__(self) -> None:
        _positive(m=self.m)  # strength is ratio / m
        _at_least_one(window=self.window)


class RsiConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    window: int = 14
    oversold: float = 30.0
    overbought: float = 70.0
    cooldown_s: float | None = None


class MacdConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    cooldown_s: float | None = None


class BreakoutConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    windows: list[int] = msgspec.field(default_factory=lambda: [20, 50])
    cooldown_s: float | None = None


class RulesConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    price_movement: PriceMovementConfig = msgspec.field(default_factory=PriceMovementConfig)
    volume_spike: VolumeSpikeConfig = msgspec.field(default_factory=VolumeSpikeConfig)
    rsi: RsiConfig = msgspec.field(default_factory=RsiConfig)
    macd: MacdConfig = msgspec.field(default_factory=MacdConfig)
    breakout: BreakoutConfig = msgspec.field(default_factory=BreakoutConfig)


class PluginConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    path: str  # "package.module:attribute" (or "package.module.attribute")
    name: str | None = None  # signal type; defaults to the object's ``name`` or __name__
    enabled: bool = True
    cooldown_s: float | None = None
    params: dict[str, Any] = msgspec.field(default_factory=dict)  # keyword arguments of a class


class SignalsConfig(TomlConfig, kw_only=True, forbid_unknown_fields=True):
    toml_section = "signals"

    cooldown_s: float = 300.0
    rules: RulesConfig = msgspec.field(default_factory=RulesConfig)
    plugins: list[PluginConfig] = msgspec.field(default_factory=list)
