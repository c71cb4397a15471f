"""POST /workflows with history sources configured: any symbols, fetched through the cache by the real workflow."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from ticktide.gateway.auth import TokenStore
from ticktide.gateway.server import create_app
from tests.history_server import HistoryServer, stock_closes
from tests.unit.test_gateway_rest import AUTH, PRICES, poll
from tests.unit.test_gateway_support import TOKEN

SMALL = {"workflow": {"warmup": 60},
         "portfolio": {"lookback": 60, "min_history": 40, "objective": "min_variance",
                       "schedule": {"frequency": "weekly"}, "constraints": {"max_weight": 0.5}},
         "execution": {"max_position_weight": 0.6}}


@pytest.fixture
def srv(monkeypatch):
    monkeypatch.delenv("ALPHAVANTAGE_API_KEY", raising=False)
    closes = stock_closes(["AAPL", "GE", "WMT"], "2016-01-01", "2017-12-31")
    with HistoryServer() as s:
        s.serve("yahoo", "AAPL", closes["AAPL"])
        s.serve("yahoo", "MSFT", closes["GE"])  # a symbol the prices file does not have
        s.serve("stooq", "WMT", closes["WMT"])  # Yahoo does not know it: Stooq serves
        yield s


@pytest.fixture
async def gateway(srv, tmp_path):
    servers = []

    async def start(prices=None):
        history = {"sources": None, "cache_dir": str(tmp_path / "cache"),
                   "config": {"yahoo_url": srv.url, "stooq_url": srv.url, "retries": 0}}
        server = TestServer(create_app(TokenStore([TOKEN]), prices=prices, history=history), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for s in servers:
        await s.close()


async def test_any_symbols_are_fetched_and_the_status_names_their_sources(gateway, srv):
    server = await gateway(prices=PRICES)
    body = {"symbols": ["AAPL", "MSFT", "WMT"], "start_date": "2017-03-01", "end_date": "2017-05-31", "config": SMALL}
    async with aiohttp.ClientSession() as session:
        async with session.post(server.make_url("/workflows"), json=body, headers=AUTH) as r:
            assert r.status == 202, await r.text()
            wid = (await r.json())["workflow_id"]
        doc = await poll(session, server.make_url(f"/workflows/{wid}/status"),
                         lambda d: d["status"] in ("completed", "failed"), timeout=120)
        assert doc["status"] == "completed", doc
        assert doc["stage"] == "done"
        assert {s: v["source"] for s, v in doc["sources"].items()} == {"AAPL": "yahoo", "MSFT": "yahoo", "WMT": "stooq"}
        assert doc["sources"]["WMT"]["failures"][0]["source"] == "yahoo"
        async with session.get(server.make_url(f"/workflows/{wid}/results"), headers=AUTH) as r:
            results = (await r.json())["results"]
        assert results["symbols"] == ["AAPL", "MSFT", "WMT"] and results["trades"]
        assert results["data"]["price_field"] == {"AAPL": "adj_close", "MSFT": "adj_close", "WMT": "close"}
        requests = sum(srv.requests.values())
        # the same job again is served from the cache
        async with session.post(server.make_url("/workflows"), json=body, headers=AUTH) as r:
            wid2 = (await r.json())["workflow_id"]
        doc2 = await poll(session, server.make_url(f"/workflows/{wid2}/status"),
                          lambda d: d["status"] in ("completed", "failed"), timeout=120)
        assert doc2["status"] == "completed" and all(v["from_cache"] for v in doc2["sources"].values())
        assert sum(srv.requests.values()) == requests


async def test_symbols_in_the_prices_file_keep_todays_behaviour(gateway):
    server = await gateway(prices=PRICES)
    body = {"symbols": ["AAPL", "GE"], "start_date": "2017-03-01", "end_date": "2017-03-31", "config": SMALL}
    async with aiohttp.ClientSession() as session:
        async with session.post(server.make_url("/workflows"), json=body, headers=AUTH) as r:
            wid = (await r.json())["workflow_id"]
        doc = await poll(session, server.make_url(f"/workflows/{wid}/status"),
                         lambda d: d["status"] in ("completed", "failed"), timeout=120)
        assert doc["status"] == "completed" and "sources" not in doc
        async with session.get(server.make_url(f"/workflows/{wid}/results"), headers=AUTH) as r:
            assert (await r.json())["results"]["data"]["prices_file"] == PRICES


@pytest.mark.parametrize("body, message", [
    ({"symbols": ["A B"], "start_date": "2017-03-01", "end_date": "2017-03-31"}, "are not ticker symbols"),
    ({"symbols": ["AAPL"], "start_date": "2017-03-01", "end_date": "2017-03-31",
      "config": {"history": {"yahoo_url": "http://169.254.169.254"}}}, "not accepted over REST"),
])
async def test_bad_submissions(gateway, body, message):
    server = await gateway()
    async with aiohttp.ClientSession() as session:
        async with session.post(server.make_url("/workflows"), json=body, headers=AUTH) as r:
            assert r.status == 422 and message in (await r.json())["error"]


async def test_a_symbol_nobody_serves_fails_the_job_with_its_reasons(gateway):
    server = await gateway()
    body = {"symbols": ["ZZZZ"], "start_date": "2017-03-01", "end_date": "2017-03-31", "config": SMALL}
    async with aiohttp.ClientSession() as session:
        async with session.post(server.make_url("/workflows"), json=body, headers=AUTH) as r:
            wid = (await r.json())["workflow_id"]
        doc = await poll(session, server.make_url(f"/workflows/{wid}/status"),
                         lambda d: d["status"] in ("completed", "failed"), timeout=60)
        assert doc["status"] == "failed" and doc["stage"] == "fetching"
        assert "ZZZZ: no source could serve it: yahoo: No data found" in doc["error"]


def test_gateway_history_options_fail_in_one_line(tmp_path, capsys):
    from ticktide.cli import main

    tokens = tmp_path / "tokens"
    tokens.write_text("a-token-of-sufficient-length-0123456789\n")
    assert main(["gateway", "--tokens-file", str(tokens), "--port", "0", "--history-sources", "yahoo,reuters"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ticktide gateway: history: unknown source reuters (sources: yahoo, alphavantage, stooq, binance)"]
