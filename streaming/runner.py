"""The one consumer loop: poll -> process -> checkpoint.

What it composes, each readable on its own:

- ``streaming.partition``: a ``PartitionState`` per assigned input partition,
  the only place offsets are kept (where the state is, what is committed,
  what a restore still skips or replays);
- ``streaming.processing``: one batch decoded, processed and published
  (columnar, or per input right after a restore or a rewind);
- ``streaming.checkpoint``: the only place that commits (outputs, changelog,
  offsets, in that order; in exactly-once mode one transaction per partition,
  with a producer per partition that fences the partition's previous owner);
- ``streaming.recovery``: on assignment, each partition's changelog partition
  is restored and its inputs sought;
- ``streaming.stopping``: a stop that ends within ``--shutdown-timeout``.

Rebalance hooks run from the Kafka client's own task: a lock keeps them at
batch boundaries, and records of a partition sought after the batch was
fetched are dropped (the seek makes the consumer fetch them again).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
from dataclasses import dataclass
from typing import Sequence

from schemas.events import Health
from schemas.topics import DLQ, HEALTH, changelog_topic
from streaming import metrics
from streaming.bus.base import Bus, CommitFailed, Record, Subscription, TopicPartition
from streaming.bus.columns import Columns
from streaming.checkpoint import Checkpoint
from streaming.codec import encode
from streaming.deadline import bounded
from streaming.partition import PartitionState, Partitions
from streaming.processing import BatchFailed, BatchHandler, Counts
from streaming.processor import Processor
from streaming.recovery import Recovery
from streaming.stopping import StopBound, Uncommitted, describe, log_uncommitted

log = logging.getLogger(__name__)

LAG_TIMEOUT_S = 3.0


@dataclass
class RunnerSettings:
    group: str | None = None  # defaults to the processor's name
    max_records: int = 1000
    poll_timeout_ms: int = 100
    # how often a checkpoint commits (None: 0.1 s exactly-once, where read_committed readers wait
    # for it; 1 s at-least-once, where it only bounds what a crash re-reads)
    commit_interval_s: float | None = None
    timer_interval_s: float = 1.0
    health_interval_s: float = 10.0
    lag_interval_s: float = 2.0
    duration_s: float | None = None  # stop after this long (demo, tests)
    shutdown_timeout_s: float = 10.0  # a stop ends within this, whatever the broker does
    exactly_once: bool = False  # Kafka transactions: outputs, changelog and input offsets commit atomically
    instance: str = ""
    # move everything alive after start-up out of the cyclic GC's way (gc.freeze): a batch
    # allocates thousands of objects, and each collection would scan the whole heap
    # (Numba, aiokafka, ...) again; for processes that run one consumer (``ticktide consume``)
    freeze_heap: bool = False

    def commit_interval(self) -> float:
        if self.commit_interval_s is not None:
            return self.commit_interval_s
        return 0.1 if self.exactly_once else 1.0


class Runner:
    def __init__(self, processor: Processor, bus: Bus, settings: RunnerSettings | None = None,
                 stop: asyncio.Event | None = None) -> None:
        self.processor = processor
        self.bus = bus
        self.settings = s = settings or RunnerSettings()
        self.stop = stop or asyncio.Event()
        self.name = processor.name
        self.group = s.group or processor.name
        self.instance = s.instance or f"{socket.gethostname()}:{id(self) & 0xFFFF:x}"
        self.changelog = changelog_topic(self.name, self.group)
        self.subscription: Subscription | None = None
        self.partitions = Partitions()
        self.counts = Counts()
        self._children = metrics.Children()
        self.batches = BatchHandler(processor, self.name, self._children, self.counts)
        self.checkpoint = Checkpoint(
            bus=bus, processor=processor, partitions=self.partitions, group=self.group,
            changelog_topic=self.changelog.name, exactly_once=s.exactly_once, interval_s=s.commit_interval(),
            transactional_prefix=f"ticktide.{self.group}.{self.name}", name=self.name)
        self.recovery = Recovery(bus, processor, self.changelog.name, self.name)
        self.bound = StopBound(s.shutdown_timeout_s)
        self._lock = asyncio.Lock()
        self._fatal: BaseException | None = None  # raised by the loop (a hook cannot stop it)
        self._abandoned: Uncommitted = {}  # what revoked partitions left uncommitted
        self._last_health = (time.monotonic(), 0)
        self._reported_lag: set[TopicPartition] = set()
        self._outage_seen = False  # the broker went away since the last health report
        self._closing = False
        self._fetch = None  # the subscription's batches, once fetching began

    # -- life cycle -------------------------------------------------------------------
    async def open(self) -> None:
        """Create the topics this consumer needs and join its group (run() calls it)."""
        t0 = time.perf_counter()
        self.processor.warm_up()  # before joining: a slow first batch must not cost the membership
        log.info("%s: warmed up in %.2fs", self.name, time.perf_counter() - t0)
        if self.settings.freeze_heap:
            gc.collect()
            gc.freeze()
        await self.bus.start()
        p = self.processor
        topics = list(dict.fromkeys([*p.inputs, *p.outputs, DLQ.name, HEALTH.name]))
        if p.stateful:
            topics.append(self.changelog.name)
        await self.bus.ensure_topics(topics)
        self.subscription = self.bus.subscribe(p.inputs, self.group, on_assign=self._on_assign,
                                               on_revoke=self._on_revoke)
        self.checkpoint.subscription = self.subscription

    async def run(self) -> None:
        await self.open()
        metrics.UP.labels(self.name).set(1)
        watch = self.bus.watch
        if watch is not None:
            watch.on_change(self._on_connectivity)
            watch.describe_waiting(self._describe_uncommitted)
        loop_task = asyncio.get_running_loop().create_task(self._loop(), name=f"{self.name} loop")
        try:
            await self.bound.run_loop(loop_task, self.stop)
        finally:
            if watch is not None:
                watch.forget_listener(self._on_connectivity)
                watch.forget_waiting(self._describe_uncommitted)
            await self.close()

    async def close(self) -> None:
        """The final checkpoint, then leave the group, within the shutdown bound."""
        self.bound.begin()
        self._closing = True
        try:
            if self.bound.interrupted:
                raise asyncio.TimeoutError  # the broker held the last batch: do not wait again
            await asyncio.wait_for(self._final_checkpoint(), self.bound.remaining() * 0.6)
        except asyncio.TimeoutError:
            self.bound.interrupted = True
        except Exception as exc:  # noqa: BLE001 - the stop goes on: what is not committed is reported
            log.warning("%s: the final checkpoint failed (%s: %s)", self.name, type(exc).__name__, exc)
        finally:
            self.checkpoint.cancel()  # what the broker never acknowledged stays uncommitted
            left = self._uncommitted()
            if self.subscription is not None:
                failed = await bounded(self.subscription.close(), max(0.5, self.bound.remaining() * 0.5))
                if failed:
                    log.warning("%s: leaving the group did not finish (%s); the broker will expire the "
                                "membership", self.name, failed)
            # exactly-once producers: a transaction they could not finish times out on the broker
            await bounded(self.checkpoint.close(list(self.partitions.values()), everything=True),
                          max(0.5, self.bound.remaining()))
            log_uncommitted(self.name, left, self.bound, self.settings.exactly_once)
            self.processor.close()
            metrics.UP.labels(self.name).set(0)

    def remaining_shutdown_s(self) -> float:
        """What is left of ``--shutdown-timeout`` for the caller's own cleanup (closing the bus)."""
        return self.bound.remaining()

    async def _final_checkpoint(self) -> None:
        async with self._lock:  # not while a rebalance hook restores or commits
            await self.checkpoint.commit(wait=True)
            await self.bus.flush()

    # -- the loop -------------------------------------------------------------------------
    async def _loop(self) -> None:
        s = self.settings
        started = time.monotonic()
        due = {"timer": started, "health": started + s.health_interval_s, "lag": started}
        async for batch in self._batches():
            marks = self.partitions.seek_marks()  # as they were when this batch was fetched
            async with self._lock:
                await self._step(batch, marks)
                now = time.monotonic()
                if now >= due["timer"]:
                    due["timer"] = now + s.timer_interval_s
                    await self.batches.emit(self.bus, self.processor.tick(time.time_ns()))
                if now >= due["lag"]:
                    due["lag"] = now + s.lag_interval_s
                    await self._report_lag()
                if now >= due["health"]:
                    due["health"] = now + s.health_interval_s
                    await self._publish_health()
            if self.stop.is_set() or (s.duration_s is not None and now - started >= s.duration_s):
                break

    async def drain(self) -> int:
        """Process until every assigned input is read to its end, with the loop's own steps (no
        timers: the historical workflow replays market time, not the wall clock); the records
        processed. Everything published on the bus before the call is waited for first."""
        await self.bus.flush()
        n = 0
        batches = self._batches()
        while not self.partitions or any((await self.subscription.lag()).values()):
            batch = await batches.__anext__()
            marks = self.partitions.seek_marks()
            async with self._lock:
                n += await self._step(batch, marks)
        return n

    def _batches(self):
        """The one fetch of this runner (the loop's and ``drain``'s): columns or Records."""
        if self._fetch is None:
            s, sub = self.settings, self.subscription
            fetch = sub.column_batches if self.processor.columnar else sub.batches
            self._fetch = fetch(s.max_records, s.poll_timeout_ms)
        return self._fetch

    async def _step(self, batch: Columns | list[Record], marks: dict[int, int]) -> int:
        """One fetched batch: processed, then a checkpoint if one is due; the records processed."""
        if self._fatal is not None:
            raise RuntimeError(f"{self.name}: cannot continue") from self._fatal
        self.checkpoint.raise_failure()
        batch = self._current(batch, marks)
        if len(batch):
            await self.handle(batch)
        if self.checkpoint.due():
            await self.checkpoint.commit()
        return len(batch)

    def _current(self, batch: Columns | list[Record], marks: dict[int, int]) -> Columns | list[Record]:
        """The records still to process: assigned, not lost, not sought since they were fetched."""
        current = self.partitions.current
        if isinstance(batch, Columns):
            return batch.keep(lambda topic, partition: current(topic, partition, marks))
        return [r for r in batch if current(r.topic, r.partition, marks)]

    async def handle(self, batch: Sequence[Record] | Columns) -> None:
        """Process one batch end to end (public so tests and the workflow can drive it)."""
        t0 = time.perf_counter()
        self._children(metrics.BATCH_SIZE, self.name).observe(len(batch))
        if self.processor.columnar and not isinstance(batch, Columns):
            batch = Columns.from_records(batch)
        for states, part in self._units(batch):
            publisher = self.checkpoint.publisher(states[0])
            try:
                await self.batches.handle(part, {ps.partition: ps for ps in states}, publisher)
            except BatchFailed as failed:
                await self._rewind(failed, states)
            except CommitFailed as exc:  # exactly-once: a newer producer took these partitions
                self.checkpoint.lose(await self.checkpoint.abort(states), exc)
        self._children(metrics.PROCESSING_SECONDS, self.name).observe(time.perf_counter() - t0)

    def _units(self, batch: Columns | Sequence[Record]):
        """The batch as (partitions, their records) per commit unit: per partition in exactly-once
        mode (each commits in its own transaction), else the whole batch."""
        if isinstance(batch, Columns):
            parts = sorted({s.partition for s in batch.segments})
        else:
            parts = sorted({r.partition for r in batch})
        states = [self.partitions[p] for p in parts if p in self.partitions]
        if not (self.settings.exactly_once and not self.checkpoint.instance_scope) or len(states) <= 1:
            return [(states, batch)] if states else []
        if isinstance(batch, Columns):
            return [([ps], batch.keep(lambda _t, p, q=ps.partition: p == q)) for ps in states]
        return [([ps], [r for r in batch if r.partition == ps.partition]) for ps in states]

    async def _rewind(self, failed: BatchFailed, states: list[PartitionState]) -> None:
        """A stateful processor's batch raised part way: its partitions' state may already hold some
        of it, so processing the inputs again one by one would apply them twice (a count, a rolling
        window). The partitions go back to their last checkpoint instead (exactly-once: their open
        transaction aborted; at-least-once: inputs whose outputs are out replayed silently), and the
        failed batch is then processed one input at a time, so only the one that fails is
        dead-lettered."""
        cause = failed.__cause__ or failed
        log.warning("%s: a batch failed (%s: %s); partitions %s go back to their last checkpoint and "
                    "the batch is processed again one input at a time", self.name, type(cause).__name__, cause,
                    sorted(ps.partition for ps in states))
        if self.settings.exactly_once:
            affected = await self.checkpoint.abort(states)
        else:
            await self.checkpoint.drain()  # the last checkpoint is committed: the restore starts there
            affected = states
        for ps in affected:
            self.processor.drop(ps.partition)
        await self.recovery.restore(self.subscription, affected)
        for ps in affected:
            for topic, position in ps.inputs.items():
                tp = TopicPartition(topic, ps.partition)
                if tp in failed.ends:
                    position.isolate_below = failed.ends[tp]
                if not self.settings.exactly_once and tp in failed.starts:
                    position.replay_below = max(position.replay_below, failed.starts[tp])

    # -- rebalance hooks ---------------------------------------------------------------------
    async def _on_assign(self, gained: list[TopicPartition]) -> None:
        log.info("%s assigned %s", self.name, [f"{t}:{p}" for t, p in gained])
        async with self._lock:
            try:
                states = []
                for p in sorted({tp.partition for tp in gained}):
                    if self.processor.stateful and p >= self.changelog.partitions:
                        raise RuntimeError(
                            f"input partition {p} has no changelog partition ({self.changelog.name} has "
                            f"{self.changelog.partitions}); give the inputs at most that many partitions")
                    states.append(PartitionState(p, [t for t in self.processor.inputs
                                                     if TopicPartition(t, p) in gained]))
                await self.checkpoint.open(states)  # exactly-once: fences the previous owners first
                await self.recovery.restore(self.subscription, states)
                for ps in states:
                    self.partitions[ps.partition] = ps
            except Exception as exc:  # noqa: BLE001 - surfaced by the loop: never run on a bad restore
                log.exception("%s: restoring state failed", self.name)
                self._fatal = exc

    async def _on_revoke(self, lost: list[TopicPartition]) -> None:
        log.info("%s revoked %s", self.name, [f"{t}:{p}" for t, p in lost])
        async with self._lock:
            states = self.partitions.for_tps(lost)
            try:
                await self.checkpoint.commit(states, wait=True)  # what was processed, before they go
            except Exception as exc:  # noqa: BLE001 - the new owner re-reads what is not committed
                log.warning("%s: the checkpoint of revoked partitions failed (%s: %s)", self.name,
                            type(exc).__name__, exc)
            for ps in states:
                self._abandoned.update(ps.uncommitted())
                if not self._closing:  # at the end of a run the last state stays for whoever embeds it
                    self.processor.drop(ps.partition)
                del self.partitions[ps.partition]
            await self.checkpoint.close(states)
            for tp in lost:  # the new owner reports these partitions' lag now
                self._forget_lag(tp)

    # -- what the loop reports ------------------------------------------------------------------
    def _uncommitted(self) -> Uncommitted:
        left = dict(self._abandoned)
        for ps in self.partitions.values():
            left.update(ps.uncommitted())
        return left

    def _describe_uncommitted(self) -> str:
        return describe(self.name, self._uncommitted())

    def _forget_lag(self, tp: TopicPartition) -> None:
        self._children.forget(metrics.CONSUMER_LAG, self.group, tp.topic, str(tp.partition))
        try:
            metrics.CONSUMER_LAG.remove(self.group, tp.topic, str(tp.partition))
        except KeyError:
            pass
        self._reported_lag.discard(tp)

    def _on_connectivity(self, up: bool) -> None:
        if not up:  # a lag measured before the outage would be a lie now: no number at all
            for tp in list(self._reported_lag):
                self._forget_lag(tp)
            self._outage_seen = True

    def _broker_reason(self) -> str:
        return self.bus.watch.reason() if self.bus.watch is not None else ""

    async def _lag(self) -> dict[TopicPartition, int]:
        """The lag for metrics and health: asked of the broker, but never allowed to hold the loop (a
        broker going away answers nothing): empty when it does not answer within a few seconds."""
        try:
            return await asyncio.wait_for(self.subscription.lag(), LAG_TIMEOUT_S)
        except (asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001 - a number for a gauge, not a failure
            log.debug("%s: no lag (%s: %s)", self.name, type(exc).__name__, exc)
            return {}

    async def _report_lag(self) -> None:
        if self.subscription is None or self._broker_reason():
            return  # no number while the broker is away (the listener removed the old ones)
        for tp, lag in (await self._lag()).items():
            self._children(metrics.CONSUMER_LAG, self.group, tp.topic, str(tp.partition)).set(lag)
            self._reported_lag.add(tp)

    async def _publish_health(self) -> None:
        if self._broker_reason():  # nothing reaches health.v1 now: the next report after the outage says it
            self._outage_seen = True
            return
        now = time.monotonic()
        then, out_then = self._last_health
        c = self.counts
        self._last_health = (now, c.outputs)
        error_rate = c.errors / c.inputs if c.inputs else 0.0
        reason = "broker was unreachable since the last report" if self._outage_seen else ""
        self._outage_seen = False
        status = "failing" if error_rate > 0.1 else "degraded" if reason else "ok"
        health = Health(
            component=self.name, instance=self.instance, status=status, reason=reason, ts_proc=time.time_ns(),
            events_in=c.inputs, events_out=c.outputs, errors=c.errors, error_rate=error_rate,
            queue_size=sum((await self._lag()).values()) if self.subscription else 0,
            throughput=(c.outputs - out_then) / max(now - then, 1e-9),
        )
        await self.bus.publish(HEALTH.name, self.name.encode(), encode(health))


async def run(processor: Processor, bus: Bus, settings: RunnerSettings | None = None,
              stop: asyncio.Event | None = None) -> None:
    await Runner(processor, bus, settings, stop).run()

