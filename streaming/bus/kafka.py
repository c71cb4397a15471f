"""``kafka://host:port[,host:port]``: the real engine, through aiokafka's public API.

``KafkaBus``: the shared producer (idempotent, ``acks=all``; ``publish`` and the
per-partition ``publish_batch``, both waiting out a broker outage; acknowledgements
counted, never stored; a failed delivery counted, logged once a minute per topic and
raised by the next ``flush``), topic admin, per-partition reads for changelogs, and
``transactional_producer`` for exactly-once (``kafka_transactions``). Beside it:
``kafka_settings`` (the URL) and ``kafka_subscription`` (consumer groups).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import TopicPartition as KafkaTP

from schemas.topics import lookup, replication_for
from streaming import connectivity, metrics
from streaming.bus.base import Acks, DeliveryFailed, Progress, RebalanceHook, Record
from streaming.bus.kafka_sender import Sender
from streaming.bus.kafka_settings import KafkaSettings, retrying
from streaming.bus.kafka_subscription import KafkaSubscription, to_record
from streaming.bus.kafka_transactions import KafkaTransactionalProducer

log = logging.getLogger(__name__)

PUBLISH_FAILURES = metrics.counter("ticktide_publish_failures_total",
                                   "Published messages the broker never acknowledged, per topic", ["topic"])
FAILURE_LOG_INTERVAL_S = 60.0


class KafkaBus:
    def __init__(self, url: str) -> None:
        self.url = url
        self.settings = KafkaSettings.from_url(url)
        self._sender: Sender | None = None
        self.watch = connectivity.watch_for(self.settings.bootstrap, self.settings.security.get("ssl_context"))
        self._watching = False
        self._failure: BaseException | None = None
        self._failure_logged: dict[str, tuple[float, int]] = {}  # topic -> (last log time, failed since)
        self._admin_client: AIOKafkaAdminClient | None = None

    def _describe_pending(self) -> str:
        n = self.pending()
        return f"{n:,} published messages waiting for the broker" if n else ""

    async def start(self) -> None:
        if self._sender is not None:
            return
        connectivity.limit_client_logs()
        if not self._watching:
            self._watching = True
            self.watch.describe_waiting(self._describe_pending)
            self.watch.start()
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap, client_id=s.client_id, enable_idempotence=True, acks="all",
            linger_ms=s.linger_ms, max_batch_size=s.max_batch_size, request_timeout_ms=s.request_timeout_ms,
            **s.security,
        )
        await producer.start()
        self._sender = Sender(producer, s, self.watch)
        self._sender.on_failure = self._delivery_failed

    def _delivery_failed(self, topic: str, count: int, exc: BaseException) -> None:
        """Counted at once, logged at most once a minute per topic, raised by the next flush."""
        PUBLISH_FAILURES.labels(topic).inc(count)
        self._failure = self._failure or exc
        now = time.monotonic()
        last, since = self._failure_logged.get(topic, (0.0, 0))
        since += count
        if now - last >= FAILURE_LOG_INTERVAL_S:
            log.error("publishing to %s failed: %d message(s) not acknowledged since the last report (%s: %s)",
                      topic, since, type(exc).__name__, exc)
            self._failure_logged[topic] = (now, 0)
        else:
            self._failure_logged[topic] = (last, since)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise DeliveryFailed(f"the broker did not acknowledge published messages ({failure})") from failure

    async def _ready(self) -> Sender:
        if self._sender is None:
            await self.start()
        if self.settings.on_delivery_failure == "fail":
            self._raise_failure()
        return self._sender

    async def publish(self, topic: str, key: bytes | None, value: bytes,
                      headers: Sequence[tuple[str, bytes]] = (), partition: int | None = None) -> None:
        await (await self._ready()).publish(topic, key, value, headers, partition)

    async def publish_batch(self, topic: str, keys: Sequence[bytes | None], values: Sequence[bytes],
                            partition: int | None = None) -> None:
        await (await self._ready()).publish_batch(topic, keys, values, partition)

    async def flush(self) -> None:
        """Wait until every published message is acknowledged; raise if one failed."""
        if self._sender is not None:
            await self._sender.producer.flush()
            await asyncio.sleep(0)  # the delivery callbacks of what just settled run first
        self._raise_failure()

    def take_acks(self) -> Acks:
        """The acks of everything published since the last call (the caller awaits them)."""
        return self._sender.take_acks() if self._sender is not None else Acks()

    def pending(self) -> int:
        return self._sender.unacked if self._sender is not None else 0

    def transactional_producer(self, transactional_id: str) -> KafkaTransactionalProducer:
        return KafkaTransactionalProducer(self.settings, transactional_id, self.watch)

    def subscribe(self, topics: Sequence[str], group: str, on_assign: RebalanceHook | None = None,
                  on_revoke: RebalanceHook | None = None, from_beginning: bool = True) -> KafkaSubscription:
        return KafkaSubscription(self.settings, tuple(topics), group, on_assign, on_revoke, from_beginning)

    async def _admin(self) -> AIOKafkaAdminClient:
        """The bus's admin client, started on first use and kept (closed with the bus)."""
        if self._admin_client is None:
            s = self.settings
            admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap, client_id=s.client_id, **s.security)
            await admin.start()
            self._admin_client = admin
        return self._admin_client

    async def partitions_of(self, topic: str) -> list[int]:
        """The partitions of ``topic`` on the broker (none when it does not exist)."""
        admin = await self._admin()
        physical = self.settings.physical(topic)
        if physical not in await retrying(admin.list_topics):  # a metadata request for it alone could create it
            return []
        for info in await retrying(lambda: admin.describe_topics([physical])):
            if info.get("error_code", 0) == 0:
                return sorted(p["partition"] for p in info.get("partitions", ()))
        return []

    async def ensure_topics(self, names: Sequence[str]) -> None:
        s = self.settings
        admin = await self._admin()
        existing = set(await retrying(admin.list_topics))
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

    async def missing_topics(self, names: Sequence[str]) -> list[str]:
        """The topics of ``names`` that do not exist on the broker."""
        existing = set(await retrying((await self._admin()).list_topics))
        return [n for n in names if self.settings.physical(n) not in existing]

    async def delete_topics(self, names: Sequence[str]) -> None:
        admin = await self._admin()
        existing = set(await retrying(admin.list_topics))
        doomed = [p for p in dict.fromkeys(self.settings.physical(n) for n in names) if p in existing]
        if doomed:
            await retrying(lambda: admin.delete_topics(doomed))

    @staticmethod
    async def _wait_for_metadata(admin: AIOKafkaAdminClient, names: list[str]) -> None:
        for _ in range(50):
            if set(names) <= set(await admin.list_topics()):
                return
            await asyncio.sleep(0.1)

    async def read_partitions(self, topic: str, partitions: Sequence[int], progress: Progress | None = None,
                              stall_timeout_s: float = 60.0) -> AsyncIterator[list[Record]]:
        s = self.settings
        physical = s.physical(topic)
        known = set(await self.partitions_of(topic))
        tps = [KafkaTP(physical, p) for p in sorted(set(partitions)) if p in known]
        if not tps:
            return
        # big fetches: a restore reads whole partitions, the default 1 MiB per partition per fetch caps it
        consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, client_id=s.client_id, enable_auto_commit=False,
                                    isolation_level=s.isolation_level, max_partition_fetch_bytes=16 << 20,
                                    fetch_max_bytes=64 << 20, **s.security)
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)  # read_committed: the last stable offsets
            starts = await consumer.beginning_offsets(tps)
            total = sum(max(0, ends[tp] - starts[tp]) for tp in tps)
            done = 0
            last_progress = time.monotonic()
            while not await _at_end(consumer, ends):
                got = await consumer.getmany(timeout_ms=200, max_records=10_000)
                batch = [to_record(r, s) for tp_records in got.values() for r in tp_records]
                if batch:
                    last_progress = time.monotonic()
                    done += len(batch)
                    yield batch
                    if progress is not None:
                        progress(done, total)
                elif time.monotonic() - last_progress > stall_timeout_s:
                    raise TimeoutError(f"reading {topic} partitions {[tp.partition for tp in tps]} made no "
                                       f"progress for {stall_timeout_s:.0f} s ({done:,} of ~{total:,} records)")
        finally:
            await consumer.stop()

    async def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Record]:
        out: list[Record] = []
        async for batch in self.read_partitions(topic, await self.partitions_of(topic), stall_timeout_s=timeout_s):
            out.extend(batch)
        return out

    async def close(self) -> None:
        if self._admin_client is not None:
            admin, self._admin_client = self._admin_client, None
            await admin.close()
        if self._watching:
            self._watching = False
            self.watch.forget_waiting(self._describe_pending)
            self.watch.stop()
        if self._sender is not None:
            try:
                await self._sender.producer.flush()
            finally:
                await self._sender.producer.stop()
                self._sender = None


async def _at_end(consumer: AIOKafkaConsumer, ends: dict[KafkaTP, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


__all__ = ["KafkaBus", "KafkaSettings", "KafkaSubscription"]
