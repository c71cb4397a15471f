"""A stop that always ends in time, and the account of what it left uncommitted.

``Runner.run`` runs the loop as a task; on a stop the batch in hand gets half
of ``shutdown_timeout_s`` to finish, then the loop is cancelled (the broker
may hold it forever in a commit), the final checkpoint and leaving the group
get what remains, and what was processed but not committed is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time

from streaming.bus.base import TopicPartition

log = logging.getLogger("streaming.runner")

Uncommitted = dict[TopicPartition, tuple[int, int]]  # per input: (next offset committed, next processed)


class StopBound:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.deadline: float | None = None  # monotonic end of the bound, once stopping
        self.interrupted = False  # the bound cut the loop or the final checkpoint short

    def begin(self) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.timeout_s

    def remaining(self) -> float:
        """Seconds left of the bound (the whole bound before a stop)."""
        if self.deadline is None:
            return self.timeout_s
        return max(0.0, self.deadline - time.monotonic())

    async def run_loop(self, loop_task: asyncio.Task, stop: asyncio.Event) -> None:
        """Until the loop ends or a stop came and the loop finished its batch (or was cut short)."""
        stopper = asyncio.get_running_loop().create_task(stop.wait())
        try:
            await asyncio.wait({loop_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not loop_task.done():
                # a stop: the batch in hand may finish within half the bound (the broker may be gone)
                self.begin()
                await asyncio.wait({loop_task}, timeout=self.timeout_s / 2)
                if not loop_task.done():
                    self.interrupted = True
                    loop_task.cancel()
                    await asyncio.wait({loop_task}, timeout=max(0.1, self.remaining() / 4))
            if not loop_task.done():
                loop_task.add_done_callback(_retrieve)  # still unwinding inside the client: let it go
            elif not loop_task.cancelled() and loop_task.exception() is not None and not self.interrupted:
                raise loop_task.exception()  # the loop's own failure (not one the stop caused)
        finally:
            stopper.cancel()


def describe(name: str, left: Uncommitted) -> str:
    n = sum(nxt - done for done, nxt in left.values())
    return f"{name}: {n:,} processed inputs not committed" if n else ""


def log_uncommitted(name: str, left: Uncommitted, bound: StopBound, exactly_once: bool) -> None:
    if not left:
        if bound.interrupted:
            log.warning("%s: the final checkpoint did not finish within the %.0f s shutdown bound; no processed "
                        "input was left uncommitted", name, bound.timeout_s)
        return
    total = sum(nxt - done for done, nxt in left.values())
    where = ", ".join(f"{tp.topic}:{tp.partition} offsets {done}-{nxt - 1}" for tp, (done, nxt) in sorted(left.items()))
    if exactly_once:
        what = "exactly-once: their transactions are aborted, none of their outputs were committed"
    else:
        what = "at-least-once: some of their outputs may be published twice"
    log.warning("%s: stopped within the %.0f s shutdown bound leaving %d processed inputs uncommitted "
                "(%s); they will be processed again on restart (%s)", name, bound.timeout_s, total, where, what)


def _retrieve(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()
