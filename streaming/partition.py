"""Everything the runtime knows about one assigned input partition: the only offset bookkeeping.

A consumer's state is kept per input partition number, and co-partitioned
inputs share it (``ticks.v1`` and ``bars.v1`` partition 2 feed one state, as
a Kafka Streams task does), so one :class:`PartitionState` covers partition
``p`` of every input topic: per topic an :class:`InputPosition` (where the
state is, what the group committed, what a restore still has to skip or
replay), whether the state changed since the last checkpoint, how often it was
sought (records fetched before a seek are stale), and in exactly-once mode the
transactional producer that fences this partition's previous owner.

The rule that keeps exactly-once exact lives here (:meth:`PartitionState.to_commit`):
never commit a position below what the group already committed, nor while
replaying inputs whose outputs are already out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from streaming.bus.base import TopicPartition, TransactionalProducer


@dataclass
class InputPosition:
    """One input topic of the partition."""

    start: int | None = None  # where a restore sought it (None: its first offset)
    next: int | None = None  # next offset to read, once an input was processed since the restore
    committed: int | None = None  # next offset as the group has it committed
    first_seen: int | None = None  # first offset processed since the assignment (the stop's account)
    # inputs below this rebuild state but publish nothing: their outputs are out already
    # (a group's commit from before checkpoints carried the changelog, or a rewound batch)
    replay_below: int = 0
    # after a batch failed part way: inputs below this go through one at a time
    isolate_below: int = 0
    # per item: inputs below the item's floor are in its restored state already (skipped)
    floors: dict[str, int] = field(default_factory=dict)

    def position(self) -> int | None:
        return self.next if self.next is not None else self.start

    def advance(self, first: int, nxt: int) -> None:
        if self.first_seen is None:
            self.first_seen = first
        self.next = nxt if self.next is None else max(self.next, nxt)
        if self.isolate_below and self.next >= self.isolate_below:
            self.isolate_below = 0
        if self.floors and self.next >= max(self.floors.values()):
            self.floors = {}

    def replaying(self, offset: int) -> bool:
        return offset < self.replay_below

    def reflected(self, offset: int, item: str | None) -> bool:
        """True for an input that the restored state of its item already includes."""
        floor = self.floors.get(item or "")
        return floor is not None and offset < floor


class PartitionState:
    def __init__(self, partition: int, topics: Iterable[str]) -> None:
        self.partition = partition
        self.inputs: dict[str, InputPosition] = {t: InputPosition() for t in topics}
        self.dirty = False  # state changed since the last checkpoint
        self.seeks = 0
        self.producer: TransactionalProducer | None = None  # exactly-once, partition-scoped state
        self.lost = False  # fenced or its commit refused: nothing more is processed until revoked

    def __repr__(self) -> str:
        return f"PartitionState({self.partition}, {self.inputs})"

    def tps(self) -> list[TopicPartition]:
        return [TopicPartition(t, self.partition) for t in self.inputs]

    def sought(self) -> None:
        self.seeks += 1

    def needs_per_input(self) -> bool:
        """Inputs to skip, replay silently or isolate: the per-input (Envelope) path decides each."""
        return any(ip.floors or ip.isolate_below or (ip.position() or 0) < ip.replay_below
                   for ip in self.inputs.values())

    def offsets(self) -> dict[str, int]:
        """Per input topic, the next offset the state reflects (what a changelog record carries)."""
        return {t: pos for t, ip in self.inputs.items() if (pos := ip.position()) is not None}

    def to_commit(self) -> dict[TopicPartition, int]:
        """Positions to commit: processed past what the group has, and past any silent replay.

        A restored partition re-reads inputs whose outputs were already published; committing
        their positions would move the group's offset *back*, and the next instance would
        publish those outputs again (the duplicates of issue 22)."""
        out: dict[TopicPartition, int] = {}
        for topic, ip in self.inputs.items():
            if ip.next is None or ip.next < ip.replay_below:
                continue
            if ip.committed is None or ip.next > ip.committed:
                out[TopicPartition(topic, self.partition)] = ip.next
        return out

    def committed_to(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            ip = self.inputs.get(tp.topic)
            if ip is not None and tp.partition == self.partition:
                ip.committed = offset if ip.committed is None else max(ip.committed, offset)

    def uncommitted(self) -> dict[TopicPartition, tuple[int, int]]:
        """Per input: (next offset committed, next offset processed), where processed is ahead."""
        out = {}
        for topic, ip in self.inputs.items():
            if ip.next is None:
                continue
            done = ip.committed if ip.committed is not None else (ip.first_seen or 0)
            if ip.next > done:
                out[TopicPartition(topic, self.partition)] = (done, ip.next)
        return out


class Partitions(dict[int, PartitionState]):
    """The assigned partitions by number."""

    def for_tps(self, tps: Iterable[TopicPartition]) -> list[PartitionState]:
        return [self[p] for p in sorted({tp.partition for tp in tps}) if p in self]

    def seek_marks(self) -> dict[int, int]:
        return {p: ps.seeks for p, ps in self.items()}

    def current(self, topic: str, partition: int, marks: dict[int, int]) -> bool:
        """Records of (topic, partition) fetched when ``marks`` were taken are still to be processed:
        assigned, not lost, not sought since."""
        ps = self.get(partition)
        return ps is not None and not ps.lost and topic in ps.inputs and marks.get(partition) == ps.seeks

    def dirty(self) -> list[PartitionState]:
        return [ps for ps in self.values() if ps.dirty]
