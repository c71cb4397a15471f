"""Shutdown steps that must end in time, whatever the broker does."""

from __future__ import annotations

import asyncio


async def bounded(aw, timeout_s: float) -> str:
    """Await ``aw`` for at most ``timeout_s``; "" when it finished, else what stopped it.

    Never raises (unless this task itself is cancelled), and never waits for a step it gave up
    on to unwind: a Kafka client stopping with the broker gone may take as long as it likes.
    """
    task = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout_s))
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_retrieve)
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_retrieve)
        return f"not done within {timeout_s:.1f} s"
    if task.cancelled():
        return "cancelled inside the client"
    exc = task.exception()
    return f"{type(exc).__name__}: {exc}" if exc is not None else ""


def _retrieve(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()
