"""One batch of a consumer: decode, decide per input, process, publish the outputs and dead letters.

Two paths of the same semantics. A columnar processor gets the whole batch
decoded in one pass (``process_columns``) and returns encoded outputs, which go
out with the batch API. Right after a restore or a rewind some inputs need a
decision of their own (already in an item's restored state: skipped; outputs
already out: processed silently; after a failed batch: one at a time), so
those partitions take the per-input path (``process`` over Envelopes).

Everything is published through the ``publisher`` the checkpoint names for
the batch's partitions (the bus, or the partition's transaction), so a
rewound or aborted batch takes its outputs and dead letters with it.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Sequence

from schemas.events import DeadLetter
from schemas.topics import DLQ
from streaming import metrics
from streaming.batch import decode_columns, decode_records
from streaming.bus.base import Record, TopicPartition
from streaming.bus.columns import Columns
from streaming.codec import encode, key_for
from streaming.partition import PartitionState
from streaming.processor import ColumnResult, EncodedOutputs, Envelope, Processor, ProcessResult

log = logging.getLogger("streaming.runner")


class BatchFailed(Exception):
    """A stateful processor's batch raised (the cause) part way: its partitions' state may hold
    some of it, so they go back to their last checkpoint before the inputs are retried one by one."""

    def __init__(self, ends: dict[TopicPartition, int], starts: dict[TopicPartition, int]) -> None:
        super().__init__()
        self.ends = ends  # per input partition, the next offset after the failed batch
        self.starts = starts  # and its first offset


class Counts:
    def __init__(self) -> None:
        self.inputs = 0
        self.outputs = 0
        self.errors = 0


class BatchHandler:
    def __init__(self, processor: Processor, name: str, children: metrics.Children, counts: Counts) -> None:
        self.processor = processor
        self.name = name
        self.child = children
        self.counts = counts

    async def handle(self, batch: Columns | Sequence[Record], states: dict[int, PartitionState], publisher: Any) -> None:
        """Process ``batch`` (records of the partitions in ``states`` only) and publish through ``publisher``."""
        if isinstance(batch, Columns) and self.processor.columnar and \
                not any(states[s.partition].needs_per_input() for s in batch.segments):
            await self._columns(batch, publisher)
            spans = [(s.topic, s.partition, batch.offsets[s.start], batch.offsets[s.stop - 1] + 1)
                     for s in batch.segments]
        else:
            records = batch.records() if isinstance(batch, Columns) else list(batch)
            await self._envelopes(records, states, publisher)
            spans = _spans(records)
        stateful = self.processor.stateful
        for topic, partition, first, nxt in spans:
            ps = states[partition]
            ps.inputs[topic].advance(first, nxt)
            if stateful:
                ps.dirty = True

    # -- the columnar path ------------------------------------------------------------
    async def _columns(self, cols: Columns, publisher: Any) -> None:
        for s in cols.segments:
            self.child(metrics.EVENTS_IN, self.name, s.topic).inc(s.stop - s.start)
        self.counts.inputs += len(cols)
        errors = decode_columns(cols)
        good = cols.without(set(errors))
        result: ColumnResult | ProcessResult | None = None
        if len(good):
            try:
                result = self.processor.process_columns(good)
            except Exception as exc:  # noqa: BLE001 - a bug in one input must not stop the stream
                if self.processor.stateful:
                    raise _failed(cols) from exc  # its state may hold part of the batch: rewind first
                log.exception("%s: columnar batch failed, isolating the bad input", self.name)
                result = self._one_at_a_time([Envelope(s.topic, s.partition, good.offsets[i], good.keys[i],
                                                       good.events[i])
                                              for s in good.segments for i in range(s.start, s.stop)])
        for i, reason in sorted(errors.items()):  # after the batch went through: a rewind repeats it
            await self.dead_letter(publisher, "decode", reason, _row_record(cols, i))
        if isinstance(result, ProcessResult):
            for env, reason in result.rejected:
                await self.dead_letter(publisher, "process", reason, env)
            await self.emit(publisher, result)
        elif result is not None:
            for i, reason in result.rejected:
                await self.dead_letter(publisher, "process", reason, _row_record(good, i))
            await self._emit_encoded(publisher, result.outputs)
            if result.last_ts_event:
                self.child(metrics.LAST_EVENT_TS, self.name).set(result.last_ts_event / 1e9)

    # -- the per-input path -------------------------------------------------------------
    async def _envelopes(self, records: list[Record], states: dict[int, PartitionState], publisher: Any) -> None:
        replayed: list[Envelope] = []  # rebuild state only: their outputs are out already
        envelopes: list[Envelope] = []
        isolate = False
        by_topic: dict[str, int] = defaultdict(int)
        events, errors = decode_records(records)  # one msgspec call per run of one topic
        undecodable: list[tuple[str, Record]] = []  # dead-lettered once the batch went through
        item_key = self.processor.item_key
        for i, r in enumerate(records):
            by_topic[r.topic] += 1
            position = states[r.partition].inputs[r.topic]
            replaying = position.replaying(r.offset)
            if i in errors:
                if not replaying:
                    undecodable.append((errors[i], r))
                continue
            env = Envelope(r.topic, r.partition, r.offset, r.key, events[i])
            if position.floors and position.reflected(r.offset, item_key(env)):
                continue
            if replaying:
                replayed.append(env)
            else:
                envelopes.append(env)
                isolate = isolate or r.offset < position.isolate_below
        for topic, n in by_topic.items():
            self.child(metrics.EVENTS_IN, self.name, topic).inc(n)
        self.counts.inputs += len(records)
        if replayed:
            self._process(replayed, isolate=False, records=records)
        result = self._process(envelopes, isolate, records) if envelopes else None
        for reason, r in undecodable:
            await self.dead_letter(publisher, "decode", reason, r)
        if result is not None:
            for env, reason in result.rejected:
                await self.dead_letter(publisher, "process", reason, env)
            await self.emit(publisher, result)
            last_ts = getattr(envelopes[-1].event, "ts_event", None)
            if last_ts:
                self.child(metrics.LAST_EVENT_TS, self.name).set(last_ts / 1e9)

    def _process(self, envelopes: list[Envelope], isolate: bool, records: list[Record]) -> ProcessResult:
        """The batch at once; if it raises, a stateless processor retries one input at a time so only
        the poison is rejected (a stateful one is rewound first: ``BatchFailed``)."""
        if not isolate:
            try:
                return self.processor.process(envelopes)
            except Exception as exc:  # noqa: BLE001 - any bug in one input must not stop the stream
                if self.processor.stateful:
                    raise _failed_records(records) from exc
                log.exception("%s: batch failed, isolating the bad input", self.name)
        return self._one_at_a_time(envelopes)

    def _one_at_a_time(self, envelopes: list[Envelope]) -> ProcessResult:
        merged = ProcessResult()
        for env in envelopes:
            try:
                one = self.processor.process([env])
            except Exception as exc:  # noqa: BLE001
                merged.rejected.append((env, f"{type(exc).__name__}: {exc}"))
                continue
            merged.outputs.extend(one.outputs)
            merged.rejected.extend(one.rejected)
        return merged

    # -- publishing -------------------------------------------------------------------------
    async def _emit_encoded(self, publisher: Any, outputs: list[EncodedOutputs]) -> None:
        now = time.time_ns()
        for out in outputs:
            if not out.values:
                continue
            await publisher.publish_batch(out.topic, out.keys, out.values)
            n = len(out.values)
            self.child(metrics.EVENTS_OUT, self.name, out.topic).inc(n)
            self.counts.outputs += n
            metrics.observe_latencies(self.child(metrics.END_TO_END_SECONDS, self.name, out.topic), now,
                                      out.ingest_ns)

    async def emit(self, publisher: Any, result: ProcessResult) -> None:
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
        await self._emit_encoded(publisher, [EncodedOutputs(t, k, v, s) for t, (k, v, s) in by_topic.items()])

    async def dead_letter(self, publisher: Any, stage: str, reason: str, source: Record | Envelope) -> None:
        raw = source.value if isinstance(source, Record) else encode(source.event)
        letter = DeadLetter(
            stage=f"{self.name}:{stage}", reason=reason[:2000], raw=raw, ts_proc=time.time_ns(),
            source_topic=source.topic, partition=source.partition, offset=source.offset,
            key=source.key.decode("utf-8", "replace") if source.key else None,
        )
        await publisher.publish(DLQ.name, None, encode(letter))
        self.child(metrics.DEAD_LETTERS, f"{self.name}:{stage}").inc()
        self.child(metrics.ERRORS, self.name).inc()
        self.counts.errors += 1
        log.warning("%s: dead letter from %s:%s@%s: %s", self.name, source.topic, source.partition,
                    source.offset, reason[:200])


def _spans(records: Sequence[Record]) -> list[tuple[str, int, int, int]]:
    """Per (topic, partition): (topic, partition, first offset, next offset after the last)."""
    spans: dict[tuple[str, int], list[int]] = {}
    for r in records:
        span = spans.get((r.topic, r.partition))
        if span is None:
            spans[(r.topic, r.partition)] = [r.offset, r.offset + 1]
        else:
            span[0] = min(span[0], r.offset)
            span[1] = max(span[1], r.offset + 1)
    return [(t, p, first, nxt) for (t, p), (first, nxt) in spans.items()]


def _failed(cols: Columns) -> BatchFailed:
    return BatchFailed(cols.next_offsets(), {TopicPartition(s.topic, s.partition): cols.offsets[s.start]
                                              for s in cols.segments})


def _failed_records(records: Sequence[Record]) -> BatchFailed:
    spans = _spans(records)
    return BatchFailed({TopicPartition(t, p): nxt for t, p, _, nxt in spans},
                       {TopicPartition(t, p): first for t, p, first, _ in spans})


def _row_record(cols: Columns, i: int) -> Record:
    for s in cols.segments:
        if s.start <= i < s.stop:
            return Record(s.topic, s.partition, cols.offsets[i], cols.keys[i], cols.values[i], cols.timestamps[i])
    raise IndexError(i)
