"""How ``produce`` and ``replay`` publish: topics checked at start, a bounded buffer in front of
the bus (``--buffer``, see ``streaming.bus.buffered``), and a finish bounded by ``--shutdown-timeout``."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

from streaming import connectivity
from streaming.bus import bus_url, open_bus
from streaming.bus.buffered import BufferedBus
from streaming.deadline import bounded

log = logging.getLogger("ticktide.producer")

REQUIRED_TOPICS = ("ticks.v1", "dlq.v1", "alerts.v1")


async def open_publisher(url: str | None, capacity: int, command: str) -> BufferedBus | None:
    """The bus to publish on, behind a buffer of ``capacity`` messages; None (after one error line
    on stderr) when the broker cannot be reached or a topic it needs does not exist."""
    connectivity.set_role(command)
    url = bus_url(url)
    bus = open_bus(url)
    shown = url.split("?")[0]
    try:
        missing = await asyncio.wait_for(bus.missing_topics(REQUIRED_TOPICS), 30)
    except Exception as exc:  # noqa: BLE001 - any failure here means no broker to talk to
        print(f"ticktide {command}: cannot reach the broker at {shown} ({type(exc).__name__}: {exc}) "
              "(start it, or fix --bus)", file=sys.stderr)
        return None
    if missing:
        what = f"topic {missing[0]} does not" if len(missing) == 1 else f"topics {', '.join(missing)} do not"
        print(f"ticktide {command}: {what} exist on {shown} "
              f"(create the topics: ticktide topics create --bus '{url}')", file=sys.stderr)
        return None
    log.info("bus %s, publish buffer %d messages", shown, capacity)
    publisher = BufferedBus(bus, capacity)
    await publisher.start()
    return publisher


async def finish(bus: Any, timeout_s: float, command: str) -> None:
    """Deliver what is buffered within ``timeout_s``, then close; say what could not be delivered."""
    end = time.monotonic() + timeout_s
    failed = await bounded(bus.flush(), timeout_s * 0.8)
    if failed:
        log.warning("%s: %d messages were not delivered within the %.0f s shutdown bound (%s); they are "
                    "dropped: replay the recording, or rely on the venue's gap recovery", command, bus.pending(),
                    timeout_s, failed)
    failed = await bounded(bus.close(), max(0.5, end - time.monotonic()))
    if failed:
        log.warning("%s: closing the bus did not finish (%s)", command, failed)
