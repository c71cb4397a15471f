"""Acknowledgements in the background (at-least-once): the loop fetches and processes the next
batch while the broker acknowledges the last one's outputs.

Waiting for the acks and then for the offset commit before fetching again costs two broker
round trips per batch, which is most of a hop's latency on a quiet stream. Here each batch's
acks and input offsets are handed to a chain of tasks instead: a batch's offsets are committed
only after every output of it *and of every earlier batch* is acknowledged (the chain keeps
the order), so a crash still loses nothing; commits that queue up behind each other are
merged into one. At most ``limit`` batches are in flight: past that the loop waits for the
oldest, so a slow or absent broker slows the consumer down instead of growing memory.

A failed ack is raised by the next ``submit`` or ``drain`` (one batch later than a
synchronous flush would raise it; the offsets of that batch and later ones are never
committed). A commit refused because the group rebalanced is logged and dropped: the
partitions' new owner reads those inputs again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Awaitable, Callable, Mapping

from streaming.bus.base import CommitFailed, TopicPartition

log = logging.getLogger("streaming.runner")

Offsets = Mapping[TopicPartition, int]


class InFlight:
    def __init__(self, commit: Callable[[Offsets], Awaitable[None]],
                 on_committed: Callable[[Offsets], None], name: str = "", limit: int = 4,
                 max_commit_delay_s: float = 0.5) -> None:
        self._commit = commit
        self._on_committed = on_committed
        self._name = name
        self._limit = limit
        self._max_delay = max_commit_delay_s
        self._tasks: deque[asyncio.Task] = deque()
        self._carry: dict[TopicPartition, int] = {}  # acknowledged, not committed yet (merged)
        self._last_commit = time.monotonic()
        self._failure: BaseException | None = None

    def __len__(self) -> int:
        """Batches whose acks or commit are still outstanding."""
        while self._tasks and self._tasks[0].done():  # settled in order: done ones are at the front
            self._tasks.popleft()
        return len(self._tasks)

    def _check(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    async def submit(self, acks: list[asyncio.Future], offsets: Offsets) -> None:
        """Hand over one batch: ``acks`` of its outputs, ``offsets`` to commit once they are in."""
        self._check()
        while len(self) >= self._limit:
            await asyncio.wait({self._tasks[0]})
        self._check()
        if not acks and not offsets:
            return
        previous = self._tasks[-1] if self._tasks else None
        self._tasks.append(asyncio.create_task(self._settle(previous, acks, dict(offsets))))

    async def drain(self) -> None:
        """Wait until every batch handed over is acknowledged and committed; raise a failure."""
        while len(self):
            await asyncio.wait({self._tasks[-1]})
        self._check()

    def cancel(self) -> None:
        """Give up on what is outstanding (a stop past its bound): those inputs stay uncommitted."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self._carry.clear()

    async def _settle(self, previous: asyncio.Task | None, acks: list[asyncio.Future],
                      offsets: dict[TopicPartition, int]) -> None:
        if previous is not None:
            await asyncio.wait({previous})  # order: never commit past an unacknowledged batch
        if self._failure is not None:
            return
        try:
            if acks:
                await asyncio.gather(*acks)
        except BaseException as exc:  # noqa: BLE001 - raised to the loop by the next submit/drain
            self._failure = exc
            self._carry.clear()
            return
        for tp, nxt in offsets.items():
            if nxt > self._carry.get(tp, -1):
                self._carry[tp] = nxt
        newer_waiting = self._tasks and self._tasks[-1] is not asyncio.current_task()
        if not self._carry or (newer_waiting and time.monotonic() - self._last_commit < self._max_delay):
            return  # the next batch in the chain commits these offsets with its own
        carry, self._carry = self._carry, {}
        self._last_commit = time.monotonic()
        try:
            await self._commit(carry)
        except CommitFailed as exc:
            # the outputs are out; the partitions' new owner reads these inputs again
            # (at-least-once), and this member rejoins the group on its next poll
            log.warning("%s: offsets not committed, the group rebalanced (%s); rejoining", self._name, exc)
            return
        except BaseException as exc:  # noqa: BLE001
            self._failure = exc
            return
        self._on_committed(carry)
