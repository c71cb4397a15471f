"""A bounded, ordered buffer in front of a bus, for producers that must ride out a broker outage.

``publish`` appends to the buffer and returns at once while there is room;
when the buffer is full it waits (the caller, a websocket reader, stops
reading: the venue buffers or disconnects us, and the connection manager's
gap detection reports what was lost). One drain task hands the messages to
the bus in order; while the broker is away the bus refuses more and the
drain retries the same message, so the order is kept and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Sequence

from streaming.bus.base import DeliveryFailed

log = logging.getLogger("ticktide.bus")

# ~1 minute of a busy feed (a few hundred to a thousand ticks per second)
DEFAULT_CAPACITY = 60_000
RETRY_DELAY_S = 0.5
YIELD_AFTER = 64  # messages queued before publish() gives the drain a turn
# a message may wait this long for the broker before the Kafka client gives up on it
OUTAGE_TOLERANCE_MS = 15 * 60 * 1000


class BufferedBus:
    """Wraps ``bus``; ``publish`` buffers up to ``capacity`` messages (see the module docstring)."""

    def __init__(self, bus: Any, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the buffer needs room for at least one message")
        self.bus = bus
        self.url = bus.url
        self.capacity = capacity
        self._queue: collections.deque = collections.deque()
        self._room = asyncio.Event()
        self._room.set()
        self._data = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._drain_task: asyncio.Task | None = None
        self._full_logged = False
        self._failed: BaseException | None = None  # a delivery failure the bus was told to raise
        self.high_water = 0  # most messages buffered at once
        settings = getattr(bus, "settings", None)  # kafka:// only: how long a message may wait for the broker
        if settings is not None:
            settings.request_timeout_ms = max(settings.request_timeout_ms, OUTAGE_TOLERANCE_MS)
        if bus.watch is not None:
            bus.watch.describe_waiting(self.describe)

    def describe(self) -> str:
        return f"{len(self._queue):,} messages buffered (of {self.capacity:,})" if self._queue else ""

    def __len__(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        await self.bus.start()
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain(), name="buffered-bus drain")

    async def publish(self, topic: str, key: bytes | None, value: bytes,
                      headers: Sequence[tuple[str, bytes]] = (), partition: int | None = None) -> None:
        if self._drain_task is None:
            await self.start()
        if self._failed is not None:
            raise self._failed
        while len(self._queue) >= self.capacity:
            if not self._full_logged:
                self._full_logged = True
                log.warning("publish buffer full (%d messages): pausing the feed until the broker takes more",
                            self.capacity)
            self._room.clear()
            await self._room.wait()
            if self._failed is not None:
                raise self._failed
        self._queue.append((topic, key, value, tuple(headers), partition))
        self.high_water = max(self.high_water, len(self._queue))
        self._drained.clear()
        self._data.set()
        if len(self._queue) >= YIELD_AFTER:  # a reader that never waits must still let the drain run
            await asyncio.sleep(0)

    async def _drain(self) -> None:
        while True:
            if not self._queue:
                self._drained.set()
                self._data.clear()
                await self._data.wait()
                continue
            topic, key, value, headers, partition = self._queue[0]
            try:
                await self.bus.publish(topic, key, value, headers, partition)
            except asyncio.CancelledError:
                raise
            except DeliveryFailed as exc:  # on_delivery_failure=fail: the publisher stops, it does not retry
                self._failed = exc
                self._room.set()
                self._drained.set()
                return
            except Exception as exc:  # noqa: BLE001 - the broker refused it for now: same message again
                log.debug("publish to %s failed (%s); retrying", topic, type(exc).__name__)
                await asyncio.sleep(RETRY_DELAY_S)
                continue
            self._queue.popleft()
            if len(self._queue) < self.capacity:
                if self._full_logged and not self._queue:
                    self._full_logged = False
                self._room.set()

    async def flush(self) -> None:
        """Wait until the buffer is empty and the bus acknowledged everything."""
        await self._drained.wait()
        if self._failed is not None:
            raise self._failed
        await self.bus.flush()

    def pending(self) -> int:
        return len(self._queue) + self.bus.pending()

    async def close(self) -> None:
        if self.bus.watch is not None:
            self.bus.watch.forget_waiting(self.describe)
        if self._drain_task is not None:
            self._drain_task.cancel()
            await asyncio.gather(self._drain_task, return_exceptions=True)
            self._drain_task = None
        await self.bus.close()

    # the rest of the Bus protocol is the wrapped bus's, unbuffered
    @property
    def watch(self):
        return self.bus.watch

    async def publish_batch(self, topic: str, keys: Sequence[bytes | None], values: Sequence[bytes],
                            partition: int | None = None) -> None:
        for key, value in zip(keys, values):  # through the buffer, in order with publish()
            await self.publish(topic, key, value)

    def take_acks(self):
        return self.bus.take_acks()

    def transactional_producer(self, transactional_id: str):
        return self.bus.transactional_producer(transactional_id)

    def subscribe(self, *args, **kwargs):
        return self.bus.subscribe(*args, **kwargs)

    def read_partitions(self, *args, **kwargs):
        return self.bus.read_partitions(*args, **kwargs)

    async def read_all(self, topic: str, timeout_s: float = 5.0):
        return await self.bus.read_all(topic, timeout_s)

    async def ensure_topics(self, names: Sequence[str]) -> None:
        await self.bus.ensure_topics(names)

    async def missing_topics(self, names: Sequence[str]) -> list[str]:
        return await self.bus.missing_topics(names)

    async def delete_topics(self, names: Sequence[str]) -> None:
        await self.bus.delete_topics(names)
