"""When to rebalance: calendar schedules and performance/drift triggers. Pure.

Schedules are in event time (UTC). A schedule names instants: every day
(``daily``), every ``weekday`` (``weekly``), the first day of each month
(``monthly``) or of Jan/Apr/Jul/Oct (``quarterly``), at ``time``. A rebalance
is due at event time ``ts`` when the latest scheduled instant at or before
``ts`` is later than the last rebalance (so the first price at or after the
instant rebalances, once), or when there was none yet.

Triggers compare the portfolio since the last rebalance, holding the target
weights (the rest in cash, return 0):

- ``performance``: ``|sum_i w_i (p_i / p0_i - 1)| >= threshold``;
- ``drift``: the weights have drifted to ``w_i g_i / (sum_j w_j g_j + cash)``
  with ``g_i = p_i / p0_i``; due when ``sum_i |drifted_i - w_i| >= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Mapping

FREQUENCIES = ("daily", "weekly", "monthly", "quarterly")


@dataclass(frozen=True)
class Schedule:
    frequency: str = "monthly"
    time: str = "00:00"  # HH:MM, UTC
    weekday: int = 0  # weekly: 0 = Monday

    def __post_init__(self) -> None:
        if self.frequency not in FREQUENCIES:
            raise ValueError(f"schedule frequency must be one of {', '.join(FREQUENCIES)}")
        h, m = (int(x) for x in self.time.split(":"))
        if not (0 <= h < 24 and 0 <= m < 60) or not 0 <= self.weekday <= 6:
            raise ValueError(f"bad schedule time {self.time!r} or weekday {self.weekday}")

    def last_instant(self, ts_ns: int) -> int:
        """The latest scheduled instant at or before ``ts_ns`` (ns since the epoch)."""
        now = datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=timezone.utc)
        h, m = (int(x) for x in self.time.split(":"))
        day = now.replace(hour=h, minute=m, second=0, microsecond=0)
        if self.frequency == "daily":
            cand = day if day <= now else day - timedelta(days=1)
        elif self.frequency == "weekly":
            cand = day - timedelta(days=(day.weekday() - self.weekday) % 7)
            if cand > now:
                cand -= timedelta(days=7)
        else:
            step = 1 if self.frequency == "monthly" else 3
            month = ((day.month - 1) // step) * step + 1
            cand = day.replace(month=month, day=1)
            if cand > now:  # before the time on the first day: the previous period
                y, mo = (cand.year, cand.month - step) if cand.month > step else (cand.year - 1, 12 - step + 1)
                cand = cand.replace(year=y, month=mo)
        return int(cand.timestamp()) * 1_000_000_000

    def due(self, last_rebalance_ns: int | None, ts_ns: int) -> bool:
        return last_rebalance_ns is None or self.last_instant(ts_ns) > last_rebalance_ns


@dataclass(frozen=True)
class Triggers:
    performance: float | None = 0.05
    drift: float | None = 0.05


def growth(p0: Mapping[str, float], p: Mapping[str, float], symbols) -> dict[str, float]:
    return {s: (p[s] / p0[s] if s in p and s in p0 and p0[s] > 0 else 1.0) for s in symbols}


def performance_since(weights: Mapping[str, float], p0: Mapping[str, float], p: Mapping[str, float]) -> float:
    g = growth(p0, p, weights)
    return sum(w * (g[s] - 1.0) for s, w in weights.items())


def drifted_weights(weights: Mapping[str, float], p0: Mapping[str, float],
                    p: Mapping[str, float]) -> dict[str, float]:
    g = growth(p0, p, weights)
    cash = 1.0 - sum(weights.values())
    total = sum(w * g[s] for s, w in weights.items()) + cash
    if total <= 0:
        return dict(weights)
    return {s: w * g[s] / total for s, w in weights.items()}


def deviation(target: Mapping[str, float], current: Mapping[str, float]) -> float:
    keys = sorted(set(target) | set(current))  # one summation order in every process (set order follows the hash seed)
    return sum(abs(current.get(s, 0.0) - target.get(s, 0.0)) for s in keys)


def trigger_for(triggers: Triggers, weights: Mapping[str, float], p0: Mapping[str, float],
                p: Mapping[str, float]) -> str | None:
    """``performance`` or ``drift`` when a threshold is crossed since the last rebalance, else None."""
    if not weights:
        return None
    if triggers.performance is not None and abs(performance_since(weights, p0, p)) >= triggers.performance:
        return "performance"
    if triggers.drift is not None and deviation(weights, drifted_weights(weights, p0, p)) >= triggers.drift:
        return "drift"
    return None
