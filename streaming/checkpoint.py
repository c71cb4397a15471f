"""The only place that commits a consumer's progress, always in one order.

A checkpoint makes the state of the assigned partitions durable together with
the outputs computed from it and the input offsets it reflects:

    exactly-once:  [ outputs -> changelog records -> input offsets ]   one Kafka transaction per
                                                                       partition (its own producer)
    at-least-once:   outputs acked -> changelog records acked -> input offsets committed
                     (behind the loop: the next batches are processed meanwhile)

The state is encoded when the checkpoint is taken, between two batches, so it
is exactly the state at the offsets committed with it, and the offsets carry
``streaming.changelog.CHECKPOINT_METADATA`` so a restore can trust them. The
changelog is written only after the outputs are acknowledged, so the state
never claims inputs whose outputs could still be lost. Whatever fails, no
offset is committed past an output that is not durable:

- a transaction refused because a newer producer took the partition (fenced)
  or the group moved on: nothing of it is visible; the partitions' uncommitted
  state is dropped and they are processed no more until the rebalance that
  gives them to their new owner (or back, restored from the changelog);
- any other failure stops the consumer (a restart restores the last checkpoint).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Sequence

from streaming import changelog, metrics
from streaming.bus.base import Acks, Bus, CommitFailed, Fenced, Subscription, TopicPartition
from streaming.partition import PartitionState, Partitions
from streaming.processor import Processor

log = logging.getLogger("streaming.runner")


@dataclass(slots=True)
class ChangelogRecord:
    partition: int  # of the changelog topic (the input partition, or 0 for an instance-wide state)
    key: bytes
    value: bytes
    source: PartitionState | None  # None: the instance-wide record


class Checkpoint:
    def __init__(self, *, bus: Bus, processor: Processor, partitions: Partitions, group: str, changelog_topic: str,
                 exactly_once: bool, interval_s: float, transactional_prefix: str, name: str,
                 max_in_flight: int = 2) -> None:
        self.bus = bus
        self.processor = processor
        self.partitions = partitions
        self.group = group
        self.changelog_topic = changelog_topic
        self.exactly_once = exactly_once
        self.interval_s = interval_s
        self.name = name
        self.subscription: Subscription | None = None
        self.instance_scope = getattr(processor, "state_scope", "partition") == "instance"
        # exactly-once: one stable id per input partition (or one per group for an instance-wide state)
        self._prefix = transactional_prefix
        self._instance_producer = None
        self._last = time.monotonic()
        self._chain: deque[asyncio.Task] = deque()  # at-least-once checkpoints settling, oldest first
        self._max_in_flight = max_in_flight
        self._failure: BaseException | None = None

    # -- where outputs go ---------------------------------------------------------
    def publisher(self, ps: PartitionState | None) -> Any:
        """What publishes the outputs of ``ps``'s inputs: the transaction they commit with, or the bus."""
        if not self.exactly_once or ps is None:
            return self.bus
        return self._instance_producer if self.instance_scope else ps.producer

    def transactional_id(self, ps: PartitionState | None) -> str:
        if self.instance_scope or ps is None:
            return self._prefix
        return f"{self._prefix}.{self.processor.inputs[0]}.{ps.partition}"

    async def open(self, states: Sequence[PartitionState]) -> None:
        """Exactly-once: start the producers of newly assigned partitions. Starting one fences the
        partition's previous owner and settles its open transaction, so it happens before the
        group's offsets and the changelog are read."""
        if not self.exactly_once:
            return
        if self.instance_scope:
            if self._instance_producer is None:
                producer = self.bus.transactional_producer(self._prefix)
                await producer.start()
                self._instance_producer = producer
            return

        async def start(ps: PartitionState) -> None:
            producer = self.bus.transactional_producer(self.transactional_id(ps))
            await producer.start()
            ps.producer = producer

        await asyncio.gather(*(start(ps) for ps in states if ps.producer is None))

    async def close(self, states: Sequence[PartitionState], everything: bool = False) -> None:
        """Exactly-once: close the producers of partitions this instance no longer owns."""
        for ps in states:
            if ps.producer is not None:
                producer, ps.producer = ps.producer, None
                await producer.close()
        if everything and self._instance_producer is not None:
            producer, self._instance_producer = self._instance_producer, None
            await producer.close()

    # -- taking a checkpoint --------------------------------------------------------
    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval_s

    def raise_failure(self) -> None:
        """A background checkpoint failed: raised by the loop at its next batch."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    async def commit(self, states: Sequence[PartitionState] | None = None, wait: bool = False) -> None:
        """Checkpoint ``states`` (all assigned partitions by default). ``wait``: until it is committed."""
        self._last = time.monotonic()
        states = [ps for ps in (self.partitions.values() if states is None else states) if not ps.lost]
        records = self._changelog_records(states)
        offsets = {ps.partition: ps.to_commit() for ps in states}
        for ps in states:
            ps.dirty = False
        if self.exactly_once:
            await self._commit_transactions(states, records, offsets)
            return
        self.raise_failure()
        while len(self._pending()) >= self._max_in_flight:
            await asyncio.wait({self._chain[0]})
        self.raise_failure()
        previous = self._chain[-1] if self._chain else None
        task = asyncio.create_task(self._settle(previous, self.bus.take_acks(), records, states, offsets))
        self._chain.append(task)
        if wait:
            await self.drain()

    def _changelog_records(self, states: Sequence[PartitionState]) -> list[ChangelogRecord]:
        if not self.processor.stateful:
            return []
        out: list[ChangelogRecord] = []
        if self.instance_scope:
            if not any(ps.dirty for ps in states):
                return out
            offsets = {changelog.instance_offset_key(t, ps.partition): pos
                       for ps in self.partitions.values() for t, pos in ps.offsets().items()}
            state = self.processor.snapshot(0)
            if state is not None:
                out.append(ChangelogRecord(0, changelog.INSTANCE_KEY,
                                           changelog.encode(changelog.Snapshot(-1, offsets, state)), None))
        else:
            for ps in states:
                if not ps.dirty:
                    continue
                p, offsets = ps.partition, ps.offsets()
                items = self.processor.dirty_items(p)
                if items is None:
                    state = self.processor.snapshot(p)
                    pairs = [] if state is None else [(None, state)]
                else:
                    pairs = sorted(items.items())
                for item, state in pairs:
                    out.append(ChangelogRecord(p, changelog.record_key(p, item),
                                               changelog.encode(changelog.Snapshot(p, offsets, state, item)), ps))
        if out:
            metrics.SNAPSHOTS.labels(self.name).inc()
            metrics.STATE_BYTES.labels(self.name).set(sum(len(r.value) for r in out))
        return out

    # -- exactly-once -------------------------------------------------------------------
    async def _commit_transactions(self, states: Sequence[PartitionState], records: list[ChangelogRecord],
                                   offsets: dict[int, dict[TopicPartition, int]]) -> None:
        if self.instance_scope:
            units = [(self._instance_producer, list(states))] if self._instance_producer is not None else []
        else:
            units = [(ps.producer, [ps]) for ps in states if ps.producer is not None]

        async def commit_unit(producer, unit: list[PartitionState]) -> None:
            mine = {ps.partition for ps in unit}
            unit_offsets = {tp: off for p in mine for tp, off in offsets[p].items()}
            try:
                for r in records:
                    if r.source is None or r.source.partition in mine:
                        await producer.publish(self.changelog_topic, r.key, r.value, partition=r.partition)
                await producer.commit(unit_offsets, self.group, changelog.CHECKPOINT_METADATA)
            except CommitFailed as exc:
                self.lose(unit, exc)
                return
            for ps in unit:
                ps.committed_to(unit_offsets)

        results = await asyncio.gather(*(commit_unit(p, u) for p, u in units), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.abort([ps for _, unit in units for ps in unit])
            raise failures[0]

    async def abort(self, states: Sequence[PartitionState]) -> list[PartitionState]:
        """Exactly-once: abort the open transactions of ``states``; the partitions whose uncommitted
        work is gone (for an instance-wide state: all of them)."""
        if not self.exactly_once:
            return list(states)
        if self.instance_scope:
            if self._instance_producer is not None:
                await self._instance_producer.abort()
            return list(self.partitions.values())
        for ps in states:
            if ps.producer is not None:
                await ps.producer.abort()
        return list(states)

    def lose(self, states: Sequence[PartitionState], exc: BaseException) -> None:
        """Fenced, or the group moved on: the partitions' state since the last checkpoint is
        dropped and nothing more of them is processed until the rebalance."""
        what = "fenced by a newer producer" if isinstance(exc, Fenced) else "commit refused, the group rebalanced"
        log.warning("%s: partitions %s %s (%s): their uncommitted state is dropped; rejoining", self.name,
                    sorted(ps.partition for ps in states), what, exc)
        for ps in states:
            ps.lost = True
            ps.dirty = False
            self.processor.drop(ps.partition)

    # -- at-least-once: behind the loop ------------------------------------------------------
    def _pending(self) -> deque[asyncio.Task]:
        while self._chain and self._chain[0].done():
            self._chain.popleft()
        return self._chain

    async def _settle(self, previous: asyncio.Task | None, acks: Acks, records: list[ChangelogRecord],
                      states: list[PartitionState], offsets: dict[int, dict[TopicPartition, int]]) -> None:
        if previous is not None:
            await asyncio.wait({previous})  # in order: never commit past an earlier checkpoint
        if self._failure is not None:
            return
        merged = {tp: off for by_tp in offsets.values() for tp, off in by_tp.items()}
        try:
            await acks.wait()  # the outputs first: the state never claims an output that could be lost
            if records:
                for r in records:
                    await self.bus.publish(self.changelog_topic, r.key, r.value, partition=r.partition)
                await self.bus.flush()
            if merged and self.subscription is not None:
                await self.subscription.commit(merged, changelog.CHECKPOINT_METADATA)
        except CommitFailed as exc:
            # the outputs and the changelog are out; the partitions' new owner starts from the previous
            # commit and skips, per item, what the changelog already holds
            log.warning("%s: offsets not committed, the group rebalanced (%s); rejoining", self.name, exc)
            return
        except BaseException as exc:  # noqa: BLE001 - raised to the loop at its next batch
            self._failure = exc
            return
        for ps in states:
            ps.committed_to(offsets[ps.partition])

    async def drain(self) -> None:
        """Until every checkpoint handed over is committed; raises a failure."""
        while self._pending():
            await asyncio.wait({self._chain[-1]})
        self.raise_failure()

    def cancel(self) -> None:
        """Give up on what is outstanding (a stop past its bound): those inputs stay uncommitted."""
        for task in self._chain:
            task.cancel()
        self._chain.clear()
