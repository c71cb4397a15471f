"""Shutdown steps that must end in time, whatever the broker does."""

from __future__ import annotations

import asyncio


async def bounded(aw, timeout_s: float) -> str:
    """Await ``aw`` for at most ``timeout_s``; "" when it finished, else what stopped it (never raises,
    unless this task itself is being cancelled)."""
    try:
        await asyncio.wait_for(aw, timeout_s)
        return ""
    except asyncio.TimeoutError:
        return f"not done within {timeout_s:.1f} s"
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return "cancelled inside the client"
    except Exception as exc:  # noqa: BLE001 - a shutdown step that fails must not stop the others
        return f"{type(exc).__name__}: {exc}"
