"""The gateway as its own OS process, fed from real Kafka topics: WebSocket cases and REST end to end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from schemas.events import FeatureVector, Signal, Tick
from streaming.bus.kafka import KafkaBus
from streaming.codec import encode, key_for
from tests.integration.conftest import ROOT
from tests.unit.test_gateway_support import OTHER_TOKEN, TOKEN, RawWebSocket, free_port

pytestmark = pytest.mark.kafka

PRICES = "tests/data/stock_prices_20.csv"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def gateway_command(*args: str) -> list[str]:
    """``ticktide gateway ...`` once ticktide/cli.py registers it; the same parser run directly until then."""
    from ticktide.cli import COMMAND_MODULES

    if "ticktide.gateway.commands" in COMMAND_MODULES:
        return [sys.executable, "-m", "ticktide.cli", "gateway", *args]
    return [sys.executable, "-m", "ticktide.gateway.commands", *args]


class Gateway:
    def __init__(self, url: str, port: int, proc: subprocess.Popen, log: Path) -> None:
        self.bus_url, self.port, self.proc, self.log_path = url, port, proc, log
        self.http = f"http://127.0.0.1:{port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_gateway(bus_url: str, tmp: Path, *extra: str) -> Gateway:
    port = free_port()
    tokens = tmp / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    log = tmp / f"gateway-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "TICKTIDE_GATEWAY_TOKENS": OTHER_TOKEN}
    proc = subprocess.Popen(gateway_command("--bus", bus_url, "--port", str(port), "--tokens-file", str(tokens),
                                            "--prices", PRICES, *extra),
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return Gateway(bus_url, port, proc, log)


async def wait_ready(gw: Gateway, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert gw.proc.poll() is None, f"gateway exited:\n{gw.log()[-3000:]}"
            try:
                async with session.get(f"{gw.http}/health") as r:
                    if (await r.json())["bus_ready"]:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"gateway not ready in {timeout}s:\n{gw.log()[-3000:]}")


async def probe(gw: Gateway, bus: KafkaBus, timeout: float = 20) -> None:
    """Publish PROBE ticks until a client receives one: the gateway's consumer is at the end of ticks.v1."""
    async with aiohttp.ClientSession() as session:
        ws = await connect(session, gw)
        await ws.send_json({"action": "subscribe", "topics": ["ticks"], "symbols": ["PROBE"]})
        assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await publish(bus, "ticks.v1", [tick("PROBE", 1.0)])
            try:
                msg = await ws.receive_json(timeout=0.5)
                if msg["type"] == "event":
                    await ws.close()
                    return
            except asyncio.TimeoutError:
                pass
        raise AssertionError(f"no probe tick came through in {timeout}s:\n{gw.log()[-3000:]}")


@contextlib.contextmanager
def served(gw: Gateway, bus_url: str):
    """``gw`` once it answers and relays a probe tick from Kafka; stopped afterwards."""
    async def ready() -> None:
        bus = KafkaBus(bus_url)
        try:
            await wait_ready(gw)
            await probe(gw, bus)
        finally:
            await bus.close()

    try:
        asyncio.run(ready())
        yield gw
    finally:
        gw.proc.terminate()
        try:
            gw.proc.wait(15)
        except subprocess.TimeoutExpired:
            gw.proc.kill()


def running_gateway(kafka_broker: str, tmp: Path, *extra: str):
    """Start a gateway on a fresh topic prefix, wait until it delivers, yield it, stop it."""
    url = f"{kafka_broker}{'&' if '?' in kafka_broker else '?'}prefix=t{uuid.uuid4().hex[:8]}."
    with served(start_gateway(url, tmp, *extra), url) as gw:
        yield gw


@pytest.fixture(scope="module")
def gateway(kafka_broker, tmp_path_factory):
    yield from running_gateway(kafka_broker, tmp_path_factory.mktemp("gateway"), "--queue-size", "256",
                               "--max-subscriptions", "6", "--max-connections-per-token", "3",
                               "--max-frame-bytes", "2048")


@pytest.fixture
async def bus(gateway):
    b = KafkaBus(gateway.bus_url)
    await b.start()
    yield b
    await b.close()


def tick(symbol: str, price: float, seq: int = 0) -> Tick:
    now = time.time_ns()
    return Tick(symbol=symbol, venue="test", kind="trade", ts_event=now, ts_recv=now, price=price, size=1.0, seq=seq)


def signal(symbol: str, action: str = "buy") -> Signal:
    now = time.time_ns()
    return Signal(signal_id=f"sig-{uuid.uuid4().hex[:6]}", symbol=symbol, type="rsi_oversold", action=action,
                  urgency="high", strength=0.9, reason="RSI 22 below 30", ts_event=now, ts_ingest=now, ts_proc=now)


async def publish(bus: KafkaBus, topic: str, events) -> None:
    for e in events:
        await bus.publish(topic, key_for(topic, e), encode(e))
    await bus.flush()


async def connect(session, gw: Gateway, token: str | None = TOKEN, header: bool = True):
    headers = {"Authorization": f"Bearer {token}"} if header and token else {}
    ws = await session.ws_connect(f"{gw.http}/ws", headers=headers)
    if not header:
        await ws.send_json({"action": "auth", "token": token})
    assert (await ws.receive_json(timeout=5))["type"] == "welcome"
    return ws


async def events_until(ws, n: int, timeout: float = 15) -> list[dict]:
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        msg = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
        if msg["type"] == "event":
            out.append(msg)
    return out


async def test_subscribe_and_unsubscribe_receive_kafka_events(gateway, bus):
    async with aiohttp.ClientSession() as session:
        a = await connect(session, gateway)
        b = await connect(session, gateway, OTHER_TOKEN, header=False)  # token from env, first-message auth
        await a.send_json({"action": "subscribe", "topics": ["ticks", "signals"], "symbols": ["AAPL"]})
        assert (await a.receive_json(timeout=5))["subscriptions"] == {"signals": ["AAPL"], "ticks": ["AAPL"]}
        await b.send_json({"action": "subscribe", "topics": ["ticks"], "symbols": ["AAPL", "MSFT"]})
        assert (await b.receive_json(timeout=5))["type"] == "subscribed"

        await publish(bus, "ticks.v1", [tick("AAPL", 100 + i, i) for i in range(5)] + [tick("MSFT", 300.0, 9)])
        await publish(bus, "signals.v1", [signal("AAPL"), signal("MSFT")])
        got_a = await events_until(a, 6)
        assert [(e["topic"], e["symbol"]) for e in got_a] == [("ticks", "AAPL")] * 5 + [("signals", "AAPL")]
        assert [e["event"]["price"] for e in got_a[:5]] == [100, 101, 102, 103, 104]  # one partition, in order
        got_b = await events_until(b, 6)
        assert sorted(e["symbol"] for e in got_b) == ["AAPL"] * 5 + ["MSFT"]

        await a.send_json({"action": "unsubscribe", "topics": ["ticks"]})
        assert (await a.receive_json(timeout=5))["subscriptions"] == {"signals": ["AAPL"]}
        await publish(bus, "ticks.v1", [tick("AAPL", 200.0)])
        await publish(bus, "signals.v1", [signal("AAPL", "sell")])
        (only,) = await events_until(a, 1)
        assert only["topic"] == "signals" and only["event"]["action"] == "sell"
        assert (await events_until(b, 1))[0]["event"]["price"] == 200.0


async def test_auth_and_limits(gateway):
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(f"{gateway.http}/ws", headers={"Authorization": "Bearer nope-0123456789abcdef"})
        assert info.value.status == 401
        ws = await session.ws_connect(f"{gateway.http}/ws")
        await ws.send_json({"action": "auth", "token": "nope-0123456789abcdef"})
        msg = await ws.receive(timeout=5)
        assert ws.close_code == 4001 and "invalid token" in msg.extra

        conns = [await connect(session, gateway) for _ in range(3)]
        extra = await session.ws_connect(f"{gateway.http}/ws", headers=AUTH)
        msg = await extra.receive(timeout=5)
        assert extra.close_code == 4029 and "limit 3" in msg.extra

        await conns[0].send_json({"action": "subscribe", "topics": ["ticks"], "symbols": [f"S{i}" for i in range(7)]})
        reply = await conns[0].receive_json(timeout=5)
        assert reply["type"] == "error" and "the limit is 6" in reply["error"]
        await conns[0].send_str(json.dumps({"action": "ping", "pad": "x" * 3000}))
        await conns[0].receive(timeout=5)
        assert conns[0].close_code == 1009
        for ws in conns[1:]:
            await ws.close()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gateway.http}/metrics") as r:
            text = await r.text()
    assert 'ticktide_gateway_rejected_connections_total{reason="too_many_connections"} 1.0' in text
    assert TOKEN not in gateway.log() and OTHER_TOKEN not in gateway.log()


async def test_slow_client_is_cut_off_and_the_others_get_everything(gateway, bus):
    n = 3000
    slow = await RawWebSocket.connect("127.0.0.1", gateway.port)
    await slow.send_json({"action": "subscribe", "topics": ["features"], "symbols": ["SLOW"]})
    async with aiohttp.ClientSession() as session:
        fast = await connect(session, gateway, OTHER_TOKEN)
        await fast.send_json({"action": "subscribe", "topics": ["features"], "symbols": ["SLOW"]})
        assert (await fast.receive_json(timeout=5))["type"] == "subscribed"
        await asyncio.sleep(0.2)
        now = time.time_ns()
        values = {f"feature_{i:03d}": float(i) for i in range(200)}  # ~6 KB per event

        async def feed():  # a steady 5,000 events/s that a reading client follows easily
            for start in range(0, n, 100):
                await publish(bus, "features.v1", [
                    FeatureVector(symbol="SLOW", ts_event=now + i, ts_ingest=now, ts_proc=now, seq=i,
                                  source="tick", price=1.0, values=values) for i in range(start, start + 100)])
                await asyncio.sleep(0.02)

        feeder = asyncio.create_task(feed())
        got = await events_until(fast, n, timeout=30)
        await feeder
        assert [e["event"]["seq"] for e in got] == list(range(n))
        async with session.get(f"{gateway.http}/metrics") as r:
            assert "ticktide_gateway_slow_disconnects_total 1.0" in await r.text()
    frames, close = await slow.read_frames(timeout=10)
    slow.close()
    assert close is not None and close[0] == 4008 and "slow consumer" in close[1], close
    assert len(frames) < n


async def test_rest_workflow_end_to_end(gateway):
    body = {"symbols": ["AAPL", "GE", "JPM", "WMT", "XOM"], "start_date": "2016-01-01", "end_date": "2016-04-30",
            "config": {"workflow": {"warmup": 60}, "portfolio": {"lookback": 60}}}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{gateway.http}/workflows", json=body, headers=AUTH) as r:
            assert r.status == 202, await r.text()
            wid = (await r.json())["workflow_id"]
    seen = []
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:  # a new client: the job outlived the first one
        while time.monotonic() < deadline:
            async with session.get(f"{gateway.http}/workflows/{wid}/status", headers=AUTH) as r:
                doc = await r.json()
            seen.append((doc["status"], doc["progress"]))
            if doc["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.1)
        assert doc["status"] == "completed", (doc, gateway.log()[-2000:])
        progress = [p for _, p in seen]
        assert progress == sorted(progress) and progress[-1] == 1.0
        async with session.get(f"{gateway.http}/workflows/{wid}/results", headers=AUTH) as r:
            assert r.status == 200
            results = (await r.json())["results"]
    assert results["symbols"] == body["symbols"] and results["days"] > 50
    assert abs(sum(results["optimal_weights"].values()) - 1.0) < 1e-6
    assert {"risk_metrics", "rebalances", "trades", "daily_returns"} <= set(results)
