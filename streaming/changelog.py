"""State changelog records: what a stateful consumer writes at each checkpoint, and how a
restore reads them back.

The changelog (``changelog.<group>.<consumer>.v2``, compacted) has a partition
per input partition: the records of input partition ``p`` live in changelog
partition ``p``, so an instance restores exactly the partitions it was
assigned. A record is the whole state of partition ``p`` (key ``"<p>"``) or
the state of one item of it, such as a symbol (key ``"<p>/<item>"``), written
only when it changed; each carries the next input offset per topic that it
reflects. A consumer whose state spans every partition (``state_scope =
"instance"``) writes one record, key ``"*"`` in partition 0, whose offsets are
per ``"<topic>:<partition>"``.

Offsets the checkpoint commits carry :data:`CHECKPOINT_METADATA`: the state in
the changelog reflects at least that position (written before the commit, or
in the same transaction), so a restore starts right there instead of
replaying inputs whose outputs are already out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable

import msgspec

from streaming.bus.base import Record
from streaming.processor import Processor

log = logging.getLogger(__name__)

CHECKPOINT_METADATA = "ticktide-checkpoint/1"
INSTANCE_KEY = b"*"


class Snapshot(msgspec.Struct):
    partition: int  # the input partition; -1: an instance-wide state (offsets per "topic:partition")
    offsets: dict[str, int]
    state: bytes
    item: str | None = None  # None: the whole partition (or instance)


_decoder = msgspec.json.Decoder(Snapshot)


@dataclass
class Restored:
    """What the records of one changelog partition said, folded as they are read: their states go
    straight to the processor (a later record of a key replaces an earlier one), only the offsets
    stay here, so a restore's memory does not grow with the state it reads."""

    whole: dict[str, int] | None = None  # offsets of the partition's whole-state record
    items: dict[str, dict[str, int]] = field(default_factory=dict)  # item -> offsets of its record
    instance: dict[str, int] | None = None  # offsets ("topic:partition") of the instance-wide record
    records: int = 0

    def floors(self, topic: str) -> dict[str, int]:
        """Per item, the first offset of ``topic`` its state does not reflect yet."""
        return {k: offsets[topic] for k, offsets in self.items.items() if topic in offsets}

    def oldest(self, topic: str) -> int | None:
        """The oldest offset of ``topic`` any record reflects; None when one has none (from the start)."""
        records = [self.whole] if self.whole is not None else list(self.items.values())
        offsets = [r.get(topic) for r in records]
        if not offsets or any(o is None for o in offsets):
            return None
        return min(offsets)


def record_key(partition: int, item: str | None = None) -> bytes:
    return (str(partition) if item is None else f"{partition}/{item}").encode()


def encode(snapshot: Snapshot) -> bytes:
    return msgspec.json.encode(snapshot)


def instance_offset_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def apply(records: Iterable[Record], processor: Processor, restored: dict[int, Restored]) -> None:
    """Restore the states of ``records`` (in offset order per partition) into ``processor`` and fold
    their offsets into ``restored`` (per changelog partition)."""
    for record in records:
        try:
            snap = _decoder.decode(record.value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.error("unreadable changelog record at %s:%d (skipped)", record.partition, record.offset)
            continue
        folded = restored.setdefault(record.partition, Restored())
        folded.records += 1
        if snap.partition < 0:
            processor.restore(0, snap.state)
            folded.instance = snap.offsets
        elif snap.item is None:
            processor.restore(snap.partition, snap.state)
            folded.whole = snap.offsets
        else:
            processor.restore_item(snap.partition, snap.item, snap.state)
            folded.items[snap.item] = snap.offsets
