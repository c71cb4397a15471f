"""Subscribing to ticktide topics from Python: typed events as an async iterator.

    from streaming.client import subscribe

    async for signal in subscribe("signals.v1", "kafka://localhost:9092", symbols={"BTCUSDT"}):
        print(signal.symbol, signal.action, signal.reason)

Each record is decoded into its topic's event Struct (``schemas.topics``);
``symbols`` keeps only records whose key is one of them (topics keyed by
symbol). A fresh consumer group per call unless ``group`` is given, starting
at the end of the topic unless ``from_beginning``. A record that does not
decode raises :class:`UndecodableRecord` naming topic, partition and offset,
or, with ``skip_undecodable=True``, is logged and counted in
``Subscription.skipped``. The CLI twin is ``ticktide subscribe``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, AsyncIterator, Iterable

import msgspec

from schemas.topics import topic as topic_info
from streaming import codec
from streaming.bus import open_bus
from streaming.bus.base import Bus

log = logging.getLogger(__name__)


class UndecodableRecord(ValueError):
    """A record on a topic is not a valid event of the topic's type."""


class Subscription:
    """``async for event in Subscription(...)``; see :func:`subscribe`."""

    def __init__(self, topic: str, bus: str | Bus | None = None, *, symbols: Iterable[str] | None = None,
                 group: str | None = None, from_beginning: bool = False, limit: int | None = None,
                 skip_undecodable: bool = False) -> None:
        info = topic_info(topic)  # KeyError naming the known topics
        if info.value_type is None:
            raise ValueError(f"{topic} carries no event type (a changelog); read it with the bus")
        self.topic = topic
        self._bus_arg = bus
        self.symbols = {s.encode() for s in symbols} if symbols else None
        self.group = group or f"ticktide-client-{uuid.uuid4().hex[:8]}"
        self.from_beginning = from_beginning
        self.limit = limit
        self.skip_undecodable = skip_undecodable
        self.skipped = 0

    async def __aiter__(self) -> AsyncIterator[Any]:
        given_bus = self._bus_arg is not None and not isinstance(self._bus_arg, str)
        bus: Bus = self._bus_arg if given_bus else open_bus(self._bus_arg)  # type: ignore[assignment]
        # a URL opens a bus this iterator owns; memory:// buses are shared in the process, left open
        own = not given_bus and not bus.url.startswith("memory://")
        await bus.start()
        sub = bus.subscribe([self.topic], self.group, from_beginning=self.from_beginning)
        given = 0
        try:
            async for records in sub.batches(max_records=500, timeout_ms=200):
                for r in records:
                    if self.symbols is not None and r.key not in self.symbols:
                        continue
                    try:
                        event = codec.decode(self.topic, r.value)
                    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                        where = f"{r.topic}[{r.partition}]@{r.offset}"
                        if not self.skip_undecodable:
                            raise UndecodableRecord(f"{where}: not a {self.topic} event: {exc}") from None
                        self.skipped += 1
                        log.warning("skipping %s: not a %s event: %s", where, self.topic, exc)
                        continue
                    yield event
                    given += 1
                    if self.limit is not None and given >= self.limit:
                        return
        finally:
            await sub.close()
            if own:
                await bus.close()


def subscribe(topic: str, bus: str | Bus | None = None, **options) -> Subscription:
    """Typed events of ``topic`` as they arrive (see the module doc for ``options``).

    ``bus`` is a URL (``kafka://host:port``, ``memory://``; default ``$TICKTIDE_BUS``)
    or an open :class:`~streaming.bus.base.Bus`, which is then left open."""
    return Subscription(topic, bus, **options)
