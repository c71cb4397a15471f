"""``kafka://host:port[,host:port]``: the real engine, through aiokafka.

``KafkaBus``: the producer (idempotent, ``acks=all``, per-message ``publish`` and
per-partition ``publish_batch``, transactions for exactly-once), topic admin
(``ensure_topics``, ``missing_topics``) and ``read_all`` for changelogs. Beside it:
``kafka_settings`` (the URL: brokers, security, prefix, tuning) and
``kafka_subscription`` (consumer groups: batches, commits, seeks, lag).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaTimeoutError, TopicAlreadyExistsError, UnknownTopicOrPartitionError
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition as KafkaTP

from schemas.topics import lookup, replication_for
from streaming import connectivity
from streaming.bus.base import CommitFailed, Record, RebalanceHook, TopicPartition
from streaming.bus.kafka_settings import KafkaSettings
from streaming.bus.kafka_subscription import KafkaSubscription, _to_record

log = logging.getLogger(__name__)


class KafkaBus:
    def __init__(self, url: str) -> None:
        self.url = url
        self.settings = KafkaSettings.from_url(url)
        self._producer: AIOKafkaProducer | None = None
        self._pending: list[asyncio.Future] = []
        self._transactional_id: str | None = None
        self._partitions_by_key: dict[str, _KeyPartitions] = {}  # per physical topic
        self.watch = connectivity.watch_for(self.settings.bootstrap, self.settings.security.get("ssl_context"))
        self._watching = False
        self._unacked = 0  # sent, not acknowledged (flush() may have taken them off _pending)

    def _describe_pending(self) -> str:
        return f"{self._unacked:,} published messages waiting for the broker" if self._unacked else ""

    def _acked(self, fut: asyncio.Future, count: int = 1) -> None:
        self._unacked -= count
        if not fut.cancelled():
            fut.exception()  # a failure is raised by flush(), never left unretrieved

    def _track(self, fut: asyncio.Future, count: int) -> None:
        """A batch of ``count`` messages sent: counted until the broker acknowledges it."""
        self._unacked += count
        fut.add_done_callback(lambda f, n=count: self._acked(f, n))
        self._pending.append(fut)

    def enable_transactions(self, transactional_id: str) -> None:
        """Exactly-once mode: a transactional producer (call before ``start``)."""
        if self._producer is not None:
            raise RuntimeError("enable_transactions must be called before the bus starts")
        self._transactional_id = transactional_id

    async def start(self) -> None:
        if self._producer is not None:
            return
        connectivity.limit_client_logs()
        if not self._watching:
            self._watching = True
            self.watch.describe_waiting(self._describe_pending)
            self.watch.start()
        s = self.settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap,
            client_id=s.client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=s.linger_ms,
            max_batch_size=s.max_batch_size,
            request_timeout_ms=s.request_timeout_ms,
            transactional_id=self._transactional_id,
            **s.security,
        )
        await self._producer.start()

    # -- transactions (exactly-once mode) --------------------------------------
    async def begin_transaction(self) -> None:
        await self._producer.begin_transaction()

    async def commit_transaction(self, offsets: Mapping[TopicPartition, int], group: str) -> None:
        """Publish the transaction's messages and the input offsets atomically."""
        await self.flush()
        if offsets:
            s = self.settings
            try:
                await self._producer.send_offsets_to_transaction(
                    {KafkaTP(s.physical(tp.topic), tp.partition): off for tp, off in offsets.items()},
                    s.physical(group))
            except CommitFailedError as exc:  # the group rebalanced: the caller aborts and rejoins
                raise CommitFailed(str(exc)) from exc
        await self._producer.commit_transaction()

    async def abort_transaction(self) -> None:
        self._pending = []
        await self._producer.abort_transaction()

    async def publish(self, topic: str, key: bytes | None, value: bytes,
                      headers: Sequence[tuple[str, bytes]] = ()) -> None:
        if self._producer is None:
            await self.start()
        assert self._producer is not None
        while True:
            try:
                fut = await self._producer.send(self.settings.physical(topic), value=value, key=key,
                                                headers=list(headers) or None)
                break
            except (KafkaTimeoutError, UnknownTopicOrPartitionError):
                if self.watch.up is not False:
                    raise  # the broker answers: a real error (e.g. the topic does not exist)
                # the broker is away (no metadata, no room): wait for it, this message first
                await asyncio.sleep(1.0)
        self._unacked += 1
        fut.add_done_callback(self._acked)
        self._pending.append(fut)

    async def publish_batch(self, topic: str, keys: Sequence[bytes | None], values: Sequence[bytes]) -> None:
        """Queue many messages with the batch API: one record batch per partition, each key's
        partition computed once (Kafka's murmur2, as ``publish``) and cached."""
        if self._producer is None:
            await self.start()
        producer = self._producer
        physical = self.settings.physical(topic)
        partition_of = self._partitions_by_key.get(physical)
        if partition_of is None:
            await producer.client._wait_on_metadata(physical)
            partition_of = self._partitions_by_key[physical] = _KeyPartitions(
                len(producer.client.cluster.partitions_for_topic(physical)))
        by_partition: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            p = partition_of[key]
            rows = by_partition.get(p)
            if rows is None:
                by_partition[p] = [i]
            else:
                rows.append(i)
        for p, rows in by_partition.items():
            batch = producer.create_batch()
            in_batch = 0
            for i in rows:
                if batch.append(key=keys[i], value=values[i], timestamp=None) is None:  # full
                    self._track(await producer.send_batch(batch, physical, partition=p), in_batch)
                    batch = producer.create_batch()
                    batch.append(key=keys[i], value=values[i], timestamp=None)
                    in_batch = 0
                in_batch += 1
            batch.close()  # complete: the sender takes it now, no linger
            self._track(await producer.send_batch(batch, physical, partition=p), in_batch)

    async def flush(self) -> None:
        """Wait until every published message is acknowledged; raise if one failed."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)

    def take_pending(self) -> list[asyncio.Future]:
        """The acks of everything published since the last call (the caller awaits them, not ``flush``)."""
        pending, self._pending = self._pending, []
        return pending

    def subscribe(self, topics: Sequence[str], group: str, on_assign: RebalanceHook | None = None,
                  on_revoke: RebalanceHook | None = None, from_beginning: bool = True) -> "KafkaSubscription":
        return KafkaSubscription(self.settings, tuple(topics), group, on_assign, on_revoke, from_beginning)

    async def ensure_topics(self, names: Sequence[str]) -> None:
        s = self.settings
        admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap, client_id=s.client_id, **s.security)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            new = []
            default_rf = default_isr = None
            for name in names:
                if s.physical(name) in existing:
                    continue
                if default_rf is None:
                    default_rf, default_isr = replication_for(len((await admin.describe_cluster())["brokers"]))
                info = lookup(name)
                rf = s.replication_factor or (info and info.replication_factor) or default_rf
                isr = s.min_insync_replicas or (info and info.min_insync_replicas) or max(1, min(default_isr, rf - 1))
                new.append(NewTopic(
                    s.physical(name), num_partitions=info.partitions if info else 3, replication_factor=rf,
                    topic_configs={**(info.config if info else {}), "min.insync.replicas": str(isr)},
                ))
            if new:
                try:
                    await admin.create_topics(new)
                except TopicAlreadyExistsError:
                    pass  # another process created it first
                await self._wait_for_metadata(admin, [t.name for t in new])
        finally:
            await admin.close()

    async def missing_topics(self, names: Sequence[str]) -> list[str]:
        """The topics of ``names`` that do not exist on the broker."""
        s = self.settings
        admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap, client_id=s.client_id, **s.security)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
        finally:
            await admin.close()
        return [n for n in names if s.physical(n) not in existing]

    @staticmethod
    async def _wait_for_metadata(admin: AIOKafkaAdminClient, names: list[str]) -> None:
        for _ in range(50):
            if set(names) <= set(await admin.list_topics()):
                return
            await asyncio.sleep(0.1)

    async def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Record]:
        s = self.settings
        consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, client_id=s.client_id,
                                    enable_auto_commit=False, isolation_level=s.isolation_level, **s.security)
        await consumer.start()
        topic = s.physical(topic)
        try:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic) or set()
            tps = [KafkaTP(topic, p) for p in sorted(partitions)]
            if not tps:
                return []
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            out: list[Record] = []
            deadline = asyncio.get_running_loop().time() + timeout_s
            while not await _at_end(consumer, ends):
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"reading {topic} did not reach its end in {timeout_s}s")
                got = await consumer.getmany(timeout_ms=200, max_records=10_000)
                for tp_records in got.values():
                    out.extend(_to_record(r, s) for r in tp_records)
            return out
        finally:
            await consumer.stop()

    def pending(self) -> int:
        """Published messages not acknowledged yet."""
        return self._unacked

    async def close(self) -> None:
        if self._watching:
            self._watching = False
            self.watch.forget_waiting(self._describe_pending)
            self.watch.stop()
        if self._producer is not None:
            try:
                await self.flush()
            finally:
                await self._producer.stop()
                self._producer = None


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


async def _at_end(consumer: AIOKafkaConsumer, ends: dict[KafkaTP, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


__all__ = ["KafkaBus", "KafkaSettings", "KafkaSubscription"]
