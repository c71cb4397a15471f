"""``kafka://host:port[,host:port]``: the real engine, through aiokafka.

Producer: idempotent, ``acks=all``, small linger so a batch of outputs goes
out in a few requests. Consumers: manual commits, ``getmany`` batches, a
rebalance listener that forwards to the runner's hooks. Security settings
(SASL, TLS) pass through from the URL query or the environment, see
``KafkaSettings.from_url``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, KafkaTimeoutError, TopicAlreadyExistsError, UnknownTopicOrPartitionError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition as KafkaTP

from schemas.topics import CATALOGUE, lookup, replication_for
from streaming import connectivity
from streaming.bus.columns import Columns
from streaming.bus.base import CommitFailed, Record, RebalanceHook, TopicPartition
from streaming.bus.memory import _call

log = logging.getLogger(__name__)

_SECURITY_KEYS = ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")


@dataclass
class KafkaSettings:
    bootstrap: str
    client_id: str = "ticktide"
    security: dict[str, Any] = field(default_factory=dict)
    replication_factor: int | None = None  # None: the topic's, else from the cluster size
    min_insync_replicas: int | None = None
    linger_ms: int = 5
    fetch_max_wait_ms: int = 500  # aiokafka's default; the runtime profiles set it (streaming.profiles)
    max_batch_size: int = 1_000_000  # under the broker default message.max.bytes (1 MiB): fewer produce round trips
    # how long a queued message may wait for its partition's leader (a broker outage) before it fails
    request_timeout_ms: int = 40_000
    isolation_level: str = "read_committed"
    topic_prefix: str = ""  # namespaces every topic, e.g. "staging." or one per test

    def physical(self, topic: str) -> str:
        return self.topic_prefix + topic

    def logical(self, topic: str) -> str:
        return topic[len(self.topic_prefix):] if topic.startswith(self.topic_prefix) else topic

    @classmethod
    def from_url(cls, url: str) -> "KafkaSettings":
        """``kafka://h1:9092,h2:9092?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-512``.

        Query keys: security_protocol, sasl_mechanism, ssl_cafile, client_id,
        replication_factor, min_insync_replicas (for ``topics create``; also
        TICKTIDE_KAFKA_REPLICATION, TICKTIDE_KAFKA_MIN_ISR; default from the catalogue, else 1/1 on
        one broker and 3/2 on three or more), prefix (a topic-name prefix; also TICKTIDE_TOPIC_PREFIX).

        Secrets come from the environment, never the URL in logs:
        TICKTIDE_KAFKA_SASL_USERNAME, TICKTIDE_KAFKA_SASL_PASSWORD,
        TICKTIDE_KAFKA_SSL_CAFILE (plus _CERTFILE/_KEYFILE for mutual TLS).
        """
        parts = urlsplit(url)
        if parts.scheme != "kafka" or not parts.netloc:
            raise ValueError(f"not a kafka URL: {url!r} (expected kafka://host:port)")
        query = dict(parse_qsl(parts.query))
        security: dict[str, Any] = {k: query[k] for k in _SECURITY_KEYS if k in query}
        env = os.environ
        if env.get("TICKTIDE_KAFKA_SECURITY_PROTOCOL"):
            security.setdefault("security_protocol", env["TICKTIDE_KAFKA_SECURITY_PROTOCOL"])
        if env.get("TICKTIDE_KAFKA_SASL_MECHANISM"):
            security.setdefault("sasl_mechanism", env["TICKTIDE_KAFKA_SASL_MECHANISM"])
        if env.get("TICKTIDE_KAFKA_SASL_USERNAME"):
            security["sasl_plain_username"] = env["TICKTIDE_KAFKA_SASL_USERNAME"]
            security["sasl_plain_password"] = env.get("TICKTIDE_KAFKA_SASL_PASSWORD", "")
        if security.get("security_protocol", "PLAINTEXT") in ("SSL", "SASL_SSL"):
            security["ssl_context"] = create_ssl_context(
                cafile=query.get("ssl_cafile") or env.get("TICKTIDE_KAFKA_SSL_CAFILE"),
                certfile=env.get("TICKTIDE_KAFKA_SSL_CERTFILE"),
                keyfile=env.get("TICKTIDE_KAFKA_SSL_KEYFILE"),
            )
        return cls(
            bootstrap=parts.netloc,
            client_id=query.get("client_id", "ticktide"),
            security=security,
            replication_factor=_int_or_none(query.get("replication_factor", env.get("TICKTIDE_KAFKA_REPLICATION"))),
            min_insync_replicas=_int_or_none(query.get("min_insync_replicas", env.get("TICKTIDE_KAFKA_MIN_ISR"))),
            topic_prefix=query.get("prefix", env.get("TICKTIDE_TOPIC_PREFIX", "")),
        )


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text not in (None, "") else None


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


def _to_record(r: Any, settings: KafkaSettings) -> Record:
    return Record(settings.logical(r.topic), r.partition, r.offset, r.key, r.value, r.timestamp,
                  tuple(r.headers or ()))


class _Listener(ConsumerRebalanceListener):
    def __init__(self, sub: "KafkaSubscription") -> None:
        self.sub = sub

    async def on_partitions_revoked(self, revoked):  # noqa: D401 - aiokafka's names
        await _call(self.sub.on_revoke, self.sub._logical(revoked))

    async def on_partitions_assigned(self, assigned):
        await _call(self.sub.on_assign, self.sub._logical(assigned))


class KafkaSubscription:
    def __init__(self, settings: KafkaSettings, topics: tuple[str, ...], group: str,
                 on_assign: RebalanceHook | None, on_revoke: RebalanceHook | None,
                 from_beginning: bool) -> None:
        self.settings, self.topics, self.group = settings, topics, group
        self.on_assign, self.on_revoke = on_assign, on_revoke
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            client_id=settings.client_id,
            group_id=settings.physical(group),
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            isolation_level=settings.isolation_level,
            # range keeps co-partitioned inputs (ticks.v1 p2 and bars.v1 p2) on one member
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            max_poll_interval_ms=300_000,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            **settings.security,
        )
        self._started = False
        self._closed = False

    async def _start(self) -> None:
        if not self._started:
            await self._consumer.start()
            self._consumer.subscribe([self.settings.physical(t) for t in self.topics], listener=_Listener(self))
            self._started = True

    async def batches(self, max_records: int = 500, timeout_ms: int = 200) -> AsyncIterator[list[Record]]:
        await self._start()
        while not self._closed:
            got = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
            batch: list[Record] = []
            for tp in sorted(got, key=lambda t: (t.topic, t.partition)):
                batch.extend(_to_record(r, self.settings) for r in got[tp])
            yield batch

    async def column_batches(self, max_records: int = 500, timeout_ms: int = 200) -> AsyncIterator[Columns]:
        """As ``batches``, but columnar: no Record per message (see streaming.bus.columns)."""
        await self._start()
        logical = self.settings.logical
        while not self._closed:
            got = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
            cols = Columns()
            for tp in sorted(got, key=lambda t: (t.topic, t.partition)):
                recs = got[tp]
                cols.add_partition(logical(tp.topic), tp.partition, [r.offset for r in recs],
                                   [r.key for r in recs], [r.value for r in recs], [r.timestamp for r in recs])
            yield cols

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if offsets:
            try:
                await self._consumer.commit({self._physical(tp): off for tp, off in offsets.items()})
            except CommitFailedError as exc:  # the group rebalanced under us: the consumer rejoins
                raise CommitFailed(str(exc)) from exc

    def _physical(self, tp: TopicPartition) -> KafkaTP:
        return KafkaTP(self.settings.physical(tp.topic), tp.partition)

    def _logical(self, tps) -> list[TopicPartition]:
        return sorted(TopicPartition(self.settings.logical(tp.topic), tp.partition) for tp in tps)

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        ktp = self._physical(tp)
        # let a pending offset reset of a new partition finish first, or it would win over our seek
        await self._consumer.position(ktp)
        self._consumer.seek(ktp, offset)

    async def seek_to_beginning(self, tp: TopicPartition) -> bool:
        ktp = self._physical(tp)
        if await self._consumer.committed(ktp) is None:
            return False  # nothing committed: auto_offset_reset=earliest already starts there
        # seek_to_beginning() while the new partition's reset is pending delivers records twice
        await self._consumer.position(ktp)
        self._consumer.seek(ktp, (await self._consumer.beginning_offsets([ktp]))[ktp])
        return True

    def assignment(self) -> set[TopicPartition]:
        return set(self._logical(self._consumer.assignment()))

    async def committed(self, tp: TopicPartition) -> int | None:
        return await self._consumer.committed(self._physical(tp))

    async def lag(self) -> dict[TopicPartition, int]:
        out: dict[TopicPartition, int] = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            try:
                pos = await self._consumer.position(tp)
            except Exception:  # noqa: BLE001 - a partition being revoked has no position
                continue
            out[TopicPartition(self.settings.logical(tp.topic), tp.partition)] = max(0, high - pos)
        return out

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._started:
            await self._consumer.stop()
