"""The runner's state half: restore on assignment, snapshot on revocation and on a timer, and
which inputs a restored state already reflects (skipped) or whose outputs were already
published (muted). A mixin of :class:`streaming.runner.Runner`; see its docstring."""

from __future__ import annotations

import logging

from streaming import changelog, metrics
from streaming.bus.base import Record, TopicPartition
from streaming.processor import Envelope

log = logging.getLogger("streaming.runner")


class StateHooks:
    # -- rebalance hooks ----------------------------------------------------
    async def _on_assign(self, gained: list[TopicPartition]) -> None:
        log.info("%s assigned %s", self.name, [f"{t}:{p}" for t, p in gained])
        if not self.processor.stateful:
            return
        async with self._lock:
            try:
                await self._restore(gained)
            except Exception as exc:  # noqa: BLE001 - surfaced by the loop: never run on a bad restore
                log.exception("%s: restoring state failed", self.name)
                self._fatal = exc

    async def _rewind(self, ends: dict[TopicPartition, int], exc: BaseException) -> None:
        """A stateful processor's batch raised part way: its partitions' state may already hold
        some of the batch, so processing the inputs again one by one would apply them twice
        (a count, a rolling window). The partitions go back to their last snapshot instead
        (dropped, restored from the changelog, inputs sought to where it ends, those already
        published replayed silently), and inputs up to ``ends`` (the failed batch's end) are
        then processed one at a time, so only the one that fails is dead-lettered."""
        log.warning("%s: a batch failed (%s: %s); partitions %s go back to their last snapshot and "
                    "the batch is processed again one input at a time", self.name, type(exc).__name__, exc,
                    sorted({tp.partition for tp in ends}))
        await self._inflight.drain()  # the committed offsets must cover everything published
        parts = {tp.partition for tp in ends}
        for p in parts:
            self.processor.drop(p)
        self._dirty -= parts
        await self._restore([tp for tp in self._sub.assignment() if tp.partition in parts], rewind=True)
        for tp, end in ends.items():
            self._isolate[tp] = max(self._isolate.get(tp, 0), end)

    async def _restore(self, gained: list[TopicPartition], rewind: bool = False) -> None:
        log.info("%s: reading %s", self.name, self.changelog)
        states = changelog.read_latest(await self.bus.read_all(self.changelog))
        log.info("%s: changelog holds state for partitions %s", self.name, sorted(states))
        for p in sorted({tp.partition for tp in gained}):
            state = states.get(p, changelog.PartitionState())
            state.restore_into(self.processor, p)
            for tp in (tp for tp in gained if tp.partition == p):
                offset = state.start_offset(tp.topic)
                if offset is None:
                    if await self._sub.seek_to_beginning(tp, force=rewind):  # no state yet: from the start
                        self._seeks[tp] = self._seeks.get(tp, 0) + 1
                else:
                    await self._sub.seek(tp, offset)
                    self._seeks[tp] = self._seeks.get(tp, 0) + 1  # same step as the seek: no await between
                floors = {k: f for k, f in state.floors(tp.topic).items() if f > (offset or 0)}
                if floors:
                    self._floors[tp] = floors
                committed = await self._sub.committed(tp)
                if committed is not None and committed > (offset or 0):
                    self._mute[tp] = committed
                self._next_offsets.pop(tp, None)
        log.info("%s: restored %d partitions", self.name, len({tp.partition for tp in gained}))

    async def _on_revoke(self, lost: list[TopicPartition]) -> None:
        log.info("%s revoked %s", self.name, [f"{t}:{p}" for t, p in lost])
        async with self._lock:
            await self._release(lost)

    async def _release(self, lost: list[TopicPartition]) -> None:
        await self._inflight.drain()  # commit what was processed before the partitions go
        if self.processor.stateful:
            lost_parts = {tp.partition for tp in lost}
            await self._snapshot(lost_parts)
            for p in lost_parts:
                self.processor.drop(p)
        for tp in lost:
            self._next_offsets.pop(tp, None)
            self._floors.pop(tp, None)
            self._mute.pop(tp, None)
            self._isolate.pop(tp, None)
            try:  # the new owner reports this partition's lag now
                self._children.forget(metrics.CONSUMER_LAG, self.group, tp.topic, str(tp.partition))
                metrics.CONSUMER_LAG.remove(self.group, tp.topic, str(tp.partition))
            except KeyError:
                pass

    # -- snapshots ------------------------------------------------------------
    async def _snapshot(self, partitions: set[int] | None = None) -> None:
        parts = self._dirty if partitions is None else (partitions & self._dirty)
        if parts:
            # a snapshot names the inputs it reflects: never before their outputs are acknowledged
            await self._inflight.drain()
            await self._in_transaction(self._write_snapshot, parts)

    async def _write_snapshot(self, parts: set[int]) -> dict:
        size = 0
        for p in sorted(parts):
            offsets = {tp.topic: off for tp, off in self._next_offsets.items() if tp.partition == p}
            items = self.processor.dirty_items(p)
            if items is None:
                state = self.processor.snapshot(p)
                records = [] if state is None else [(None, state)]
            else:
                records = sorted(items.items())
            for item, state in records:
                size += len(state)
                await self.bus.publish(self.changelog, changelog.record_key(p, item),
                                       changelog.encode(changelog.Snapshot(p, offsets, state, item)))
        self._dirty -= parts
        metrics.SNAPSHOTS.labels(self.name).inc()
        metrics.STATE_BYTES.labels(self.name).set(size)
        return {}

    # -- inputs a restore already covers ---------------------------------------
    def _muted(self, r: Record | Envelope) -> bool:
        tp = TopicPartition(r.topic, r.partition)
        end = self._mute.get(tp)
        if end is None:
            return False
        if r.offset >= end:
            del self._mute[tp]
            return False
        return True

    def _already_reflected(self, env: Envelope) -> bool:
        """True for an input that its item's restored state already includes."""
        tp = TopicPartition(env.topic, env.partition)
        floors = self._floors.get(tp)
        if not floors:
            return False
        if env.offset >= max(floors.values()):
            del self._floors[tp]  # past every item's snapshot: nothing more to skip
            return False
        floor = floors.get(self.processor.item_key(env) or "")
        return floor is not None and env.offset < floor
