"""The WebSocket endpoint ``/ws``: authentication, the subscribe protocol, limits.

Client -> gateway (JSON text frames):

- ``{"action": "auth", "token": "..."}`` — first frame, unless the upgrade
  request carried ``Authorization: Bearer <token>`` (browsers cannot set it);
- ``{"action": "subscribe", "topics": ["signals", "ticks"], "symbols": ["AAPL"]}``
  (no or empty ``symbols``: every symbol);
- ``{"action": "subscribe", "symbols": ["AAPL"], "data_type": "market_data"}``:
  ``data_type`` names a group of topics (``DATA_TYPES``: ``market_data`` is
  ticks and bars), added to ``topics`` when both are given;
- ``{"action": "unsubscribe", "topics": [...], "symbols": [...]}`` (no
  ``symbols``: the whole topic; ``data_type`` works here too);
- ``{"action": "ping"}``.

Gateway -> client: ``{"type": "welcome", ...}`` after authentication,
``{"type": "subscribed", "subscriptions": {...}}`` after each (un)subscribe,
``{"type": "event", "topic", "symbol", "ts_gateway", "event": {...}}``,
``{"type": "error", "error": "..."}`` for a bad request (the connection stays
open), ``{"type": "pong"}``.

Close codes: 4001 unauthorized, 4002 no auth message in time, 4008 slow
consumer (queue overflow), 4029 too many connections for the token, 1009 a
frame over the size limit, 1001 gateway shutting down.
"""

from __future__ import annotations

import asyncio
import logging
import re

import msgspec
from aiohttp import WSMsgType, web

from ticktide.gateway import metrics as m
from ticktide.gateway.auth import TokenStore, bearer
from ticktide.gateway.hub import (
    CLOSE_AUTH_TIMEOUT, CLOSE_TOO_MANY_CONNECTIONS, CLOSE_UNAUTHORIZED, SHORT, TOPICS, Connection, Hub,
)

log = logging.getLogger(__name__)

# the API document's data types -> the short topic names they stand for
DATA_TYPES = {"market_data": ("ticks", "bars"), "features": ("features",), "signals": ("signals",),
              "risk": ("risk",), "alerts": ("alerts",), "portfolio": ("targets", "rebalances")}
SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,31}$")
HUB_KEY = web.AppKey("hub", Hub)
TOKENS_KEY = web.AppKey("tokens", TokenStore)


class ClientMessage(msgspec.Struct, forbid_unknown_fields=True):
    action: str
    topics: list[str] | None = None
    symbols: list[str] | None = None
    token: str | None = None
    data_type: str | None = None


_decoder = msgspec.json.Decoder(ClientMessage)


class BadRequest(Exception):
    pass


def parse(data: str) -> ClientMessage:
    try:
        msg = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"not JSON: {exc}") from None
    if msg.action not in ("auth", "subscribe", "unsubscribe", "ping"):
        raise BadRequest(f"unknown action {msg.action!r}; use auth, subscribe, unsubscribe or ping")
    if msg.action in ("subscribe", "unsubscribe"):
        if msg.data_type is not None and msg.data_type not in DATA_TYPES:
            raise BadRequest(f"unknown data_type {msg.data_type!r}; data types: {', '.join(DATA_TYPES)}")
        if not msg.topics and msg.data_type is None:
            raise BadRequest(f"{msg.action} needs a non-empty 'topics' list or a 'data_type'; "
                             f"topics: {', '.join(TOPICS)}; data types: {', '.join(DATA_TYPES)}")
        topics = [_topic(t) for t in msg.topics or ()] + list(DATA_TYPES.get(msg.data_type or "", ()))
        msg.topics = list(dict.fromkeys(topics))
        if msg.symbols:
            bad = [s for s in msg.symbols if not SYMBOL_RE.match(s)]
            if bad:
                raise BadRequest(f"invalid symbols {bad[:5]!r}: 1-32 letters, digits or ._:/- starting "
                                 "with a letter or digit")
            msg.symbols = sorted({s.upper() for s in msg.symbols})
            if "*" in msg.symbols:
                msg.symbols = None
    return msg


def _topic(name: str) -> str:
    if name in TOPICS:
        return name
    if name in SHORT:
        return SHORT[name]
    raise BadRequest(f"unknown topic {name!r}; topics: {', '.join(TOPICS)}")


async def _authenticate(ws: web.WebSocketResponse, tokens: TokenStore, timeout: float) -> str | None:
    """Wait for the first frame, an auth message; close the socket and return None when it is not."""
    try:
        msg = await ws.receive(timeout=timeout)
    except asyncio.TimeoutError:
        m.REJECTED.labels("auth_timeout").inc()
        m.TIMED_OUT.labels("ws_auth").inc()
        await ws.close(code=CLOSE_AUTH_TIMEOUT,
                       message=f"authentication timeout: send {{\"action\": \"auth\", \"token\": ...}} "
                               f"within {timeout:g}s".encode())
        return None
    if msg.type != WSMsgType.TEXT:
        return None  # closed, or an oversized frame (aiohttp already closed with 1009)
    try:
        parsed = parse(msg.data)
    except BadRequest:
        parsed = None
    if parsed is None or parsed.action != "auth":
        m.REJECTED.labels("unauthorized").inc()
        m.AUTH_FAILURES.labels("ws").inc()
        await ws.close(code=CLOSE_UNAUTHORIZED,
                       message=b'unauthorized: the first message must be {"action": "auth", "token": ...}')
        return None
    token_id = tokens.check(parsed.token)
    if token_id is None:
        m.REJECTED.labels("unauthorized").inc()
        m.AUTH_FAILURES.labels("ws").inc()
        await ws.close(code=CLOSE_UNAUTHORIZED, message=b"unauthorized: invalid token")
        return None
    return token_id


async def handle_ws(request: web.Request) -> web.StreamResponse:
    hub, tokens = request.app[HUB_KEY], request.app[TOKENS_KEY]
    token_id = None
    header = request.headers.get("Authorization")
    if header is not None:
        token_id = tokens.check(bearer(header))
        if token_id is None:
            m.AUTH_FAILURES.labels("ws").inc()
            m.REJECTED.labels("unauthorized").inc()
            return web.json_response({"error": "unauthorized: invalid bearer token"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="ticktide"'})
    ws = web.WebSocketResponse(max_msg_size=hub.limits.max_frame_bytes, heartbeat=30.0,
                               compress=False, timeout=hub.limits.close_timeout_s)
    await ws.prepare(request)
    if token_id is None:
        token_id = await _authenticate(ws, tokens, hub.limits.auth_timeout_s)
        if token_id is None:
            return ws
    conn = hub.admit(ws, token_id)
    if conn is None:
        m.REJECTED.labels("too_many_connections").inc()
        limit = hub.limits.max_connections_per_token
        await ws.close(code=CLOSE_TOO_MANY_CONNECTIONS,
                       message=f"too many connections for this token (limit {limit})".encode())
        return ws
    log.info("connection %d opened (%s)", conn.id, token_id)
    hub.send(conn, {"type": "welcome", "connection_id": conn.id, "topics": list(TOPICS),
                    "limits": hub.limits.public()})
    try:
        async for msg in ws:
            if conn.closing:
                break
            if msg.type == WSMsgType.TEXT:
                _handle(hub, conn, msg.data)
            elif msg.type == WSMsgType.BINARY:
                hub.send(conn, {"type": "error", "error": "send JSON text frames, not binary"})
    finally:
        hub.remove(conn)
        log.info("connection %d closed (code %s)", conn.id, ws.close_code)
    return ws


def _handle(hub: Hub, conn: Connection, data: str) -> None:
    try:
        msg = parse(data)
    except BadRequest as exc:
        hub.send(conn, {"type": "error", "error": str(exc)})
        return
    if msg.action == "ping":
        hub.send(conn, {"type": "pong"})
    elif msg.action == "auth":
        hub.send(conn, {"type": "error", "error": "already authenticated"})
    elif msg.action == "subscribe":
        error = hub.subscribe(conn, msg.topics or [], msg.symbols)
        if error:
            hub.send(conn, {"type": "error", "error": error})
            return
        hub.send(conn, {"type": "subscribed", "subscriptions": conn.describe()})
    else:
        hub.unsubscribe(conn, msg.topics or [], msg.symbols)
        hub.send(conn, {"type": "subscribed", "subscriptions": conn.describe()})
