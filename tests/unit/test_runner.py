import asyncio

import msgspec

from schemas.events import DeadLetter, FeatureVector
from streaming.bus.memory import MemoryBus
from streaming.codec import encode
from streaming.runner import Runner, RunnerSettings
from tests.helpers import CountingProcessor, trade


async def _publish_trades(bus, symbols, n, start=0):
    for i in range(start, start + n):
        for s in symbols:
            t = trade(s, 100.0 + i, i)
            await bus.publish("ticks.v1", s.encode(), encode(t))


async def _run_for(runner: Runner, seconds: float) -> None:
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(seconds)
    runner.stop.set()
    await asyncio.wait_for(task, 5)


def _features(records):
    return [msgspec.json.decode(r.value, type=FeatureVector) for r in records]


async def test_poison_and_garbage_go_to_dlq_and_the_stream_continues():
    bus = MemoryBus()
    await _publish_trades(bus, ["AAA"], 3)
    await bus.publish("ticks.v1", b"AAA", b"{not json")
    await bus.publish("ticks.v1", b"POISON", encode(trade("POISON", 1.0, 0)))
    await _publish_trades(bus, ["AAA"], 3, start=3)
    runner = Runner(CountingProcessor(), bus, RunnerSettings(poll_timeout_ms=10))
    await _run_for(runner, 0.3)
    outs = _features(await bus.read_all("features.v1"))
    assert [f.seq for f in outs if f.symbol == "AAA"] == [1, 2, 3, 4, 5, 6]
    letters = [msgspec.json.decode(r.value, type=DeadLetter) for r in await bus.read_all("dlq.v1")]
    assert sorted(d.stage for d in letters) == ["counting:decode", "counting:process"]
    garbage = next(d for d in letters if d.stage == "counting:decode")
    assert garbage.raw == b"{not json" and garbage.source_topic == "ticks.v1" and garbage.offset is not None
    poison = next(d for d in letters if d.stage == "counting:process")
    assert "poison tick" in poison.reason


async def test_restart_restores_state_from_the_changelog():
    bus = MemoryBus()
    symbols = ["AAA", "BBB", "CCC", "DDD"]
    await _publish_trades(bus, symbols, 5)
    await _run_for(Runner(CountingProcessor(), bus, RunnerSettings(poll_timeout_ms=10)), 0.3)
    assert await bus.read_all("changelog.counting.counting.v2"), "a snapshot was written at shutdown"
    await _publish_trades(bus, symbols, 5, start=5)
    await _run_for(Runner(CountingProcessor(), bus, RunnerSettings(poll_timeout_ms=10)), 0.3)
    outs = _features(await bus.read_all("features.v1"))
    for s in symbols:
        assert [f.seq for f in outs if f.symbol == s] == list(range(1, 11))


async def test_restart_without_a_snapshot_rebuilds_from_the_beginning():
    """A consumer that died before snapshotting re-reads its inputs: same values, duplicates allowed."""
    bus = MemoryBus()
    await _publish_trades(bus, ["AAA"], 4)
    runner = Runner(CountingProcessor(), bus, RunnerSettings(poll_timeout_ms=10, commit_interval_s=999))
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.2)
    task.cancel()  # a crash: no clean shutdown, no snapshot
    try:
        await task
    except asyncio.CancelledError:
        pass
    await _publish_trades(bus, ["AAA"], 2, start=4)
    await _run_for(Runner(CountingProcessor(), bus, RunnerSettings(poll_timeout_ms=10)), 0.3)
    values = {}
    for f in _features(await bus.read_all("features.v1")):
        values.setdefault(f.seq, set()).add(f.price)
    assert sorted(values) == [1, 2, 3, 4, 5, 6]
    assert all(len(v) == 1 for v in values.values()), "a re-run publishes the same values"


async def test_second_member_takes_over_partitions_with_their_state():
    bus = MemoryBus()
    symbols = [f"S{i:02d}" for i in range(12)]
    await _publish_trades(bus, symbols, 3)
    first = Runner(CountingProcessor(), bus, RunnerSettings(poll_timeout_ms=10))
    t1 = asyncio.create_task(first.run())
    await asyncio.sleep(0.2)
    second = Runner(CountingProcessor(), bus, RunnerSettings(poll_timeout_ms=10))
    t2 = asyncio.create_task(second.run())
    await asyncio.sleep(0.2)
    await _publish_trades(bus, symbols, 3, start=3)
    await asyncio.sleep(0.3)
    first.stop.set()
    second.stop.set()
    await asyncio.wait_for(asyncio.gather(t1, t2), 5)
    outs = _features(await bus.read_all("features.v1"))
    for s in symbols:
        seqs = sorted({f.seq for f in outs if f.symbol == s})
        assert seqs == [1, 2, 3, 4, 5, 6], (s, seqs)
    assert {f.symbol for f in outs if f.seq == 6} == set(symbols)


async def test_item_snapshots_skip_inputs_each_item_already_reflects():
    """Items snapshotted at different offsets: restore re-reads from the oldest, skips per item."""
    from streaming.bus.memory import partition_for
    from tests.helpers import ItemCountingProcessor

    symbols = [f"S{i}" for i in range(40)]
    a, b = [s for s in symbols if partition_for(s.encode(), 6, 0) == partition_for(b"S0", 6, 0)][:2]
    bus = MemoryBus()

    async def run_until(n_outputs):
        runner = Runner(ItemCountingProcessor(), bus, RunnerSettings(poll_timeout_ms=10))
        task = asyncio.create_task(runner.run())
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(await bus.read_all("features.v1")) >= n_outputs:
                break
        runner.stop.set()
        await asyncio.wait_for(task, 5)

    await _publish_trades(bus, [a, b], 3)
    await run_until(6)
    await _publish_trades(bus, [a], 3, start=3)
    await run_until(9)  # only a changed: b's changelog record stays at the older offset
    items = [r.key for r in await bus.read_all("changelog.item-counting.item-counting.v2")]
    assert sorted(items) == sorted([f"{partition_for(a.encode(), 6, 0)}/{s}".encode() for s in (a, b, a)])
    await _publish_trades(bus, [b], 2, start=3)
    await run_until(11)
    await asyncio.sleep(0.1)
    outs = _features(await bus.read_all("features.v1"))
    assert [f.seq for f in outs if f.symbol == a] == [1, 2, 3, 4, 5, 6], "a's inputs were skipped, not redone"
    assert [f.seq for f in outs if f.symbol == b] == [1, 2, 3, 4, 5]


def test_every_built_in_consumer_names_the_catalogue_topics_it_writes():
    """The runner creates them at start (tests/integration/test_kafka_bus.py): a consumer without
    ``outputs`` would leave its topics to the broker's auto-creation."""
    from schemas.topics import lookup
    from ticktide.processors import CONSUMERS, create_processor

    for name in CONSUMERS:
        proc = create_processor(name)
        assert proc.outputs, name
        assert all(lookup(t) is not None for t in proc.outputs), (name, proc.outputs)
