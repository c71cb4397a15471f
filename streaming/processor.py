"""What a consumer implements: pure logic over decoded events, no I/O.

The runner (``streaming.runner``) owns polling, decoding, publishing,
committing and snapshots; a Processor only turns a batch of input events into
output events and can save and restore its state per input partition.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import msgspec

if TYPE_CHECKING:
    from streaming.batch import Columns


@dataclass(slots=True)
class Envelope:
    """One decoded input event and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    event: msgspec.Struct


@dataclass(slots=True)
class Output:
    """One event to publish. ``key`` defaults to the topic's key field."""

    topic: str
    event: msgspec.Struct
    key: bytes | None = None


class ProcessingError(Exception):
    """Raised by a Processor for one bad input; the runner dead-letters it.

    Carry the offending envelope so the runner can name its source.
    """

    def __init__(self, reason: str, envelope: Envelope | None = None):
        super().__init__(reason)
        self.reason = reason
        self.envelope = envelope


@dataclass
class ProcessResult:
    outputs: list[Output] = field(default_factory=list)
    # inputs the processor rejected, with the reason; the runner dead-letters them
    rejected: list[tuple[Envelope, str]] = field(default_factory=list)


@dataclass
class EncodedOutputs:
    """Outputs of one topic, already encoded (the columnar path): published as one batch."""

    topic: str
    keys: list[bytes | None]
    values: list[bytes]
    ingest_ns: Sequence[int] = ()  # each output's ingest stamp (0: unknown): the end-to-end latencies


@dataclass
class ColumnResult:
    outputs: list[EncodedOutputs] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (row of the batch, reason)
    last_ts_event: int = 0


class Processor(ABC):
    """A consumer's pure core.

    ``name`` is the consumer group and the changelog name; ``inputs`` are the
    topics it reads. A stateful processor keeps its state per input partition
    (co-partitioned inputs share the number) so that a rebalance moves a
    partition's state with it.
    """

    name: str = "processor"
    inputs: tuple[str, ...] = ()
    # the topics it writes: created with its inputs when it starts (the catalogue's partitions and
    # settings), never left to the broker's auto-creation (one partition, or an error when disabled)
    outputs: tuple[str, ...] = ()
    stateful: bool = False
    # "partition": the state of each input partition is its own (moves with the partition, and in
    # exactly-once mode commits in that partition's transaction); "instance": one state spans every
    # partition (a portfolio-wide consumer that runs as one instance: ``streaming.state``)
    state_scope: str = "partition"
    # True: the runner hands whole decoded batches to ``process_columns`` (see streaming.batch)
    columnar: bool = False

    @abstractmethod
    def process(self, batch: Sequence[Envelope]) -> ProcessResult:
        """Turn one batch of inputs (in offset order per partition) into outputs."""

    def process_columns(self, batch: "Columns") -> ColumnResult:
        """The columnar path (``columnar = True``): ``batch.events`` are decoded, in offset
        order per partition; return encoded outputs. Must equal ``process`` on the same inputs."""
        raise NotImplementedError

    def warm_up(self) -> None:
        """Compile or load whatever is slow the first time (Numba kernels), before joining the group."""

    def snapshot(self, partition: int) -> bytes | None:
        """State of one input partition for the changelog; None when there is none."""
        return None

    def restore(self, partition: int, data: bytes) -> None:
        """Load the state written by ``snapshot``."""

    # Keyed state (optional): many small changelog records, one per item (e.g. symbol), written
    # only when the item changed. A processor with thousands of symbols per partition uses this
    # so a snapshot is proportional to what changed and no record outgrows the broker's limit.
    def dirty_items(self, partition: int) -> dict[str, bytes] | None:
        """State of the items changed since the last call; None: use ``snapshot`` instead."""
        return None

    def restore_item(self, partition: int, key: str, data: bytes) -> None:
        """Load one item written by ``dirty_items``."""
        raise NotImplementedError

    def item_key(self, envelope: Envelope) -> str | None:
        """The item an input updates, so inputs an item's snapshot already reflects are skipped."""
        return None

    def drop(self, partition: int) -> None:
        """Forget a partition's state (it was revoked from this instance)."""

    def tick(self, now_ns: int) -> ProcessResult:
        """Called on a timer even without input (schedules, staleness checks)."""
        return ProcessResult()

    def close(self) -> None:
        """Release resources at shutdown."""
