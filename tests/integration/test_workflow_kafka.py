"""``ticktide workflow run`` on the real broker: it finishes, gives the embedded bus's results
number for number, and leaves no topic behind (issue 25: it used to hang after "restored")."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streaming.bus.kafka import KafkaBus
from tests.integration.conftest import ROOT, topic_prefix

pytestmark = pytest.mark.kafka

PRICES = ROOT / "tests" / "data" / "stock_prices_20.csv"
RUN_FIELDS = ("run_id", "elapsed_s", "bus", "generated_at", "timing")


def _workflow(out: Path, env: dict) -> dict:
    res = subprocess.run(
        [sys.executable, "-m", "ticktide.cli", "workflow", "run", "--input", str(PRICES),
         "--symbols", "AAPL,MA,JPM,XOM,WMT,PFE", "--start", "2018-01-02", "--end", "2018-03-30",
         "--out", str(out), "--no-report", "--no-progress"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    return {k: v for k, v in results.items() if k not in RUN_FIELDS}


async def _topics_with(prefix: str, url: str) -> list[str]:
    bus = KafkaBus(url)
    try:
        return [t for t in await (await bus._admin()).list_topics() if t.startswith(prefix)]
    finally:
        await bus.close()


def test_workflow_on_kafka_equals_the_embedded_bus_and_cleans_up(kafka_url, tmp_path):
    embedded = _workflow(tmp_path / "embedded", {"TICKTIDE_BUS": ""})
    # TICKTIDE_BUS exported, as docs/operations.md recommends for every command
    on_kafka = _workflow(tmp_path / "kafka", {"TICKTIDE_BUS": kafka_url})
    assert on_kafka["rebalances_ok"] > 0 and on_kafka["trades"]
    differing = [k for k in set(embedded) | set(on_kafka) if embedded.get(k) != on_kafka.get(k)]
    assert differing == [], differing
    assert asyncio.run(_topics_with(topic_prefix(kafka_url) + "workflow-", kafka_url)) == []
