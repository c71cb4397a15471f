"""The gateway closes sockets that never finish a request, and keeps serving everyone else."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from ticktide.gateway import metrics as gm
from ticktide.gateway.auth import TokenStore
from ticktide.gateway.deadline import DeadlineAppRunner
from ticktide.gateway.server import create_app
from tests.unit.test_gateway_support import TOKEN

SLOW_SOCKETS = 200
DEADLINE_S = 1.0


async def _serve() -> tuple[DeadlineAppRunner, int]:
    """The gateway's app behind the deadline runner on a free local port."""
    app = create_app(TokenStore([TOKEN]), run_workflow=lambda request, progress: {}, prices=None,
                     symbols=frozenset())
    runner = DeadlineAppRunner(app, request_timeout_s=DEADLINE_S)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


def _timed_out() -> float:
    return gm.TIMED_OUT.labels("http_request")._value.get()


async def test_sockets_that_never_finish_a_request_are_closed_by_the_deadline():
    runner, port = await _serve()
    before = _timed_out()
    slow: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for i in range(SLOW_SOCKETS):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if i % 2:  # half send part of a request line, half nothing at all
                writer.write(b"GET /heal")
                await writer.drain()
            slow.append((reader, writer))
        opened = time.monotonic()

        async def closed(reader: asyncio.StreamReader) -> bool:
            return await asyncio.wait_for(reader.read(), DEADLINE_S * 10) == b""  # EOF: the server closed it

        served = 0
        async with aiohttp.ClientSession() as session:
            waiting = asyncio.gather(*(closed(r) for r, _ in slow))
            while not waiting.done():  # a normal client is served all along
                async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                    assert resp.status == 200 and (await resp.json())["status"] == "ok"
                    served += 1
                await asyncio.sleep(0.05)
            assert all(await waiting)
        assert time.monotonic() - opened < DEADLINE_S * 5
        assert served >= 5
        assert _timed_out() - before == SLOW_SOCKETS
    finally:
        for _, writer in slow:
            writer.close()
        await runner.cleanup()


async def test_a_slow_but_complete_request_is_served():
    runner, port = await _serve()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for part in (b"GET /health HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n\r\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(DEADLINE_S / 4)
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        await runner.cleanup()
