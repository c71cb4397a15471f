"""The runner's batch paths (mixed into Runner): columnar handling, batched publishing,
dead letters, state dropped after a lost exactly-once commit.

A columnar processor gets the whole fetched batch decoded in one pass and
returns encoded outputs, which go out with the bus's batch API. Batches that
need per-input decisions (right after a restore: inputs to skip or to replay
silently) take the Envelope path of the same loop.
"""

from __future__ import annotations

import logging
import time

from schemas.events import DeadLetter
from schemas.topics import DLQ
from streaming import metrics
from streaming.batch import Columns, decode_columns
from streaming.bus.base import Record, TopicPartition
from streaming.codec import encode, key_for
from streaming.processor import ColumnResult, Envelope, ProcessResult


class BatchFailed(Exception):
    """A stateful processor's batch raised (the cause): the runner rewinds its partitions, then
    processes the inputs one at a time (``streaming.runner_state._rewind``)."""

log = logging.getLogger("streaming.runner")


def row_record(cols: Columns, i: int) -> Record:
    for s in cols.segments:
        if s.start <= i < s.stop:
            return Record(s.topic, s.partition, cols.offsets[i], cols.keys[i], cols.values[i], cols.timestamps[i])
    raise IndexError(i)


class BatchPaths:
    """Mixed into streaming.runner.Runner; uses its bus, processor, counters and metrics."""

    async def _handle_columns(self, cols: Columns) -> dict[TopicPartition, int]:
        child = self._children
        for s in cols.segments:
            child(metrics.EVENTS_IN, self.name, s.topic).inc(s.stop - s.start)
        self._counts["in"] += len(cols)
        errors = decode_columns(cols)
        good = cols.without(set(errors))
        result = self._process_columns_isolating(good) if len(good) else None
        for i, reason in sorted(errors.items()):  # after the batch went through: a rewind repeats it
            await self._dead_letter("decode", reason, row_record(cols, i))
        if result is not None:
            if isinstance(result, ProcessResult):  # the batch failed: the Envelope path isolated it
                for env, reason in result.rejected:
                    await self._dead_letter("process", reason, env)
                await self._emit(result)
            else:
                for i, reason in result.rejected:
                    await self._dead_letter("process", reason, row_record(good, i))
                await self._emit_encoded(result)
        offsets = cols.next_offsets()
        for tp in offsets:
            self._dirty.add(tp.partition)
        self._next_offsets.update(offsets)
        for s in cols.segments:  # first offset read and next to read, for the shutdown's account
            tp = TopicPartition(s.topic, s.partition)
            seen = self._seen.get(tp)
            self._seen[tp] = (seen[0] if seen is not None else cols.offsets[s.start], offsets[tp])
        return offsets

    def _process_columns_isolating(self, cols: Columns) -> ColumnResult | ProcessResult:
        try:
            return self.processor.process_columns(cols)
        except Exception as exc:  # noqa: BLE001 - a bug in one input must not stop the stream
            if self.processor.stateful:
                raise BatchFailed() from exc  # its state may hold part of the batch: rewind first
            log.exception("%s: columnar batch failed, isolating the bad input", self.name)
        envelopes = [Envelope(s.topic, s.partition, cols.offsets[i], cols.keys[i], cols.events[i])
                     for s in cols.segments for i in range(s.start, s.stop)]
        return self._process_isolating_failures(envelopes)

    async def _emit_encoded(self, result: ColumnResult) -> None:
        now = time.time_ns()
        child = self._children
        for out in result.outputs:
            if not out.values:
                continue
            await self.bus.publish_batch(out.topic, out.keys, out.values)
            n = len(out.values)
            child(metrics.EVENTS_OUT, self.name, out.topic).inc(n)
            self._counts["out"] += n
            metrics.observe_latencies(child(metrics.END_TO_END_SECONDS, self.name, out.topic), now, out.ingest_ns)
        if result.last_ts_event:
            child(metrics.LAST_EVENT_TS, self.name).set(result.last_ts_event / 1e9)

    async def _emit(self, result: ProcessResult) -> None:
        """Publish a ProcessResult: encoded per message, sent per topic with the batch API; every
        output's end-to-end latency observed in one step per topic."""
        if not result.outputs:
            return
        by_topic: dict[str, tuple[list, list, list]] = {}
        for out in result.outputs:
            key = out.key if out.key is not None else key_for(out.topic, out.event)
            keys, values, stamps = by_topic.setdefault(out.topic, ([], [], []))
            keys.append(key)
            values.append(encode(out.event))
            stamps.append(getattr(out.event, "ts_ingest", 0) or 0)
        now = time.time_ns()
        child = self._children
        for topic, (keys, values, stamps) in by_topic.items():
            await self.bus.publish_batch(topic, keys, values)
            child(metrics.EVENTS_OUT, self.name, topic).inc(len(values))
            self._counts["out"] += len(values)
            metrics.observe_latencies(child(metrics.END_TO_END_SECONDS, self.name, topic), now, stamps)

    def _forget_uncommitted_state(self, exc: BaseException) -> None:
        """Exactly-once, the transaction was aborted after a rebalance: the in-memory state has
        seen inputs whose outputs are gone, so it is dropped (never snapshotted); the
        partitions are restored from the changelog when the member rejoins."""
        log.warning("%s: transaction aborted, the group rebalanced (%s); rejoining", self.name, exc)
        for p in set(self._dirty):
            self.processor.drop(p)
        self._dirty.clear()
        self._next_offsets.clear()

    async def _dead_letter(self, stage: str, reason: str, source: Record | Envelope) -> None:
        raw = source.value if isinstance(source, Record) else encode(source.event)
        letter = DeadLetter(
            stage=f"{self.name}:{stage}", reason=reason[:2000], raw=raw, ts_proc=time.time_ns(),
            source_topic=source.topic, partition=source.partition, offset=source.offset,
            key=source.key.decode("utf-8", "replace") if source.key else None,
        )
        await self.bus.publish(DLQ.name, None, encode(letter))
        self._children(metrics.DEAD_LETTERS, f"{self.name}:{stage}").inc()
        self._children(metrics.ERRORS, self.name).inc()
        self._counts["errors"] += 1
        log.warning("%s: dead letter from %s:%s@%s: %s", self.name, source.topic, source.partition,
                    source.offset, reason[:200])
