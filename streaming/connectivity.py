"""Broker connectivity as process state: a probe, two gauges, bounded logs, a health reason.

Every process that talks to Kafka runs one :class:`BrokerWatch` per broker
list. It asks the brokers for their API versions (the cheapest Kafka request,
answered before authentication) every second and keeps:

- ``ticktide_bus_up{role}`` 1/0 and ``ticktide_bus_last_contact_timestamp_seconds{role}``;
- a health reason (``"broker 127.0.0.1:9092 unreachable for 42 s"``) that
  the health answers report as ``degraded``;
- the log bounded: one WARNING when the broker goes away naming what waits,
  at most one summary line per ``summary_interval_s`` while it stays away,
  one INFO line with the outage's duration when it is back. aiokafka's own
  per-attempt errors go through :class:`ClientLogLimiter` instead of the log.

Callbacks registered with :meth:`BrokerWatch.on_change` run on every
transition (the runner drops its lag gauges while the broker is away: a
stale number would lie).
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
import struct
import time
from typing import Callable

from streaming import metrics

log = logging.getLogger("ticktide.bus")

PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 2.0
SUMMARY_INTERVAL_S = 30.0

set_role = metrics.set_role


def parse_servers(bootstrap: str) -> list[tuple[str, int]]:
    """``"h1:9092,[::1]:9093,h3"`` -> ``[("h1", 9092), ("::1", 9093), ("h3", 9092)]``."""
    out = []
    for part in (p.strip() for p in bootstrap.split(",") if p.strip()):
        host, sep, port = part.rpartition(":")
        if not sep or not port.isdigit() or host.count(":") and not host.startswith("["):
            host, port = part, "9092"  # no port (or a bare IPv6 address)
        out.append((host.strip("[]") or "127.0.0.1", int(port)))
    return out


_API_VERSIONS = struct.pack(">hhih", 18, 0, 0x7417, len(b"ticktide-probe")) + b"ticktide-probe"


async def probe_broker(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S,
                       ssl: ssl_module.SSLContext | None = None) -> None:
    """One ApiVersions v0 round trip; raises when the broker does not answer it."""
    async def ask() -> None:
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl)
        try:
            writer.write(struct.pack(">i", len(_API_VERSIONS)) + _API_VERSIONS)
            await writer.drain()
            size = struct.unpack(">i", await reader.readexactly(4))[0]
            body = await reader.readexactly(size)
            if struct.unpack(">i", body[:4])[0] != 0x7417:
                raise ConnectionError("unexpected answer to ApiVersions")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except Exception:  # noqa: BLE001 - closing a broken socket
                pass
    await asyncio.wait_for(ask(), timeout_s)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text


class BrokerWatch:
    """Tracks whether the brokers of one bus answer; see the module docstring."""

    def __init__(self, bootstrap: str, *, ssl: ssl_module.SSLContext | None = None,
                 interval_s: float = PROBE_INTERVAL_S, summary_interval_s: float = SUMMARY_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bootstrap = bootstrap
        self.servers = parse_servers(bootstrap)
        self.ssl = ssl
        self.interval_s = interval_s
        self.summary_interval_s = summary_interval_s
        self.clock = clock
        self.up: bool | None = None  # None until the first probe answers or fails
        self.down_since: float | None = None
        self.last_contact: float | None = None  # wall clock
        self.outages = 0
        self._last_summary = 0.0
        self._error = ""
        self._waiting: list[Callable[[], str]] = []
        self._listeners: list[Callable[[bool], None]] = []
        self._task: asyncio.Task | None = None
        self._users = 0

    # -- who waits, who listens ------------------------------------------------
    def describe_waiting(self, describe: Callable[[], str]) -> None:
        """Add a callable saying what waits for the broker ("1,234 messages buffered")."""
        self._waiting.append(describe)

    def forget_waiting(self, describe: Callable[[], str]) -> None:
        if describe in self._waiting:
            self._waiting.remove(describe)

    def on_change(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    def forget_listener(self, listener: Callable[[bool], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def waiting(self) -> str:
        parts = []
        for describe in self._waiting:
            try:
                text = describe()
            except Exception:  # noqa: BLE001 - a report must never break the watch
                continue
            if text:
                parts.append(text)
        return "; ".join(parts) or "nothing waiting"

    def reason(self) -> str:
        """Why the process is degraded; "" while the broker answers."""
        if self.up is not False:
            return ""
        return f"broker {self.bootstrap} unreachable for {self.clock() - (self.down_since or self.clock()):.0f} s"

    # -- state changes (the probe calls these; tests may too) -------------------
    def contact(self) -> None:
        now = self.clock()
        self.last_contact = time.time()
        metrics.BUS_LAST_CONTACT.labels(metrics.role()).set(self.last_contact)
        if self.up is False:
            duration = now - (self.down_since or now)
            # INFO, or WARNING where only warnings are shown: whoever saw the outage sees its end
            level = logging.INFO if log.isEnabledFor(logging.INFO) else logging.WARNING
            log.log(level, "broker %s reachable again after an outage of %.0f s", self.bootstrap, duration)
        if self.up is not True:
            self.up, self.down_since = True, None
            metrics.BUS_UP.labels(metrics.role()).set(1)
            self._notify(True)

    def failure(self, error: str) -> None:
        now = self.clock()
        self._error = error
        if self.up is not False:
            self.up, self.down_since, self._last_summary = False, now, now
            self.outages += 1
            metrics.BUS_UP.labels(metrics.role()).set(0)
            log.warning("broker %s unreachable (%s); waiting: %s; retrying every %.0f s",
                        self.bootstrap, error, self.waiting(), self.interval_s)
            self._notify(False)
        elif now - self._last_summary >= self.summary_interval_s:
            self._last_summary = now
            suppressed = LIMITER.take_suppressed()
            extra = f"; {suppressed:,} client errors suppressed" if suppressed else ""
            log.warning("broker %s unreachable for %.0f s (%s); %s%s; retrying", self.bootstrap,
                        now - (self.down_since or now), error, self.waiting(), extra)

    def _notify(self, up: bool) -> None:
        for listener in list(self._listeners):
            try:
                listener(up)
            except Exception:  # noqa: BLE001
                log.debug("connectivity listener failed", exc_info=True)

    # -- the probe ----------------------------------------------------------------
    async def probe_once(self) -> None:
        errors = await asyncio.gather(*(probe_broker(h, p, min(PROBE_TIMEOUT_S, self.interval_s * 2), self.ssl)
                                        for h, p in self.servers), return_exceptions=True)
        if any(e is None for e in errors):
            self.contact()
        else:
            self.failure(_describe(errors[0]))

    async def _run(self) -> None:
        while True:
            try:
                await self.probe_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the watch outlives any probe bug
                self.failure(_describe(exc))
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        """Start probing (idempotent; counts users so the last ``stop`` ends the probe)."""
        self._users += 1
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:  # a new loop (tests)
            metrics.BUS_UP.labels(metrics.role())  # the families appear as soon as the process uses a bus
            self._task = loop.create_task(self._run(), name=f"broker-watch {self.bootstrap}")

    def stop(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users == 0 and self._task is not None:
            if not self._task.get_loop().is_closed():
                self._task.cancel()
            self._task = None


_watches: dict[str, BrokerWatch] = {}


def watch_for(bootstrap: str, ssl: ssl_module.SSLContext | None = None) -> BrokerWatch:
    """The process's one watch of these brokers (every bus of a process shares it)."""
    w = _watches.get(bootstrap)
    if w is None:
        w = _watches[bootstrap] = BrokerWatch(bootstrap, ssl=ssl)
    return w


def degraded_reasons() -> list[str]:
    """Health reasons of every watched broker list that cannot be reached right now."""
    return [r for r in (w.reason() for w in _watches.values()) if r]


metrics.HEALTH_SOURCES.append(degraded_reasons)


def forget_watches() -> None:
    """Tests: drop every watch (their tasks belong to a finished event loop)."""
    for w in _watches.values():
        if w._task is not None and not w._task.get_loop().is_closed():
            w._task.cancel()
    _watches.clear()


# -- aiokafka's own log ---------------------------------------------------------------
_CONNECTION_WORDS = ("connect", "unable", "coordinator", "no broker", "node", "metadata", "heartbeat",
                     "timeout", "timed out", "errno", "refused", "unavailable", "not ready", "failed fetch",
                     "error produce response", "leader")


class ClientLogLimiter(logging.Handler):
    """Bounds what the Kafka client logs: its per-attempt connection errors are counted, not
    written (the watch reports the outage), and any other message is written at most once per
    ``interval_s`` per message template."""

    def __init__(self, interval_s: float = SUMMARY_INTERVAL_S) -> None:
        super().__init__(logging.DEBUG)
        self.interval_s = interval_s
        self._seen: dict[tuple[str, str], float] = {}
        self.suppressed = 0

    def take_suppressed(self) -> int:
        n, self.suppressed = self.suppressed, 0
        return n

    def emit(self, record: logging.LogRecord) -> None:
        template = str(record.msg)
        if record.levelno >= logging.WARNING and (
                any(w.up is False for w in _watches.values())
                or any(w in template.lower() for w in _CONNECTION_WORDS)):
            self.suppressed += 1  # the watch reports the outage (and this count) instead
            return
        now = time.monotonic()
        key = (record.name, template)
        if now - self._seen.get(key, -1e18) < self.interval_s:
            self.suppressed += 1
            return
        self._seen[key] = now
        if len(self._seen) > 1000:
            self._seen.clear()
        record.exc_info, record.exc_text, record.stack_info = None, None, None  # one line, no traceback
        logging.getLogger().handle(record)


LIMITER = ClientLogLimiter()


def limit_client_logs() -> None:
    """Route aiokafka's log through :data:`LIMITER` (idempotent)."""
    client = logging.getLogger("aiokafka")
    if LIMITER not in client.handlers:
        client.addHandler(LIMITER)
        client.propagate = False
