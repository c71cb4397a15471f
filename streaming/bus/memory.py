"""``memory://``: the embedded bus for the demo and unit tests.

Same semantics as Kafka where consumers can tell: topics have partitions
(Kafka's murmur2 partitioner, so a symbol lands on the same partition number
on both backends), consumer groups share partitions and keep committed
offsets, and a rebalance calls the same hooks. Everything lives in one
process; nothing is durable.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import defaultdict
from typing import AsyncIterator, Mapping, Sequence

from aiokafka.partitioner import murmur2

from schemas.topics import lookup
from streaming.bus.base import Record, RebalanceHook, TopicPartition

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
        self.committed: dict[TopicPartition, int] = {}


class MemoryBus:
    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._logs: dict[str, list[list[Record]]] = {}
        self._groups: dict[str, _Group] = defaultdict(_Group)
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

    async def start(self) -> None:
        return None

    # -- producing ----------------------------------------------------------
    async def publish(self, topic: str, key: bytes | None, value: bytes,
                      headers: Sequence[tuple[str, bytes]] = ()) -> None:
        parts = self._partitions(topic)
        self._counter += 1
        p = partition_for(key, len(parts), self._counter)
        log = parts[p]
        log.append(Record(topic, p, len(log), key, value, int(time.time() * 1000), tuple(headers)))
        self._wake()

    async def publish_batch(self, topic: str, keys: Sequence[bytes | None], values: Sequence[bytes]) -> None:
        for key, value in zip(keys, values):
            await self.publish(topic, key, value)

    async def flush(self) -> None:
        return None

    def take_pending(self) -> list:
        return []  # every publish is in the log already: nothing to wait for

    # Transactions: everything here is atomic already; committing offsets is all there is to do.
    def enable_transactions(self, transactional_id: str) -> None:
        return None

    async def begin_transaction(self) -> None:
        return None

    async def commit_transaction(self, offsets: Mapping[TopicPartition, int], group: str) -> None:
        self._groups[group].committed.update(offsets)

    async def abort_transaction(self) -> None:
        return None

    # -- consuming ----------------------------------------------------------
    def subscribe(self, topics: Sequence[str], group: str, on_assign: RebalanceHook | None = None,
                  on_revoke: RebalanceHook | None = None, from_beginning: bool = True) -> "MemorySubscription":
        sub = MemorySubscription(self, tuple(topics), group, on_assign, on_revoke, from_beginning)
        self._groups[group].members.append(sub)
        self._mark_rebalance(group)
        return sub

    def _mark_rebalance(self, group: str) -> None:
        for member in self._groups[group].members:
            member._needs_rebalance = True
        self._wake()

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
            self._mark_rebalance(sub.group)

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
        self._closed = False

    async def _rebalance(self) -> None:
        self._needs_rebalance = False
        new = self.bus._assignment_for(self)
        lost = sorted(self._assigned - new)
        gained = sorted(new - self._assigned)
        if lost:
            await _call(self.on_revoke, lost)
            for tp in lost:
                self._position.pop(tp, None)
        self._assigned = new
        committed = self.bus._groups[self.group].committed
        for tp in gained:
            if tp in committed:
                self._position[tp] = committed[tp]
            else:
                self._position[tp] = 0 if self.from_beginning else self.bus.end_offset(tp)
        if gained:
            await _call(self.on_assign, gained)

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

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        committed = self.bus._groups[self.group].committed
        for tp, offset in offsets.items():
            if tp in self._assigned:
                committed[tp] = offset

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        self._position[tp] = offset

    async def seek_to_beginning(self, tp: TopicPartition, force: bool = False) -> bool:
        moved = self._position.get(tp) != 0
        self._position[tp] = 0
        return moved

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.bus._groups[self.group].committed.get(tp)

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
