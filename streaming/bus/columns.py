"""``Columns``: one fetched batch as parallel lists, grouped by partition (see streaming.batch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from streaming.bus.base import Record, TopicPartition


@dataclass(slots=True)
class Segment:
    """One partition's records inside a batch: rows ``start:stop``."""

    topic: str
    partition: int
    start: int
    stop: int


@dataclass(slots=True)
class Columns:
    segments: list[Segment] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    events: list[Any] | None = None  # filled by decode_columns, aligned with the rows

    def __len__(self) -> int:
        return len(self.offsets)

    def add_partition(self, topic: str, partition: int, offsets: list[int], keys: list, values: list,
                      timestamps: list[int]) -> None:
        if not offsets:
            return
        start = len(self.offsets)
        self.offsets += offsets
        self.keys += keys
        self.values += values
        self.timestamps += timestamps
        self.segments.append(Segment(topic, partition, start, len(self.offsets)))

    @classmethod
    def from_records(cls, records: Sequence[Record]) -> "Columns":
        cols = cls()
        run: list[Record] = []
        for r in records:
            if run and (r.topic, r.partition) != (run[0].topic, run[0].partition):
                cols._add_run(run)
                run = []
            run.append(r)
        if run:
            cols._add_run(run)
        return cols

    def _add_run(self, run: list[Record]) -> None:
        self.add_partition(run[0].topic, run[0].partition, [r.offset for r in run], [r.key for r in run],
                           [r.value for r in run], [r.timestamp_ms for r in run])

    def records(self) -> list[Record]:
        """The same batch as Records (for processors on the Envelope path)."""
        out: list[Record] = []
        for s in self.segments:
            for i in range(s.start, s.stop):
                out.append(Record(s.topic, s.partition, self.offsets[i], self.keys[i], self.values[i],
                                  self.timestamps[i]))
        return out

    def partition_of(self) -> list[int]:
        """The partition of every row."""
        out: list[int] = []
        for s in self.segments:
            out += [s.partition] * (s.stop - s.start)
        return out

    def next_offsets(self) -> dict[TopicPartition, int]:
        """Per partition, the next offset to read after this batch."""
        out: dict[TopicPartition, int] = {}
        for s in self.segments:
            tp = TopicPartition(s.topic, s.partition)
            out[tp] = max(out.get(tp, 0), self.offsets[s.stop - 1] + 1)
        return out

    def keep(self, predicate: Callable[[str, int], bool]) -> "Columns":
        """Only the partitions for which ``predicate(topic, partition)`` holds."""
        if all(predicate(s.topic, s.partition) for s in self.segments):
            return self
        out = Columns()
        for s in self.segments:
            if predicate(s.topic, s.partition):
                out._copy_rows(self, s, s.start, s.stop)
        return out

    def without(self, rows: set[int]) -> "Columns":
        """The batch minus the given row indices (e.g. messages that failed to decode)."""
        if not rows:
            return self
        out = Columns(events=[] if self.events is not None else None)
        for s in self.segments:
            start = s.start
            for i in sorted(r for r in rows if s.start <= r < s.stop):
                out._copy_rows(self, s, start, i)
                start = i + 1
            out._copy_rows(self, s, start, s.stop)
        return out

    def _copy_rows(self, src: "Columns", s: Segment, start: int, stop: int) -> None:
        if start >= stop:
            return
        if self.segments and (self.segments[-1].topic, self.segments[-1].partition) == (s.topic, s.partition):
            self.segments[-1].stop += stop - start
        else:
            n = len(self.offsets)
            self.segments.append(Segment(s.topic, s.partition, n, n + stop - start))
        self.offsets += src.offsets[start:stop]
        self.keys += src.keys[start:stop]
        self.values += src.values[start:stop]
        self.timestamps += src.timestamps[start:stop]
        if self.events is not None and src.events is not None:
            self.events += src.events[start:stop]
