"""On the real broker: a stateful consumer whose batch raises part way (a poison input after good
ones of its partition) goes back to its last snapshot and counts every good input once."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from schemas.events import DeadLetter, FeatureVector
from streaming.bus.kafka import KafkaBus
from streaming.codec import encode
from tests.helpers import trade
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("mode", [[], ["--exactly-once"]], ids=["at-least-once", "exactly-once"])
async def test_poison_mid_batch_is_dead_lettered_and_nothing_is_counted_twice(kafka_url, processes, mode):
    bus = KafkaBus(kafka_url)  # reads read_committed: aborted transactions' outputs are not counted
    await bus.ensure_topics(["ticks.v1", "features.v1", "dlq.v1", "health.v1"])
    proc = processes.start("consume", "--processor", "tests.helpers:CountingProcessor", "--bus", kafka_url,
                           "--group", "rewind", *mode, name="counting")
    await bus.start()

    async def vectors(n: int):
        found = [msgspec.json.decode(r.value, type=FeatureVector)
                 for r in await bus.read_all("features.v1", timeout_s=5)]
        return found if len(found) >= n else None

    try:
        for i in range(3):
            await bus.publish("ticks.v1", b"AAA", encode(trade("AAA", 100.0 + i, i)))
        await bus.flush()
        await wait_until(lambda: vectors(3), 90, what=f"three counts; log:\n{processes.log(proc)[-2000:]}")
        await asyncio.sleep(3)  # a snapshot (every 2 s) holds the first three
        # sent together, one fetch: good inputs, the poison, good ones, all keyed AAA (one partition)
        for i in range(3, 5):
            await bus.publish("ticks.v1", b"AAA", encode(trade("AAA", 100.0 + i, i)))
        await bus.publish("ticks.v1", b"AAA", encode(trade("POISON", 1.0, 0)))
        for i in range(5, 8):
            await bus.publish("ticks.v1", b"AAA", encode(trade("AAA", 100.0 + i, i)))
        await bus.flush()
        found = await wait_until(lambda: vectors(8), 60, what=f"eight counts; log:\n{processes.log(proc)[-3000:]}")
        await asyncio.sleep(2)  # nothing more arrives
        found = await vectors(0)
        letters = [msgspec.json.decode(r.value, type=DeadLetter) for r in await bus.read_all("dlq.v1", timeout_s=5)]
    finally:
        await bus.close()
    assert [f.seq for f in found] == list(range(1, 9)), processes.log(proc)[-3000:]
    assert [(d.stage, d.offset) for d in letters] == [("counting:process", 5)]
    assert processes.stop(proc) == 0
