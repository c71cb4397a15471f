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
    """The latest records of one changelog partition."""

    whole: Snapshot | None = None
    items: dict[str, Snapshot] = field(default_factory=dict)
    instance: Snapshot | None = None

    def floors(self, topic: str) -> dict[str, int]:
        """Per item, the first offset of ``topic`` its state does not reflect yet."""
        return {k: s.offsets[topic] for k, s in self.items.items() if topic in s.offsets}

    def oldest(self, topic: str) -> int | None:
        """The oldest offset of ``topic`` any record reflects; None when one has none (from the start)."""
        records = [self.whole] if self.whole is not None else list(self.items.values())
        offsets = [s.offsets.get(topic) for s in records]
        if not offsets or any(o is None for o in offsets):
            return None
        return min(offsets)


def record_key(partition: int, item: str | None = None) -> bytes:
    return (str(partition) if item is None else f"{partition}/{item}").encode()


def encode(snapshot: Snapshot) -> bytes:
    return msgspec.json.encode(snapshot)


def instance_offset_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def read_latest(records: Iterable[Record]) -> dict[int, Restored]:
    """Fold changelog records (in offset order per partition) into the latest ones per changelog partition."""
    out: dict[int, Restored] = {}
    for record in records:
        try:
            snap = _decoder.decode(record.value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.error("unreadable changelog record at %s:%d (skipped)", record.partition, record.offset)
            continue
        restored = out.setdefault(record.partition, Restored())
        if snap.partition < 0:
            restored.instance = snap
        elif snap.item is None:
            restored.whole = snap
        else:
            restored.items[snap.item] = snap
    return out
