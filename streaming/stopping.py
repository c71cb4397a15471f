"""A consumer's run that a stop always ends in time: the half of ``Runner`` that deals with the broker
going away (connectivity, the shutdown bound, what was left uncommitted).

``run`` runs the loop as a task; on a stop the batch in hand gets half of
``shutdown_timeout_s`` to finish, then the loop is cancelled (the broker may
hold it forever in a commit), the final flush and snapshot and leaving the
group get what remains, and what was processed but not committed is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time

from streaming import metrics
from streaming.bus.base import TopicPartition
from streaming.deadline import bounded

log = logging.getLogger("streaming.runner")


class BoundedStop:
    """Mixed into ``Runner``: uses its settings, bus, subscription, offsets, ``_loop`` and ``_final_flush``."""

    async def run(self) -> None:
        await self.open()
        metrics.UP.labels(self.name).set(1)
        watch = getattr(self.bus, "watch", None)
        if watch is not None:
            watch.on_change(self._on_connectivity)
            watch.describe_waiting(self._describe_uncommitted)
        loop_task = asyncio.get_running_loop().create_task(self._loop(), name=f"{self.name} loop")
        stopper = asyncio.get_running_loop().create_task(self.stop.wait())
        try:
            await asyncio.wait({loop_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not loop_task.done():
                # a stop: the batch in hand may finish within half the bound (the broker may be gone)
                self._deadline = time.monotonic() + self.settings.shutdown_timeout_s
                await asyncio.wait({loop_task}, timeout=self.settings.shutdown_timeout_s / 2)
                if not loop_task.done():
                    self._interrupted = True
                    loop_task.cancel()
                    await asyncio.wait({loop_task}, timeout=max(0.1, self._remaining() / 4))
            if not loop_task.done():
                loop_task.add_done_callback(_retrieve)  # still unwinding inside the client: let it go
            elif not loop_task.cancelled() and loop_task.exception() is not None and not self._interrupted:
                raise loop_task.exception()  # the loop's own failure (not one the stop caused)
        finally:
            stopper.cancel()
            if watch is not None:
                watch.forget_listener(self._on_connectivity)
                watch.forget_waiting(self._describe_uncommitted)
            await self.close()

    def _remaining(self) -> float:
        """Seconds left of the shutdown bound (the whole bound before a stop)."""
        if self._deadline is None:
            return self.settings.shutdown_timeout_s
        return max(0.0, self._deadline - time.monotonic())

    def remaining_shutdown_s(self) -> float:
        """What is left of ``--shutdown-timeout`` for the caller's own cleanup (closing the bus)."""
        return self._remaining()

    def _on_connectivity(self, up: bool) -> None:
        if not up:  # a lag measured before the outage would be a lie now: no number at all
            for tp in list(self._reported_lag):
                self._children.forget(metrics.CONSUMER_LAG, self.group, tp.topic, str(tp.partition))
                try:
                    metrics.CONSUMER_LAG.remove(self.group, tp.topic, str(tp.partition))
                except KeyError:
                    pass
            self._reported_lag.clear()
            self._outage_seen = True

    async def _shutdown(self) -> None:
        if self._deadline is None:
            self._deadline = time.monotonic() + self.settings.shutdown_timeout_s
        try:
            if self._interrupted:
                raise asyncio.TimeoutError  # the broker held the last batch: do not wait again
            # bounded: with the broker gone, a stop must still stop (the inputs stay uncommitted)
            await asyncio.wait_for(self._final_flush(), self._remaining() * 0.6)
        except asyncio.TimeoutError:
            self._interrupted = True
        finally:
            self._inflight.cancel()  # what the broker never acknowledged stays uncommitted
            if self._sub is not None:
                failed = await bounded(self._sub.close(), max(0.5, self._remaining() * 0.5))
                if failed:
                    log.warning("%s: leaving the group did not finish (%s); the broker will expire "
                                "the membership", self.name, failed)
            self._log_uncommitted()
            self.processor.close()
            metrics.UP.labels(self.name).set(0)

    def _uncommitted(self) -> dict[TopicPartition, tuple[int, int]]:
        """Per input partition: (next offset committed, next offset processed), where they differ."""
        return {tp: (self._committed.get(tp, start), nxt) for tp, (start, nxt) in self._seen.items()
                if nxt > self._committed.get(tp, start)}

    def _describe_uncommitted(self) -> str:
        n = sum(nxt - done for done, nxt in self._uncommitted().values())
        return f"{self.name}: {n:,} processed inputs not committed" if n else ""

    def _log_uncommitted(self) -> None:
        left = self._uncommitted()
        if not left:
            if self._interrupted:
                log.warning("%s: the final flush did not finish within the %.0f s shutdown bound; no processed "
                            "input was left uncommitted", self.name, self.settings.shutdown_timeout_s)
            return
        total = sum(nxt - done for done, nxt in left.values())
        where = ", ".join(f"{tp.topic}:{tp.partition} offsets {done}-{nxt - 1}"
                          for tp, (done, nxt) in sorted(left.items()))
        if self._eos:
            what = "exactly-once: the open transaction is aborted, none of their outputs were committed"
        else:
            what = "at-least-once: some of their outputs may be published twice"
        log.warning("%s: stopped within the %.0f s shutdown bound leaving %d processed inputs uncommitted "
                    "(%s); they will be processed again on restart (%s)", self.name,
                    self.settings.shutdown_timeout_s, total, where, what)


def _retrieve(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()
