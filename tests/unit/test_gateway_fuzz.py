"""Fuzz the gateway's REST API from its own OpenAPI document (schemathesis), against a live server."""

from __future__ import annotations

import asyncio
import threading

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ticktide.gateway.auth import TokenStore
from ticktide.gateway.server import create_app
from ticktide.gateway.workflow import check_config
from tests.unit.test_gateway_support import TOKEN, free_port

PRICES = "tests/data/stock_prices_20.csv"


def instant_workflow(request, progress_cb):
    progress_cb(1.0)
    return {"symbols": list(request.symbols), "start": request.start_date.isoformat()}


@pytest.fixture(scope="module")
def base_url():
    """The gateway on its own event loop in a thread (schemathesis calls are synchronous)."""
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder = {}

    async def serve():
        app = create_app(TokenStore([TOKEN]), prices=PRICES, run_workflow=instant_workflow,
                         check_config=check_config, max_queued_jobs=1000)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        holder["runner"] = runner
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(10), "gateway did not start"
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


OPERATIONS = ["GET /health", "GET /metrics", "POST /workflows", "GET /workflows/{id}/status",
              "GET /workflows/{id}/results"]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_api_conforms_to_its_openapi_document(base_url, operation):
    """Every answer: no 5xx, a documented status and content type, a body matching its schema, 4xx for
    invalid input, 401 without the token (schemathesis' default checks), for positive and negative cases.

    A schema-valid body can still be refused with 422 (start_date after end_date), so positive acceptance
    is off. (Driven through hypothesis directly: schemathesis' pytest plugin does not load on pytest 9.)
    """
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    ops = {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in schema.get_all_operations())}
    assert set(ops) == set(OPERATIONS)
    op = ops[operation]
    strategy = op.as_strategy(generation_mode=GenerationMode.POSITIVE) | \
        op.as_strategy(generation_mode=GenerationMode.NEGATIVE)

    @given(case=strategy)
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"},
                               excluded_checks=[positive_data_acceptance])

    run()
