"""Whole-state snapshots for a single-instance, portfolio-wide processor.

Some consumers (portfolio, execution, risk) keep one state for everything
they read rather than one per input partition, and run as one instance. The
runner still snapshots per input partition, so every partition's changelog
record carries the whole state, stamped with a version the processor bumps
as it changes. On restore the newest wins: whichever partitions are assigned
and in whatever order, the state is the most recent one written, and the
input offsets recorded with each partition's snapshot are never older than
that state.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import msgspec


class VersionedState(Protocol):
    version: int  # bumped on every change; the newest snapshot wins on restore


class SingleInstanceState:
    """Mixin before ``Processor``: ``snapshot``/``restore``/``drop`` for ``self.state``.

    The subclass names its state Struct in ``state_type`` (it must have an
    ``int`` field ``version``, default 0) and keeps the state in
    ``self.state`` (``self.state = self.state_type()`` to start empty).
    """

    stateful = True
    state_type: ClassVar[type[msgspec.Struct]]
    _state_decoder: ClassVar[msgspec.json.Decoder]
    state: VersionedState

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        state_type = cls.__dict__.get("state_type")
        if state_type is not None:
            cls._state_decoder = msgspec.json.Decoder(state_type)

    def snapshot(self, partition: int) -> bytes | None:
        return msgspec.json.encode(self.state)

    def restore(self, partition: int, data: bytes) -> None:
        state = self._state_decoder.decode(data)
        if state.version >= self.state.version:
            self.state = state

    def drop(self, partition: int) -> None:
        return None  # the whole state stays (single-instance consumer)
