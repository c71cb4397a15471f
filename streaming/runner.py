"""The one consumer loop: poll, decode, process, publish, flush, commit, snapshot.

At-least-once: offsets are committed only after every output of the batch is
acknowledged. Stateful processors keep their state per input partition in a
compacted changelog of its group (``changelog.<group>.<name>.v1``) together with the input
offsets it reflects; when a partition is assigned, the state is restored and
the inputs are re-read from exactly those offsets, so a restarted or
rebalanced consumer continues where the old one stopped, publishing the same
values (possibly twice, never differently).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence


from schemas.events import Health
from schemas.topics import DLQ, HEALTH, changelog_topic
from streaming import metrics
from streaming.batch import decode_records
from streaming.bus.columns import Columns
from streaming.bus.base import Bus, CommitFailed, Record, Subscription, TopicPartition
from streaming.codec import encode
from streaming.inflight import InFlight
from streaming.processor import Envelope, Processor, ProcessResult
from streaming.runner_columns import BatchFailed, BatchPaths
from streaming.runner_state import StateHooks
from streaming.stopping import BoundedStop

log = logging.getLogger(__name__)


@dataclass
class RunnerSettings:
    group: str | None = None  # defaults to the processor's name
    max_records: int = 1000
    poll_timeout_ms: int = 100
    snapshot_interval_s: float = 2.0
    timer_interval_s: float = 1.0
    health_interval_s: float = 10.0
    lag_interval_s: float = 2.0
    duration_s: float | None = None  # stop after this long (demo, tests)
    shutdown_timeout_s: float = 10.0  # a stop ends within this, whatever the broker does
    exactly_once: bool = False  # Kafka transactions: outputs and input offsets commit atomically
    instance: str = ""
    # move everything alive after start-up out of the cyclic GC's way (gc.freeze): a batch
    # allocates thousands of objects, and each collection would scan the whole heap
    # (Numba, aiokafka, ...) again; for processes that run one consumer (``ticktide consume``)
    freeze_heap: bool = False


class Runner(BatchPaths, StateHooks, BoundedStop):
    def __init__(self, processor: Processor, bus: Bus, settings: RunnerSettings | None = None,
                 stop: asyncio.Event | None = None) -> None:
        self.processor = processor
        self.bus = bus
        self.settings = settings or RunnerSettings()
        self.stop = stop or asyncio.Event()
        self.name = processor.name
        self.group = self.settings.group or processor.name
        self.instance = self.settings.instance or f"{socket.gethostname()}:{id(self) & 0xFFFF:x}"
        self.changelog = changelog_topic(self.name, self.group).name  # one per group: never shared
        self._children = metrics.Children()
        self._sub: Subscription | None = None
        self._next_offsets: dict[TopicPartition, int] = {}  # next offset to read, per processed input
        self._dirty: set[int] = set()  # partitions whose state changed since the last snapshot
        self._counts = {"in": 0, "out": 0, "errors": 0}
        self._last_health = (time.monotonic(), 0)
        # Rebalance hooks may run concurrently with the loop (aiokafka calls them from its
        # coordinator task): the lock keeps them at batch boundaries, and records of a
        # partition that a hook sought after the batch was fetched are dropped (the seek
        # makes the consumer fetch them again from the new position).
        self._lock = asyncio.Lock()
        self._seeks: dict[TopicPartition, int] = {}  # per partition: how many seeks so far
        # after a restore from item snapshots: per partition, item -> first offset not yet reflected
        self._floors: dict[TopicPartition, dict[str, int]] = {}
        # after a restore: inputs below the group's committed offset rebuild state, but their
        # outputs were already published, so they are not published again
        self._mute: dict[TopicPartition, int] = {}
        # after a stateful batch failed and was rewound: inputs below these offsets one at a time
        self._isolate: dict[TopicPartition, int] = {}
        self._eos = self.settings.exactly_once
        self._fatal: BaseException | None = None  # raised by the loop (a hook cannot stop it)
        self._deadline: float | None = None  # monotonic end of the shutdown bound, once stopping
        self._interrupted = False  # the bound cut the loop or the final flush short
        self._seen: dict[TopicPartition, tuple[int, int]] = {}  # first offset read, next offset to read
        self._committed: dict[TopicPartition, int] = {}  # next offset, as committed
        self._reported_lag: set[TopicPartition] = set()
        self._outage_seen = False  # the broker went away since the last health report
        # at-least-once: the next batch is fetched while this one's outputs are acknowledged
        self._inflight = InFlight(self._commit_offsets, self._committed.update, self.name)

    async def _in_transaction(self, work, *args) -> None:
        """Run ``work`` (which publishes and returns input offsets to commit) as one unit:
        a Kafka transaction in exactly-once mode, else publish, wait for acks, commit."""
        if self._eos:
            await self.bus.begin_transaction()
            try:
                offsets = await work(*args)
                await self.bus.commit_transaction(offsets, self.group)
            except CommitFailed as exc:
                await self.bus.abort_transaction()
                self._forget_uncommitted_state(exc)
            except BaseException:
                await asyncio.wait_for(self.bus.abort_transaction(), self._remaining())
                raise
            self._committed.update(offsets)
            return
        offsets = await work(*args)
        # the acks and the commit follow in the background (streaming/inflight.py)
        await self._inflight.submit(self.bus.take_pending(), offsets)

    async def _commit_offsets(self, offsets) -> None:
        if self._sub is not None and offsets:
            await self._sub.commit(offsets)

    # -- the loop -------------------------------------------------------------
    async def open(self) -> None:
        """Create the topics this consumer needs and join its group (run() calls it)."""
        t0 = time.perf_counter()
        self.processor.warm_up()  # before joining: a slow first batch must not cost the membership
        log.info("%s: warmed up in %.2fs", self.name, time.perf_counter() - t0)
        if self.settings.freeze_heap:
            gc.collect()
            gc.freeze()
        if self._eos:
            # stable across restarts of this instance, so a new producer fences the old one and
            # aborts the transaction a crash left open (else readers wait for it to time out)
            self.bus.enable_transactions(f"ticktide.{self.group}.{self.settings.instance or socket.gethostname()}")
        await self.bus.start()
        topics = list(dict.fromkeys([*self.processor.inputs, *self.processor.outputs, DLQ.name, HEALTH.name]))
        if self.processor.stateful:
            topics.append(self.changelog)
        await self.bus.ensure_topics(topics)
        self._sub = self.bus.subscribe(self.processor.inputs, self.group,
                                       on_assign=self._on_assign, on_revoke=self._on_revoke)

    async def close(self) -> None:
        """Flush, snapshot, leave the group (bounded in time)."""
        await self._shutdown()


    async def _loop(self) -> None:
        s = self.settings
        started = time.monotonic()
        due = {"snapshot": started + s.snapshot_interval_s, "timer": started,
               "health": started + s.health_interval_s, "lag": started}
        columnar = self.processor.columnar and hasattr(self._sub, "column_batches")
        fetch = self._sub.column_batches if columnar else self._sub.batches
        async for records in fetch(s.max_records, s.poll_timeout_ms):
            seeks = dict(self._seeks)  # as they were when this batch was fetched
            async with self._lock:
                if self._fatal is not None:
                    raise RuntimeError(f"{self.name}: cannot continue") from self._fatal
                if seeks != self._seeks:  # a hook sought partitions after this batch was fetched
                    def unmoved(topic: str, partition: int) -> bool:
                        tp = TopicPartition(topic, partition)
                        return self._seeks.get(tp) == seeks.get(tp)

                    records = (records.keep(unmoved) if isinstance(records, Columns)
                               else [r for r in records if unmoved(r.topic, r.partition)])
                if len(records):
                    await self.handle(records)
                # timers and snapshots under the lock too: a rebalance hook never lands
                # in the middle of one (in exactly-once mode, inside its transaction)
                now = time.monotonic()
                if now >= due["timer"]:
                    due["timer"] = now + s.timer_interval_s
                    await self._in_transaction(self._emit_timer)
                if now >= due["lag"]:
                    due["lag"] = now + s.lag_interval_s
                    await self._report_lag()
                if now >= due["health"]:
                    due["health"] = now + s.health_interval_s
                    await self._in_transaction(self._publish_health)
                if self.processor.stateful and now >= due["snapshot"]:
                    due["snapshot"] = now + s.snapshot_interval_s
                    await self._snapshot()
            if self.stop.is_set() or (s.duration_s is not None and now - started >= s.duration_s):
                break

    async def _final_flush(self) -> None:
        async with self._lock:  # not while a rebalance hook restores or snapshots
            await self._inflight.drain()
            await self.bus.flush()
            if self.processor.stateful:
                await self._snapshot()

    async def handle(self, records: Sequence[Record] | Columns) -> None:
        """Process one batch end to end; public so tests can drive it without polling."""
        t0 = time.perf_counter()
        self._children(metrics.BATCH_SIZE, self.name).observe(len(records))
        if self.processor.columnar and not isinstance(records, Columns):
            records = Columns.from_records(records)  # a bus without columnar fetches (memory://)
        try:
            if isinstance(records, Columns):
                if self.processor.columnar and not (self._mute or self._floors or self._isolate):
                    await self._in_transaction(self._handle_columns, records)
                else:  # just restored: per-input skips and silent replays take the Envelope path
                    await self._in_transaction(self._handle, records.records())
            else:
                await self._in_transaction(self._handle, records)
        except BatchFailed as failed:
            ends = records.next_offsets() if isinstance(records, Columns) else _next_offsets(records)
            await self._rewind(ends, failed.__cause__ or failed)
        self._children(metrics.PROCESSING_SECONDS, self.name).observe(time.perf_counter() - t0)

    async def _handle(self, records: Sequence[Record]) -> dict[TopicPartition, int]:
        replayed: list[Envelope] = []  # rebuild state only: their outputs are out already
        envelopes: list[Envelope] = []
        by_topic: dict[str, int] = defaultdict(int)
        events, errors = decode_records(records)  # one msgspec call per run of one topic
        undecodable: list[tuple[str, Record]] = []  # dead-lettered once the batch went through
        for i, r in enumerate(records):
            by_topic[r.topic] += 1
            if i in errors:
                if not self._muted(r):
                    undecodable.append((errors[i], r))
                continue
            env = Envelope(r.topic, r.partition, r.offset, r.key, events[i])
            if self._floors and self._already_reflected(env):
                continue
            (replayed if self._mute and self._muted(r) else envelopes).append(env)
        for topic, n in by_topic.items():
            self._children(metrics.EVENTS_IN, self.name, topic).inc(n)
        self._counts["in"] += len(records)
        if replayed:
            self._process_isolating_failures(replayed)
        result = self._process_isolating_failures(envelopes) if envelopes else None
        for reason, r in undecodable:
            await self._dead_letter("decode", reason, r)
        if result is not None:
            for env, reason in result.rejected:
                await self._dead_letter("process", reason, env)
            await self._emit(result)
            last_ts = getattr(envelopes[-1].event, "ts_event", None)
            if last_ts:
                self._children(metrics.LAST_EVENT_TS, self.name).set(last_ts / 1e9)
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
            self._dirty.add(r.partition)
        self._next_offsets.update(offsets)
        for tp, nxt in offsets.items():
            if tp in self._isolate and nxt >= self._isolate[tp]:
                del self._isolate[tp]  # past the failed batch: whole batches again
            seen = self._seen.get(tp)
            if seen is None:
                seen = (min(r.offset for r in records if r.partition == tp.partition and r.topic == tp.topic), 0)
            self._seen[tp] = (seen[0], nxt)
        return offsets

    def _process_isolating_failures(self, envelopes: list[Envelope]) -> ProcessResult:
        """Process the batch; if it raises, retry one input at a time so only the poison is rejected
        (a stateful processor's batch is rewound first: ``BatchFailed``, see ``_rewind``)."""
        if not self._isolate:
            try:
                return self.processor.process(envelopes)
            except Exception as exc:  # noqa: BLE001 - any bug in one input must not stop the stream
                if self.processor.stateful:
                    raise BatchFailed() from exc
                log.exception("%s: batch failed, isolating the bad input", self.name)
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

    async def _emit_timer(self) -> dict:
        await self._emit(self.processor.tick(time.time_ns()))
        return {}

    def _broker_reason(self) -> str:
        watch = getattr(self.bus, "watch", None)
        return watch.reason() if watch is not None else ""
    async def _report_lag(self) -> None:
        if self._sub is None:
            return
        if self._broker_reason():
            return  # no number while the broker is away (the listener removed the old ones)
        for tp, lag in (await self._sub.lag()).items():
            self._children(metrics.CONSUMER_LAG, self.group, tp.topic, str(tp.partition)).set(lag)
            self._reported_lag.add(tp)

    async def _publish_health(self) -> dict:
        if self._broker_reason():  # nothing reaches health.v1 now: the next report after the outage says it
            self._outage_seen = True
            return {}
        now = time.monotonic()
        then, out_then = self._last_health
        self._last_health = (now, self._counts["out"])
        n_in, errors = self._counts["in"], self._counts["errors"]
        error_rate = errors / n_in if n_in else 0.0
        reason = ""
        if self._outage_seen:
            reason = "broker was unreachable since the last report"
        self._outage_seen = False
        status = "failing" if error_rate > 0.1 else "degraded" if reason else "ok"
        health = Health(
            component=self.name, instance=self.instance, status=status, reason=reason, ts_proc=time.time_ns(),
            events_in=n_in, events_out=self._counts["out"], errors=errors, error_rate=error_rate,
            queue_size=sum((await self._sub.lag()).values()) if self._sub else 0,
            throughput=(self._counts["out"] - out_then) / max(now - then, 1e-9),
        )
        await self.bus.publish(HEALTH.name, self.name.encode(), encode(health))
        return {}


def _next_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        out[tp] = max(out.get(tp, 0), r.offset + 1)
    return out


async def run(processor: Processor, bus: Bus, settings: RunnerSettings | None = None,
              stop: asyncio.Event | None = None) -> None:
    await Runner(processor, bus, settings, stop).run()

