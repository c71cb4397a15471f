"""The bus and the runner on the real broker: order, commits, dead letters, state across restarts."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from schemas.events import DeadLetter, FeatureVector
from streaming.bus.base import TopicPartition
from streaming.bus.kafka import KafkaBus
from streaming.codec import encode
from streaming.runner import Runner, RunnerSettings
from tests.helpers import CountingProcessor, trade
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.kafka


async def _publish(bus, symbols, n, start=0):
    for i in range(start, start + n):
        for s in symbols:
            await bus.publish("ticks.v1", s.encode(), encode(trade(s, 100.0 + i, i)))
    await bus.flush()


async def _run_until(bus, outputs: int, letters: int = 0) -> Runner:
    """Run a consumer until features.v1 holds ``outputs`` records (and dlq.v1 ``letters``), then stop it."""
    runner = Runner(CountingProcessor(), bus, RunnerSettings(poll_timeout_ms=100))
    task = asyncio.create_task(runner.run())

    async def done():
        return (len(await bus.read_all("features.v1")) >= outputs
                and len(await bus.read_all("dlq.v1")) >= letters)

    try:
        await wait_until(done, 90, what=f"{outputs} outputs and {letters} dead letters")
    finally:
        runner.stop.set()
        await asyncio.wait_for(task, 30)
    return runner


async def test_publish_subscribe_commit_and_order(kafka_url):
    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["ticks.v1"])
    await _publish(bus, ["AAA", "BBB", "CCC"], 50)
    sub = bus.subscribe(["ticks.v1"], "order-check")
    seen: dict[bytes, list[int]] = {}
    async for batch in sub.batches(max_records=64, timeout_ms=200):
        for r in batch:
            seen.setdefault(r.key, []).append(r.offset)
        if sum(map(len, seen.values())) >= 150:
            await sub.commit({TopicPartition(r.topic, r.partition): r.offset + 1 for r in batch})
            break
        if batch:
            await sub.commit({TopicPartition(r.topic, r.partition): r.offset + 1 for r in batch})
    assert {k: len(v) for k, v in seen.items()} == {b"AAA": 50, b"BBB": 50, b"CCC": 50}
    assert all(v == sorted(v) for v in seen.values())
    assert sum((await sub.lag()).values()) == 0
    await sub.close()
    await bus.close()


async def test_runner_dead_letters_and_keeps_going(kafka_url):
    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["ticks.v1"])
    await _publish(bus, ["AAA"], 3)
    await bus.publish("ticks.v1", b"AAA", b"\x00garbage")
    await bus.publish("ticks.v1", b"POISON", encode(trade("POISON", 1.0, 0)))
    await _publish(bus, ["AAA"], 3, start=3)
    await _run_until(bus, outputs=6, letters=2)
    feats = [msgspec.json.decode(r.value, type=FeatureVector) for r in await bus.read_all("features.v1")]
    assert [f.seq for f in feats if f.symbol == "AAA"] == [1, 2, 3, 4, 5, 6]
    letters = [msgspec.json.decode(r.value, type=DeadLetter) for r in await bus.read_all("dlq.v1")]
    assert sorted(d.stage for d in letters) == ["counting:decode", "counting:process"]
    assert next(d for d in letters if d.stage == "counting:decode").raw == b"\x00garbage"
    await bus.close()


async def test_state_survives_a_restart(kafka_url):
    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["ticks.v1"])
    symbols = ["AAA", "BBB", "CCC", "DDD"]
    await _publish(bus, symbols, 5)
    await _run_until(bus, outputs=20)
    await _publish(bus, symbols, 5, start=5)
    await _run_until(bus, outputs=40)
    feats = [msgspec.json.decode(r.value, type=FeatureVector) for r in await bus.read_all("features.v1")]
    for s in symbols:
        assert [f.seq for f in feats if f.symbol == s] == list(range(1, 11)), s
    await bus.close()


async def test_python_client_subscribe_on_kafka(kafka_url):
    """streaming.client.subscribe against the real broker: typed events of one symbol,
    in order, from a URL (the client opens and closes its own Kafka connection)."""
    from schemas.events import Tick
    from streaming.client import subscribe
    from streaming.codec import key_for

    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["ticks.v1"])
    ticks = [trade("AAA" if i % 2 else "BBB", 100.0 + i, i) for i in range(40)]
    for t in ticks:
        await bus.publish("ticks.v1", key_for("ticks.v1", t), encode(t))
    await bus.flush()
    got = [t async for t in subscribe("ticks.v1", kafka_url, symbols={"AAA"}, from_beginning=True, limit=20)]
    assert got == [t for t in ticks if t.symbol == "AAA"] and all(type(t) is Tick for t in got)
    await bus.close()


async def test_a_consumer_creates_the_topics_it_writes_with_the_catalogues_partitions(kafka_url):
    """Not left to the broker's auto-creation on first write (one partition by default; an error
    where auto-creation is off): signals.v1 and health.v1 exist before the first signal."""
    from consumers.signals.processor import SignalsProcessor
    from schemas.topics import lookup

    bus = KafkaBus(kafka_url)
    runner = Runner(SignalsProcessor(), bus, RunnerSettings(poll_timeout_ms=10))
    await runner.open()
    try:
        assert await bus.missing_topics(["features.v1", "signals.v1", "dlq.v1", "health.v1"]) == []
        for name in ("signals.v1", "health.v1"):
            assert len(await bus.partitions_of(name)) == lookup(name).partitions
    finally:
        await runner.close()
        await bus.close()


async def test_a_failed_delivery_is_counted_logged_once_and_raised(kafka_url, caplog):
    """The broker refuses a message (larger than the topic's max.message.bytes): counted at once,
    one ERROR line however many fail, raised by the next flush; with on_delivery_failure=fail the
    next publish raises it, and a buffered publisher stops instead of retrying forever."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from streaming.bus.base import DeliveryFailed
    from streaming.bus.buffered import BufferedBus
    from streaming.bus.kafka import PUBLISH_FAILURES

    bus = KafkaBus(kafka_url)
    admin = AIOKafkaAdminClient(bootstrap_servers=bus.settings.bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(bus.settings.physical("small.v1"), 1, 1,
                                        topic_configs={"max.message.bytes": "2000"})])
    await admin.close()
    before = PUBLISH_FAILURES.labels("small.v1")._value.get()
    for _ in range(5):
        await bus.publish("small.v1", None, b"x" * 5000)
        await asyncio.sleep(0.1)  # each in a request of its own
    with pytest.raises(DeliveryFailed):
        await bus.flush()
    assert PUBLISH_FAILURES.labels("small.v1")._value.get() == before + 5
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "small.v1" in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    await bus.publish("small.v1", None, b"fits")
    await bus.flush()  # the failure was raised once; the bus goes on
    assert [r.value for r in await bus.read_all("small.v1")] == [b"fits"]
    await bus.close()

    strict = BufferedBus(KafkaBus(kafka_url + "&on_delivery_failure=fail"), capacity=100)
    await strict.start()
    await strict.publish("small.v1", None, b"y" * 5000)
    with pytest.raises(DeliveryFailed):
        for _ in range(200):  # the failure arrives with the broker's answer
            await strict.publish("small.v1", None, b"fits")
            await asyncio.sleep(0.05)
    with pytest.raises(DeliveryFailed):
        await strict.flush()
    await strict.close()
