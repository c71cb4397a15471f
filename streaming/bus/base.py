"""The bus interface: small protocols, two backends (``kafka://``, ``memory://``).

Every capability the runtime uses is declared here and implemented by both
backends, so the memory bus can stand in for Kafka in unit tests of the same
paths (transactions, fencing, failed commits, per-partition reads).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable, Mapping, NamedTuple, Protocol, Sequence

if TYPE_CHECKING:
    from streaming.bus.columns import Columns


class CommitFailed(Exception):
    """The group rebalanced before an offset commit: the commit is lost, the member rejoins."""


class Fenced(CommitFailed):
    """A newer producer took this transactional id (another instance owns the partition now):
    nothing of the open transaction is committed, ever."""


class DeliveryFailed(Exception):
    """The broker did not acknowledge a published message (after the client's own retries)."""


class TopicPartition(NamedTuple):
    topic: str
    partition: int


@dataclass(slots=True)
class Record:
    """One message as read from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int = 0
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Committed:
    """A group's committed position of one partition: the next offset to read, and the metadata
    string the committer stored with it (``streaming.checkpoint`` marks its own commits)."""

    offset: int
    metadata: str = ""


class Acks:
    """The acknowledgements of the messages published while this window was open: counted, never
    stored (a producer that publishes forever keeps no object per message)."""

    __slots__ = ("sent", "settled", "error", "_waiter")

    def __init__(self) -> None:
        self.sent = 0
        self.settled = 0
        self.error: BaseException | None = None
        self._waiter: asyncio.Future | None = None

    def track(self, future: asyncio.Future, count: int = 1) -> None:
        """Count ``count`` messages whose delivery ``future`` reports."""
        self.sent += count
        future.add_done_callback(lambda f: self._settle(f, count))

    def _settle(self, future: asyncio.Future, count: int) -> None:
        self.settled += count
        if future.cancelled():
            self.error = self.error or DeliveryFailed("the send was cancelled")
        elif future.exception() is not None:
            self.error = self.error or future.exception()
        if self.settled >= self.sent and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    @property
    def outstanding(self) -> int:
        return self.sent - self.settled

    async def wait(self) -> None:
        """Until every counted message is acknowledged; raises the first failure."""
        while self.settled < self.sent:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        if self.error is not None:
            raise self.error


# Called with the partitions gained or lost in a rebalance; may be async.
RebalanceHook = Callable[[list[TopicPartition]], Awaitable[None] | None]
# Called while a long read goes on: (records read so far, records to read in all).
Progress = Callable[[int, int], None]


class Subscription(Protocol):
    """A consumer-group membership: batches in, offsets committed by hand."""

    def batches(self, max_records: int = 500, timeout_ms: int = 200) -> AsyncIterator[list[Record]]:
        """Yield batches (possibly empty, so callers can run timers) until closed."""

    def column_batches(self, max_records: int = 500, timeout_ms: int = 200) -> AsyncIterator["Columns"]:
        """As ``batches``, as columns (no Record per message)."""

    async def commit(self, offsets: Mapping[TopicPartition, int], metadata: str = "") -> None:
        """Commit the *next* offset to read per partition (Kafka's convention); ``CommitFailed``
        when the group rebalanced since this member's assignment."""

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` on."""

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        """Read ``tp`` from its first offset."""

    def assignment(self) -> set[TopicPartition]: ...

    async def committed(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, Committed]:
        """The group's committed positions of ``tps`` (those it has), with their metadata."""

    async def lag(self) -> dict[TopicPartition, int]:
        """Messages between the position and the end of each assigned partition."""

    async def close(self) -> None: ...


class TransactionalProducer(Protocol):
    """Exactly-once: one producer with a stable transactional id. Starting it fences every older
    producer of the same id and settles their open transaction; a transaction begins with the
    first publish after a commit or an abort."""

    transactional_id: str

    async def start(self) -> None: ...

    async def publish(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None: ...

    async def publish_batch(self, topic: str, keys: Sequence[bytes | None], values: Sequence[bytes],
                            partition: int | None = None) -> None: ...

    async def commit(self, offsets: Mapping[TopicPartition, int], group: str, metadata: str = "") -> None:
        """Commit the open transaction with the group's input offsets; ``Fenced`` when a newer
        producer took the id (then nothing of this transaction is ever visible)."""

    async def abort(self) -> None: ...

    async def close(self) -> None: ...


class Bus(Protocol):
    url: str
    # the broker watch (streaming.connectivity) of a networked bus; None for the memory bus
    watch: object | None

    async def start(self) -> None: ...

    async def publish(self, topic: str, key: bytes | None, value: bytes,
                      headers: Sequence[tuple[str, bytes]] = (), partition: int | None = None) -> None:
        """Queue a message (waiting out a broker outage); ``flush`` waits for its acknowledgement."""

    async def publish_batch(self, topic: str, keys: Sequence[bytes | None], values: Sequence[bytes],
                            partition: int | None = None) -> None:
        """Queue many messages at once (same ordering and keys as ``publish`` one by one)."""

    async def flush(self) -> None:
        """Wait until everything published so far is acknowledged; raise a failed delivery."""

    def take_acks(self) -> Acks:
        """The acknowledgements of everything published since the last call; a new window opens."""

    def pending(self) -> int:
        """Published messages not acknowledged yet."""

    def transactional_producer(self, transactional_id: str) -> TransactionalProducer: ...

    def subscribe(self, topics: Sequence[str], group: str, on_assign: RebalanceHook | None = None,
                  on_revoke: RebalanceHook | None = None, from_beginning: bool = True) -> Subscription: ...

    def read_partitions(self, topic: str, partitions: Sequence[int], progress: Progress | None = None,
                        stall_timeout_s: float = 60.0) -> AsyncIterator[list[Record]]:
        """Every record now in the given partitions of ``topic`` (read_committed), outside any group,
        in batches as they arrive; fails only when no record arrives for ``stall_timeout_s``."""

    async def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Record]:
        """Every record now in ``topic`` (all partitions): for tools and tests."""

    async def ensure_topics(self, names: Sequence[str]) -> None:
        """Create missing topics with the catalogue's partitions and configs."""

    async def missing_topics(self, names: Sequence[str]) -> list[str]: ...

    async def delete_topics(self, names: Sequence[str]) -> None:
        """Delete these topics (those that exist): a backtest's own, when it ends."""

    async def close(self) -> None: ...
