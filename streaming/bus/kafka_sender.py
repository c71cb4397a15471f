"""Publishing through one aiokafka producer (the shared one of ``KafkaBus`` or a transactional one).

Keys go to partitions as Kafka's default partitioner puts them (murmur2, computed
once per key), each partition's messages in record batches (``create_batch`` /
``send_batch``), and a broker outage (no metadata, no room) is waited out instead
of failing. Acknowledgements are counted in the current ``Acks`` window, never stored.
"""

from __future__ import annotations

import asyncio
from typing import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError
from aiokafka.partitioner import murmur2

from streaming.bus.base import Acks, DeliveryFailed
from streaming.bus.kafka_settings import KafkaSettings


class Sender:
    """Publishing through one aiokafka producer: keys mapped to partitions as Kafka's default
    partitioner does (murmur2, computed once per key), record batches per partition, waits
    out an outage (no metadata, no room) instead of failing, and counts acknowledgements in
    the current ``Acks`` window."""

    def __init__(self, producer: AIOKafkaProducer, settings: KafkaSettings, watch) -> None:
        self.producer = producer
        self.settings = settings
        self.watch = watch
        self.acks = Acks()
        self.unacked = 0
        self._partitions_by_key: dict[str, _KeyPartitions] = {}
        self.on_failure = None  # called with (topic, count, exception) when a delivery fails

    def take_acks(self) -> Acks:
        acks, self.acks = self.acks, Acks()
        return acks

    def _track(self, topic: str, fut: asyncio.Future, count: int) -> None:
        self.unacked += count
        self.acks.track(fut, count)
        fut.add_done_callback(lambda f: self._settled(topic, f, count))

    def _settled(self, topic: str, fut: asyncio.Future, count: int) -> None:
        self.unacked -= count
        if self.on_failure is not None and (fut.cancelled() or fut.exception() is not None):
            self.on_failure(topic, count, DeliveryFailed("cancelled") if fut.cancelled() else fut.exception())

    async def _outage_wait(self, exc: Exception) -> None:
        if self.watch is None or self.watch.up is not False:
            raise exc  # the broker answers: a real error (e.g. the topic does not exist)
        await asyncio.sleep(1.0)  # the broker is away: wait for it, this message first

    async def publish(self, topic: str, key: bytes | None, value: bytes, headers=(), partition: int | None = None):
        physical = self.settings.physical(topic)
        while True:
            try:
                fut = await self.producer.send(physical, value=value, key=key, headers=list(headers) or None,
                                               partition=partition)
                break
            except (KafkaTimeoutError, UnknownTopicOrPartitionError) as exc:
                await self._outage_wait(exc)
        self._track(topic, fut, 1)

    async def _partition_map(self, physical: str) -> "_KeyPartitions":
        mapping = self._partitions_by_key.get(physical)
        while mapping is None:
            try:
                count = len(await self.producer.partitions_for(physical))
            except (KafkaTimeoutError, UnknownTopicOrPartitionError) as exc:
                await self._outage_wait(exc)
                continue
            mapping = self._partitions_by_key[physical] = _KeyPartitions(count)
        return mapping

    async def publish_batch(self, topic: str, keys: Sequence[bytes | None], values: Sequence[bytes],
                            partition: int | None = None) -> None:
        physical = self.settings.physical(topic)
        rows_by_partition: dict[int, list[int]]
        if partition is not None:
            rows_by_partition = {partition: list(range(len(values)))}
        else:
            partition_of = await self._partition_map(physical)
            rows_by_partition = {}
            for i, key in enumerate(keys):
                p = partition_of[key]
                rows = rows_by_partition.get(p)
                if rows is None:
                    rows_by_partition[p] = [i]
                else:
                    rows.append(i)
        producer = self.producer
        for p, rows in rows_by_partition.items():
            batch, in_batch = producer.create_batch(), 0
            for i in rows:
                if batch.append(key=keys[i], value=values[i], timestamp=None) is None:  # full
                    await self._send_batch(batch, topic, physical, p, in_batch)
                    batch, in_batch = producer.create_batch(), 0
                    batch.append(key=keys[i], value=values[i], timestamp=None)
                in_batch += 1
            await self._send_batch(batch, topic, physical, p, in_batch)

    async def _send_batch(self, batch, topic: str, physical: str, partition: int, count: int) -> None:
        batch.close()  # complete: the sender takes it now, no linger
        while True:
            try:
                fut = await self.producer.send_batch(batch, physical, partition=partition)
                break
            except (KafkaTimeoutError, UnknownTopicOrPartitionError) as exc:
                await self._outage_wait(exc)
        self._track(topic, fut, count)


class _KeyPartitions(dict):
    """key -> partition for a topic of ``count`` partitions, computed on first use."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count
        self._next = 0

    def __missing__(self, key: bytes | None) -> int:
        if key is None:  # unkeyed: round-robin, never cached
            self._next += 1
            return self._next % self.count
        p = self[key] = (murmur2(key) & 0x7FFFFFFF) % self.count
        return p
