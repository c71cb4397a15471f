"""Whole-state snapshots for a single-instance, portfolio-wide processor.

Some consumers (portfolio, execution, risk) keep one state for everything
they read rather than one per input partition, and run as one instance
(``state_scope = "instance"``). Each checkpoint writes the whole state as one
changelog record together with the offsets of every input partition it
reflects (``streaming.changelog``), stamped with a version the processor
bumps as it changes; on restore the newest wins.
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
    state_scope = "instance"
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
        # the runtime drops state only when it must go (revoked, or uncommitted after a failure): it is
        # restored from the changelog when the partitions come back
        self.state = self.state_type()
