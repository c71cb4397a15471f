"""A stateful processor's batch that raises part way never applies an input twice: its partitions
go back to their last snapshot and the inputs are processed again one at a time."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from consumers.features.processor import FeaturesProcessor
from schemas.events import DeadLetter, FeatureVector
from streaming.bus.memory import MemoryBus
from streaming.codec import encode
from streaming.runner import Runner, RunnerSettings
from tests.helpers import CountingProcessor, drain, trade, wait_for


def _count(bus: MemoryBus, topic: str) -> int:
    return sum(len(log) for log in bus._partitions(topic))


async def _letters(bus) -> list[DeadLetter]:
    return [msgspec.json.decode(r.value, type=DeadLetter) for r in await bus.read_all("dlq.v1")]


async def _vectors(bus) -> list[FeatureVector]:
    return [msgspec.json.decode(r.value, type=FeatureVector) for r in await bus.read_all("features.v1")]


async def test_poison_after_good_inputs_of_its_partition_counts_them_once():
    bus = MemoryBus()
    runner = Runner(CountingProcessor(), bus, RunnerSettings(poll_timeout_ms=10, commit_interval_s=0.01))
    task = asyncio.create_task(runner.run())
    for i in range(3):
        await bus.publish("ticks.v1", b"AAA", encode(trade("AAA", 100.0 + i, i)))
    await wait_for(lambda: _count(bus, "features.v1") == 3, what="the first three counted")
    await wait_for(lambda: _count(bus, "changelog.counting.counting.v2") > 0, what="a snapshot")
    # one fetch (the memory bus's publish never yields): two good inputs, a poison and garbage in the same partition, then more good ones
    for i in range(3, 5):
        await bus.publish("ticks.v1", b"AAA", encode(trade("AAA", 100.0 + i, i)))
    await bus.publish("ticks.v1", b"AAA", encode(trade("POISON", 1.0, 0)))
    await bus.publish("ticks.v1", b"AAA", b"{garbage")
    for i in range(5, 8):
        await bus.publish("ticks.v1", b"AAA", encode(trade("AAA", 100.0 + i, i)))
    await wait_for(lambda: _count(bus, "features.v1") >= 8, what="all eight counted")
    await asyncio.sleep(0.05)
    runner.stop.set()
    await asyncio.wait_for(task, 5)
    assert [f.seq for f in await _vectors(bus)] == list(range(1, 9))  # never 4, 5 counted twice
    assert sorted(d.stage for d in await _letters(bus)) == ["counting:decode", "counting:process"]


@pytest.mark.parametrize("fail_call", [1, 3])
async def test_a_columnar_batch_failing_after_the_kernel_gives_the_uninterrupted_features(fail_call):
    trades = [trade(s, 100.0 + i + 0.1 * k, i) for i in range(60) for k, s in enumerate(("AAA", "BBB", "CCC"))]

    async def run(fail: int | None) -> list[FeatureVector]:
        bus = MemoryBus()
        for t in trades:
            await bus.publish("ticks.v1", t.symbol.encode(), encode(t))
        proc = FeaturesProcessor()
        encode_rows, calls = proc.encoder.encode, [0]

        def flaky(*args):  # raises after the kernel has already taken the batch in
            calls[0] += 1
            if calls[0] == fail:
                raise RuntimeError("encoder bug")
            return encode_rows(*args)

        proc.encoder.encode = flaky
        runner = Runner(proc, bus, RunnerSettings(poll_timeout_ms=10, max_records=40))
        await drain(runner, max_records=40)
        return await _vectors(bus)

    def comparable(vectors: list[FeatureVector]) -> list[tuple]:
        return sorted((v.symbol, v.seq, msgspec.json.encode(v.values)) for v in vectors)

    clean, rewound = await run(None), await run(fail_call)
    assert len(clean) == len(trades)
    assert comparable(rewound) == comparable(clean)
