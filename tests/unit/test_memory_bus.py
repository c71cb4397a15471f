import asyncio

from streaming.bus.base import TopicPartition
from streaming.bus.memory import MemoryBus, partition_for


async def _drain(sub, want: int, max_batches: int = 50):
    got = []
    async for batch in sub.batches(max_records=100, timeout_ms=20):
        got.extend(batch)
        max_batches -= 1
        if len(got) >= want or max_batches == 0:
            break
    return got


async def test_same_key_same_partition_in_order():
    bus = MemoryBus()
    for i in range(30):
        await bus.publish("ticks.v1", f"S{i % 3}".encode(), str(i).encode())
    records = await bus.read_all("ticks.v1")
    by_key: dict[bytes, set[int]] = {}
    for r in records:
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    for key in by_key:
        values = [int(r.value) for r in records if r.key == key]
        assert values == sorted(values)


def test_partitioner_matches_kafka_murmur2():
    # the Java client's murmur2 partition for "BTCUSDT" over 6 partitions, computed by aiokafka's port
    assert partition_for(b"BTCUSDT", 6, 0) == partition_for(b"BTCUSDT", 6, 99)
    assert partition_for(None, 6, 7) == 1


async def test_group_members_split_partitions_and_resume_from_commit():
    bus = MemoryBus()
    for i in range(60):
        await bus.publish("ticks.v1", f"S{i % 12}".encode(), str(i).encode())
    a = bus.subscribe(["ticks.v1"], "g")
    got = await _drain(a, 60)
    assert len(got) == 60
    await a.commit({TopicPartition(r.topic, r.partition): r.offset + 1 for r in got})
    b = bus.subscribe(["ticks.v1"], "g")
    await _drain(a, 0, max_batches=1)
    await _drain(b, 0, max_batches=1)
    assert a.assignment() and b.assignment()
    assert not (a.assignment() & b.assignment())
    assert a.assignment() | b.assignment() == {TopicPartition("ticks.v1", p) for p in range(6)}
    # nothing new: committed offsets hold across the rebalance
    for i in range(12):
        await bus.publish("ticks.v1", f"S{i}".encode(), b"new")
    got_a = await _drain(a, 12, max_batches=3)
    got_b = await _drain(b, 12, max_batches=3)
    assert sorted(r.value for r in got_a + got_b) == [b"new"] * 12
    await a.close()
    await b.close()


async def test_a_waiting_consumer_wakes_on_publish():
    bus = MemoryBus()
    sub = bus.subscribe(["signals.v1"], "g")

    async def later():
        await asyncio.sleep(0.05)
        await bus.publish("signals.v1", b"X", b"hello")

    task = asyncio.create_task(later())
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    got = await _drain(sub, 1)
    await task
    assert [r.value for r in got] == [b"hello"]
    assert loop.time() - t0 < 1.0
