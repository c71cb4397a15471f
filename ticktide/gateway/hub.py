"""Fan-out of bus events to WebSocket connections.

One bus subscription per gateway instance (a unique consumer group, starting
at the end of each topic) feeds :meth:`Hub.dispatch`. Each event is decoded
once (``streaming.codec``), encoded once as the frame every subscriber gets,
and put on each matching connection's bounded queue without waiting. A
connection's own writer task drains its queue into the socket; when the
queue is full the client is not keeping up: it is dropped from routing at
once, counted, and closed with code 4008 and a reason, so nobody else waits
for it.

Routing: a subscription is a topic (short name) and a set of symbols, or
every symbol (``*``). Events without a symbol (risk updates are per
portfolio; some alerts) go to every subscriber of the topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from ticktide.gateway import metrics as m
from streaming.bus.base import Bus, Record, TopicPartition
from streaming.batch import decode_records
from streaming.codec import decode, encode

log = logging.getLogger(__name__)

TOPICS = {"signals": "signals.v1", "ticks": "ticks.v1", "features": "features.v1",
          "risk": "risk.v1", "alerts": "alerts.v1",
          "bars": "bars.v1", "targets": "targets.v1", "rebalances": "rebalances.v1"}
SHORT = {v: k for k, v in TOPICS.items()}
ALL = "*"
YIELD_EVERY = 32  # records dispatched between yields to the writers (keep well under Limits.queue_size)

# close codes (4000-4999 are the application's; 1009 "message too big" is aiohttp's frame limit)
CLOSE_UNAUTHORIZED = 4001
CLOSE_AUTH_TIMEOUT = 4002
CLOSE_SLOW_CONSUMER = 4008
CLOSE_TOO_MANY_CONNECTIONS = 4029
CLOSE_GOING_AWAY = 1001


@dataclass
class Limits:
    queue_size: int = 1024  # frames waiting per connection before it counts as slow
    max_frame_bytes: int = 16 * 1024  # largest client frame
    max_subscriptions: int = 256  # (topic, symbol) pairs per connection; a topic's * counts once
    max_connections_per_token: int = 32
    auth_timeout_s: float = 5.0
    close_timeout_s: float = 5.0  # a slow client that does not take its close frame is cut off

    def public(self) -> dict[str, Any]:
        return {"queue_size": self.queue_size, "max_frame_bytes": self.max_frame_bytes,
                "max_subscriptions": self.max_subscriptions,
                "max_connections_per_token": self.max_connections_per_token}


_ids = itertools.count(1)


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    token_id: str
    queue: asyncio.Queue
    id: int = field(default_factory=lambda: next(_ids))
    subs: dict[str, set[str]] = field(default_factory=dict)  # short topic -> symbols, {"*"} for all
    closing: bool = False
    writer: asyncio.Task | None = None

    def subscription_count(self) -> int:
        return sum(1 if ALL in s else len(s) for s in self.subs.values())

    def describe(self) -> dict[str, Any]:
        return {t: (ALL if ALL in s else sorted(s)) for t, s in sorted(self.subs.items())}


class Hub:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.connections: set[Connection] = set()
        self.per_token: Tally[str] = Tally()
        # short topic -> symbol (or "*") -> connections
        self.routes: dict[str, dict[str, set[Connection]]] = {t: {} for t in TOPICS}
        self.assigned: set[TopicPartition] = set()
        self.ready = asyncio.Event()
        self.slow_disconnects = 0
        self._closers: set[asyncio.Task] = set()

    # -- connections ----------------------------------------------------------
    def admit(self, ws: web.WebSocketResponse, token_id: str) -> Connection | None:
        """Register a connection; None when its token already has the maximum open."""
        if self.per_token[token_id] >= self.limits.max_connections_per_token:
            return None
        conn = Connection(ws, token_id, asyncio.Queue(self.limits.queue_size))
        self.per_token[token_id] += 1
        self.connections.add(conn)
        conn.writer = asyncio.get_running_loop().create_task(self._write(conn), name=f"gateway-ws-{conn.id}")
        m.CONNECTIONS.set(len(self.connections))
        return conn

    def remove(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        self.per_token[conn.token_id] -= 1
        if self.per_token[conn.token_id] <= 0:
            del self.per_token[conn.token_id]
        self._unroute(conn)
        m.SUBSCRIPTIONS.dec(conn.subscription_count())
        conn.subs.clear()
        if conn.writer is not None and conn.writer is not asyncio.current_task():
            conn.writer.cancel()
        m.CONNECTIONS.set(len(self.connections))

    def send(self, conn: Connection, message: dict[str, Any]) -> None:
        """Queue a control message (replies share the queue so they stay in order with events)."""
        self._enqueue(conn, msgspec.json.encode(message))

    # -- subscriptions --------------------------------------------------------
    def subscribe(self, conn: Connection, topics: list[str], symbols: list[str] | None) -> str | None:
        """Add subscriptions; returns an error (and changes nothing) when over the limit."""
        wanted = {t: ({ALL} if not symbols else set(symbols)) for t in topics}
        merged = {t: set(s) for t, s in conn.subs.items()}
        for t, syms in wanted.items():
            current = merged.setdefault(t, set())
            current |= syms
            if ALL in current:
                merged[t] = {ALL}
        count = sum(1 if ALL in s else len(s) for s in merged.values())
        if count > self.limits.max_subscriptions:
            return (f"subscription limit exceeded: this would make {count} subscriptions "
                    f"(topic x symbol, a topic's '*' counts once); the limit is {self.limits.max_subscriptions}")
        self._replace(conn, merged)
        return None

    def unsubscribe(self, conn: Connection, topics: list[str], symbols: list[str] | None) -> None:
        merged = {t: set(s) for t, s in conn.subs.items()}
        for t in topics:
            if not symbols:
                merged.pop(t, None)
            elif t in merged:
                merged[t] -= set(symbols)
                if not merged[t]:
                    del merged[t]
        self._replace(conn, merged)

    def _replace(self, conn: Connection, subs: dict[str, set[str]]) -> None:
        before = conn.subscription_count()
        self._unroute(conn)
        conn.subs = subs
        for t, syms in subs.items():
            for s in syms:
                self.routes[t].setdefault(s, set()).add(conn)
        m.SUBSCRIPTIONS.inc(conn.subscription_count() - before)

    def _unroute(self, conn: Connection) -> None:
        for t, syms in conn.subs.items():
            table = self.routes[t]
            for s in syms:
                members = table.get(s)
                if members is not None:
                    members.discard(conn)
                    if not members:
                        del table[s]

    # -- fan-out --------------------------------------------------------------
    def dispatch_record(self, record: Record) -> int:
        short = SHORT.get(record.topic)
        if short is None:
            return 0
        m.EVENTS_IN.labels(short).inc()
        try:
            event = decode(record.topic, record.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            m.DECODE_ERRORS.labels(short).inc()
            log.warning("undecodable %s record at partition %d offset %d: %s",
                        record.topic, record.partition, record.offset, exc)
            return 0
        return self.dispatch(short, event)

    def decode_batch(self, batch: list[Record]) -> list[tuple[str, msgspec.Struct]]:
        """The batch's (topic, event) pairs to dispatch: decoded with one msgspec call per run of
        one topic, counted once per topic; undecodable records are counted and logged."""
        known = [r for r in batch if r.topic in SHORT]
        events, errors = decode_records(known)
        counts: dict[str, int] = {}
        out = []
        for i, r in enumerate(known):
            short = SHORT[r.topic]
            counts[short] = counts.get(short, 0) + 1
            if i in errors:
                m.DECODE_ERRORS.labels(short).inc()
                log.warning("undecodable %s record at partition %d offset %d: %s",
                            r.topic, r.partition, r.offset, errors[i])
                continue
            out.append((short, events[i]))
        for short, n in counts.items():
            m.EVENTS_IN.labels(short).inc(n)
        return out

    def dispatch(self, short: str, event: msgspec.Struct) -> int:
        """Queue ``event`` for every subscriber; returns how many connections it went to."""
        table = self.routes[short]
        if not table:
            return 0
        started = time.perf_counter()
        symbol = getattr(event, "symbol", None)
        targets = set(table.get(ALL, ()))
        if symbol is None:
            for members in table.values():
                targets |= members
        else:
            targets |= table.get(symbol, set())
        if not targets:
            return 0
        frame = b"".join((b'{"type":"event","topic":', msgspec.json.encode(short), b',"symbol":',
                          msgspec.json.encode(symbol), b',"ts_gateway":', str(time.time_ns()).encode(),
                          b',"event":', encode(event), b"}"))
        for conn in targets:
            self._enqueue(conn, frame)
        m.FANOUT_SECONDS.observe(time.perf_counter() - started)
        return len(targets)

    def _enqueue(self, conn: Connection, frame: bytes) -> None:
        if conn.closing:
            return
        try:
            conn.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self._evict_slow(conn)

    async def _write(self, conn: Connection) -> None:
        ws, queue = conn.ws, conn.queue
        try:
            while True:
                frame = await queue.get()
                sent = 0
                while True:
                    await ws.send_frame(frame, WSMsgType.TEXT)
                    sent += 1
                    if queue.empty() or sent >= 256:
                        break
                    frame = queue.get_nowait()
                m.MESSAGES_SENT.inc(sent)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a peer gone mid-write ends this connection only
            log.info("connection %d: write failed (%s); closing", conn.id, type(exc).__name__)
            self.remove(conn)

    def _evict_slow(self, conn: Connection) -> None:
        conn.closing = True
        size = self.limits.queue_size
        self.slow_disconnects += 1
        m.SLOW_DISCONNECTS.inc()
        log.warning("connection %d (%s) is not keeping up: %d frames queued; disconnecting (code %d)",
                    conn.id, conn.token_id, size, CLOSE_SLOW_CONSUMER)
        self.remove(conn)
        while not conn.queue.empty():
            conn.queue.get_nowait()
        reason = f"slow consumer: {size} messages queued unread (queue limit {size})"
        task = asyncio.get_running_loop().create_task(self.close(conn, CLOSE_SLOW_CONSUMER, reason))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def close(self, conn: Connection, code: int, reason: str) -> None:
        """Close with ``code``/``reason``; cut the transport if the peer does not take the close frame."""
        conn.closing = True
        try:
            await asyncio.wait_for(conn.ws.close(code=code, message=reason.encode()[:120]),
                                   self.limits.close_timeout_s)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            transport = conn.ws._req.transport if conn.ws._req is not None else None  # noqa: SLF001
            if transport is not None:
                transport.abort()

    async def shutdown(self) -> None:
        for conn in list(self.connections):
            self.remove(conn)
            conn.closing = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=CLOSE_GOING_AWAY, message=b"gateway shutting down"), 2)
        for task in list(self._closers):
            task.cancel()

    # -- the bus --------------------------------------------------------------
    async def consume(self, bus: Bus, stop: asyncio.Event, group: str | None = None) -> None:
        """Read every gateway topic from its end, in a consumer group of this instance alone."""
        group = group or f"gateway-{uuid.uuid4().hex[:12]}"
        await bus.ensure_topics(list(TOPICS.values()))
        sub = bus.subscribe(list(TOPICS.values()), group, on_assign=self._on_assign,
                            on_revoke=self._on_revoke, from_beginning=False)
        log.info("gateway reading %s in consumer group %s", ", ".join(TOPICS.values()), group)
        try:
            async for batch in sub.batches(max_records=2000, timeout_ms=100):
                for i, (short, event) in enumerate(self.decode_batch(batch), 1):
                    self.dispatch(short, event)
                    if i % YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # let writers drain: a burst is not a slow client
                if self.assigned and not self.ready.is_set():
                    self.ready.set()
                if stop.is_set():
                    break
        finally:
            await sub.close()

    def _on_assign(self, tps: list[TopicPartition]) -> None:
        self.assigned.update(tps)

    def _on_revoke(self, tps: list[TopicPartition]) -> None:
        self.assigned.difference_update(tps)
