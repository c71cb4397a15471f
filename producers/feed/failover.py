"""Primary/fallback feeds per symbol.

``FailoverArbiter`` is pure: it is fed ``(venue, tick, now)`` from both feeds
and answers whether to publish the tick. Per symbol, the primary's ticks are
published; when the primary has been silent for ``failover_after`` seconds
(counted from the arbiter's start if it never ticked), the fallback's ticks
are published instead, marked with their own venue (``Tick.venue``) and the
flag ``failover``, until the primary ticks again for that symbol.

``FailoverFeed`` wires two ``FeedConnection``s (both connected all the time)
to an arbiter and the bus, and raises ``failover`` / ``failover_recovered``
alerts on switches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from producers.feed.connection import ALERTS_TOPIC, TICKS_TOPIC, FeedConnection
from producers.metrics import FAILOVER_ACTIVE, FAILOVER_DROPPED, FAILOVER_SWITCHES, TICKS_OUT
from schemas.events import Alert, Tick
from streaming import codec

log = logging.getLogger(__name__)

FAILOVER_FLAG = "failover"


@dataclass(frozen=True, slots=True)
class Switch:
    symbol: str
    to: str  # "fallback" or "primary"
    venue: str  # the venue now published
    now: float
    silent_for: float  # primary silence at the switch (0 when recovering)


@dataclass(slots=True)
class Decision:
    publish: bool
    tick: Tick | None = None  # the tick to publish (flagged when it comes from the fallback)
    switch: Switch | None = None


class FailoverArbiter:
    """Decide, per symbol, which feed's ticks reach the bus.

    ``symbol_map`` maps a fallback symbol to the primary's canonical symbol
    (e.g. ``{"BTCUSD": "BTCUSDT"}``) when the venues name it differently; the
    published fallback tick keeps its own symbol and venue.
    """

    def __init__(self, primary: str, fallback: str, failover_after: float,
                 symbol_map: Mapping[str, str] | None = None, start: float | None = None) -> None:
        if primary == fallback:
            raise ValueError("primary and fallback must be different venues")
        self.primary = primary
        self.fallback = fallback
        self.failover_after = failover_after
        self.symbol_map = dict(symbol_map or {})
        self.start = start
        self._last_primary: dict[str, float] = {}
        self._on_fallback: set[str] = set()
        self.switches: list[Switch] = []

    def active(self, symbol: str) -> str:
        return self.fallback if symbol in self._on_fallback else self.primary

    def primary_silence(self, symbol: str, now: float) -> float:
        last = self._last_primary.get(symbol)
        if last is None:
            if self.start is None:
                self.start = now
            last = self.start
        return now - last

    def offer(self, venue: str, tick: Tick, now: float) -> Decision:
        if self.start is None:
            self.start = now
        if venue == self.primary:
            symbol = tick.symbol
            self._last_primary[symbol] = now
            switch = None
            if symbol in self._on_fallback:
                self._on_fallback.discard(symbol)
                switch = Switch(symbol, "primary", venue, now, 0.0)
                self.switches.append(switch)
            return Decision(True, tick, switch)
        if venue != self.fallback:
            raise ValueError(f"unknown venue {venue!r} (primary {self.primary!r}, fallback {self.fallback!r})")
        symbol = self.symbol_map.get(tick.symbol, tick.symbol)
        switch = None
        if symbol not in self._on_fallback:
            silent = self.primary_silence(symbol, now)
            if silent < self.failover_after:
                return Decision(False)
            self._on_fallback.add(symbol)
            switch = Switch(symbol, "fallback", venue, now, silent)
            self.switches.append(switch)
        flagged = tick if FAILOVER_FLAG in tick.flags else _with_flag(tick, FAILOVER_FLAG)
        return Decision(True, flagged, switch)


def _with_flag(tick: Tick, flag: str) -> Tick:
    import msgspec

    return msgspec.structs.replace(tick, flags=[*tick.flags, flag])


class FailoverFeed:
    """Two connected feeds, one arbiter, one bus."""

    def __init__(self, primary: FeedConnection, fallback: FeedConnection, arbiter: FailoverArbiter,
                 bus: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.primary = primary
        self.fallback = fallback
        self.arbiter = arbiter
        self.bus = bus
        self.clock = clock
        self.published = {arbiter.primary: 0, arbiter.fallback: 0}
        primary.on_tick = self._sink(arbiter.primary)
        fallback.on_tick = self._sink(arbiter.fallback)

    def _sink(self, venue: str):
        async def on_tick(tick: Tick) -> None:
            d = self.arbiter.offer(venue, tick, self.clock())
            if d.switch is not None:
                await self._announce(d.switch)
            if not d.publish:
                FAILOVER_DROPPED.labels(venue).inc()
                return
            self.published[venue] += 1
            TICKS_OUT.labels(venue).inc()
            await self.bus.publish(TICKS_TOPIC, codec.key_for(TICKS_TOPIC, d.tick), codec.encode(d.tick))
        return on_tick

    async def _announce(self, sw: Switch) -> None:
        FAILOVER_SWITCHES.labels(sw.symbol, sw.to).inc()
        FAILOVER_ACTIVE.labels(sw.symbol).set(1 if sw.to == "fallback" else 0)
        now = time.time_ns()
        if sw.to == "fallback":
            type_, sev = "failover", "warning"
            msg = (f"{sw.symbol}: primary {self.arbiter.primary} silent for {sw.silent_for:.1f}s, "
                   f"publishing {self.arbiter.fallback}")
        else:
            type_, sev = "failover_recovered", "info"
            msg = f"{sw.symbol}: primary {self.arbiter.primary} is back"
        log.warning(msg)
        alert = Alert(alert_id=f"failover:{sw.symbol}:{sw.to}:{now}", source="producer:failover",
                      type=type_, severity=sev, message=msg, ts_event=now, ts_proc=now, symbol=sw.symbol,
                      details={"primary": self.arbiter.primary, "fallback": self.arbiter.fallback,
                               "active": sw.venue, "silent_for": round(sw.silent_for, 3)})
        await self.bus.publish(ALERTS_TOPIC, None, codec.encode(alert))

    async def run(self) -> bool:
        results = await asyncio.gather(self.primary.run(), self.fallback.run())
        return all(results)

    async def stop(self) -> None:
        await asyncio.gather(self.primary.stop(), self.fallback.stop())
