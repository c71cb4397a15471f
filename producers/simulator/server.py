"""A market simulator websocket server speaking Binance's spot stream format.

``MarketModel`` (``producers.simulator.market_model``) is pure: from a seed it yields an endless, reproducible
sequence of events (trades and top-of-book quotes for several symbols) with
simulated times; prices follow a geometric Brownian motion with occasional
jumps, and arrival rates have occasional volume bursts. ``SimulatorServer``
paces that sequence in real time and fans it out to websocket clients the way
Binance does:

- ``/stream?streams=btcusdt@trade/btcusdt@bookTicker`` -> combined frames
  ``{"stream": "btcusdt@trade", "data": {...}}``;
- ``/ws/btcusdt@trade`` -> raw payloads;
- ``{"method": "SUBSCRIBE", "params": [...], "id": 1}`` on either path
  (answered ``{"result": null, "id": 1}``), plus UNSUBSCRIBE and
  LIST_SUBSCRIPTIONS.

Every client sees the same market (one generator per server), like an
exchange. Test hooks: ``drop_connections()``, ``skip_trade_ids()``,
``pause()``/``resume()``, ``inject()`` (send a raw frame) and
``replay_on_connect`` (resend recent frames to a new connection, to exercise
duplicate removal).

Determinism: with ``clock="sim"`` the frames are a pure function of the
config (seed included): ``E``/``T`` come from simulated time. With
``clock="wall"`` (the CLI default) the same seed gives the same prices, sizes,
sides and order of events, but ``E``/``T`` are wall-clock milliseconds and
trade/update ids start from the start time, so a restarted simulator's ids
keep increasing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from producers.simulator.market_model import (  # noqa: F401 - re-exported: the model used to live here
    DEFAULT_PRICES, SECONDS_PER_YEAR, STREAM_KINDS, MarketModel, SimConfig, SimEvent, frames,
)

log = logging.getLogger(__name__)


class _Client:
    __slots__ = ("ws", "streams", "combined", "queue", "writer")

    def __init__(self, ws: ServerConnection, streams: set[str], combined: bool) -> None:
        self.ws = ws
        self.streams = streams
        self.combined = combined
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=10_000)
        self.writer: asyncio.Task | None = None


def _parse_path(path: str) -> tuple[set[str], bool]:
    parts = urlsplit(path)
    streams: set[str] = set()
    combined = parts.path.rstrip("/").startswith("/stream")
    if combined:
        for value in parse_qs(parts.query).get("streams", []):
            streams.update(s for s in value.split("/") if s)
    elif parts.path.startswith("/ws/"):
        streams.update(s for s in parts.path[4:].split("/") if s)
    return {s.lower() for s in streams}, combined


class SimulatorServer:
    """Serve a ``MarketModel`` over websockets on ``host:port`` (port 0 = ephemeral)."""

    def __init__(self, cfg: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0,
                 clock: str = "wall", replay_on_connect: int = 0) -> None:
        if clock not in ("wall", "sim"):
            raise ValueError("clock must be 'wall' or 'sim'")
        cfg = cfg or SimConfig()
        if clock == "wall":
            base = time.time_ns() // 1000
            cfg = replace(cfg, first_trade_id=base if cfg.first_trade_id is None else cfg.first_trade_id,
                          first_update_id=base if cfg.first_update_id is None else cfg.first_update_id)
        self.cfg = cfg
        self.model = MarketModel(self.cfg)
        self.host = host
        self.port = port
        self.clock = clock
        self.replay_on_connect = replay_on_connect
        self._recent: deque[SimEvent] = deque(maxlen=max(replay_on_connect, 1))
        self._clients: set[_Client] = set()
        self._server: Server | None = None
        self._pump: asyncio.Task | None = None
        self._paused = False
        self.connections = 0  # accepted so far
        self.subscribe_requests = 0
        self.sent = 0

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> "SimulatorServer":
        self._server = await serve(self._handler, self.host, self.port, ping_interval=20,
                                   ping_timeout=20)
        self.port = self._server.sockets[0].getsockname()[1] if self.port == 0 else self.port
        if self._pump is None:
            self._pump = asyncio.create_task(self._run_market(), name="simulator-market")
        log.info("simulator on ws://%s:%d (%s)", self.host, self.port, ",".join(self.model.symbols))
        return self

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def stream_url(self, streams: list[str] | None = None) -> str:
        streams = streams or [f"{s.lower()}@{k}" for s in self.model.symbols for k in STREAM_KINDS]
        return f"{self.url}/stream?streams={'/'.join(streams)}"

    async def stop_listening(self) -> None:
        """Close the listening socket and every connection, keep the market running."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def close(self) -> None:
        await self.stop_listening()
        if self._pump is not None:
            self._pump.cancel()
            try:
                await self._pump
            except asyncio.CancelledError:
                pass
            self._pump = None

    async def __aenter__(self) -> "SimulatorServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- test hooks --------------------------------------------------------
    async def drop_connections(self, code: int = 1012, reason: str = "service restart") -> int:
        """Close every client connection (the server keeps listening). Returns how many."""
        clients = list(self._clients)
        await asyncio.gather(*(c.ws.close(code, reason) for c in clients), return_exceptions=True)
        return len(clients)

    def skip_trade_ids(self, symbol: str, n: int = 1) -> None:
        self.model.skip_trade_ids(symbol, n)

    def pause(self) -> None:
        """Stop sending frames (connections stay open; the market keeps moving)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    async def inject(self, frame: str | bytes) -> None:
        """Send a raw frame to every connected client, as is."""
        for c in list(self._clients):
            try:
                await c.ws.send(frame)
            except ConnectionClosed:
                pass

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # -- internals ---------------------------------------------------------
    async def _run_market(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        behind = 0
        while True:
            clock_ms = None if self.clock == "sim" else time.time_ns() // 1_000_000
            ev = self.model.next_event(clock_ms)
            due = t0 + ev.offset
            delay = due - loop.time()
            behind += 1
            if delay > 0 or behind >= 64:  # never starve the writers when running behind
                behind = 0
                await asyncio.sleep(max(delay, 0))
                if self.clock == "wall":  # stamp at send time
                    now_ms = time.time_ns() // 1_000_000
                    if "E" in ev.data:
                        ev.data["E"] = ev.data["T"] = now_ms
            self._recent.append(ev)
            if not self._paused:
                self._fan_out(ev)

    def _fan_out(self, ev: SimEvent) -> None:
        combined = raw = None
        key = ev.stream.lower()  # stream names match case-insensitively (bookTicker)
        for c in self._clients:
            if key not in c.streams:
                continue
            if c.combined:
                combined = combined or ev.combined()
                msg = combined
            else:
                raw = raw or ev.raw()
                msg = raw
            try:
                c.queue.put_nowait(msg)
                self.sent += 1
            except asyncio.QueueFull:  # a slow consumer is disconnected, as exchanges do
                c.queue = asyncio.Queue(maxsize=1)
                c.queue.put_nowait(None)

    async def _writer(self, c: _Client) -> None:
        while True:
            msg = await c.queue.get()
            if msg is None:
                await c.ws.close(1008, "slow consumer")
                return
            await c.ws.send(msg)

    async def _handler(self, ws: ServerConnection) -> None:
        streams, combined = _parse_path(ws.request.path if ws.request else "/")
        client = _Client(ws, streams, combined)
        self.connections += 1
        if self.replay_on_connect:
            for ev in list(self._recent)[-self.replay_on_connect:]:
                if ev.stream.lower() in streams:
                    client.queue.put_nowait(ev.combined() if combined else ev.raw())
        self._clients.add(client)
        client.writer = asyncio.create_task(self._writer(client))
        try:
            async for msg in ws:
                await self._control(client, msg)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            client.writer.cancel()

    async def _control(self, c: _Client, msg: str | bytes) -> None:
        try:
            req = json.loads(msg)
            method = req.get("method")
            rid = req.get("id")
            params = [str(p).lower() for p in req.get("params") or []]
        except (ValueError, AttributeError):
            await c.ws.send(json.dumps({"error": {"code": 2, "msg": "Invalid JSON"}}))
            return
        if method == "SUBSCRIBE":
            self.subscribe_requests += 1
            c.streams.update(params)
            await c.ws.send(json.dumps({"result": None, "id": rid}))
        elif method == "UNSUBSCRIBE":
            c.streams.difference_update(params)
            await c.ws.send(json.dumps({"result": None, "id": rid}))
        elif method == "LIST_SUBSCRIPTIONS":
            await c.ws.send(json.dumps({"result": sorted(c.streams), "id": rid}))
        else:
            await c.ws.send(json.dumps({"error": {"code": 1, "msg": f"unknown method {method!r}"},
                                        "id": rid}))


async def run_simulator(cfg: SimConfig, host: str, port: int, duration: float | None,
                        stop: asyncio.Event, clock: str = "wall") -> int:
    async with SimulatorServer(cfg, host, port, clock=clock) as sim:
        print(f"simulator listening on {sim.stream_url()}", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), duration)
        except asyncio.TimeoutError:
            pass
        log.info("simulator sent %d frames to %d connections", sim.sent, sim.connections)
    return 0
