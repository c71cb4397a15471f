"""FeatureConfig: which rolling features to compute, and their names.

Loadable from a TOML or JSON file, either flat (``return_periods = [1, 5]``)
or under a ``[features]`` table. Feature names are part of the ``features.v1``
contract; ``feature_names()`` gives them in output order.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import msgspec

# fixed by the contract: ema_12, ema_26, macd = EMA12 - EMA26 and macd_signal = EMA9(macd), all as
# TA-Lib computes them (TA-Lib seeds MACD's EMA12 where EMA26 starts, so early on macd != ema_12 - ema_26)
EMA_FAST = 12
EMA_SLOW = 26
MACD_SIGNAL = 9

# version of the kernels' state row layout (streaming.kernels.layout.Layout); part of
# the fingerprint, so a snapshot written by another layout is refused, never misread.
# 1: every slot float64. 2: index slots and min/max keys are int64 (a view of the row).
# 3: EMA/MACD slots seeded the TA-Lib way (SMA seed, null until the span is seen).
STATE_LAYOUT_VERSION = 3


class FeatureConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    return_periods: tuple[int, ...] = (1, 5, 21, 63)
    volatility_windows: tuple[int, ...] = (5, 21, 63)
    momentum_periods: tuple[int, ...] = (5, 14, 21)
    volume_periods: tuple[int, ...] = (5, 21)
    price_levels: tuple[int, ...] = (10, 20, 50)

    def __post_init__(self) -> None:
        for field, minimum in (
            ("return_periods", 1),
            ("volatility_windows", 2),  # sample std (ddof=1) needs two values
            ("momentum_periods", 1),
            ("volume_periods", 1),
            ("price_levels", 1),
        ):
            values = getattr(self, field)
            if not values:
                raise ValueError(f"{field} must not be empty")
            if len(set(values)) != len(values):
                raise ValueError(f"{field} has duplicates: {values}")
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                    raise ValueError(f"{field}: {v!r} is not an integer >= {minimum}")
                if v > 100_000:
                    raise ValueError(f"{field}: {v} is too large a window")

    def feature_names(self) -> list[str]:
        """Every feature name, in the column order of the kernels' output."""
        names = [f"return_{n}" for n in self.return_periods]
        names += [f"volatility_{w}" for w in self.volatility_windows]
        names += [f"rsi_{n}" for n in self.momentum_periods]
        names += [f"volume_ma_{n}" for n in self.volume_periods]
        names += [f"volume_ratio_{n}" for n in self.volume_periods]
        names += [f"support_{n}" for n in self.price_levels]
        names += [f"resistance_{n}" for n in self.price_levels]
        names += [f"zscore_{w}" for w in self.volatility_windows]
        names += [f"ema_{EMA_FAST}", f"ema_{EMA_SLOW}", "macd", "macd_signal"]
        names += [f"vwap_{n}" for n in self.volume_periods]
        names += ["mid", "spread"]
        return names

    def fingerprint(self) -> str:
        """A stable text identifying the state layout (snapshots check it).

        The config as JSON, prefixed by the layout version: ``layout3:{...}``.
        """
        return f"layout{STATE_LAYOUT_VERSION}:" + msgspec.json.encode(self).decode()

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> "FeatureConfig":
        if "features" in data and isinstance(data["features"], dict):
            data = data["features"]
        return msgspec.convert(data, cls)

    @classmethod
    def load(cls, path: str | Path) -> "FeatureConfig":
        """Read a TOML (``.toml``) or JSON file."""
        p = Path(path)
        raw = p.read_bytes()
        if p.suffix.lower() == ".toml":
            data = tomllib.loads(raw.decode())
        elif p.suffix.lower() == ".json":
            data = json.loads(raw)
        else:  # sniff
            try:
                data = json.loads(raw)
            except ValueError:
                data = tomllib.loads(raw.decode())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a table/object of feature settings")
        return cls.from_mapping(data)
