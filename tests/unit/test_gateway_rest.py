"""Gateway REST: workflow jobs (a stand-in workflow), validation, auth, limits, health/metrics/OpenAPI."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from ticktide.gateway.auth import TokenStore
from ticktide.gateway.server import create_app
from ticktide.gateway.workflow import check_config, config_to_toml, known_symbols
from tests.unit.test_gateway_support import TOKEN

PRICES = "tests/data/stock_prices_20.csv"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = {"symbols": ["AAPL", "GE"], "start_date": "2015-01-01", "end_date": "2015-06-30"}


class FakeWorkflow:
    """run_workflow(request, progress_cb): reports progress, waits until released, returns a dict."""

    def __init__(self, fail: bool = False) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.fail = fail
        self.requests = []

    def __call__(self, request, progress_cb):
        self.requests.append(request)
        self.started.set()
        progress_cb(0.5)
        if not self.release.wait(10):
            raise TimeoutError("not released")
        if self.fail:
            raise RuntimeError("optimizer exploded")
        return {"symbols": list(request.symbols), "start": request.start_date.isoformat(), "total_return": 0.1}


@pytest.fixture
async def rest():
    servers = []

    async def start(workflow=None, prices=PRICES, **kw):
        app = create_app(TokenStore([TOKEN]), prices=prices, run_workflow=workflow or FakeWorkflow(),
                         check_config=check_config, **kw)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


async def poll(session, url, until, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with session.get(url, headers=AUTH) as r:
            assert r.status == 200, await r.text()
            doc = await r.json()
        if until(doc) or asyncio.get_running_loop().time() > deadline:
            return doc
        await asyncio.sleep(0.02)


async def test_submit_poll_results_and_client_disconnect(rest):
    wf = FakeWorkflow()
    server = await rest(wf)
    async with aiohttp.ClientSession() as session:
        async with session.post(server.make_url("/workflows"), json=BODY, headers=AUTH) as r:
            assert r.status == 202
            job = await r.json()
    # the submitting client is gone; the job carries on
    wid = job["workflow_id"]
    assert job["status"] == "queued"
    async with aiohttp.ClientSession() as session:
        doc = await poll(session, server.make_url(f"/workflows/{wid}/status"), lambda d: d["progress"] == 0.5)
        assert doc["status"] == "running" and doc["started_at"] and doc["finished_at"] is None
        async with session.get(server.make_url(f"/workflows/{wid}/results"), headers=AUTH) as r:
            assert r.status == 409 and "running" in (await r.json())["error"]
        wf.release.set()
        doc = await poll(session, server.make_url(f"/workflows/{wid}/status"), lambda d: d["status"] == "completed")
        assert doc["status"] == "completed" and doc["progress"] == 1.0 and doc["error"] is None
        async with session.get(server.make_url(f"/workflows/{wid}/results"), headers=AUTH) as r:
            assert r.status == 200
            out = await r.json()
        assert out["results"] == {"symbols": ["AAPL", "GE"], "start": "2015-01-01", "total_return": 0.1}
        assert wf.requests[0].prices == PRICES
        async with session.get(server.make_url("/health")) as r:
            health = await r.json()
        assert health["status"] == "ok" and health["jobs"]["completed"] == 1


async def test_failed_job_and_bounded_concurrency(rest):
    wf = FakeWorkflow(fail=True)
    server = await rest(wf, max_running_jobs=1, max_queued_jobs=1)
    async with aiohttp.ClientSession() as session:
        ids = []
        for _ in range(2):
            async with session.post(server.make_url("/workflows"), json=BODY, headers=AUTH) as r:
                assert r.status == 202
                ids.append((await r.json())["workflow_id"])
        async with session.post(server.make_url("/workflows"), json=BODY, headers=AUTH) as r:
            assert r.status == 429 and "too many" in (await r.json())["error"]
        assert await asyncio.to_thread(wf.started.wait, 5)
        second = await poll(session, server.make_url(f"/workflows/{ids[1]}/status"), lambda d: True)
        assert second["status"] == "queued"  # one at a time
        wf.release.set()
        for wid in ids:
            doc = await poll(session, server.make_url(f"/workflows/{wid}/status"), lambda d: d["status"] == "failed")
            assert doc["status"] == "failed" and "optimizer exploded" in doc["error"]
            async with session.get(server.make_url(f"/workflows/{wid}/results"), headers=AUTH) as r:
                body = await r.json()
                assert r.status == 409 and body["status"] == "failed" and "optimizer exploded" in body["error"]


@pytest.mark.parametrize("body, status, message", [
    (b"not json", 400, "not JSON"),
    (b"[1, 2]", 400, "Expected `object`"),
    (b'{"symbols": ["AAPL"]}', 422, "missing required field `start_date`"),
    (b'{"symbols": [], "start_date": "2015-01-01", "end_date": "2015-02-01"}', 422, "at least one symbol"),
    (b'{"symbols": ["NOPE"], "start_date": "2015-01-01", "end_date": "2015-02-01"}', 422, "NOPE not in the prices"),
    (b'{"symbols": ["AAPL"], "start_date": "2015-13-01", "end_date": "2015-02-01"}', 422, "start_date"),
    (b'{"symbols": ["AAPL"], "start_date": "2015-03-01", "end_date": "2015-02-01"}', 422, "must be before"),
    (b'{"symbols": ["AAPL"], "start_date": "2015-01-01", "end_date": "2015-02-01", "x": 1}', 422, "unknown field"),
    (b'{"symbols": ["AAPL"], "start_date": "2015-01-01", "end_date": "2015-02-01", "config": {"nope": {}}}',
     422, "unknown config tables: nope"),
    (b'{"symbols": ["AAPL"], "start_date": "2015-01-01", "end_date": "2015-02-01",'
     b' "config": {"portfolio": {"lookback": "long"}}}', 422, "config"),
])
async def test_bad_submissions_say_what_is_wrong(rest, body, status, message):
    server = await rest()
    async with aiohttp.ClientSession() as session:
        async with session.post(server.make_url("/workflows"), data=body, headers=AUTH) as r:
            doc = await r.json()
            assert r.status == status, doc
            assert message in doc["error"], doc


async def test_auth_errors_health_metrics_and_openapi(rest):
    server = await rest()
    async with aiohttp.ClientSession() as session:
        for method, path in (("POST", "/workflows"), ("GET", "/workflows/abc/status"),
                             ("GET", "/workflows/abc/results")):
            for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
                async with session.request(method, server.make_url(path), headers=headers, json=BODY) as r:
                    assert r.status == 401 and "unauthorized" in (await r.json())["error"]
                    assert r.headers["WWW-Authenticate"].startswith("Bearer")
        async with session.get(server.make_url("/workflows/abc/status"), headers=AUTH) as r:
            assert r.status == 404 and "no workflow with id 'abc'" in (await r.json())["error"]
        async with session.get(server.make_url("/nowhere"), headers=AUTH) as r:
            assert r.status == 404 and "no such resource" in (await r.json())["error"]
        async with session.delete(server.make_url("/health")) as r:
            assert r.status == 405 and "GET" in r.headers["Allow"] and "not allowed" in (await r.json())["error"]
        async with session.post(server.make_url("/workflows"), data=b"{" + b" " * 70000 + b"}", headers=AUTH) as r:
            assert r.status == 413 and "too large" in (await r.json())["error"]
        async with session.get(server.make_url("/metrics")) as r:
            text = await r.text()
            assert r.status == 200 and "ticktide_gateway_connections" in text
        async with session.get(server.make_url("/openapi.json")) as r:
            spec = await r.json()
        assert set(spec["paths"]) == {"/health", "/metrics", "/workflows", "/workflows/{id}/status",
                                      "/workflows/{id}/results"}
        assert "AAPL" in spec["components"]["schemas"]["WorkflowSubmission"]["properties"]["symbols"]["items"]["enum"]
        async with session.get(server.make_url("/")) as r:
            assert r.status == 200 and "ticktide live" in await r.text()
        async with session.get(server.make_url("/static/app.js")) as r:
            assert r.status == 200 and "WebSocket" in await r.text()


async def test_no_prices_file_answers_503(rest):
    server = await rest(prices=None)
    async with aiohttp.ClientSession() as session:
        async with session.post(server.make_url("/workflows"), json=BODY, headers=AUTH) as r:
            assert r.status == 503 and "--prices" in (await r.json())["error"]


def test_config_to_toml_round_trips_through_the_workflow_config():
    config = {"workflow": {"warmup": 20}, "portfolio": {"objective": "min_variance"},
              "execution": {"initial_cash": 250000.0}}
    text = config_to_toml(config)
    assert text.startswith('"workflow" = {"warmup" = 20}')
    check_config(config)
    with pytest.raises(ValueError, match="config: need 2 <= min_history <= lookback"):
        check_config({"portfolio": {"lookback": 1}})
    with pytest.raises(ValueError, match="null is not allowed"):
        config_to_toml({"portfolio": {"lookback": None}})
    assert {"AAPL", "GE", "MA"} <= known_symbols(PRICES)


async def test_jobs_dir_keeps_finished_jobs_across_a_restart(rest, tmp_path, caplog):
    """With --jobs-dir, a second gateway on the same directory serves the first one's
    finished jobs; a job that was still running comes back failed, saying so; a file
    that does not parse is skipped, named in a warning."""
    import json

    jobs = tmp_path / "jobs"
    done, stuck = FakeWorkflow(), FakeWorkflow()
    server = await rest(done, jobs_dir=str(jobs))
    async with aiohttp.ClientSession() as session:
        async with session.post(server.make_url("/workflows"), json=BODY, headers=AUTH) as r:
            wid = (await r.json())["workflow_id"]
        done.release.set()
        first = await poll(session, server.make_url(f"/workflows/{wid}/status"), lambda d: d["status"] == "completed")
        async with session.get(server.make_url(f"/workflows/{wid}/results"), headers=AUTH) as r:
            results = await r.json()
    assert (jobs / f"{wid}.json").exists()
    # a job still running when its gateway goes away
    server2 = await rest(stuck, jobs_dir=str(jobs))
    async with aiohttp.ClientSession() as session:
        async with session.post(server2.make_url("/workflows"), json=BODY, headers=AUTH) as r:
            running = (await r.json())["workflow_id"]
    assert stuck.started.wait(10)
    (jobs / "garbage.json").write_text("{not json")
    (jobs / "other.json").write_text(json.dumps({"workflow_id": "elsewhere"}))

    server3 = await rest(FakeWorkflow(), jobs_dir=str(jobs))  # the restart
    stuck.release.set()
    async with aiohttp.ClientSession() as session:
        async with session.get(server3.make_url(f"/workflows/{wid}/status"), headers=AUTH) as r:
            assert await r.json() == first
        async with session.get(server3.make_url(f"/workflows/{wid}/results"), headers=AUTH) as r:
            assert r.status == 200 and await r.json() == results
        async with session.get(server3.make_url(f"/workflows/{running}/status"), headers=AUTH) as r:
            doc = await r.json()
    assert doc["status"] == "failed" and "interrupted" in doc["error"] and "submit it again" in doc["error"]
    assert "skipping" in caplog.text and "garbage.json" in caplog.text and "other.json" in caplog.text
