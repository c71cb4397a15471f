"""What parsing frames yields besides ticks: the dead letter of one frame and the counts of a run.

Shared by the reference path (:mod:`producers.recordings.normalize`) and the
compiled one (:mod:`producers.fastpath.binance_encode`), so both stamp and count
dead letters the same way.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from schemas.events import DeadLetter

#: stamps ``DeadLetter.ts_proc`` (a hook so tests can make dead letters reproducible)
_clock = time.time_ns


@dataclass
class Summary:
    frames: int = 0
    ticks: int = 0
    ticks_by_kind: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # reason -> frames
    parse_errors: int = 0
    rejected: int = 0  # ticks rejected by validation
    flagged: int = 0  # ticks accepted with at least one flag
    dead_letters: int = 0
    reader: dict = field(default_factory=dict)  # counters from the recording reader
    quality: list = field(default_factory=list)  # per-symbol quality dicts (when validated)

    def to_dict(self) -> dict:
        return {
            "frames": self.frames,
            "ticks": self.ticks,
            "ticks_by_kind": dict(self.ticks_by_kind),
            "skipped": dict(self.skipped),
            "parse_errors": self.parse_errors,
            "rejected": self.rejected,
            "flagged": self.flagged,
            "dead_letters": self.dead_letters,
            "reader": self.reader,
            "quality": self.quality,
        }


def dead_letter(venue: str, stage: str, reason: str, raw, key: str | None = None) -> DeadLetter:
    """The dead letter of one frame (stamped now, by ``_clock``)."""
    return DeadLetter(stage=stage, reason=reason, raw=_raw_bytes(raw), ts_proc=_clock(),
                      venue=venue, key=key)


def _raw_bytes(raw) -> bytes:
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    return bytes(raw)
