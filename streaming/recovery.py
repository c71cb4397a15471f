"""Restoring assigned partitions: their changelog partitions only, then a seek per input.

For each input of a restored partition (see ``streaming.changelog``):

- the group's offset was committed by a checkpoint (its metadata says so): the
  changelog holds the state at that offset, so the input is read from there;
  items (or a whole state) written past it, by a checkpoint whose offsets did
  not commit, are ahead: their inputs below that are skipped (floors);
- otherwise (a new group, or offsets committed without a changelog, e.g. by an
  older ticktide): the input is read from the oldest offset any record reflects,
  or from its beginning, and inputs below the group's offset rebuild state
  without being published again (``replay_below``): their outputs are out.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

from streaming import changelog
from streaming.bus.base import Bus, Committed, Subscription, TopicPartition
from streaming.partition import InputPosition, PartitionState
from streaming.processor import Processor

log = logging.getLogger("streaming.runner")

PROGRESS_LOG_INTERVAL_S = 5.0


class Recovery:
    def __init__(self, bus: Bus, processor: Processor, changelog_topic: str, name: str,
                 stall_timeout_s: float = 60.0) -> None:
        self.bus = bus
        self.processor = processor
        self.changelog_topic = changelog_topic
        self.name = name
        self.stall_timeout_s = stall_timeout_s
        self.instance_scope = processor.state_scope == "instance"

    async def restore(self, sub: Subscription, states: Sequence[PartitionState]) -> None:
        """Restore ``states`` (their processor state must be empty) and seek their inputs."""
        if not states:
            return
        t0 = time.monotonic()
        tps = [tp for ps in states for tp in ps.tps()]
        committed = await sub.committed(tps)
        restored: dict[int, changelog.Restored] = {}
        if self.processor.stateful:
            restored = await self.read([0] if self.instance_scope else sorted(ps.partition for ps in states))
        instance = restored.get(0, changelog.Restored()).instance if self.instance_scope else None
        for ps in states:
            if not self.processor.stateful:  # nothing to rebuild: on from the group's offsets
                for topic in ps.inputs:
                    c = committed.get(TopicPartition(topic, ps.partition))
                    ps.inputs[topic] = InputPosition(start=c.offset if c else None, committed=c.offset if c else None)
                continue
            if self.instance_scope:
                positions = self._instance_positions(ps, instance, committed)
            else:
                latest = restored.get(ps.partition, changelog.Restored())
                positions = {t: self._position(latest, t, committed.get(TopicPartition(t, ps.partition)))
                             for t in ps.inputs}
            for topic, position in positions.items():
                ps.inputs[topic] = position
                tp = TopicPartition(topic, ps.partition)
                if position.start is None:
                    await sub.seek_to_beginning(tp)
                else:
                    await sub.seek(tp, position.start)
            ps.sought()  # same step as the seeks: no await between, so no stale batch slips through
            ps.dirty = False
        log.info("%s: restored %d partitions %s from %d changelog records in %.2fs", self.name, len(states),
                 sorted(ps.partition for ps in states), sum(r.records for r in restored.values()),
                 time.monotonic() - t0)

    async def read(self, partitions: list[int]) -> dict[int, changelog.Restored]:
        """Read these changelog partitions into the processor; what their records said, per partition."""
        restored: dict[int, changelog.Restored] = {}
        async for batch in self.bus.read_partitions(self.changelog_topic, partitions, self._progress(partitions),
                                                    self.stall_timeout_s):
            changelog.apply(batch, self.processor, restored)
        return restored

    def _progress(self, partitions: list[int]):
        """Logs a long restore's progress (a restore that makes progress never times out)."""
        last = [time.monotonic()]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_LOG_INTERVAL_S:
                last[0] = now
                log.info("%s: restoring changelog partitions %s: %s of ~%s records", self.name, partitions,
                         f"{done:,}", f"{total:,}")
        return progress

    @staticmethod
    def _position(latest: changelog.Restored, topic: str, committed: Committed | None) -> InputPosition:
        floors = latest.floors(topic)
        if committed is not None and committed.metadata == changelog.CHECKPOINT_METADATA:
            start = committed.offset
            if latest.whole is not None:  # a whole state can only be ahead as a whole
                start = max(start, latest.whole.get(topic, start))
            return InputPosition(start=start, committed=committed.offset,
                                 floors={k: f for k, f in floors.items() if f > start})
        start = latest.oldest(topic)
        return InputPosition(start=start, committed=committed.offset if committed else None,
                             replay_below=committed.offset if committed else 0,
                             floors={k: f for k, f in floors.items() if f > (start or 0)})

    @staticmethod
    def _instance_positions(ps: PartitionState, offsets: dict[str, int] | None,
                            committed: dict[TopicPartition, Committed]) -> dict[str, InputPosition]:
        out = {}
        for topic in ps.inputs:
            c = committed.get(TopicPartition(topic, ps.partition))
            reflected = offsets.get(changelog.instance_offset_key(topic, ps.partition)) if offsets else None
            if c is not None and c.metadata == changelog.CHECKPOINT_METADATA:
                start = c.offset if reflected is None else max(c.offset, reflected)
                out[topic] = InputPosition(start=start, committed=c.offset)
            else:
                out[topic] = InputPosition(start=reflected, committed=c.offset if c else None,
                                           replay_below=c.offset if c else 0)
        return out
