"""Bus backends behind one interface; ``open_bus(url)`` picks one by scheme."""

from __future__ import annotations

import os

from streaming.bus.base import Bus, Record, Subscription, TopicPartition  # noqa: F401

DEFAULT_BUS = "memory://"


def bus_url(explicit: str | None = None) -> str:
    """``--bus`` wins, then ``TICKTIDE_BUS``, then the embedded default."""
    return explicit or os.environ.get("TICKTIDE_BUS") or DEFAULT_BUS


_shared_memory: dict[str, Bus] = {}


def open_bus(url: str | None = None) -> Bus:
    url = bus_url(url)
    if url.startswith("memory://"):
        from streaming.bus.memory import MemoryBus

        # one embedded bus per URL per process, so producer and consumers in a demo meet
        if url not in _shared_memory:
            _shared_memory[url] = MemoryBus(url)
        return _shared_memory[url]
    if url.startswith("kafka://"):
        from streaming.bus.kafka import KafkaBus

        return KafkaBus(url)
    raise ValueError(f"unknown bus URL {url!r}: use kafka://host:port or memory://")


def reset_memory_buses() -> None:
    """Forget embedded buses (tests)."""
    _shared_memory.clear()
