"""Replay a recorded websocket session through the live path.

``ReplayServer`` serves a recording (read with
``producers.recordings.readers.read_frames``: hftbacktest, cryptofeed or plain JSON
lines) over a local websocket: every connection gets the whole session, paced
by the recorded receive times divided by ``speed`` (``speed <= 0``: as fast as
possible), then a normal close. ``run_replay`` (``ticktide replay``) starts
the server and a ``FeedConnection`` with the venue's real adapter in the same
process, so the frames go through parse, sequence checks, validation and onto
``ticks.v1`` / ``dlq.v1`` / ``alerts.v1`` exactly as a live feed's would.

``recv_time="recorded"`` stamps each tick's ``ts_recv`` with the recorded
receive time instead of the wall clock (the output is then reproducible,
byte for byte apart from ``ts_proc`` stamps; end-to-end latency metrics
downstream become meaningless).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from producers.feed.connection import FeedConnection, FeedSettings

log = logging.getLogger(__name__)


class ReplayServer:
    def __init__(self, path: str | Path, speed: float = 1.0, host: str = "127.0.0.1", port: int = 0,
                 max_frames: int | None = None, record_ts: bool = False) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(self.path)
        self.speed = speed
        self.host = host
        self.port = port
        self.max_frames = max_frames
        self.sent = 0
        self.connections = 0
        self.sessions_done = 0
        self.done = asyncio.Event()  # set when a session has been fully sent
        # receive times of frames sent, in order, for an in-process client (recv_time="recorded")
        self.sent_ts: deque[int] | None = deque() if record_ts else None
        self._server: Server | None = None

    async def start(self) -> "ReplayServer":
        # no server pings: a paused recording must not look dead, and a fast replay must not stall
        self._server = await serve(self._handler, self.host, self.port, ping_interval=None,
                                   max_size=2 ** 23)
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]
        log.info("replaying %s on %s (speed %s)", self.path, self.url, self.speed or "max")
        return self

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> "ReplayServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _drain(self, ws: ServerConnection) -> None:
        try:
            async for _ in ws:  # subscribe messages etc. are accepted and ignored
                pass
        except ConnectionClosed:
            pass

    async def _handler(self, ws: ServerConnection) -> None:
        from producers.recordings.readers import read_frames

        self.connections += 1
        drain = asyncio.create_task(self._drain(ws))
        loop = asyncio.get_running_loop()
        t0 = w0 = None
        n = 0
        try:
            for ts, frame in read_frames(self.path):
                if self.max_frames is not None and n >= self.max_frames:
                    break
                if self.speed > 0:
                    if t0 is None:
                        t0, w0 = ts, loop.time()
                    delay = w0 + (ts - t0) / 1e9 / self.speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif n % 256 == 0:
                    await asyncio.sleep(0)
                try:
                    msg: str | bytes = frame.decode()
                except UnicodeDecodeError:
                    msg = frame
                if self.sent_ts is not None:
                    self.sent_ts.append(ts)
                await ws.send(msg)
                n += 1
                self.sent += 1
            await ws.close(1000, "end of recording")
            self.sessions_done += 1
            self.done.set()
        except ConnectionClosed:
            log.info("replay client went away after %d frames", n)
        finally:
            drain.cancel()


def _recorded_clock(server: ReplayServer):
    assert server.sent_ts is not None
    queue = server.sent_ts

    def clock() -> int:
        return queue.popleft() if queue else time.time_ns()

    return clock


async def replay_into_bus(path: str | Path, venue: str, bus: Any, *, speed: float = 1.0,
                          symbols: list[str] | None = None, validator: Any = None,
                          recv_time: str = "wall", port: int = 0,
                          max_frames: int | None = None,
                          stop: asyncio.Event | None = None) -> FeedConnection:
    """Serve ``path`` locally and consume it with ``venue``'s adapter onto ``bus``.

    Returns the finished FeedConnection (its ``stats`` summarize the run).
    """
    from producers.venues import get_adapter

    if recv_time not in ("wall", "recorded"):
        raise ValueError("recv_time must be 'wall' or 'recorded'")
    adapter = get_adapter(venue)
    settings = FeedSettings(reconnect=False, silence_timeout=24 * 3600.0, ping_interval=None)
    async with ReplayServer(path, speed, port=port, max_frames=max_frames,
                            record_ts=recv_time == "recorded") as server:
        clock = _recorded_clock(server) if recv_time == "recorded" else time.time_ns
        feed = FeedConnection(adapter, bus, symbols or [], url=server.url, validator=validator,
                              settings=settings, recv_clock=clock)
        task = asyncio.create_task(feed.run())
        if stop is not None:
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                await feed.stop()
            stopper.cancel()
        await task
    await bus.flush()
    return feed
