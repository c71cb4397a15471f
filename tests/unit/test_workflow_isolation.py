"""A backtest never touches live telemetry: a workflow job inside the gateway leaves the gateway's
live metric families exactly as they were, fires no alert, and trades under its own portfolio id."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from streaming import metrics
from ticktide.gateway.auth import TokenStore
from ticktide.gateway.server import create_app
from tests.unit.test_gateway_support import TOKEN

PRICES = "tests/data/stock_prices_20.csv"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# four symbols against a 5% position limit: the portfolio breaches it, so a job that leaked into
# the live registry would set ticktide_risk_limit_breached (a critical alert)
BODY = {"symbols": ["AAPL", "GE", "JPM", "XOM"], "start_date": "2015-01-01", "end_date": "2015-04-30",
        "config": {"risk": {"limits": {"max_position": 0.05}}}}


def _live_samples(text: str) -> dict[tuple, float]:
    """Every sample except the gateway's own job bookkeeping and the process/runtime collectors."""
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith(("ticktide_gateway_", "python_", "process_")):
            continue
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_a_workflow_job_leaves_the_live_metrics_as_they_were():
    app = create_app(TokenStore([TOKEN]), prices=PRICES)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.make_url("/metrics")) as r:
                before = _live_samples(await r.text())
            async with session.post(server.make_url("/workflows"), json=BODY, headers=AUTH) as r:
                assert r.status == 202, await r.text()
                wid = (await r.json())["workflow_id"]
            for _ in range(1200):
                async with session.get(server.make_url(f"/workflows/{wid}/status"), headers=AUTH) as r:
                    status = (await r.json())["status"]
                if status in ("completed", "failed"):
                    break
                await asyncio.sleep(0.1)
            assert status == "completed"
            async with session.get(server.make_url(f"/workflows/{wid}/results"), headers=AUTH) as r:
                results = (await r.json())["results"]
            async with session.get(server.make_url("/metrics")) as r:
                after_text = await r.text()
    finally:
        await server.close()
    # the job did breach a limit (so the check below could fail)...
    assert any(a["type"] == "limit_breach" and "(max_position)" in a["message"] and "portfolio job:" in a["message"]
               for a in results["alerts"]), results["alerts"]
    # ...and the live registry saw none of it
    after = _live_samples(after_text)
    assert after == before
    # (other tests in this process may have set live samples of these before: only new ones count)
    for family in ("ticktide_risk_limit_breached", "ticktide_up", "ticktide_last_event_timestamp_seconds"):
        assert not any(name == family for name, _ in set(after) - set(before)), family
    assert not [key for key in after if any(v.startswith("job:") for _, v in key[1])]


def test_private_registry_isolates_and_is_dropped():
    family = metrics.gauge("ticktide_test_isolation_gauge", "test only", ["who"])
    family.labels("live").set(1)
    with metrics.private_registry() as registry:
        family.labels("job").set(2)
        assert registry.get_sample_value("ticktide_test_isolation_gauge", {"who": "job"}) == 2
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("ticktide_test_isolation_gauge", {"who": "live"}) == 1
    assert REGISTRY.get_sample_value("ticktide_test_isolation_gauge", {"who": "job"}) is None


def test_families_register_on_first_use_only():
    from prometheus_client import REGISTRY

    family = metrics.counter("ticktide_test_lazy_total", "test only")
    assert REGISTRY.get_sample_value("ticktide_test_lazy_total") is None  # declared, not registered
    family.inc()
    assert REGISTRY.get_sample_value("ticktide_test_lazy_total") == 1
    assert metrics.counter("ticktide_test_lazy_total", "test only") is family  # one family per name


def test_importing_every_command_registers_no_family():
    """A process exports the families of what it runs: importing the CLI and every package registers none."""
    import subprocess
    import sys

    code = (
        "import importlib, pkgutil\n"
        "from ticktide.cli import build_parser\n"
        "build_parser()\n"
        "for pkg in ('streaming', 'producers', 'consumers', 'ticktide'):\n"
        "    m = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(m.__path__, pkg + '.'):\n"
        "        if not info.name.endswith('__main__'):\n"
        "            importlib.import_module(info.name)\n"
        "from prometheus_client import REGISTRY\n"
        "print(sorted(n for n in REGISTRY._names_to_collectors if n.startswith('ticktide')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"


def test_a_backtest_on_kafka_uses_topics_of_its_own():
    from ticktide.workflow.pipeline import job_bus_url

    assert job_bus_url("memory://", "r1") == "memory://"
    assert job_bus_url("kafka://b1:9092,b2:9092", "r1") == "kafka://b1:9092,b2:9092?prefix=workflow-r1."
    url = job_bus_url("kafka://b1:9092?prefix=staging.&client_id=x", "r2")
    from streaming.bus.kafka import KafkaSettings

    settings = KafkaSettings.from_url(url)
    assert settings.physical("alerts.v1") == "staging.workflow-r2.alerts.v1"
    assert settings.client_id == "x"
