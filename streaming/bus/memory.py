"""``memory://``: the embedded bus for the demo and unit tests.

Same semantics as Kafka where consumers can tell: topics have partitions
(Kafka's murmur2 partitioner, so a symbol lands on the same partition number
on both backends), consumer groups share partitions and keep committed
offsets (with their metadata), a rebalance calls the same hooks (eagerly, as
aiokafka), an expired member's commits fail until it rejoins, and transactions are
real: a transaction's messages appear only when it commits (an aborted one
is never seen), and starting a producer with a transactional id fences every
older producer of that id. Everything lives in one process; nothing is durable.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import defaultdict
from typing import AsyncIterator, Mapping, Sequence

from aiokafka.partitioner import murmur2

from schemas.topics import lookup
from streaming.bus.base import (Acks, CommitFailed, Committed, Fenced, Progress, RebalanceHook, Record,
                                TopicPartition)
from streaming.bus.columns import Columns

DEFAULT_PARTITIONS = 3


def partition_for(key: bytes | None, partitions: int, counter: int) -> int:
    """Kafka's default partitioner: murmur2 of the key; round-robin without one."""
    if key is None:
        return counter % partitions
    return (murmur2(key) & 0x7FFFFFFF) % partitions


async def _call(hook: RebalanceHook | None, tps: list[TopicPartition]) -> None:
    if hook is None:
        return
    result = hook(tps)
    if inspect.isawaitable(result):
        await result


class _Group:
    def __init__(self) -> None:
        self.members: list[MemorySubscription] = []
        self.committed: dict[TopicPartition, Committed] = {}
        self.generation = 0


class MemoryBus:
    watch = None  # nothing to lose connection to

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._logs: dict[str, list[list[Record]]] = {}
        self._groups: dict[str, _Group] = defaultdict(_Group)
        self._epochs: dict[str, int] = defaultdict(int)  # transactional id -> newest producer's epoch
        self._counter = 0
        self._waiters: list[asyncio.Future] = []

    # -- topics -------------------------------------------------------------
    def _partitions(self, topic: str) -> list[list[Record]]:
        if topic not in self._logs:
            info = lookup(topic)
            count = info.partitions if info else DEFAULT_PARTITIONS
            self._logs[topic] = [[] for _ in range(count)]
        return self._logs[topic]

    async def ensure_topics(self, names: Sequence[str]) -> None:
        for name in names:
            self._partitions(name)

    async def missing_topics(self, names: Sequence[str]) -> list[str]:
        return []  # every topic exists on first use (with the catalogue's partitions)

    async def delete_topics(self, names: Sequence[str]) -> None:
        for name in names:
            self._logs.pop(name, None)

    async def start(self) -> None:
        return None

    # -- producing ----------------------------------------------------------
    def _append(self, topic: str, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]] = (),
                partition: int | None = None) -> None:
        parts = self._partitions(topic)
        self._counter += 1
        p = partition_for(key, len(parts), self._counter) if partition is None else partition
        log = parts[p]
        log.append(Record(topic, p, len(log), key, value, int(time.time() * 1000), tuple(headers)))

    async def publish(self, topic: str, key: bytes | None, value: bytes,
                      headers: Sequence[tuple[str, bytes]] = (), partition: int | None = None) -> None:
        self._append(topic, key, value, headers, partition)
        self._wake()

    async def publish_batch(self, topic: str, keys: Sequence[bytes | None], values: Sequence[bytes],
                            partition: int | None = None) -> None:
        for key, value in zip(keys, values):
            self._append(topic, key, value, (), partition)
        self._wake()

    async def flush(self) -> None:
        return None

    def take_acks(self) -> Acks:
        return Acks()  # every publish is in the log already: nothing to wait for

    def pending(self) -> int:
        return 0

    def transactional_producer(self, transactional_id: str) -> "MemoryTransactionalProducer":
        return MemoryTransactionalProducer(self, transactional_id)

    # -- consuming ----------------------------------------------------------
    def subscribe(self, topics: Sequence[str], group: str, on_assign: RebalanceHook | None = None,
                  on_revoke: RebalanceHook | None = None, from_beginning: bool = True) -> "MemorySubscription":
        sub = MemorySubscription(self, tuple(topics), group, on_assign, on_revoke, from_beginning)
        self._groups[group].members.append(sub)
        self.force_rebalance(group)
        return sub

    def force_rebalance(self, group: str) -> None:
        """A new generation of ``group`` (a member joined or left): every member gets its partitions
        again on its next poll (eager, as aiokafka: all revoked, then the new assignment given)."""
        g = self._groups[group]
        g.generation += 1
        for member in g.members:
            member._needs_rebalance = True
        self._wake()

    def expire(self, member: "MemorySubscription") -> None:
        """``member``'s session timed out (it froze, or lost the network): the group moved on without
        it, so its commits fail until it rejoins on its next poll."""
        member._expired = True
        self.force_rebalance(member.group)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _assignment_for(self, sub: "MemorySubscription") -> set[TopicPartition]:
        """Range assignment per topic over the group's members, like Kafka's RangeAssignor."""
        members = sorted(self._groups[sub.group].members, key=lambda m: m.member_id)
        result: set[TopicPartition] = set()
        for topic in sub.topics:
            subscribed = [m for m in members if topic in m.topics]
            n = len(self._partitions(topic))
            index = subscribed.index(sub)
            per, extra = divmod(n, len(subscribed))
            start = index * per + min(index, extra)
            count = per + (1 if index < extra else 0)
            result.update(TopicPartition(topic, p) for p in range(start, start + count))
        return result

    def _leave(self, sub: "MemorySubscription") -> None:
        members = self._groups[sub.group].members
        if sub in members:
            members.remove(sub)
            self.force_rebalance(sub.group)

    async def read_partitions(self, topic: str, partitions: Sequence[int], progress: Progress | None = None,
                              stall_timeout_s: float = 60.0) -> AsyncIterator[list[Record]]:
        logs = self._partitions(topic)
        for p in partitions:
            if p < len(logs) and logs[p]:
                yield list(logs[p])

    async def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Record]:
        return [r for log in self._partitions(topic) for r in log]

    def end_offset(self, tp: TopicPartition) -> int:
        return len(self._partitions(tp.topic)[tp.partition])

    async def wait_for_change(self, timeout_s: float) -> None:
        # registered synchronously after the caller's empty read, so no publish is missed
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            pass

    async def close(self) -> None:
        return None


class MemoryTransactionalProducer:
    """A transaction's messages are held back and appended when it commits, together with the
    group's offsets; a newer producer of the same id makes every call of this one raise Fenced."""

    def __init__(self, bus: MemoryBus, transactional_id: str) -> None:
        self.bus = bus
        self.transactional_id = transactional_id
        self._epoch: int | None = None
        self._held: list[tuple[str, bytes | None, bytes, int | None]] = []

    async def start(self) -> None:
        self.bus._epochs[self.transactional_id] += 1
        self._epoch = self.bus._epochs[self.transactional_id]

    def _check(self) -> None:
        if self._epoch is None:
            raise RuntimeError("the transactional producer was not started")
        if self._epoch != self.bus._epochs[self.transactional_id]:
            self._held = []
            raise Fenced(f"producer {self.transactional_id!r} was fenced by a newer one")

    async def publish(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        self._check()
        self._held.append((topic, key, value, partition))

    async def publish_batch(self, topic: str, keys: Sequence[bytes | None], values: Sequence[bytes],
                            partition: int | None = None) -> None:
        self._check()
        self._held.extend((topic, k, v, partition) for k, v in zip(keys, values))

    async def commit(self, offsets: Mapping[TopicPartition, int], group: str, metadata: str = "") -> None:
        self._check()
        held, self._held = self._held, []
        for topic, key, value, partition in held:
            self.bus._append(topic, key, value, (), partition)
        committed = self.bus._groups[group].committed
        for tp, offset in offsets.items():
            committed[tp] = Committed(offset, metadata)
        self.bus._wake()

    async def abort(self) -> None:
        self._held = []

    async def close(self) -> None:
        self._held = []


class MemorySubscription:
    _ids = 0

    def __init__(self, bus: MemoryBus, topics: tuple[str, ...], group: str,
                 on_assign: RebalanceHook | None, on_revoke: RebalanceHook | None,
                 from_beginning: bool) -> None:
        MemorySubscription._ids += 1
        self.member_id = MemorySubscription._ids
        self.bus, self.topics, self.group = bus, topics, group
        self.on_assign, self.on_revoke = on_assign, on_revoke
        self.from_beginning = from_beginning
        self._assigned: set[TopicPartition] = set()
        self._position: dict[TopicPartition, int] = {}
        self._needs_rebalance = True
        self._expired = False
        self._closed = False

    async def _rebalance(self) -> None:
        self._needs_rebalance = False
        new = self.bus._assignment_for(self)
        # eager, as aiokafka: every partition is revoked (an expired member's commits still fail
        # here), then the new assignment given
        if self._assigned:
            await _call(self.on_revoke, sorted(self._assigned))
        self._expired = False
        self._position = {}
        self._assigned = new
        committed = self.bus._groups[self.group].committed
        for tp in new:
            if tp in committed:
                self._position[tp] = committed[tp].offset
            else:
                self._position[tp] = 0 if self.from_beginning else self.bus.end_offset(tp)
        if new:
            await _call(self.on_assign, sorted(new))

    async def batches(self, max_records: int = 500, timeout_ms: int = 200) -> AsyncIterator[list[Record]]:
        while not self._closed:
            if self._needs_rebalance:
                await self._rebalance()
            batch = self._take(max_records)
            if not batch:
                await self.bus.wait_for_change(timeout_ms / 1000)
                if self._needs_rebalance:
                    await self._rebalance()
                batch = self._take(max_records)
            yield batch
            await asyncio.sleep(0)  # let producers run between batches

    async def column_batches(self, max_records: int = 500, timeout_ms: int = 200) -> AsyncIterator[Columns]:
        async for batch in self.batches(max_records, timeout_ms):
            yield Columns.from_records(batch)

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for tp in sorted(self._assigned):
            log = self.bus._partitions(tp.topic)[tp.partition]
            pos = self._position[tp]
            chunk = log[pos: pos + max_records - len(out)]
            out.extend(chunk)
            self._position[tp] = pos + len(chunk)
            if len(out) >= max_records:
                break
        return out

    async def commit(self, offsets: Mapping[TopicPartition, int], metadata: str = "") -> None:
        group = self.bus._groups[self.group]
        if self._expired:
            raise CommitFailed(f"member {self.member_id} of group {self.group!r} expired: the group rebalanced")
        for tp, offset in offsets.items():
            group.committed[tp] = Committed(offset, metadata)

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        self._position[tp] = offset

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self._position[tp] = 0

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    async def committed(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, Committed]:
        committed = self.bus._groups[self.group].committed
        return {tp: committed[tp] for tp in tps if tp in committed}

    async def lag(self) -> dict[TopicPartition, int]:
        return {tp: self.bus.end_offset(tp) - self._position.get(tp, 0) for tp in self._assigned}

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._assigned:
            await _call(self.on_revoke, sorted(self._assigned))
        self._assigned = set()
        self.bus._leave(self)
