"""The checkpoint and the partition state on the memory bus's real transactions, fencing and failed commits.

The Kafka chaos tests (tests/integration/test_exactly_once_chaos.py) prove the same
guarantees on the broker; these pin each path down fast.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import msgspec
import pytest

from schemas.events import FeatureVector
from streaming.bus.base import Acks, CommitFailed, Committed, Fenced, TopicPartition
from streaming.bus.memory import MemoryBus
from streaming.changelog import CHECKPOINT_METADATA
from streaming.codec import encode
from streaming.partition import InputPosition, PartitionState
from streaming.runner import Runner, RunnerSettings
from tests.helpers import CountingProcessor, trade

TP = TopicPartition("ticks.v1", 2)  # where AAA lands


async def _publish(bus, n: int, start: int = 0, symbol: str = "AAA") -> None:
    for i in range(start, start + n):
        await bus.publish("ticks.v1", symbol.encode(), encode(trade(symbol, 100.0 + i, i)))


async def _crash_after(bus: MemoryBus, batches: int | None, exactly_once: bool, commit_every_batch: bool = True):
    """A runner handling ``batches`` batches of 10 (None: all), then gone without a word (kill -9:
    no final checkpoint, its membership expires)."""
    runner = Runner(CountingProcessor(), bus, RunnerSettings(
        max_records=10, exactly_once=exactly_once, commit_interval_s=0 if commit_every_batch else 3600))
    await runner.open()
    n = 0
    async for records in runner.subscription.batches(10, 10):
        if not records:
            break
        await runner.handle(records)
        if runner.checkpoint.due():
            await runner.checkpoint.commit()
        n += 1
        if batches is not None and n >= batches:
            break
    if not exactly_once:
        await asyncio.sleep(0)  # the at-least-once checkpoint settles behind the loop
        await runner.checkpoint.drain()
    bus._leave(runner.subscription)  # the session times out: the member is gone, no hook runs
    return runner


def _seqs(records) -> Counter:
    return Counter(msgspec.json.decode(r.value, type=FeatureVector).seq for r in records)


@pytest.mark.parametrize("exactly_once", [False, True])
async def test_a_crash_during_the_replay_after_a_restore_never_moves_the_commit_back(exactly_once):
    """Issue 22's duplicates: a restart re-reads inputs whose outputs are out (its changelog is
    older than the group's offset) and used to commit their offsets, moving the group's offset
    back; killed then, the next instance published those outputs a second time."""
    bus = MemoryBus()
    await _publish(bus, 100)
    # offsets committed by an older ticktide (no checkpoint metadata, no changelog): the state must be
    # rebuilt from the start, publishing nothing below offset 100
    bus._groups["counting"].committed[TP] = Committed(100)
    await bus.publish("ticks.v1", b"AAA", b"")  # nothing: a dead letter at 100, after the replay
    await _crash_after(bus, 3, exactly_once)  # killed during the silent replay
    assert bus._groups["counting"].committed[TP].offset == 100, "the commit moved back"
    await _crash_after(bus, None, exactly_once)
    outputs = _seqs(await bus.read_all("features.v1"))
    assert outputs == Counter(), "the replay published outputs that were out already"


@pytest.mark.parametrize("exactly_once", [False, True])
async def test_kill_anywhere_then_restart_gives_every_output_once(exactly_once):
    bus = MemoryBus()
    await _publish(bus, 95)
    for batches in (2, 1, 3, 1, 2):  # crashes right after a restore and mid-stream
        await _crash_after(bus, batches, exactly_once)
    await _crash_after(bus, None, exactly_once)
    outputs = _seqs(await bus.read_all("features.v1"))
    assert sorted(outputs) == list(range(1, 96))
    if exactly_once:
        assert set(outputs.values()) == {1}, "exactly-once: no output twice"
    assert bus._groups["counting"].committed[TP] == Committed(95, CHECKPOINT_METADATA)


async def test_an_aborted_transaction_is_never_seen_and_a_newer_producer_fences_the_older():
    bus = MemoryBus()
    old = bus.transactional_producer("ticktide.g.c.ticks.v1.0")
    await old.start()
    await old.publish("features.v1", b"A", b"1")
    await old.abort()
    await old.publish("features.v1", b"A", b"2")
    assert await bus.read_all("features.v1") == [], "nothing is visible before the commit"
    await old.commit({TopicPartition("ticks.v1", 0): 5}, "g", CHECKPOINT_METADATA)
    assert [r.value for r in await bus.read_all("features.v1")] == [b"2"]
    await old.publish("features.v1", b"A", b"3")
    new = bus.transactional_producer("ticktide.g.c.ticks.v1.0")
    await new.start()  # the partition's new owner
    with pytest.raises(Fenced):
        await old.commit({TopicPartition("ticks.v1", 0): 9}, "g")
    assert [r.value for r in await bus.read_all("features.v1")] == [b"2"]
    assert bus._groups["g"].committed[TopicPartition("ticks.v1", 0)].offset == 5


async def test_a_zombie_that_lost_its_partitions_cannot_commit_them():
    """Two exactly-once instances: the first freezes with a batch processed, the second takes its
    partitions (its producers fence the first's); back, the first's commit is refused, its state
    dropped, and the output holds every value once."""
    bus = MemoryBus()
    await _publish(bus, 30)
    settings = RunnerSettings(max_records=10, exactly_once=True, commit_interval_s=3600)
    zombie = Runner(CountingProcessor(), bus, settings)
    await zombie.open()
    batches = zombie.subscription.batches(10, 10)
    await zombie.handle(await batches.__anext__())  # processed, in an open transaction
    bus.expire(zombie.subscription)  # frozen past its session timeout
    bus._leave(zombie.subscription)
    await _crash_after(bus, None, exactly_once=True)  # the new owner does everything, commits
    assert zombie.partitions[2].producer is not None
    await zombie.checkpoint.commit()  # thawed: its next commit
    assert zombie.partitions[2].lost, "the zombie's commit was refused"
    outputs = _seqs(await bus.read_all("features.v1"))
    assert sorted(outputs) == list(range(1, 31)) and set(outputs.values()) == {1}


async def test_a_commit_refused_after_a_rebalance_drops_the_uncommitted_state():
    bus = MemoryBus()
    await _publish(bus, 20)
    runner = Runner(CountingProcessor(), bus, RunnerSettings(max_records=10, exactly_once=True))
    await runner.open()
    batches = runner.subscription.batches(10, 10)
    await runner.handle(await batches.__anext__())
    ps = runner.partitions[2]
    producer = ps.producer

    async def refused(*args, **kwargs):
        raise CommitFailed("the group rebalanced")

    producer.commit = refused
    await runner.checkpoint.commit()
    assert ps.lost and runner.processor.counts.get(2) is None, "the state of the refused transaction is gone"
    assert await bus.read_all("features.v1") == []


def test_the_commit_rule_skips_replays_and_never_goes_back():
    ps = PartitionState(2, ["ticks.v1"])
    ps.inputs["ticks.v1"] = InputPosition(start=0, committed=100, replay_below=100)
    ps.inputs["ticks.v1"].advance(0, 30)
    assert ps.to_commit() == {}, "replaying below the group's offset: nothing to commit"
    ps.inputs["ticks.v1"].advance(30, 100)
    assert ps.to_commit() == {}, "at the group's offset: nothing new"
    ps.inputs["ticks.v1"].advance(100, 120)
    assert ps.to_commit() == {TopicPartition("ticks.v1", 2): 120}
    ps.committed_to({TopicPartition("ticks.v1", 2): 120})
    assert ps.to_commit() == {}


async def test_acks_are_counted_not_stored_and_the_first_failure_is_raised():
    loop = asyncio.get_running_loop()
    acks = Acks()
    futures = [loop.create_future() for _ in range(3)]
    for f in futures:
        acks.track(f, 10)
    futures[0].set_result(None)
    futures[1].set_exception(RuntimeError("lost"))
    waiter = asyncio.create_task(acks.wait())
    await asyncio.sleep(0)
    assert not waiter.done() and acks.outstanding == 10
    futures[2].set_result(None)
    with pytest.raises(RuntimeError, match="lost"):
        await waiter
    assert acks.sent == acks.settled == 30
