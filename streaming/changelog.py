"""State changelog records: what a stateful consumer writes, and how it reads them back.

A record is either the whole state of one input partition (key ``"<p>"``) or
the state of one item of it, such as a symbol (key ``"<p>/<item>"``). Either
way it carries the next input offset per topic that the state reflects. The
topic is compacted, so the latest record per key is what survives.

Items are written only when they changed, so the items of one partition may
reflect different offsets: a restore starts the partition at the oldest of
them and skips, per item, the inputs its state already reflects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import msgspec

from streaming.processor import Processor

log = logging.getLogger(__name__)


class Snapshot(msgspec.Struct):
    partition: int
    offsets: dict[str, int]
    state: bytes
    item: str | None = None  # None: the whole partition


_decoder = msgspec.json.Decoder(Snapshot)


@dataclass
class PartitionState:
    whole: Snapshot | None = None
    items: dict[str, Snapshot] = field(default_factory=dict)

    def start_offset(self, topic: str) -> int | None:
        """Where to read ``topic`` from; None: from its beginning."""
        if self.whole is not None:
            return self.whole.offsets.get(topic)
        offsets = [s.offsets.get(topic) for s in self.items.values()]
        if not offsets or any(o is None for o in offsets):
            return None
        return min(offsets)

    def floors(self, topic: str) -> dict[str, int]:
        """Per item, the first offset of ``topic`` its state does not reflect yet."""
        return {k: s.offsets[topic] for k, s in self.items.items() if topic in s.offsets}

    def restore_into(self, processor: Processor, partition: int) -> None:
        if self.whole is not None:
            processor.restore(partition, self.whole.state)
        for key, snap in self.items.items():
            processor.restore_item(partition, key, snap.state)


def record_key(partition: int, item: str | None = None) -> bytes:
    return (str(partition) if item is None else f"{partition}/{item}").encode()


def encode(snapshot: Snapshot) -> bytes:
    return msgspec.json.encode(snapshot)


def read_latest(records) -> dict[int, PartitionState]:
    """Fold changelog records (in offset order) into the latest state per partition."""
    states: dict[int, PartitionState] = {}
    for record in records:
        try:
            snap = _decoder.decode(record.value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.error("unreadable changelog record at %s:%d", record.partition, record.offset)
            continue
        state = states.setdefault(snap.partition, PartitionState())
        if snap.item is None:
            state.whole = snap
        else:
            state.items[snap.item] = snap
    return states
