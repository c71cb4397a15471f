"""Exactly-once on Kafka: one transactional producer per stable transactional id.

``start`` sends InitProducerId: the broker bumps the id's epoch, so every older
producer of the id (a crashed or frozen instance that owned the same input
partition) is fenced, and its open transaction is aborted before this one
reads the group's offsets or the changelog. A transaction begins with the
first publish after a commit or an abort and ends with ``commit``: the
outputs, the changelog records and the input offsets (with the checkpoint's
metadata) become visible to read_committed readers together, or never.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError, InvalidProducerEpoch, ProducerFenced
from aiokafka.structs import TopicPartition as KafkaTP

from streaming.bus.base import CommitFailed, Fenced, TopicPartition
from streaming.bus.kafka_sender import Sender
from streaming.bus.kafka_settings import KafkaSettings

_FENCED = (ProducerFenced, InvalidProducerEpoch)


class KafkaTransactionalProducer:
    def __init__(self, settings: KafkaSettings, transactional_id: str, watch) -> None:
        self.settings = settings
        self.transactional_id = transactional_id
        self._watch = watch
        self._sender: Sender | None = None
        self._open = False

    async def start(self) -> None:
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap, client_id=s.client_id, enable_idempotence=True, acks="all",
            linger_ms=s.linger_ms, max_batch_size=s.max_batch_size, request_timeout_ms=s.request_timeout_ms,
            transactional_id=self.physical_id, transaction_timeout_ms=s.transaction_timeout_ms, **s.security,
        )
        try:
            await producer.start()  # InitProducerId: fences older producers of this id
        except BaseException:
            await producer.stop()
            raise
        self._sender = Sender(producer, s, self._watch)

    @property
    def physical_id(self) -> str:
        return self.settings.physical(self.transactional_id)

    async def _begin(self) -> Sender:
        if self._sender is None:
            raise RuntimeError(f"transactional producer {self.transactional_id!r} was not started")
        if not self._open:
            try:
                await self._sender.producer.begin_transaction()
            except _FENCED as exc:
                raise Fenced(f"{self.transactional_id}: {exc}") from exc
            self._open = True
        return self._sender

    async def publish(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        await (await self._begin()).publish(topic, key, value, (), partition)

    async def publish_batch(self, topic: str, keys: Sequence[bytes | None], values: Sequence[bytes],
                            partition: int | None = None) -> None:
        await (await self._begin()).publish_batch(topic, keys, values, partition)

    async def commit(self, offsets: Mapping[TopicPartition, int], group: str, metadata: str = "") -> None:
        sender = await self._begin()
        s = self.settings
        try:
            await sender.take_acks().wait()  # a failed send surfaces here, before anything commits
            if offsets:
                await sender.producer.send_offsets_to_transaction(
                    {KafkaTP(s.physical(tp.topic), tp.partition): (off, metadata) for tp, off in offsets.items()},
                    s.physical(group))
            await sender.producer.commit_transaction()
        except _FENCED as exc:
            raise Fenced(f"{self.transactional_id}: {exc}") from exc
        except CommitFailedError as exc:
            raise CommitFailed(str(exc)) from exc
        finally:
            self._open = False

    async def abort(self) -> None:
        if self._sender is None or not self._open:
            return
        self._open = False
        self._sender.take_acks()
        try:
            await self._sender.producer.abort_transaction()
        except (*_FENCED, IllegalStateError):
            pass  # fenced or failed: the broker aborts it (or already did)

    async def close(self) -> None:
        if self._sender is not None:
            sender, self._sender = self._sender, None
            await sender.producer.stop()
