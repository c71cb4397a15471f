"""Gateway WebSocket hub, protocol, auth and limits, against an in-process server (events dispatched directly)."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from ticktide.gateway import metrics as gm
from ticktide.gateway.auth import TokenStore, bearer, token_id
from ticktide.gateway.hub import Limits
from ticktide.gateway.server import create_app
from ticktide.gateway.ws import HUB_KEY
from schemas.events import FeatureVector, RiskUpdate, Tick
from tests.unit.test_gateway_support import OTHER_TOKEN, TOKEN, RawWebSocket


def tick(symbol: str, price: float) -> Tick:
    now = time.time_ns()
    return Tick(symbol=symbol, venue="test", kind="trade", ts_event=now, ts_recv=now, price=price, size=1.0)


def big_features(symbol: str, seq: int) -> FeatureVector:
    now = time.time_ns()
    return FeatureVector(symbol=symbol, ts_event=now, ts_ingest=now, ts_proc=now, seq=seq, source="tick",
                         price=1.0, values={f"feature_{i:03d}": float(i) for i in range(300)})


def no_workflow(request, progress):  # REST is tested in test_gateway_rest.py
    return {}


@pytest.fixture
async def serve():
    servers: list[TestServer] = []

    async def start(limits: Limits | None = None) -> tuple[TestServer, object]:
        app = create_app(TokenStore([TOKEN, OTHER_TOKEN]), limits=limits, run_workflow=no_workflow,
                         prices=None, symbols=frozenset())
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server, app[HUB_KEY]

    yield start
    for server in servers:
        await server.close()


async def ws_connect(session: aiohttp.ClientSession, server: TestServer, token: str | None = TOKEN,
                     **kw) -> aiohttp.ClientWebSocketResponse:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ws = await session.ws_connect(server.make_url("/ws"), headers=headers, **kw)
    if token:
        assert (await ws.receive_json(timeout=5))["type"] == "welcome"
    return ws


async def call(ws: aiohttp.ClientWebSocketResponse, message: dict) -> dict:
    await ws.send_json(message)
    return await ws.receive_json(timeout=5)


def test_token_store_constant_time_check_and_sources(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# comment\n{TOKEN}\n\n")
    store = TokenStore.load(str(path), env={"TICKTIDE_GATEWAY_TOKENS": f"{OTHER_TOKEN}, "})
    assert len(store) == 2
    assert store.check(TOKEN) == token_id(TOKEN) and store.check(OTHER_TOKEN) == token_id(OTHER_TOKEN)
    assert store.check(TOKEN + "x") is None and store.check("") is None and store.check(None) is None
    assert TOKEN not in token_id(TOKEN) and token_id(TOKEN).startswith("tok-")
    with pytest.raises(ValueError, match="at least 16") as info:
        TokenStore(["short"])
    assert "short" not in str(info.value).replace("shorter", "")
    assert bearer(f"Bearer {TOKEN}") == TOKEN and bearer(f"bearer  {TOKEN} ") == TOKEN
    assert bearer(f"Basic {TOKEN}") is None and bearer("Bearer ") is None and bearer(None) is None


async def test_subscribe_filters_by_topic_and_symbol_and_unsubscribe(serve):
    server, hub = await serve()
    async with aiohttp.ClientSession() as session:
        ws = await ws_connect(session, server)
        reply = await call(ws, {"action": "subscribe", "topics": ["ticks", "signals.v1"], "symbols": ["aapl"]})
        assert reply == {"type": "subscribed", "subscriptions": {"signals": ["AAPL"], "ticks": ["AAPL"]}}
        assert hub.dispatch("ticks", tick("MSFT", 1.0)) == 0
        assert hub.dispatch("ticks", tick("AAPL", 101.5)) == 1
        event = await ws.receive_json(timeout=5)
        assert event["type"] == "event" and event["topic"] == "ticks" and event["symbol"] == "AAPL"
        assert event["event"]["price"] == 101.5 and event["ts_gateway"] > 0
        assert hub.dispatch("features", big_features("AAPL", 1)) == 0  # not subscribed to features

        reply = await call(ws, {"action": "subscribe", "topics": ["ticks"]})  # every symbol
        assert reply["subscriptions"] == {"signals": ["AAPL"], "ticks": "*"}
        assert hub.dispatch("ticks", tick("MSFT", 2.0)) == 1
        assert (await ws.receive_json(timeout=5))["symbol"] == "MSFT"

        reply = await call(ws, {"action": "unsubscribe", "topics": ["ticks"]})
        assert reply["subscriptions"] == {"signals": ["AAPL"]}
        assert hub.dispatch("ticks", tick("AAPL", 3.0)) == 0
        reply = await call(ws, {"action": "unsubscribe", "topics": ["signals"], "symbols": ["AAPL"]})
        assert reply["subscriptions"] == {}
        assert await call(ws, {"action": "ping"}) == {"type": "pong"}
        await ws.close()
    await asyncio.sleep(0.05)
    assert not hub.connections and not any(hub.routes.values())


async def test_events_without_symbol_reach_every_subscriber_of_the_topic(serve):
    server, hub = await serve()
    async with aiohttp.ClientSession() as session:
        ws = await ws_connect(session, server)
        await call(ws, {"action": "subscribe", "topics": ["risk"], "symbols": ["AAPL"]})
        now = time.time_ns()
        assert hub.dispatch("risk", RiskUpdate(portfolio_id="main", ts_event=now, ts_proc=now, value=1e6,
                                               cash=1e5, exposures={"AAPL": 0.5})) == 1
        event = await ws.receive_json(timeout=5)
        assert event["symbol"] is None and event["event"]["exposures"] == {"AAPL": 0.5}


async def test_auth_message_bad_tokens_and_timeout(serve):
    server, hub = await serve(Limits(auth_timeout_s=0.3))
    before = gm.AUTH_FAILURES.labels("ws")._value.get()
    async with aiohttp.ClientSession() as session:
        ws = await ws_connect(session, server, token=None)
        assert (await call(ws, {"action": "auth", "token": TOKEN}))["type"] == "welcome"
        assert (await call(ws, {"action": "subscribe", "topics": ["signals"]}))["type"] == "subscribed"

        ws = await ws_connect(session, server, token=None)
        await ws.send_json({"action": "auth", "token": "wrong-token-0123456789"})
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4001
        assert "invalid token" in msg.extra

        ws = await ws_connect(session, server, token=None)
        await ws.send_json({"action": "subscribe", "topics": ["signals"]})  # not an auth message
        await ws.receive(timeout=5)
        assert ws.close_code == 4001

        ws = await ws_connect(session, server, token=None)
        msg = await ws.receive(timeout=5)
        assert ws.close_code == 4002 and "authentication timeout" in msg.extra

        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await ws_connect(session, server, token="wrong-token-0123456789")
        assert info.value.status == 401
    assert gm.AUTH_FAILURES.labels("ws")._value.get() - before == 3
    assert len(hub.connections) <= 1


async def test_bad_messages_are_answered_and_the_connection_stays(serve):
    server, _ = await serve()
    async with aiohttp.ClientSession() as session:
        ws = await ws_connect(session, server)
        cases = [("{not json", "not JSON"), ('{"action": "dance"}', "unknown action"),
                 ('{"action": "subscribe", "topics": ["orders"]}', "unknown topic 'orders'"),
                 ('{"action": "subscribe"}', "non-empty 'topics'"),
                 ('{"action": "subscribe", "topics": ["ticks"], "symbols": ["a b"]}', "invalid symbols"),
                 ('{"action": "subscribe", "topics": "ticks"}', "got `str` - at `$.topics`"),
                 ('{"action": "auth", "token": "x"}', "already authenticated")]
        for text, expected in cases:
            await ws.send_str(text)
            reply = await ws.receive_json(timeout=5)
            assert reply["type"] == "error" and expected in reply["error"], (text, reply)
        await ws.send_bytes(b"\x00")
        assert "text frames" in (await ws.receive_json(timeout=5))["error"]
        assert await call(ws, {"action": "ping"}) == {"type": "pong"}


async def test_limits_subscriptions_frame_size_connections_per_token(serve):
    server, hub = await serve(Limits(max_subscriptions=3, max_frame_bytes=512, max_connections_per_token=2))
    async with aiohttp.ClientSession() as session:
        ws = await ws_connect(session, server)
        assert (await call(ws, {"action": "subscribe", "topics": ["ticks"], "symbols": ["A", "B"]}))["type"] \
            == "subscribed"
        reply = await call(ws, {"action": "subscribe", "topics": ["signals"], "symbols": ["A", "B"]})
        assert reply["type"] == "error" and "limit is 3" in reply["error"]
        reply = await call(ws, {"action": "subscribe", "topics": ["signals"]})  # a topic's * counts once
        assert reply["subscriptions"] == {"signals": "*", "ticks": ["A", "B"]}

        second = await ws_connect(session, server)
        third = await session.ws_connect(server.make_url("/ws"), headers={"Authorization": f"Bearer {TOKEN}"})
        msg = await third.receive(timeout=5)
        assert third.close_code == 4029 and "too many connections for this token (limit 2)" in msg.extra
        other = await ws_connect(session, server, token=OTHER_TOKEN)  # another token is not affected
        assert (await call(other, {"action": "ping"}))["type"] == "pong"

        await second.send_str('{"action": "subscribe", "topics": ["ticks"], "symbols": ["' + "A" * 600 + '"]}')
        await second.receive(timeout=5)
        assert second.close_code == 1009  # message too big
        await asyncio.sleep(0.05)
        again = await ws_connect(session, server)  # the closed one freed its slot
        assert (await call(again, {"action": "ping"}))["type"] == "pong"
        assert hub.per_token[token_id(TOKEN)] == 2


async def test_slow_client_is_disconnected_with_4008_and_others_are_not_slowed(serve):
    server, hub = await serve(Limits(queue_size=16, close_timeout_s=5))
    before = gm.SLOW_DISCONNECTS._value.get()
    host, port = server.host, server.port
    slow = await RawWebSocket.connect(host, port)
    await slow.send_json({"action": "subscribe", "topics": ["features"]})
    async with aiohttp.ClientSession() as session:
        fast = await ws_connect(session, server)
        await call(fast, {"action": "subscribe", "topics": ["features"], "symbols": ["AAPL"]})
        received: list[int] = []

        async def read_fast():
            while len(received) < 2000:
                received.append((await fast.receive_json(timeout=10))["event"]["seq"])

        reader = asyncio.create_task(read_fast())
        await asyncio.sleep(0.1)  # the slow client's subscribe is in
        for seq in range(1, 2001):
            hub.dispatch("features", big_features("AAPL", seq))
            if seq % 4 == 0:
                await asyncio.sleep(0)  # like Hub.consume, which yields every few records
        await asyncio.wait_for(reader, 30)
        assert received == list(range(1, 2001))  # every event, in order, none dropped
    assert hub.slow_disconnects == 1 and gm.SLOW_DISCONNECTS._value.get() - before == 1
    frames, close = await slow.read_frames(timeout=10)
    slow.close()
    assert close is not None and close[0] == 4008 and "slow consumer" in close[1], close
    assert 0 < len([f for f in frames if f["type"] == "event"]) < 2000


async def test_tokens_never_reach_the_logs(serve, caplog):
    caplog.set_level(logging.DEBUG)
    server, hub = await serve(Limits(max_connections_per_token=1))
    async with aiohttp.ClientSession() as session:
        ws = await ws_connect(session, server)
        await call(ws, {"action": "subscribe", "topics": ["ticks"]})
        extra = await session.ws_connect(server.make_url("/ws"), headers={"Authorization": f"Bearer {TOKEN}"})
        await extra.receive(timeout=5)
        bad = await ws_connect(session, server, token=None)
        await bad.send_json({"action": "auth", "token": OTHER_TOKEN + "zz"})
        await bad.receive(timeout=5)
        for path in ("/workflows/x/status", "/health"):
            async with session.get(server.make_url(path), headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                await r.read()
        await ws.close()
    await asyncio.sleep(0.05)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "connection" in text and token_id(TOKEN) in text
    assert TOKEN not in text and OTHER_TOKEN not in text


async def test_a_websocket_upgrade_on_the_page_path_is_told_the_endpoint(serve):
    server, _ = await serve()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(server.make_url("/"))
        assert info.value.status == 400
        async with session.get(server.make_url("/"), headers={"Upgrade": "websocket", "Connection": "Upgrade"}) \
                as resp:
            assert resp.status == 400 and "/ws" in (await resp.json())["error"]
        async with session.get(server.make_url("/")) as resp:  # the live page itself
            assert resp.status == 200 and "BTCUSDT" in await resp.text()


async def test_the_documented_client_example_follows_signals(serve, capsys):
    """examples/clients/gateway_client.py (docs/gateway.md) against a gateway."""
    from examples.clients.gateway_client import follow
    from schemas.events import Signal

    server, hub = await serve()
    client = asyncio.create_task(follow(str(server.make_url("/ws")), TOKEN, ["BTCUSDT"], limit=1))
    for _ in range(200):  # until the client has subscribed
        if any(hub.routes.values()):
            break
        await asyncio.sleep(0.02)
    now = time.time_ns()
    sig = Signal(signal_id="BTCUSDT:rsi:1", symbol="BTCUSDT", type="rsi", action="buy", urgency="medium",
                 strength=1.2, reason="rsi_14 crossed below 30", ts_event=now, ts_ingest=now, ts_proc=now, seq=1)
    assert hub.dispatch("signals", sig) == 1
    await asyncio.wait_for(client, 10)
    assert capsys.readouterr().out.split() == ["BTCUSDT", "rsi", "buy", "rsi_14", "crossed", "below", "30"]
