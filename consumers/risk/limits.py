"""Risk limits with hysteresis: one alert when a breach episode starts, one when it clears. Pure.

An episode of a limit (per portfolio, limit and symbol) starts when the
observed value exceeds ``limit * (1 + breach_tolerance)`` (a position at
25.4 % against a 25 % limit with the default 2 % band is not a breach) and
ends when the value is back below the limit itself, but not before the
episode has lasted ``min_episode_bars`` bars (sample intervals of event
time in which an update came: trading days for daily bars), so a value
hovering around the limit gives one episode, not an alert per update. A
position that is closed counts as 0. A missing value (a metric without
enough history) changes nothing.

``step`` turns one RiskUpdate's observations into ``Transition``s; the live
risk consumer and the workflow (the same processor) publish them as
``limit_breach`` and ``limit_resolved`` alerts (``resolved_alert``).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from consumers.risk.config import LimitsConfig
from consumers.risk.report import Breach
from schemas.events import Alert, RiskUpdate

LIMITS = ("max_position", "max_volatility", "max_drawdown")


class Episode(msgspec.Struct):
    """An open breach: when it started, the alert that reported it, the worst value seen."""

    limit: str
    symbol: str | None
    threshold: float
    started_ts: int
    started_bar: int
    alert_id: str
    severity: str
    peak: float
    last_bar: int = 0  # the sample interval of the latest update seen
    bars: int = 0  # sample intervals seen since the start (a weekend is not three bars)


@dataclass(frozen=True)
class Transition:
    kind: str  # "breach" | "resolved"
    observation: Breach  # the observed value and the limit
    episode: Episode


def observations(update: RiskUpdate, limits: LimitsConfig) -> list[Breach]:
    """Every limited value of the update, breached or not, in a fixed order."""
    out: list[Breach] = []
    if limits.max_position is not None:
        for sym, e in sorted(update.exposures.items()):
            out.append(Breach("max_position", sym, abs(e), limits.max_position))
    if limits.max_volatility is not None and update.volatility is not None:
        out.append(Breach("max_volatility", None, update.volatility, limits.max_volatility))
    if limits.max_drawdown is not None and update.max_drawdown is not None:
        out.append(Breach("max_drawdown", None, abs(update.max_drawdown), limits.max_drawdown))
    return out


def severity(limit: str) -> str:
    return "critical" if limit == "max_drawdown" else "warning"


def step(episodes: dict[str, Episode], portfolio_id: str, update: RiskUpdate, limits: LimitsConfig,
         bar: int) -> list[Transition]:
    """Advance ``episodes`` (key ``portfolio:limit:symbol``, updated in place) by one update."""
    out: list[Transition] = []
    seen = set()
    obs = observations(update, limits)
    prefix = f"{portfolio_id}:"
    # positions of open episodes that are gone from the book are observed at 0
    for key, ep in sorted(episodes.items()):
        if key.startswith(prefix) and ep.limit == "max_position" and ep.symbol not in update.exposures:
            obs.append(Breach("max_position", ep.symbol, 0.0, ep.threshold))
    for o in obs:
        key = f"{portfolio_id}:{o.key}"
        if key in seen:
            continue
        seen.add(key)
        ep = episodes.get(key)
        if ep is None:
            if o.observed > o.threshold * (1.0 + limits.breach_tolerance):
                ep = episodes[key] = Episode(
                    limit=o.limit, symbol=o.symbol, threshold=o.threshold, started_ts=update.ts_event,
                    started_bar=bar, alert_id=f"risk:{key}:{update.ts_event}", severity=severity(o.limit),
                    peak=o.observed, last_bar=bar)
                out.append(Transition("breach", o, ep))
        else:
            ep.peak = max(ep.peak, o.observed)
            if bar != ep.last_bar:
                ep.last_bar = bar
                ep.bars += 1
            if o.observed < o.threshold and ep.bars >= limits.min_episode_bars:
                del episodes[key]
                out.append(Transition("resolved", o, ep))
    return out


def breach_alert(t: Transition, portfolio_id: str, update: RiskUpdate, tolerance: float) -> Alert:
    o, ep = t.observation, t.episode
    return Alert(
        alert_id=ep.alert_id, source="risk", type="limit_breach", severity=ep.severity,
        message=o.message(portfolio_id), ts_event=update.ts_event, ts_proc=update.ts_proc, symbol=o.symbol,
        details={"portfolio_id": portfolio_id, "limit": o.limit, "observed": o.observed,
                 "threshold": o.threshold, "breach_at": o.threshold * (1.0 + tolerance),
                 "value": update.value, "risk_level": update.risk_level})


def resolved_alert(t: Transition, portfolio_id: str, update: RiskUpdate) -> Alert:
    o, ep = t.observation, t.episode
    what = {"max_position": f"position {o.symbol} exposure", "max_volatility": "annualized volatility",
            "max_drawdown": "max drawdown"}[o.limit]
    return Alert(
        alert_id=f"{ep.alert_id}:resolved:{update.ts_event}", source="risk", type="limit_resolved",
        severity=ep.severity,  # the breach's: it reaches the same destinations
        message=(f"portfolio {portfolio_id}: {what} {o.observed:.2%} is back below the limit "
                 f"{o.threshold:.2%} ({o.limit}) after {ep.bars} bars, peak {ep.peak:.2%}"),
        ts_event=update.ts_event, ts_proc=update.ts_proc, symbol=o.symbol,
        details={"portfolio_id": portfolio_id, "limit": o.limit, "observed": o.observed,
                 "threshold": o.threshold, "resolves": ep.alert_id, "peak": ep.peak,
                 "bars": ep.bars, "duration_s": (update.ts_event - ep.started_ts) / 1e9})
