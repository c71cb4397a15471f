"""The API document's two clients, unchanged, against ``ticktide gateway`` as its own process on real Kafka.

- REST: a ``requests`` session with ``Authorization: Bearer``, the document's
  payload (``risk_profile`` and ``rebalancing_frequency`` in ``config``),
  polling ``/status`` until ``completed``, printing ``progress``, then ``/results``
  and the names the document reads from them.
- WebSocket: ``websockets.connect`` with the Authorization header, the
  document's subscribe message (``data_type: market_data``), then reading
  JSON messages: ticks (and bars) of AAPL and MSFT arrive, nothing of GOOG.

The document's window is 2023. No real 2023 closes ship with the repository
(tests/data/stock_prices_20.csv ends 2018-04-11), so the prices file the
gateway serves here is that file's last real closes re-dated onto the
business days of 2022-2023: the price moves are real, the calendar is the
document's.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import requests
import websockets

from schemas.events import Bar
from streaming.bus.kafka import KafkaBus
from tests.integration.conftest import ROOT
from tests.integration.test_gateway import Gateway, gateway_command, publish, served, tick
from tests.unit.test_gateway_support import TOKEN, free_port

pytestmark = pytest.mark.kafka

SYMBOLS = ["AAPL", "GOOG", "AMZN", "JPM", "XOM"]
DOCUMENT_PAYLOAD = {
    "symbols": SYMBOLS,
    "start_date": "2023-01-01",
    "end_date": "2023-12-31",
    "config": {"risk_profile": "moderate", "rebalancing_frequency": "monthly"},
}
DOCUMENT_SUBSCRIBE = {"action": "subscribe", "symbols": ["AAPL", "MSFT"], "data_type": "market_data"}


def redated_prices(dest: Path) -> Path:
    real = pd.read_csv(ROOT / "tests/data/stock_prices_20.csv", parse_dates=["date"]).set_index("date")[SYMBOLS]
    days = pd.bdate_range("2022-01-03", "2023-12-29")
    closes = real.dropna().tail(len(days))
    closes.index = days[-len(closes):]
    closes.index.name = "date"
    closes.to_csv(dest)
    return dest


@pytest.fixture(scope="module")
def gateway(kafka_broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("document")
    url = f"{kafka_broker}{'&' if '?' in kafka_broker else '?'}prefix=t{uuid.uuid4().hex[:8]}."
    port = free_port()
    (tmp / "tokens").write_text(f"{TOKEN}\n")
    log = tmp / "gateway.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(gateway_command("--bus", url, "--port", str(port), "--tokens-file", str(tmp / "tokens"),
                                            "--prices", str(redated_prices(tmp / "prices.csv"))),
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    with served(Gateway(url, port, proc, log), url) as gw:
        yield gw


def test_the_documents_rest_client(gateway, capsys):
    base = gateway.http
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {TOKEN}"})

    response = session.post(f"{base}/workflows", json=DOCUMENT_PAYLOAD, timeout=10)
    assert response.status_code == 202, response.text
    workflow_id = response.json()["workflow_id"]

    progress = []
    deadline = time.monotonic() + 120
    while True:
        status = session.get(f"{base}/workflows/{workflow_id}/status", timeout=10).json()
        print(f"Progress: {status['progress']:.1%}")
        progress.append(status["progress"])
        if status["status"] in ("completed", "failed"):
            break
        assert time.monotonic() < deadline, f"still {status['status']} after 120 s:\n{gateway.log()[-2000:]}"
        time.sleep(0.2)
    assert status["status"] == "completed", (status, gateway.log()[-3000:])
    assert progress == sorted(progress) and progress[-1] == 1.0 and all(0.0 <= p <= 1.0 for p in progress)
    assert "Progress: 100.0%" in capsys.readouterr().out

    results = session.get(f"{base}/workflows/{workflow_id}/results", timeout=10).json()["results"]
    metrics = results["risk_metrics"]
    for name in ("volatility", "var_95", "max_drawdown"):
        assert isinstance(metrics[name], float), name
    assert metrics["var_95"] == metrics["var_95_historical"]
    assert results["risk_assessment"]["risk_level"] in ("low", "medium", "high")
    weights = results["optimal_portfolio"]["weights"]
    assert set(weights) <= set(SYMBOLS) and sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
    assert max(weights.values()) <= 0.30 + 1e-6  # the moderate profile's max weight
    summary = results["summary"]
    assert summary["symbols_processed"] == summary["symbols_preprocessed"] == summary["symbols_with_features"] == 5
    assert summary["portfolio_optimized"] and summary["risk_assessed"]
    assert summary["trades_executed"] == len(results["trades"]) > 0
    assert results["first_trading_day"] == "2023-01-02" and results["objective"] == "max_sharpe"
    months = {r["date"][:7] for r in results["rebalances"] if r["trigger"] == "schedule"}
    assert len(months) == 12  # monthly: one scheduled rebalance a month of 2023

    bad = {**DOCUMENT_PAYLOAD, "config": {"risk_profile": "moderate", "rebalancing_frequency": "fortnightly"}}
    response = session.post(f"{base}/workflows", json=bad, timeout=10)
    assert response.status_code == 422
    assert "daily, weekly, monthly, quarterly" in response.json()["error"]


async def test_the_documents_websocket_client(gateway):
    bus = KafkaBus(gateway.bus_url)
    await bus.start()
    uri = f"ws://127.0.0.1:{gateway.port}/ws"
    try:
        async with websockets.connect(uri, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws, \
                websockets.connect(uri, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as other:
            await ws.send(json.dumps(DOCUMENT_SUBSCRIBE))
            assert json.loads(await ws.recv())["type"] == "welcome"
            reply = json.loads(await ws.recv())
            assert reply == {"type": "subscribed",
                             "subscriptions": {"bars": ["AAPL", "MSFT"], "ticks": ["AAPL", "MSFT"]}}
            # a second client takes GOOG, so the gateway demonstrably routes the GOOG ticks it keeps from ws
            await other.send(json.dumps({"action": "subscribe", "symbols": ["GOOG"], "data_type": "market_data"}))
            assert [json.loads(await other.recv())["type"] for _ in range(2)] == ["welcome", "subscribed"]

            await publish(bus, "ticks.v1", [tick("GOOG", 130.0 + i, i) for i in range(3)])
            await publish(bus, "ticks.v1", [tick("AAPL", 190.0 + i, i) for i in range(3)]
                          + [tick("MSFT", 370.0 + i, i) for i in range(3)])
            now = time.time_ns()
            await publish(bus, "bars.v1", [Bar(symbol=s, ts_event=now, open=1.0, high=1.0, low=1.0, close=1.0,
                                               volume=1.0, interval="1d") for s in ("AAPL", "GOOG")])

            async def read(sock, n: int) -> list[dict]:
                out = []
                while len(out) < n:
                    message = json.loads(await asyncio.wait_for(sock.recv(), 15))
                    if message["type"] == "event":
                        out.append(message)
                return out

            got = await read(ws, 7)
            assert sorted((m["topic"], m["symbol"]) for m in got) == \
                [("bars", "AAPL")] + [("ticks", "AAPL")] * 3 + [("ticks", "MSFT")] * 3
            assert [m["event"]["price"] for m in got if m["symbol"] == "AAPL" and m["topic"] == "ticks"] == \
                [190.0, 191.0, 192.0]
            assert sorted(m["symbol"] for m in await read(other, 4)) == ["GOOG"] * 4
            with pytest.raises(asyncio.TimeoutError):  # nothing else, GOOG least of all
                extra = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                raise AssertionError(f"unexpected message {extra}")

            await ws.send(json.dumps({"action": "unsubscribe", "symbols": ["MSFT"], "data_type": "market_data"}))
            assert json.loads(await ws.recv())["subscriptions"] == {"bars": ["AAPL"], "ticks": ["AAPL"]}
            await publish(bus, "ticks.v1", [tick("MSFT", 400.0, 9), tick("AAPL", 200.0, 9)])
            (only,) = await read(ws, 1)
            assert (only["symbol"], only["event"]["price"]) == ("AAPL", 200.0)
    finally:
        await bus.close()
