"""The bus interface: one small protocol, two backends (``kafka://``, ``memory://``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Mapping, NamedTuple, Protocol, Sequence


class CommitFailed(Exception):
    """The group rebalanced before an offset commit: the commit is lost, the member rejoins."""


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


# Called with the partitions gained or lost in a rebalance; may be async.
RebalanceHook = Callable[[list[TopicPartition]], Awaitable[None] | None]


class Subscription(Protocol):
    """A consumer-group membership: batches in, offsets committed by hand."""

    def batches(self, max_records: int = 500, timeout_ms: int = 200) -> AsyncIterator[list[Record]]:
        """Yield batches (possibly empty, so callers can run timers) until closed."""

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the *next* offset to read per partition (Kafka's convention)."""

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` on (used when restoring state)."""

    async def seek_to_beginning(self, tp: TopicPartition, force: bool = False) -> bool:
        """Read ``tp`` from its first offset; False when the position was already there (without
        ``force``, a partition with no committed offset is taken to be there)."""

    def assignment(self) -> set[TopicPartition]: ...

    async def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset for ``tp`` (None when it has none)."""

    async def lag(self) -> dict[TopicPartition, int]:
        """Messages between the position and the end of each assigned partition."""

    async def close(self) -> None: ...


class Bus(Protocol):
    url: str

    async def start(self) -> None: ...

    async def publish(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Queue a message; ``flush`` waits until every queued message is acknowledged."""

    async def publish_batch(self, topic: str, keys: Sequence[bytes | None], values: Sequence[bytes]) -> None:
        """Queue many messages at once (same ordering and keys as ``publish`` one by one)."""

    async def flush(self) -> None: ...

    def take_pending(self) -> list[Awaitable]:
        """The acknowledgements of everything published since the last call; whoever takes them
        awaits them (``flush`` no longer does)."""

    # exactly-once mode: outputs and input offsets committed in one transaction
    def enable_transactions(self, transactional_id: str) -> None: ...

    async def begin_transaction(self) -> None: ...

    async def commit_transaction(self, offsets: Mapping[TopicPartition, int], group: str) -> None: ...

    async def abort_transaction(self) -> None: ...

    def subscribe(
        self,
        topics: Sequence[str],
        group: str,
        on_assign: RebalanceHook | None = None,
        on_revoke: RebalanceHook | None = None,
        from_beginning: bool = True,
    ) -> Subscription: ...

    async def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Record]:
        """Every record currently in ``topic`` (all partitions), outside any group.

        Used to restore changelogs and by tools and tests.
        """

    async def ensure_topics(self, names: Sequence[str]) -> None:
        """Create missing topics with the catalogue's partitions and configs."""

    async def close(self) -> None: ...
