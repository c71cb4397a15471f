"""A deadline for the HTTP request line and headers.

aiohttp closes a connection that sends nothing for its keep-alive timeout,
but a client that sends part of a request line and then stalls holds its
socket (and a file descriptor) forever. Every connection here must finish
its first request's line and headers within ``request_timeout_s``, or it is
closed and counted in ``ticktide_gateway_timed_out_connections_total``.
(The WebSocket auth frame has its own deadline, ``Limits.auth_timeout_s``.)
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from ticktide.gateway import metrics as m


class _DeadlineRequestHandler(RequestHandler):
    def __init__(self, *args, request_timeout_s: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._request_timeout_s = request_timeout_s
        self._request_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._request_deadline = asyncio.get_running_loop().call_later(self._request_timeout_s, self._missed)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._request_deadline is not None and self._request_count:  # a whole request line and headers
            self._request_deadline.cancel()
            self._request_deadline = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
            self._request_deadline = None
        super().connection_lost(exc)

    def _missed(self) -> None:
        self._request_deadline = None
        if self._request_count == 0 and self.transport is not None:
            m.TIMED_OUT.labels("http_request").inc()
            self.force_close()
            self.transport.close()


class _DeadlineServer(Server):
    request_timeout_s = 10.0

    def __call__(self) -> RequestHandler:
        return _DeadlineRequestHandler(self, loop=self._loop, request_timeout_s=self.request_timeout_s,
                                       **self._kwargs)


class DeadlineAppRunner(web.AppRunner):
    """An ``AppRunner`` whose connections must send a whole request within ``request_timeout_s``."""

    def __init__(self, app: web.Application, *, request_timeout_s: float = 10.0, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self.request_timeout_s = request_timeout_s

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        # aiohttp builds its Server itself; ours differs only in the handler it makes per connection
        server.__class__ = _DeadlineServer
        server.request_timeout_s = self.request_timeout_s  # type: ignore[attr-defined]
        return server
