"""streaming.client.subscribe: typed events from a topic, on the embedded bus (the Kafka
version is in tests/integration/test_kafka_bus.py)."""

from __future__ import annotations

import logging
import uuid

import pytest

from schemas.events import Tick
from streaming.bus import open_bus
from streaming.client import UndecodableRecord, subscribe
from streaming.codec import encode, key_for


def _tick(sym: str, i: int) -> Tick:
    return Tick(symbol=sym, venue="t", kind="trade", ts_event=i, ts_recv=i, price=100.0 + i, size=1.0,
                side="buy", trade_id=str(i), seq=i)


async def _bus_with(events, garbage_at: int | None = None):
    bus = open_bus(f"memory://client-{uuid.uuid4().hex[:8]}")
    await bus.start()
    for i, ev in enumerate(events):
        if i == garbage_at:
            await bus.publish("ticks.v1", b"AAA", b'{"symbol": 5}')
        await bus.publish("ticks.v1", key_for("ticks.v1", ev), encode(ev))
    return bus


async def test_typed_events_filtered_by_symbol():
    ticks = [_tick("AAA" if i % 3 else "BBB", i) for i in range(12)]
    bus = await _bus_with(ticks)
    got = [t async for t in subscribe("ticks.v1", bus, symbols={"AAA"}, from_beginning=True, limit=8)]
    assert got == [t for t in ticks if t.symbol == "AAA"] and all(type(t) is Tick for t in got)
    # a URL of the same embedded bus works too, and leaves the shared bus usable
    again = [t async for t in subscribe("ticks.v1", bus.url, from_beginning=True, limit=12)]
    assert sorted(again, key=lambda t: t.seq) == ticks


async def test_undecodable_records_raise_a_clear_error_or_are_skipped_and_logged(caplog):
    ticks = [_tick("AAA", i) for i in range(4)]
    bus = await _bus_with(ticks, garbage_at=2)
    with pytest.raises(UndecodableRecord, match=r"ticks\.v1\[\d\]@2: not a ticks\.v1 event"):
        [t async for t in subscribe("ticks.v1", bus, from_beginning=True, limit=4)]
    sub = subscribe("ticks.v1", bus, from_beginning=True, limit=4, skip_undecodable=True)
    with caplog.at_level(logging.WARNING):
        got = [t async for t in sub]
    assert got == ticks and sub.skipped == 1 and "skipping ticks.v1" in caplog.text


def test_unknown_and_untyped_topics_are_refused():
    with pytest.raises(KeyError, match="unknown topic 'nope.v1'"):
        subscribe("nope.v1", "memory://")
    with pytest.raises(ValueError, match="carries no event type"):
        subscribe("changelog.features.features.v2", "memory://")
