"""A Kafka consumer-group subscription: ``getmany`` batches (as Records or columns), manual commits,
seeks, lag, and a rebalance listener that forwards to the runner's hooks."""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError
from aiokafka.structs import TopicPartition as KafkaTP

from streaming.bus.base import CommitFailed, Committed, Record, RebalanceHook, TopicPartition
from streaming.bus.columns import Columns
from streaming.bus.kafka_settings import KafkaSettings, retrying
from streaming.bus.memory import _call

log = logging.getLogger("streaming.bus.kafka")

def to_record(r: Any, settings: KafkaSettings) -> Record:
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
        self._admin: AIOKafkaAdminClient | None = None

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
                batch.extend(to_record(r, self.settings) for r in got[tp])
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

    async def commit(self, offsets: Mapping[TopicPartition, int], metadata: str = "") -> None:
        if offsets:
            try:
                await self._consumer.commit({self._physical(tp): (off, metadata) for tp, off in offsets.items()})
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

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        ktp = self._physical(tp)
        # seek_to_beginning() while the new partition's reset is pending delivers records twice
        await self._consumer.position(ktp)
        self._consumer.seek(ktp, (await self._consumer.beginning_offsets([ktp]))[ktp])

    def assignment(self) -> set[TopicPartition]:
        return set(self._logical(self._consumer.assignment()))

    async def committed(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, Committed]:
        """The group's committed positions with their metadata (the admin API: the consumer's
        own ``committed`` drops the metadata)."""
        if not tps:
            return {}
        if self._admin is None:
            s = self.settings
            self._admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap, client_id=s.client_id, **s.security)
            await self._admin.start()
        admin = self._admin
        got = await retrying(lambda: admin.list_consumer_group_offsets(
            self.settings.physical(self.group), partitions=[self._physical(tp) for tp in tps]))
        out: dict[TopicPartition, Committed] = {}
        for ktp, meta in got.items():
            if meta.offset is not None and meta.offset >= 0:
                out[TopicPartition(self.settings.logical(ktp.topic), ktp.partition)] = Committed(
                    meta.offset, meta.metadata or "")
        return out

    async def lag(self) -> dict[TopicPartition, int]:
        """Exact: the partitions' end offsets asked of the broker now (read_committed: the last stable
        offset), not the high watermark of the last fetch, which lags behind what was just written."""
        out: dict[TopicPartition, int] = {}
        assigned = list(self._consumer.assignment())
        if not assigned:
            return out
        ends = await self._consumer.end_offsets(assigned)
        for tp in assigned:
            high = ends.get(tp)
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
        if self._admin is not None:
            await self._admin.close()
        await self._consumer.stop()  # also when never started: it closes its client (no ResourceWarning)
