"""The connection manager: one venue feed, from websocket frames to ``ticks.v1``.

``FeedConnection`` owns the socket; everything it decides with is pure and
lives elsewhere (the venue adapter's ``parse``, the Validator, the
``SequenceTracker`` and ``Backoff`` in ``producers.feed.sequencing``). Per
connection it:

- connects (websockets client, protocol ping/pong keepalive), sends the
  adapter's subscribe messages, and sends them again after every reconnect;
- runs a silence watchdog: no frame for ``silence_timeout`` seconds closes the
  socket and reconnects (a ``stale_feed`` alert is raised);
- reconnects with bounded exponential backoff and jitter (seedable);
- per frame: ``adapter.parse`` -> sequence check (duplicates dropped, gaps
  counted and alerted on ``alerts.v1``) -> Validator -> publish each Tick to
  ``ticks.v1`` keyed by symbol; parse errors and validator rejections go to
  ``dlq.v1`` as ``DeadLetter(stage="producer:<venue>")``;
- exports Prometheus metrics and the Validator's data-quality gauges, with a
  ``quality`` alert when completeness or validity falls below a threshold.

``on_tick`` replaces the final publish (the failover arbiter uses it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from producers.venues.base import ParseResult, VenueAdapter
from producers.metrics import (  # noqa: F401 - re-exported: the metrics used to be defined here
    DEAD_LETTERS, LAST_TICK, QUALITY_COMPLETENESS, QUALITY_VALIDITY, REJECTED, SKIPPED, TICKS_OUT,
    WS_CONNECTED, WS_DUPLICATES, WS_FRAMES, WS_GAPS, WS_MISSING, WS_RECONNECTS, WS_SILENCES,
)
from producers.validation.feed import ValidatorBridge
from producers.feed.sequencing import (
    Backoff, GapPolicy, SequenceTracker, SeqStatus, policies_for, seq_fields_for, tracked_number,
)
from schemas.events import Alert, DeadLetter, Tick
from streaming import codec

log = logging.getLogger(__name__)

TICKS_TOPIC = "ticks.v1"
DLQ_TOPIC = "dlq.v1"
ALERTS_TOPIC = "alerts.v1"


# -- settings ------------------------------------------------------------------
@dataclass
class FeedSettings:
    silence_timeout: float = 30.0  # no frame for this long -> reconnect
    ping_interval: float | None = 20.0  # websockets keepalive
    ping_timeout: float | None = 20.0
    open_timeout: float = 10.0
    close_timeout: float = 2.0
    max_size: int | None = 2 ** 23
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_factor: float = 2.0
    backoff_jitter: float = 0.2
    max_attempts: int | None = None  # consecutive failed connects before giving up; None = forever
    seed: int | None = None  # makes the jitter reproducible
    reconnect: bool = True  # False: end when the server closes (replay)
    gap_policies: Mapping[str, GapPolicy] | None = None  # per tick kind; default from the venue
    seq_reset_below: int | None = None  # see SequenceTracker
    quality_interval: float = 10.0  # seconds between quality gauge exports
    completeness_threshold: float = 0.95
    validity_threshold: float = 0.95


@dataclass
class FeedStats:
    """Plain counters of one FeedConnection (the Prometheus metrics are process-wide)."""

    connects: int = 0
    reconnects: int = 0
    subscribes_sent: int = 0
    frames: int = 0
    ticks: int = 0  # handed to on_tick / published
    skipped: int = 0
    dead_letters: int = 0
    rejected: int = 0
    gaps: int = 0
    missing: int = 0
    duplicates: int = 0
    silences: int = 0
    alerts: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)


TickSink = Callable[[Tick], Awaitable[None]]


class FeedConnection:
    """Run one venue feed until stopped; see the module docstring."""

    def __init__(self, adapter: VenueAdapter, bus: Any, symbols: list[str], *,
                 url: str | None = None, validator: Any = None,
                 settings: FeedSettings | None = None, on_tick: TickSink | None = None,
                 venue: str | None = None, recv_clock: Callable[[], int] = time.time_ns) -> None:
        self.adapter = adapter
        self.bus = bus
        self.symbols = list(symbols)
        self.venue = venue or adapter.name
        self.settings = settings or FeedSettings()
        self.url = adapter.url_for(self.symbols, url)
        self.validate = ValidatorBridge(validator) if validator is not None else None
        self.on_tick = on_tick or self.publish_tick
        self.recv_clock = recv_clock
        s = self.settings
        self.tracker = SequenceTracker(s.gap_policies or policies_for(adapter.name), s.seq_reset_below)
        self.seq_fields = seq_fields_for(adapter.name)
        self.backoff = Backoff(s.backoff_initial, s.backoff_max, s.backoff_factor, s.backoff_jitter,
                               s.max_attempts, s.seed)
        self.stats = FeedStats()
        self.stage = f"producer:{self.venue}"
        self.connected = asyncio.Event()
        self.finished = asyncio.Event()
        self._stop = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._quality_low: set[tuple[str, str]] = set()
        self._m_frames = WS_FRAMES.labels(self.venue)
        self._m_ticks = TICKS_OUT.labels(self.venue)
        self._m_dlq = DEAD_LETTERS.labels(self.stage)

    # -- lifecycle -----------------------------------------------------------
    async def run(self) -> bool:
        """Connect, read, reconnect until ``stop()``; False when reconnects were exhausted."""
        quality = asyncio.create_task(self._quality_loop()) if self.validate else None
        try:
            return await self._run()
        finally:
            if quality:
                quality.cancel()
                await asyncio.gather(quality, return_exceptions=True)
            await self.export_quality()
            WS_CONNECTED.labels(self.venue).set(0)
            self.finished.set()

    async def stop(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            await ws.close(1000, "shutdown")

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def _run(self) -> bool:
        s = self.settings
        first = True
        while not self._stop.is_set():
            if not first:
                delay = self.backoff.next()
                if delay is None:
                    log.error("%s: giving up after %d failed attempts", self.venue, self.backoff.attempt)
                    return False
                self.stats.reconnects += 1
                WS_RECONNECTS.labels(self.venue).inc()
                log.info("%s: reconnecting in %.2fs (attempt %d)", self.venue, delay, self.backoff.attempt)
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                    break
                except asyncio.TimeoutError:
                    pass
            first = False
            try:
                async with connect(self.url, ping_interval=s.ping_interval, ping_timeout=s.ping_timeout,
                                   open_timeout=s.open_timeout, close_timeout=s.close_timeout,
                                   max_size=s.max_size) as ws:
                    self._ws = ws
                    if self._stop.is_set():  # stopped while connecting
                        break
                    self.stats.connects += 1
                    if self.stats.connects > 1 and self.validate is not None:
                        # the market moved while we were away: forget jump/order state
                        self.validate.reset()
                    WS_CONNECTED.labels(self.venue).set(1)
                    log.info("%s: connected to %s", self.venue, self.url)
                    for msg in self.adapter.subscribe_messages(self.symbols):
                        await ws.send(msg)
                        self.stats.subscribes_sent += 1
                    self.connected.set()
                    got_frames = await self._read(ws)
                    if got_frames:
                        self.backoff.reset()  # a healthy session starts the schedule over
            except (OSError, asyncio.TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                log.warning("%s: connection failed or lost: %s", self.venue, exc or type(exc).__name__)
            except InvalidURI:
                raise
            finally:
                self._ws = None
                self.connected.clear()
                WS_CONNECTED.labels(self.venue).set(0)
            if not s.reconnect:
                break
        return True

    async def _read(self, ws: ClientConnection) -> bool:
        """Read frames until the socket closes or the watchdog fires; True if any arrived."""
        loop = asyncio.get_running_loop()
        silence = self.settings.silence_timeout
        got = False
        try:
            async with asyncio.timeout(silence) as watchdog:
                async for frame in ws:
                    ts_recv = self.recv_clock()
                    got = True
                    # a slow publish (bus backpressure) is not venue silence: pause the watchdog
                    watchdog.reschedule(None)
                    await self.handle_frame(frame, ts_recv)
                    watchdog.reschedule(loop.time() + silence)
        except TimeoutError:
            if self._stop.is_set():
                return got
            self.stats.silences += 1
            WS_SILENCES.labels(self.venue).inc()
            log.warning("%s: no frame for %.1fs, reconnecting", self.venue, silence)
            await self.alert("stale_feed", "warning",
                             f"{self.venue}: no frame for {silence:g}s, reconnecting",
                             details={"silence_timeout": silence, "url": self.url})
            await ws.close(1001, "silence timeout")
        return got

    # -- per frame -----------------------------------------------------------
    async def handle_frame(self, frame: bytes | str, ts_recv: int) -> None:
        """adapter.parse -> sequence check -> validate -> publish (or dead-letter)."""
        self.stats.frames += 1
        self._m_frames.inc()
        try:
            result: ParseResult = self.adapter.parse(frame, ts_recv)
        except Exception as exc:  # the contract says parse never raises; be safe anyway
            log.exception("%s: adapter.parse raised", self.venue)
            await self.dead_letter(f"parse raised {type(exc).__name__}: {exc}", frame)
            return
        if result.error:
            await self.dead_letter(result.error, frame)
            return
        if not result.ticks:
            reason = result.skipped or "empty"
            self.stats.skipped += 1
            self.stats.skip_reasons[reason] = self.stats.skip_reasons.get(reason, 0) + 1
            SKIPPED.labels(self.venue, reason).inc()
            return
        for tick in result.ticks:
            await self.accept(tick, frame)

    async def accept(self, tick: Tick, frame: bytes | str | None = None) -> None:
        number = tracked_number(tick, self.seq_fields.get(tick.kind, "seq"))
        seq = self.tracker.observe(tick.symbol, tick.kind, number)
        if seq.status is SeqStatus.DUPLICATE:
            self.stats.duplicates += 1
            WS_DUPLICATES.labels(self.venue).inc()
            return
        if seq.status is SeqStatus.GAP:
            self.stats.gaps += 1
            self.stats.missing += seq.missing
            WS_GAPS.labels(self.venue, tick.symbol).inc()
            WS_MISSING.labels(self.venue, tick.symbol).inc(seq.missing)
            log.warning("%s: %s %s gap: expected %s, got %s (%d missing)", self.venue, tick.symbol,
                        tick.kind, seq.expected, number, seq.missing)
            await self.alert(
                "sequence_gap", "warning",
                f"{self.venue} {tick.symbol} {tick.kind}: expected seq {seq.expected}, got {number} "
                f"({seq.missing} missing)",
                symbol=tick.symbol, ts_event=tick.ts_event,
                details={"venue": self.venue, "kind": tick.kind, "expected": seq.expected,
                         "received": number, "missing": seq.missing},
                alert_id=f"{self.stage}:sequence_gap:{tick.symbol}:{tick.kind}:{number}")
        if self.validate is not None:
            checked, reason = self.validate(tick)
            if checked is None:
                self.stats.rejected += 1
                REJECTED.labels(self.venue).inc()
                raw = frame if frame is not None else codec.encode(tick)
                await self.dead_letter(f"validation: {reason}", raw, key=tick.symbol)
                return
            tick = checked
        LAST_TICK.labels(self.venue, tick.symbol).set(tick.ts_recv / 1e9)
        self.stats.ticks += 1
        await self.on_tick(tick)

    async def publish_tick(self, tick: Tick) -> None:
        self._m_ticks.inc()
        await self.bus.publish(TICKS_TOPIC, codec.key_for(TICKS_TOPIC, tick), codec.encode(tick))

    async def dead_letter(self, reason: str, raw: bytes | str, key: str | None = None) -> None:
        self.stats.dead_letters += 1
        self._m_dlq.inc()
        data = raw.encode() if isinstance(raw, str) else bytes(raw)
        dl = DeadLetter(stage=self.stage, reason=reason, raw=data, ts_proc=time.time_ns(),
                        venue=self.venue, key=key)
        await self.bus.publish(DLQ_TOPIC, None, codec.encode(dl))

    async def alert(self, type_: str, severity: str, message: str, *, symbol: str | None = None,
                    ts_event: int | None = None, details: dict | None = None,
                    alert_id: str | None = None) -> None:
        now = time.time_ns()
        self.stats.alerts += 1
        a = Alert(alert_id=alert_id or f"{self.stage}:{type_}:{symbol or '-'}:{now}",
                  source=self.stage, type=type_, severity=severity, message=message,
                  ts_event=ts_event if ts_event is not None else now, ts_proc=now,
                  symbol=symbol, details=details or {})
        await self.bus.publish(ALERTS_TOPIC, None, codec.encode(a))

    # -- data quality ----------------------------------------------------------
    async def _quality_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.quality_interval)
            try:
                await self.export_quality()
            except Exception:  # never let a metrics bug kill the feed
                log.exception("%s: quality export failed", self.venue)

    async def export_quality(self) -> dict[str, dict[str, Any]]:
        """Set the quality gauges; alert once when a score crosses below its threshold.

        Thresholds and readiness (enough samples) come from the Validator's
        rules when it reports them, else from FeedSettings.
        """
        if self.validate is None:
            return {}
        scores = self.validate.quality()
        s = self.settings
        defaults = {"completeness": s.completeness_threshold, "validity": s.validity_threshold}
        for symbol, vals in scores.items():
            for name, gauge in (("completeness", QUALITY_COMPLETENESS), ("validity", QUALITY_VALIDITY)):
                if name not in vals:
                    continue
                value = vals[name]
                gauge.labels(symbol).set(value)
                threshold = vals["thresholds"].get(name, defaults[name])
                if vals["breaches"] is not None:
                    low = name in vals["breaches"]
                else:
                    low = vals["ready"] and value < threshold
                key = (symbol, name)
                if low and key not in self._quality_low:
                    self._quality_low.add(key)
                    await self.alert("quality", "warning",
                                     f"{self.venue} {symbol}: {name} {value:.3f} below {threshold:g}",
                                     symbol=symbol,
                                     details={"venue": self.venue, "metric": name, "value": value,
                                              "threshold": threshold})
                elif not low and key in self._quality_low:
                    self._quality_low.discard(key)  # re-arm; recovery is visible on the gauge
        return scores
